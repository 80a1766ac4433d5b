"""PV-on-HVM: an unmodified (HVM) guest loads Xen's PV drivers and stops talking to qemu-dm for I/O.

What the guest's driver package does (Xen 3.x unmodified_drivers/linux-2.6, the
Windows GPLPV drivers do the same): the platform-pci driver binds to the Xen platform
PCI device qemu-dm offers (00:03.0), tells Xen where to deliver event-channel upcalls
with HVMOP_set_param(HVM_PARAM_CALLBACK_IRQ) -- from then on the guest has event
channels and grant tables like a PV guest -- and unplugs the emulated IDE disks and
NICs; blkfront and netfront connect to the vbd/vif backends xend had already
written, and the balloon driver starts. The switch changes what dom0 sees:

* `xm shutdown` / `xm save`: the guest answers control/shutdown itself
  (XendDomainInfo.shutdown finds CALLBACK_IRQ != 0 and no longer stops it from outside);
* `xm mem-set`: the balloon driver moves the guest toward the target;
* disk and network I/O: rings, grants and event channels instead of an ioreq per
  emulated register access (Lab 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlab.errors import DomainStateError, HypercallError
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainKind

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["load_pv_drivers", "callback_via_pci_intx", "PLATFORM_PCI_SLOT"]

PLATFORM_PCI_SLOT = 3   # qemu-dm puts the Xen platform device at 00:03.0 (INTA)


def callback_via_pci_intx(slot: int = PLATFORM_PCI_SLOT, intx: int = 0, bus: int = 0, domain: int = 0) -> int:
    """HVM_PARAM_CALLBACK_IRQ's value for a PCI INTx line (hvm/params.h: val[63:56] == 1,
    Domain = val[47:32], Bus = val[31:16], DevFn = val[15:8], IntX = val[1:0]), as platform-pci's
    get_callback_via builds it for a device whose IRQ is above 15."""
    return (1 << 56) | (domain << 32) | (bus << 16) | ((slot << 3) << 8) | (intx & 3)


def _check(hv: "Hypervisor", domid: int):
    dom = hv.domains.get(domid)
    if dom is None or dom.kind is not DomainKind.HVM:
        raise DomainStateError(f"domain {domid} is not an HVM guest; PV-on-HVM drivers are for HVM guests "
                               "(a PV guest has its PV drivers built in)")
    if not dom.is_live:
        raise DomainStateError(f"{dom.name} is {dom.state.value}; the guest must run to load drivers")
    if not dom.config.xen_platform_pci:
        raise DomainStateError(f"{dom.name} has xen_platform_pci=0: there is no Xen platform PCI device for the "
                               "PV drivers to bind to; set xen_platform_pci=1 in its config and restart it")
    return dom


def load_pv_drivers(hv: "Hypervisor", domid: int) -> None:
    """The guest loads xen-platform-pci, xen-vbd, xen-vnif and xen-balloon (idempotent)."""
    dom = _check(hv, domid)
    if dom.hvm_params.get(C.HVM_PARAM_CALLBACK_IRQ, 0):
        return
    param = {"domid": C.DOMID_SELF, "index": C.HVM_PARAM_CALLBACK_IRQ, "value": callback_via_pci_intx()}
    rc = hv.hypercall(domid, "hvm_op", C.HVMOP_set_param, param)
    if rc < 0:
        raise HypercallError("hvm_op", rc, f"{dom.name} could not set HVM_PARAM_CALLBACK_IRQ")
    swap_to_pv_devices(hv, dom)
    dom.console += ["xen-platform-pci: Xen version 3.4.", "xen-platform-pci: I/O protocol version 1",
                    "XENBUS: Device with no driver: device/console/0",
                    "xen-vbd: registered block device major 202", "xen-vnif: Initialising virtual ethernet driver.",
                    "xen-balloon: Initialising balloon driver."]


def swap_to_pv_devices(hv: "Hypervisor", dom) -> None:
    """Unplug the emulated disks (and NICs) and connect blkfront/netfront to the same disks and bridges."""
    from vmlab.io.hotplug import EmulatedDevice, attach_block, attach_vif, detach_device
    from vmlab.io.system import io_system
    io = io_system(hv)
    for dev in [d for d in io.devices.get(dom.domid, []) if isinstance(d, EmulatedDevice)]:
        detach_device(io, dev, graceful=False)
    macs = [d.backend.rsplit(" mac ", 1)[1] for d in dom.devices if d.kind == "vif" and " mac " in d.backend]
    from dataclasses import replace
    for i, vif in enumerate(dom.config.vifs):
        mac = vif.mac or (macs[i] if i < len(macs) else "")
        attach_vif(io, dom.domid, replace(vif, mac=mac) if mac else vif, index=i)
    for disk in dom.config.disks:
        attach_block(io, dom.domid, disk)
