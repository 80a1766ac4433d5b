"""`xm list -l`: each domain as xend's SXP record, pretty-printed as Xen 3's xm prints it.

Xen 3.0's `xm list -l` calls `PrettyPrint.prettyprint(info)` (tools/python/xen/xend/PrettyPrint.py)
on the record `XendDomainInfo.sxpr()` builds: `(domain (domid N) ...)` with, in this order, the
round-tripping config entries (uuid, vcpus, vcpu_avail, cpu_weight, memory, maxmem, bootloader,
features, name, on_poweroff, on_reboot, on_crash), the image, the devices, then state,
shutdown_reason, cpu_time, online_vcpus, up_time, start_time, store_mfn, console_mfn.

vmlab prints the entries it models, in that order: domid, vcpus, vcpu_avail, memory, maxmem, name,
on_poweroff, on_reboot, on_crash, image (domUs), state, cpu_time, online_vcpus. It has no uuid,
cpu weight, store/console frames or wall-clock start time, and leaves those out rather than
invent them; devices are listed by `xm block-list`-style verbs in real xm and are left out too.

The printer is Oppen-style as in PrettyPrint.py (width 80): a list that fits on the rest of the
line prints flat, `(name value ...)`; one that does not puts each element on its own line,
indented 4 past the list's `(`, and its `)` on a line of its own at the list's column.
"""

from __future__ import annotations

import string

from vmlab.hypervisor.domain import Domain, DomainKind
from vmlab.hypervisor.hypervisor import DomainInfo

__all__ = ["domain_sxpr", "prettyprint", "list_long"]

WIDTH = 80
_ATOM_CHARS = set(string.ascii_letters + string.digits + ".-_:/~")


def _atom(x) -> str:
    """sxp.show for one atom: numbers as repr, plain strings bare, others quoted (sxp.atomp)."""
    if isinstance(x, (int, float)):
        return repr(x)
    s = str(x)
    return s if all(c in _ATOM_CHARS for c in s) else repr(s)


def _flat(x) -> str:
    return "(" + " ".join(_flat(e) for e in x) + ")" if isinstance(x, list) else _atom(x)


def prettyprint(sxpr, *, indent: int = 0, width: int = WIDTH) -> str:
    """PrettyPrint.prettyprint's layout of an SXP form starting at column `indent`."""
    flat = _flat(sxpr)
    if not isinstance(sxpr, list) or indent + len(flat) <= width:
        return flat
    inner = indent + 4
    lines = ["(" + prettyprint(sxpr[0], indent=indent + 1, width=width)]
    lines += [" " * inner + prettyprint(e, indent=inner, width=width) for e in sxpr[1:]]
    return "\n".join(lines) + "\n" + " " * indent + ")"


def _image(dom: Domain) -> list | None:
    cfg = dom.config
    if dom.domid == 0 or not cfg.kernel:
        return None
    image: list = ["hvm" if cfg.kind is DomainKind.HVM else "linux", ["kernel", cfg.kernel]]
    if cfg.ramdisk:
        image.append(["ramdisk", cfg.ramdisk])
    if cfg.extra:
        image.append(["args", cfg.extra])
    return image


def domain_sxpr(dom: Domain, info: DomainInfo) -> list:
    """The `(domain ...)` record of XendDomainInfo.sxpr() for the entries vmlab models."""
    cfg = dom.config
    sxpr: list = ["domain", ["domid", info.domid], ["vcpus", info.max_vcpus],
                  ["vcpu_avail", (1 << info.vcpus) - 1], ["memory", info.memory_mib], ["maxmem", cfg.max_mib],
                  ["name", info.name], ["on_poweroff", cfg.on_poweroff], ["on_reboot", cfg.on_reboot],
                  ["on_crash", cfg.on_crash]]
    image = _image(dom)
    if image is not None:
        sxpr.append(["image", image])
    sxpr += [["state", info.flags], ["cpu_time", float(info.cpu_time_s)], ["online_vcpus", info.vcpus]]
    return sxpr


def list_long(xm, ref: str | int | None = None) -> str:
    """`xm list -l [DOMAIN]`: one pretty-printed record per domain, in domid order."""
    infos = xm.list(ref)
    return "\n".join(prettyprint(domain_sxpr(xm.lookup(i.domid), i)) for i in infos)
