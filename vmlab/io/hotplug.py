"""Creating and removing device pairs: what xend and the hotplug scripts do in dom0.

For each disk= / vif= line the toolstack writes two xenstore directories, the
backend's under dom0 and the frontend's under the guest, each readable by the
other side, then the drivers on both sides run the Xenbus handshake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmlab.errors import ConfigError
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DiskSpec, VifSpec
from vmlab.io.blkback import BlkBack
from vmlab.io.blkfront import BlkFront
from vmlab.io.blkif import DEFAULT_IMAGE_SECTORS, VirtualDisk, vbd_devid
from vmlab.io.netback import NetBack
from vmlab.io.netfront import NetFront
from vmlab.io.netif import Bridge
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["BlockDevice", "NetDevice", "EmulatedDevice", "attach_block", "attach_vif", "attach_emulated_disk",
           "detach_device", "detach_all", "default_mac", "bridge_of"]


@dataclass(eq=False)
class BlockDevice:
    domid: int
    devid: int
    spec: DiskSpec
    front: BlkFront
    back: BlkBack
    kind: str = "vbd"

    @property
    def name(self) -> str:
        return self.spec.vdev


@dataclass(eq=False)
class NetDevice:
    domid: int
    devid: int
    spec: VifSpec
    mac: str
    front: NetFront
    back: NetBack
    kind: str = "vif"

    @property
    def name(self) -> str:
        return self.back.name


@dataclass(eq=False)
class EmulatedDevice:
    domid: int
    name: str
    model: object      # HvmEmulatedDisk
    kind: str = "ioemu"


def default_mac(domid: int, index: int) -> str:
    """00:16:3e (XenSource's OUI) + domid + index, as the stub toolstack did."""
    return f"{C.XEN_MAC_OUI}:{(domid >> 8) & 0xff:02x}:{domid & 0xff:02x}:{index & 0xff:02x}"


def bridge_of(io: "IoContext", name: str) -> Bridge:
    b = io.bridges.get(name)
    if b is None:
        if name not in io.hv.bridges:
            raise ConfigError(f"bridge {name!r} does not exist in dom0 (it has {', '.join(sorted(io.hv.bridges)) or 'none'}); "
                              "use one of those")
        b = io.bridges[name] = Bridge(name, io.hv.bridges[name])
    return b


def _disk_for(io: "IoContext", domid: int, spec: DiskSpec, sectors: int | None) -> VirtualDisk:
    disk = io.disks.get(spec.path)
    if spec.mode == "w":
        for other, devs in io.devices.items():
            for d in devs:
                dspec = getattr(d, "spec", None)
                if other != domid and isinstance(dspec, DiskSpec) and dspec.path == spec.path and dspec.mode != "r":
                    raise ConfigError(f"disk {spec.path} is already writable by domain {other}; use mode 'w!' to share "
                                      "it writable, 'r' for read-only, or detach it there first")
    if disk is None:
        store = io.hv.host.storage_for(spec.path)
        disk = io.disks[spec.path] = VirtualDisk(spec.path, sectors=sectors or DEFAULT_IMAGE_SECTORS,
                                                 storage=store.storage.value if store else "dom0")
    return disk


def _prepare(io: "IoContext", domid: int, kind: str, devid: int, back: dict, front: dict) -> tuple[str, str]:
    xs = io.xenstore
    bpath = f"/local/domain/0/backend/{kind}/{domid}/{devid}"
    fpath = f"/local/domain/{domid}/device/{kind}/{devid}"
    if bpath in xs.nodes or fpath in xs.nodes:
        raise ConfigError(f"domain {domid} already has {kind} device {devid}; detach it first or pick another name")
    tx = xs.transaction_start(0)
    for k, v in {**back, "frontend": fpath, "frontend-id": domid, "online": 1, "state": 1}.items():
        xs.write(0, f"{bpath}/{k}", str(v), tx)
    for k, v in {**front, "backend": bpath, "backend-id": 0, "state": 1}.items():
        xs.write(0, f"{fpath}/{k}", str(v), tx)
    xs.transaction_end(0, tx)
    # The backend directory is dom0's, readable by the guest; the frontend's belongs to the guest.
    for p in [bpath] + [f"{bpath}/{c}" for c in xs.directory(0, bpath)]:
        xs.set_perms(0, p, [(0, "n"), (domid, "r")])
    for p in [fpath] + [f"{fpath}/{c}" for c in xs.directory(0, fpath)]:
        xs.set_perms(0, p, [(domid, "n"), (0, "r")])
    return bpath, fpath


def attach_block(io: "IoContext", domid: int, spec: DiskSpec, *, sectors: int | None = None,
                 suppress: bool = True, run: bool = True) -> BlockDevice:
    """Create a vbd pair for `spec` and (with run=True) let the handshake reach Connected."""
    devid = vbd_devid(spec.vdev)
    if any(isinstance(d, BlockDevice) and d.devid == devid for d in io.devices.get(domid, [])):
        raise ConfigError(f"domain {domid} already has a disk {spec.vdev}; choose another vdev")
    disk = _disk_for(io, domid, spec, sectors)
    bpath, _ = _prepare(io, domid, "vbd", devid,
                        {"params": spec.path, "type": spec.backend, "mode": spec.mode, "dev": spec.vdev},
                        {"virtual-device": devid, "device-type": "disk"})
    back = BlkBack(io, domid, devid, disk, readonly=spec.mode == "r", suppress=suppress)
    front = BlkFront(io, domid, devid, 0, bpath, suppress=suppress)
    dev = BlockDevice(domid, devid, spec, front, back)
    io.devices.setdefault(domid, []).append(dev)
    back.probe()
    front.probe()
    if run:
        io.run()
    return dev


def attach_vif(io: "IoContext", domid: int, spec: VifSpec, *, index: int | None = None, suppress: bool = True,
               run: bool = True) -> NetDevice:
    devs = [d for d in io.devices.get(domid, []) if isinstance(d, NetDevice)]
    devid = index if index is not None else (max((d.devid for d in devs), default=-1) + 1)
    mac = spec.mac or default_mac(domid, devid)
    bridge = bridge_of(io, spec.bridge)
    for other in io.devices.values():
        for d in other:
            if isinstance(d, NetDevice) and d.mac == mac:
                raise ConfigError(f"mac={mac} is already used by vif{d.domid}.{d.devid}; give each vif its own MAC")
    bpath, _ = _prepare(io, domid, "vif", devid, {"mac": mac, "bridge": spec.bridge, "handle": devid},
                        {"mac": mac, "handle": devid})
    back = NetBack(io, domid, devid, bridge, mac, vlan=spec.vlan, suppress=suppress)
    front = NetFront(io, domid, devid, mac, 0, bpath, suppress=suppress)
    dev = NetDevice(domid, devid, spec, mac, front, back)
    io.devices.setdefault(domid, []).append(dev)
    back.probe()
    front.probe()
    if run:
        io.run()
    return dev


def attach_emulated_disk(io: "IoContext", domid: int, spec: DiskSpec, *, sectors: int | None = None) -> EmulatedDevice:
    """An HVM guest's disk: an IDE controller emulated by qemu-dm in dom0 (no rings, no grants)."""
    from vmlab.io.emulated import HvmEmulatedDisk
    disk = _disk_for(io, domid, spec, sectors)
    dev = EmulatedDevice(domid, spec.vdev, HvmEmulatedDisk(io, domid, disk, readonly=spec.mode == "r"))
    dev.spec = spec  # type: ignore[attr-defined]
    io.devices.setdefault(domid, []).append(dev)
    xs = io.xenstore
    base = f"/local/domain/0/backend/vbd/{domid}/{vbd_devid(spec.vdev)}"
    for k, v in (("params", spec.path), ("dev", spec.vdev), ("device-type", "disk"), ("type", "ioemu"),
                 ("frontend-id", domid), ("state", int(XenbusState.Connected))):
        xs.write(0, f"{base}/{k}", str(v))
    return dev


def detach_device(io: "IoContext", dev, *, graceful: bool = True) -> None:
    """Take one device pair down and remove its xenstore directories."""
    xs = io.xenstore
    alive = dev.domid in io.hv.domains and io.hv.domains[dev.domid].is_live
    if isinstance(dev, (BlockDevice, NetDevice)):
        if graceful and alive and read_state(xs, 0, dev.front.node) == XenbusState.Connected:
            switch_state(xs, dev.domid, dev.front.node, XenbusState.Closing)
            io.run()
        dev.back.disconnect()
        io.run()
        if dev.front.port > 0 or getattr(dev.front, "ring_ref", -1) >= 0 or getattr(dev.front, "refs", None):
            dev.front._teardown()
        kind = dev.kind
        for p in (f"/local/domain/0/backend/{kind}/{dev.domid}/{dev.devid}",
                  f"/local/domain/{dev.domid}/device/{kind}/{dev.devid}"):
            if p in xs.nodes:
                xs.rm(0, p)
        for tok_dom, path, tok in ((0, f"{dev.front.node}/state", f"blkback-{dev.domid}-{dev.devid}"),
                                   (0, f"{dev.front.node}/state", f"netback-{dev.domid}-{dev.devid}"),
                                   (dev.domid, f"{dev.back.node}/state", f"blkfront-{dev.devid}"),
                                   (dev.domid, f"{dev.back.node}/state", f"netfront-{dev.devid}")):
            try:
                xs.unwatch(tok_dom, path, tok)
            except OSError:
                pass
    else:
        base = f"/local/domain/0/backend/vbd/{dev.domid}/{vbd_devid(dev.name)}"
        if base in xs.nodes:
            xs.rm(0, base)
    for kind in ("vbd", "vif"):
        parent = f"/local/domain/0/backend/{kind}/{dev.domid}"
        if parent in xs.nodes and not xs.nodes[parent].children:
            xs.rm(0, parent)
    lst = io.devices.get(dev.domid, [])
    if dev in lst:
        lst.remove(dev)
    if not lst:
        io.devices.pop(dev.domid, None)


def detach_all(io: "IoContext", domid: int) -> int:
    devs = list(io.devices.get(domid, []))
    for dev in devs:
        detach_device(io, dev, graceful=False)
    return len(devs)
