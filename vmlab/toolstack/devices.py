"""Wiring a guest's virtual devices to dom0 backends (what xend and the hotplug scripts do).

`connect` introduces the domain to xenstore and, for each disk= and vif= line,
creates a backend in dom0 and a frontend in the guest and lets them run the
Xenbus handshake to Connected: a PV guest gets blkfront/netfront over shared
rings; an HVM guest gets disks emulated by qemu-dm (IDE). `disconnect` tears
every device down and removes everything the domain had in the I/O system:
grants, event channels, watches and xenstore nodes. `block_attach` and
`network_attach` add a device to a running guest (xm block-attach /
network-attach).
"""

from __future__ import annotations

from vmlab.errors import ConfigError, DomainStateError
from vmlab.hypervisor.domain import DiskSpec, Domain, DomainKind, VifSpec, VirtualDevice
from vmlab.io.blkif import vbd_devid
from vmlab.guest.pv_on_hvm import swap_to_pv_devices
from vmlab.hypervisor.hvm_op import has_pv_drivers
from vmlab.io.hotplug import attach_block, attach_emulated_disk, attach_vif, default_mac
from vmlab.io.system import io_system

__all__ = ["check", "connect", "disconnect", "block_attach", "network_attach", "vif_macs", "reconnect"]


def check(hv, config) -> None:
    """Refuse a config whose devices dom0 cannot back (unknown bridge, bad vdev). Changes nothing."""
    for vif in config.vifs:
        if vif.bridge not in hv.bridges:
            raise ConfigError(f"vif bridge={vif.bridge!r} does not exist in dom0 (it has {', '.join(sorted(hv.bridges)) or 'none'}); "
                              "use one of those bridges")
    io = io_system(hv)
    io.reap()
    for disk in config.disks:
        vbd_devid(disk.vdev)
        if disk.mode == "w":
            for domid, devs in io.devices.items():
                for dev in devs:
                    spec = getattr(dev, "spec", None)
                    if isinstance(spec, DiskSpec) and spec.path == disk.path and spec.mode != "r":
                        raise ConfigError(f"disk {disk.path} is already writable by domain {domid}; use mode 'w!' to "
                                          "share it writable, 'r' for read-only, or detach it there first")


def _record_disk(hv, dom: Domain, disk: DiskSpec) -> None:
    store = hv.host.storage_for(disk.path)
    where = f"{store.name} ({store.storage.value})" if store else "dom0 filesystem"
    dom.devices.append(VirtualDevice(kind="vbd", name=disk.vdev, backend_domid=0,
                                     backend=f"{disk.backend}:{disk.path} on {where}"))


def _record_vif(hv, dom: Domain, vif: VifSpec, index: int, mac: str) -> None:
    dom.devices.append(VirtualDevice(kind="vif", name=f"vif{dom.domid}.{index}", backend_domid=0,
                                     backend=f"{vif.bridge} via {hv.bridges.get(vif.bridge, '?')} mac {mac}"))


def connect(hv, dom: Domain, *, macs: list[str] | None = None) -> None:
    """Introduce the domain to xenstore and bring up every disk= and vif= device.

    `macs` (optional, one per vif=) keeps the MACs a guest had before: a vif without
    mac= gets 00:16:3e:<domid>:<index>, and a migrated or restored guest has a new
    domid but must keep its MAC (pass the old ones, e.g. from `vif_macs(old_dom)`).
    """
    io = io_system(hv)
    io.reap()
    io.xenstore.introduce_domain(dom.domid, dom.name, memory_kib=dom.tot_pages * 4)
    try:
        # vifs first, then disks: the order the device records have always had.
        for i, vif in enumerate(dom.config.vifs):
            mac = vif.mac or (macs[i] if macs is not None and i < len(macs) else default_mac(dom.domid, i))
            if dom.kind is not DomainKind.HVM:
                attach_vif(io, dom.domid, _with_mac(vif, mac), index=i)
            # An HVM guest without PV drivers sees an emulated NIC; its data path is not modelled.
            _record_vif(hv, dom, vif, i, mac)
        for disk in dom.config.disks:
            if dom.kind is DomainKind.HVM:
                attach_emulated_disk(io, dom.domid, disk)
            else:
                attach_block(io, dom.domid, disk)
            _record_disk(hv, dom, disk)
        if has_pv_drivers(dom):   # restored or reloaded PV-on-HVM guest: its PV drivers reconnect
            swap_to_pv_devices(hv, dom)
    except Exception:
        io.release_domain(dom.domid)
        dom.devices.clear()
        raise


def _with_mac(vif: VifSpec, mac: str) -> VifSpec:
    from dataclasses import replace
    return replace(vif, mac=mac)


def vif_macs(dom: Domain) -> list[str]:
    """The MAC of each of the domain's vifs, in vif= order (from its device records)."""
    return [d.backend.rsplit(" mac ", 1)[1] for d in dom.devices if d.kind == "vif" and " mac " in d.backend]


def reconnect(hv, dom: Domain | None = None) -> int:
    """Bring up real devices for guests that have device records but nothing behind them.

    After a hypervisor is loaded from a state file, or a guest arrives by migration,
    its `devices` records exist but the I/O system (xenstore, rings, grants) does not.
    This rebuilds them from the config's disk= and vif= lines, keeping each vif's
    MAC from the records. Devices hot-plugged with block-attach / network-attach are
    not in the config and do not come back. Returns how many guests were reconnected.
    """
    io = io_system(hv)
    io.reap()
    doms = [dom] if dom is not None else [d for d in hv.domains.values() if not d.privileged]
    n = 0
    for d in doms:
        if d.domid in io.devices or not (d.config.disks or d.config.vifs):
            continue
        if d.state.value == "dying":
            continue
        macs = vif_macs(d)
        d.devices.clear()
        connect(hv, d, macs=macs)
        n += 1
    return n


def disconnect(hv, dom: Domain) -> None:
    """Tear down the domain's devices and everything it holds in the I/O system."""
    io_system(hv).release_domain(dom.domid)
    dom.devices.clear()


def block_attach(hv, dom: Domain, disk: DiskSpec | str, *, sectors: int | None = None):
    """xm block-attach: add a disk to a live PV guest. Returns the BlockDevice."""
    spec = disk if isinstance(disk, DiskSpec) else DiskSpec.parse(disk)
    if dom.kind is DomainKind.HVM:
        raise DomainStateError(f"block-attach {spec.vdev}: {dom.name} is HVM; hot-plugging emulated IDE is not "
                               "supported, give it PV drivers or add the disk to its config")
    if any(d.kind == "vbd" and d.name == spec.vdev for d in dom.devices):
        raise ConfigError(f"block-attach: {dom.name} already has {spec.vdev}; choose another vdev")
    dev = attach_block(io_system(hv), dom.domid, spec, sectors=sectors)
    _record_disk(hv, dom, spec)
    return dev


def network_attach(hv, dom: Domain, vif: VifSpec | str = ""):
    """xm network-attach: add a vif to a live PV guest. Returns the NetDevice."""
    spec = vif if isinstance(vif, VifSpec) else VifSpec.parse(vif)
    if spec.bridge not in hv.bridges:
        raise ConfigError(f"network-attach: bridge={spec.bridge!r} does not exist in dom0 "
                          f"(it has {', '.join(sorted(hv.bridges))}); use one of those")
    if dom.kind is DomainKind.HVM:
        raise DomainStateError(f"network-attach: {dom.name} is HVM; its NIC is emulated and cannot be hot-plugged here")
    index = sum(1 for d in dom.devices if d.kind == "vif")
    dev = attach_vif(io_system(hv), dom.domid, spec, index=index)
    _record_vif(hv, dom, spec, index, dev.mac)
    return dev
