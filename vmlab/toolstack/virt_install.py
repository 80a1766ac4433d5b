"""virt-install as Oracle VM Server 2.x shipped it (python-virtinst), for the two install paths.

* PV (-p/--paravirt) with -l/--location: a network install tree (nfs:, http://, ftp://).
  virt-install fetches the tree's images/xen/vmlinuz and initrd.img into /var/lib/xen
  and boots the installer kernel directly (kernel=, ramdisk=, extra='method=<tree>
  <--extra-args>'); when the installer reboots, the guest boots from its own disk
  through pygrub (bootloader='/usr/bin/pygrub'), which reads the guest's menu.lst.
* HVM (-v/--hvm) with -c/--cdrom: an ISO (in Oracle VM, /OVS/iso_pool/...). xend
  builds the domain with hvmloader as its firmware (kernel='/usr/lib/xen/boot/hvmloader')
  and starts qemu-dm (device_model) with the ISO as an emulated CD-ROM (hdc:cdrom);
  the guest boots from CD ('d') for the install, then from disk ('c').

Flag combinations virt-install refuses (virt-install `_check_option_collisions`):
two install methods at once ("Only one install method can be used"), --cdrom with a
paravirtualized guest ("Paravirtualized guests cannot install off cdrom media."),
--extra-args without --location ("--extra-args only work if specified with --location.").
--os-type / --os-variant name the guest OS from virtinst's table (a subset is kept here).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from vmlab.errors import ConfigError
from vmlab.hypervisor.domain import DiskSpec, DomainConfig, DomainKind, VifSpec

__all__ = ["virt_install", "virt_install_plan", "InstallPlan", "OS_VARIANTS", "DEVICE_MODEL", "HVMLOADER",
           "PYGRUB", "ISO_POOL"]

DEVICE_MODEL = "/usr/lib/xen/bin/qemu-dm"     # xend's device_model for HVM guests (Xen 3.x)
HVMLOADER = "/usr/lib/xen/boot/hvmloader"     # the HVM guest's firmware, loaded as its "kernel"
PYGRUB = "/usr/bin/pygrub"
ISO_POOL = "/OVS/iso_pool"                     # Oracle VM's ISO repository
INSTALL_METHODS = "--location URL, --cdrom CD/ISO"
# virtinst's osdict (a subset): os-type -> variants.
OS_VARIANTS: dict[str, tuple[str, ...]] = {
    "linux": ("rhel5", "rhel4", "rhel3", "sles10", "fedora8", "debianetch", "generic26"),
    "windows": ("win2k3", "win2k", "winxp", "vista"),
    "unix": ("solaris10", "solaris9", "freebsd6", "openbsd4"),
    "other": ("msdos", "netware6"),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallPlan:
    """What virt-install does: the config the installer boots with, the one the guest keeps, and the steps."""

    path: str                  # "pv" or "hvm"
    install: DomainConfig      # the first boot (installer kernel / CD-ROM)
    boot: DomainConfig         # every boot after the install
    steps: tuple[str, ...]
    os_type: str = ""
    os_variant: str = ""


def _check_os(os_type: str, os_variant: str) -> tuple[str, str]:
    if os_variant:
        owner = next((t for t, vs in OS_VARIANTS.items() if os_variant in vs), None)
        if owner is None:
            close = difflib.get_close_matches(os_variant, [v for vs in OS_VARIANTS.values() for v in vs], n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"e.g. {', '.join(OS_VARIANTS['linux'][:3])}"
            raise ConfigError(f"virt-install: --os-variant {os_variant!r} is not a known OS variant; {hint}")
        if os_type and os_type != owner:
            raise ConfigError(f"virt-install: --os-variant {os_variant} is a {owner} variant, not {os_type}; "
                              f"use --os-type {owner} or drop --os-type")
        return owner, os_variant
    if os_type and os_type not in OS_VARIANTS:
        raise ConfigError(f"virt-install: --os-type {os_type!r} is not one of {', '.join(OS_VARIANTS)}")
    return os_type, ""


def _check_flags(paravirt: bool, cdrom: str, location: str, extra_args: str) -> None:
    if cdrom and location:
        raise ConfigError(f"virt-install: Only one install method can be used ({INSTALL_METHODS}); "
                          "give -c for an HVM ISO install or -l for a PV tree install")
    if paravirt and cdrom:
        raise ConfigError(f"virt-install: Paravirtualized guests cannot install off cdrom media (--cdrom {cdrom}); "
                          "use -l/--location with an install tree, or -v/--hvm")
    if extra_args and not location:
        raise ConfigError("virt-install: --extra-args only work if specified with --location; "
                          "add -l <install tree> or drop -x")
    if cdrom and not cdrom.startswith("/"):
        raise ConfigError(f"virt-install: --cdrom {cdrom!r} must be an absolute ISO path; e.g. {ISO_POOL}/el5.iso")


def virt_install_plan(*, name: str, ram: int, vcpus: int = 1, paravirt: bool = True, hvm: bool = False,
                      file: str | None = None, file_size: float | None = None, location: str = "",
                      cdrom: str = "", extra_args: str = "", os_type: str = "", os_variant: str = "",
                      network: str = "bridge:xenbr0", nographics: bool = True, vnc: bool = False) -> InstallPlan:
    """Check the flags the way virt-install does and return both configs and the path's steps."""
    if hvm:
        paravirt = False
    if not isinstance(ram, int) or isinstance(ram, bool):
        raise ConfigError(f"--ram {ram!r} must be a whole number of MiB; e.g. --ram 512")
    if file_size is not None and file_size <= 0:
        raise ConfigError(f"--file-size {file_size} must be a positive number of GiB; e.g. -s 8")
    kind_, _, bridge = network.partition(":")
    if kind_ != "bridge" or not bridge:
        raise ConfigError(f"--network {network!r} must be 'bridge:<name>'; e.g. -w bridge:xenbr0")
    _check_flags(paravirt, cdrom, location, extra_args)
    os_type, os_variant = _check_os(os_type, os_variant)
    path = file or f"/OVS/running_pool/{name}/System.img"
    disk = DiskSpec(backend="file", path=path, vdev="xvda" if paravirt else "hda", mode="w")
    common = dict(name=name, memory_mib=ram, vcpus=vcpus, vifs=(VifSpec(bridge=bridge),))
    if paravirt:
        boot = DomainConfig(kind=DomainKind.PV, bootloader=PYGRUB, disks=(disk,), **common)
        install = boot
        steps = ("the guest boots its own kernel through pygrub (no install media given)",)
        if location:
            install = DomainConfig(kind=DomainKind.PV, kernel=f"/var/lib/xen/vmlinuz.{name}",
                                   ramdisk=f"/var/lib/xen/initrd.img.{name}",
                                   extra=" ".join(x for x in (f"method={location}", extra_args) if x),
                                   on_reboot="destroy", disks=(disk,), **common)
            steps = (f"fetch images/xen/vmlinuz and images/xen/initrd.img from {location} into /var/lib/xen",
                     "boot the installer kernel directly (kernel=, ramdisk=, extra='method=...'); on_reboot=destroy",
                     f"after the install: boot from the guest's disk through pygrub ({PYGRUB})")
        return InstallPlan(path="pv", install=install, boot=boot, steps=steps, os_type=os_type, os_variant=os_variant)
    boot = DomainConfig(kind=DomainKind.HVM, disks=(disk,), device_model=DEVICE_MODEL, **common)
    install = boot
    steps = (f"xend loads hvmloader ({HVMLOADER}) as the guest's firmware and starts qemu-dm ({DEVICE_MODEL})",
             "the guest boots from its emulated IDE disk ('c')")
    if cdrom:
        cd = DiskSpec(backend="file", path=cdrom, vdev="hdc", mode="r")   # xm: 'file:<iso>,hdc:cdrom,r'
        install = DomainConfig(kind=DomainKind.HVM, disks=(disk, cd), device_model=DEVICE_MODEL,
                               on_reboot="destroy", **common)
        steps = (steps[0], f"qemu-dm emulates {cdrom} as hdc:cdrom; the guest boots from CD ('d') to install",
                 "after the install: the guest boots from its emulated IDE disk ('c')")
    return InstallPlan(path="hvm", install=install, boot=boot, steps=steps, os_type=os_type, os_variant=os_variant)


def virt_install(**kwargs) -> DomainConfig:
    """The config virt-install starts the guest with (the installer's when -l or -c is given)."""
    return virt_install_plan(**kwargs).install
