"""The parts of a Linux guest kernel the hypervisor model needs in Lab 1.

The guest drives the hypervisor only through its public API and hypercalls:
`boot_guest` writes the boot console and the kernel image's pages, `balloon` is
the balloon driver moving toward a target with memory_op on itself.

`minimum_target` is the balloon driver's floor, copied from the Xen Linux balloon
driver (linux-2.6.18-xen drivers/xen/balloon/balloon.c, and its FreeBSD port):
the guest refuses to balloon below it, which is why `xm mem-set` is only a target
the guest "may not reach".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vmlab.hardware.memory import PAGE_SHIFT
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainKind
from vmlab.hypervisor.hypervisor import dom0_kernel_banner

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["minimum_target", "boot_messages", "boot_guest", "balloon"]


def _mb2pages(mb: int) -> int:
    return mb << (20 - PAGE_SHIFT)


def minimum_target(max_pfn: int, current_pages: int) -> int:
    """Pages below which the Xen balloon driver will not shrink a guest.

    Piecewise linear in max_pfn: 16 MiB -> 16, 128 -> 72, 512 -> 168, 2048 -> 360,
    8192 -> 552 MiB; never above the current size ("don't enforce growth").
    """
    if max_pfn < _mb2pages(128):
        min_pages = _mb2pages(8) + (max_pfn >> 1)
    elif max_pfn < _mb2pages(512):
        min_pages = _mb2pages(40) + (max_pfn >> 2)
    elif max_pfn < _mb2pages(2048):
        min_pages = _mb2pages(104) + (max_pfn >> 3)
    else:
        min_pages = _mb2pages(296) + (max_pfn >> 5)
    return min(min_pages, current_pages)


# What the console ring shows while a guest boots. The kernel version is the
# one Oracle VM Server 2.x guests ran (2.6.18-xen); the lines are trimmed.
def boot_messages(name: str, kind: str, memory_kib: int, vcpus: int, xen_version: tuple[int, int]) -> list[str]:
    if kind == "hvm":
        return [
            "HVM Loader (hvmloader: the Bochs ROMBIOS, qemu-dm in dom0 emulates the devices)",
            f"Booting from Hard Disk... ({memory_kib // 1024} MiB, {vcpus} vCPU(s), unmodified guest)",
            f"{name} ready",
        ]
    assert tuple(xen_version) == tuple(C.XEN_VERSION), "the banner names the hypervisor's own version"
    return dom0_kernel_banner(memory_kib, vcpus) + [
        "xen_mem: Initialising balloon driver.",
        "netfront: Initialising virtual ethernet driver.",
        "blkfront: xvda: barriers enabled",
        f"{name} login:",
    ]


def boot_guest(hv: "Hypervisor", domid: int) -> None:
    """The guest kernel starts: console messages, kernel image written to its first pages."""
    dom = hv.domains[domid]
    dom.console += boot_messages(dom.name, dom.kind.value, dom.tot_pages * 4, dom.vcpus_online, C.XEN_VERSION)
    populated = np.flatnonzero(dom.p2m != C.INVALID_MFN)
    # ILLUSTRATIVE: the kernel image and early page cache fill ~8 MiB (2048 pages) at boot.
    hv.guest_write(domid, populated[: min(populated.size, 2048)])


def balloon(hv: "Hypervisor", domid: int, target_pages: int) -> int:
    """Set the balloon target; the guest's balloon driver moves toward it. Returns tot_pages.

    A PV guest frees or repopulates pages with memory_op on itself, but never
    goes below `minimum_target` and never above max_pages or what the host has
    free. An HVM guest without PV drivers has no balloon driver and ignores it; one that
    loaded them (`guest.pv_on_hvm.load_pv_drivers`) balloons like a PV guest.
    """
    from vmlab.hypervisor.hvm_op import has_pv_drivers
    dom = hv.domains[domid]
    dom.target_pages = int(target_pages)
    if (dom.kind is DomainKind.HVM and not has_pv_drivers(dom)) or not dom.is_live:
        return dom.tot_pages
    cur = dom.tot_pages
    if target_pages < cur:
        give = cur - max(target_pages, minimum_target(dom.p2m.size, cur))
        if give > 0:
            pfns = np.flatnonzero(dom.p2m != C.INVALID_MFN)[::-1][:give]
            hv.hypercall(domid, "memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, pfns.size, pfns)
    elif target_pages > cur:
        want = min(target_pages, dom.max_pages) - cur
        if want > 0:
            pfns = np.flatnonzero(dom.p2m == C.INVALID_MFN)[:want]  # Linux's balloon repopulates its holes
            hv.hypercall(domid, "memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, pfns.size, pfns)
    hv.trace.record(time_ns=hv.now_ns, domid=domid, kind="balloon", detail=f"target {target_pages}",
                    value=dom.tot_pages)
    return dom.tot_pages
