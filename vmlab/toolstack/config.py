"""Guest descriptions: xm config files and virt-install calls, both to `DomainConfig`.

An xm config file is Python-syntax assignments (Xen 3's xm exec'd it). We never
exec: the file is parsed with `ast` and only `name = <literal>` statements are
accepted, so a config file cannot run code.
"""

from __future__ import annotations

import ast
import difflib
import shlex

from vmlab.errors import ConfigError, UsageError
from vmlab.hardware.host import parse_size_mib
from vmlab.hypervisor.domain import DiskSpec, DomainConfig, DomainKind, VifSpec
from vmlab.toolstack.virt_install import DEVICE_MODEL, virt_install, virt_install_plan

__all__ = ["parse_xm_config", "format_xm_config", "virt_install", "virt_install_argv", "virt_install_plan",
           "XM_KEYS"]

# Keys Xen 3's xm understood that vmlab models (the rest of xm's keys are listed
# in IGNORED_KEYS: accepted so real files load, but they change nothing here).
XM_KEYS = ("name", "memory", "maxmem", "vcpus", "kernel", "ramdisk", "extra", "root", "bootloader",
           "builder", "disk", "vif", "on_poweroff", "on_reboot", "on_crash", "device_model", "xen_platform_pci")
IGNORED_KEYS = ("uuid", "vnc", "vncunused", "vnclisten", "vncconsole", "sdl", "serial", "boot", "acpi",
                "apic", "pae", "cpus", "localtime", "keymap", "vfb", "bootargs",
                "usbdevice", "timer_mode", "cpu_weight", "cpu_cap")


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, XM_KEYS + IGNORED_KEYS, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known keys are {', '.join(XM_KEYS)}"


def parse_xm_config(text: str, *, source: str = "<config>") -> DomainConfig:
    """Parse an xm domain config file's text into a DomainConfig.

    Raises ConfigError for syntax that is not plain `key = literal`, unknown keys
    (with the closest known key), and bad values.
    """
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as e:
        raise ConfigError(f"{source}:{e.lineno}: {e.msg}; an xm config is lines of key = value") from None
    values: dict[str, object] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ConfigError(f"{source}:{node.lineno}: only 'key = value' lines are allowed in an xm config; "
                              "remove statements, imports and expressions")
        key = node.targets[0].id
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(f"{source}:{node.lineno}: {key} = ... is not a literal (a string, number or list); "
                              "write the value itself, not code") from None
        if key not in XM_KEYS and key not in IGNORED_KEYS:
            raise ConfigError(f"{source}:{node.lineno}: unknown key {key!r}; {_suggest(key)}")
        values[key] = value
    return _config_from_values(values, source)


def _int(values: dict, key: str, source: str) -> int | None:
    v = values.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ConfigError(f"{source}: {key} = {v!r} must be a whole number; e.g. {key} = 512")
    if isinstance(v, str):
        if not v.strip().isdigit():
            raise ConfigError(f"{source}: {key} = {v!r} must be a whole number; e.g. {key} = 512")
        v = int(v)
    return v


def _list(values: dict, key: str, source: str) -> list[str]:
    v = values.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{source}: {key} = {v!r} must be a list of strings; e.g. {key} = ['...']")
    return list(v)


def _config_from_values(values: dict, source: str) -> DomainConfig:
    if "name" not in values:
        raise ConfigError(f"{source}: no name; add a line name = 'vm1'")
    name = values["name"]
    if not isinstance(name, str):
        raise ConfigError(f"{source}: name = {name!r} must be a string; e.g. name = 'vm1'")
    builder = values.get("builder", "linux")
    if builder not in ("linux", "hvm"):
        raise ConfigError(f"{source}: builder = {builder!r} must be 'linux' (PV) or 'hvm'")
    kind = DomainKind.HVM if builder == "hvm" else DomainKind.PV
    if kind is DomainKind.PV and not (values.get("kernel") or values.get("bootloader")):
        raise ConfigError(f"{source}: a PV guest needs kernel = '/path/vmlinuz' or bootloader = '/usr/bin/pygrub'; "
                          "or set builder = 'hvm'")
    for key in ("kernel", "ramdisk", "extra", "root", "bootloader", "device_model"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"{source}: {key} = {values[key]!r} must be a string")
    return DomainConfig(
        name=name, kind=kind,
        memory_mib=_int(values, "memory", source) or 128,  # xm's default memory is 128 MiB
        maxmem_mib=_int(values, "maxmem", source),
        vcpus=_int(values, "vcpus", source) or 1,
        kernel=str(values.get("kernel", "")), ramdisk=str(values.get("ramdisk", "")),
        bootloader=str(values.get("bootloader", "")),
        extra=" ".join(x for x in (str(values.get("root", "")), str(values.get("extra", ""))) if x),
        disks=tuple(DiskSpec.parse(d) for d in _list(values, "disk", source)),
        vifs=tuple(VifSpec.parse(v) for v in _list(values, "vif", source)),
        on_poweroff=str(values.get("on_poweroff", "destroy")),
        on_reboot=str(values.get("on_reboot", "restart")),
        on_crash=str(values.get("on_crash", "restart")),
        **_hvm_keys(values, kind, source),
    )


def _hvm_keys(values: dict, kind: DomainKind, source: str) -> dict:
    """device_model and xen_platform_pci: HVM-only keys (xm create.py; qemu-dm is /usr/lib/xen/bin/qemu-dm)."""
    pci = _int(values, "xen_platform_pci", source)
    if pci not in (None, 0, 1):
        raise ConfigError(f"{source}: xen_platform_pci = {pci} must be 0 or 1; 1 offers PV drivers the platform device")
    if kind is DomainKind.PV:
        bad = [k for k in ("device_model", "xen_platform_pci") if k in values]
        if bad:
            raise ConfigError(f"{source}: {bad[0]} applies to HVM guests only; drop it or set builder = 'hvm'")
        return {}
    return {"xen_platform_pci": 1 if pci is None else pci,
            "device_model": str(values.get("device_model", DEVICE_MODEL))}


def format_xm_config(cfg: DomainConfig) -> str:
    """The xm config file that parses back to `cfg` (what /OVS/running_pool/<vm>/vm.cfg holds)."""
    lines = [f"name = {cfg.name!r}", f"memory = {cfg.memory_mib}"]
    if cfg.maxmem_mib is not None:
        lines.append(f"maxmem = {cfg.maxmem_mib}")
    lines.append(f"vcpus = {cfg.vcpus}")
    if cfg.kind is DomainKind.HVM:
        lines.append("builder = 'hvm'")
        lines.append(f"device_model = {cfg.device_model!r}")
        lines.append(f"xen_platform_pci = {cfg.xen_platform_pci}")
    for key in ("kernel", "ramdisk", "bootloader", "extra"):
        if getattr(cfg, key):
            lines.append(f"{key} = {getattr(cfg, key)!r}")
    lines.append(f"disk = {[str(d) for d in cfg.disks]!r}")
    lines.append(f"vif = {[str(v) for v in cfg.vifs]!r}")
    for key in ("on_poweroff", "on_reboot", "on_crash"):
        lines.append(f"{key} = {getattr(cfg, key)!r}")
    return "\n".join(lines) + "\n"


def virt_install_argv(argv: list[str] | str) -> DomainConfig:
    """Parse a virt-install command line (list or string) into a DomainConfig."""
    import argparse

    if isinstance(argv, str):
        argv = shlex.split(argv)
    if argv and argv[0] == "virt-install":
        argv = argv[1:]
    p = _VirtInstallParser(prog="virt-install", add_help=False)
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-r", "--ram", type=int, required=True)
    p.add_argument("--vcpus", type=int, default=1)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-p", "--paravirt", action="store_true")
    g.add_argument("-v", "--hvm", action="store_true")
    p.add_argument("-f", "--file")
    p.add_argument("-s", "--file-size", type=float)
    p.add_argument("-l", "--location", default="")
    p.add_argument("-c", "--cdrom", default="")
    p.add_argument("-x", "--extra-args", default="")
    p.add_argument("--os-type", default="")
    p.add_argument("--os-variant", default="")
    p.add_argument("-w", "--network", default="bridge:xenbr0")
    p.add_argument("--nographics", action="store_true")
    p.add_argument("--vnc", action="store_true")
    a = p.parse_args(argv)
    return virt_install(name=a.name, ram=a.ram, vcpus=a.vcpus, paravirt=not a.hvm, hvm=a.hvm, file=a.file,
                        file_size=a.file_size, location=a.location, cdrom=a.cdrom, extra_args=a.extra_args,
                        os_type=a.os_type, os_variant=a.os_variant, network=a.network,
                        nographics=a.nographics, vnc=a.vnc)


class _VirtInstallParser(__import__("argparse").ArgumentParser):
    def error(self, message: str):  # argparse would print and exit; the core raises instead
        raise UsageError(f"virt-install: {message}; see virt-install -n NAME -r MiB [-p|-v] [-f FILE] [-l TREE|-c ISO]")


def read_config_file(path: str) -> str:
    """The text of an xm config file: UTF-8 (xm configs are Python source), else one ConfigError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path!r}: {e.strerror}; give the path of an xm config") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path!r} is not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}); "
                          "save it as UTF-8, e.g. with iconv -t UTF-8") from None
