"""The toolstack wiring: xm create / destroy / block-attach / network-attach."""
import pytest

from helpers import make_xm, pv
from vmlab.errors import ConfigError, DomainStateError
from vmlab.io.blkif import BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY
from vmlab.io.system import io_system
from vmlab.io.xenbus import XenbusState, read_state
from vmlab.toolstack import devices

DISK = "file:/OVS/running_pool/vm1/System.img,xvda,w"


def _vm(xm, name="vm1", **extra):
    extra.setdefault("disk", [DISK.replace("vm1", name)])
    extra.setdefault("vif", ["bridge=xenbr0"])
    return xm.create(pv(name, **extra))


def test_xm_create_brings_up_connected_frontends_and_backends_visible_in_xenstore():
    xm = make_xm()
    vm = _vm(xm, vif=["bridge=xenbr0,mac=00:16:3e:00:00:01", "bridge=xenbr0,vlan=10"])
    xs = io_system(xm.hv).xenstore
    d = vm.domid
    assert read_state(xs, 0, f"/local/domain/0/backend/vbd/{d}/51712") == XenbusState.Connected
    assert read_state(xs, 0, f"/local/domain/{d}/device/vbd/51712") == XenbusState.Connected
    for i in (0, 1):
        assert read_state(xs, 0, f"/local/domain/{d}/device/vif/{i}") == XenbusState.Connected
    assert xs.read(0, f"/local/domain/0/backend/vif/{d}/0/mac") == "00:16:3e:00:00:01"
    assert xs.read(0, f"/local/domain/{d}/name") == "vm1"
    assert [dev.kind for dev in vm.devices] == ["vif", "vif", "vbd"]
    assert "vbd" in xs.ls(f"/local/domain/{d}/device")


def test_a_guest_created_by_xm_reads_back_what_it_wrote():
    xm = make_xm()
    vm = _vm(xm)
    io = io_system(xm.hv)
    (blk,) = [d for d in io.devices[vm.domid] if d.kind == "vbd"]
    pfns = io.alloc_pages(vm.domid, 2)
    xm.hv.guest_write(vm.domid, pfns)
    blk.front.submit(BLKIF_OP_WRITE, 0, pfns)
    back = io.alloc_pages(vm.domid, 2)
    io.run()
    blk.front.submit(BLKIF_OP_READ, 0, back)
    io.run()
    c, p2m = xm.hv.memory.content, vm.p2m
    assert list(blk.front.completed.values()) == [BLKIF_RSP_OKAY] * 2
    assert [int(c[p2m[p]]) for p in back] == [int(c[p2m[p]]) for p in pfns]


def test_destroy_leaves_no_grant_channel_watch_or_xenstore_node_of_the_guest():
    xm = make_xm()
    vm = _vm(xm)
    io = io_system(xm.hv)
    d = vm.domid
    assert io.leftovers(d)["grants"] > 0
    xm.destroy("vm1")
    assert all(v == 0 for v in io.leftovers(d).values()), io.leftovers(d)
    assert not any(p.startswith(f"/local/domain/0/backend/vbd/{d}") for p in io.xenstore.nodes)
    assert io.grants.live_mappings(0) == 0 and io.events.open_ports(0) == 0
    assert xm.hv.check_invariants() is None


def test_the_image_outlives_the_guest_and_a_reboot_reconnects_it():
    xm = make_xm()
    vm = _vm(xm)
    io = io_system(xm.hv)
    (blk,) = [d for d in io.devices[vm.domid] if d.kind == "vbd"]
    pfns = io.alloc_pages(vm.domid, 1)
    xm.hv.guest_write(vm.domid, pfns)
    blk.front.submit(BLKIF_OP_WRITE, 0, pfns)
    io.run()
    stamp = blk.back.disk.stamp_of(0)
    new = xm.reboot("vm1")
    (blk2,) = [d for d in io.devices[new.domid] if d.kind == "vbd"]
    assert new.domid != vm.domid and blk2.back.disk.stamp_of(0) == stamp != 0
    assert blk2.front.connected


def test_block_attach_and_network_attach_work_on_a_running_guest():
    xm = make_xm()
    vm = _vm(xm, disk=[], vif=[])
    dev = devices.block_attach(xm.hv, vm, "phy:/dev/sdb,xvdb,w")
    net = devices.network_attach(xm.hv, vm, "bridge=xenbr0,vlan=42")
    assert dev.front.connected and net.back.vlan == 42
    assert [d.kind for d in vm.devices] == ["vbd", "vif"]
    with pytest.raises(ConfigError, match="already has xvdb"):
        devices.block_attach(xm.hv, vm, "phy:/dev/sdc,xvdb,w")
    with pytest.raises(ConfigError, match="xenbr9"):
        devices.network_attach(xm.hv, vm, "bridge=xenbr9")


def test_a_second_guest_cannot_open_the_same_image_writable():
    xm = make_xm()
    _vm(xm, "vm1")
    with pytest.raises(ConfigError, match="already writable"):
        xm.create(pv("vm2", disk=[DISK]))
    assert all(d.name != "vm2" for d in xm.hv.domains.values())
    io = io_system(xm.hv)
    vm3 = xm.create(pv("vm3", disk=[DISK.replace(",w", ",r").replace("xvda", "xvdb")]))
    assert any(d.kind == "vbd" for d in io.devices[vm3.domid])


def test_an_hvm_guest_gets_an_emulated_disk_and_no_hot_plug():
    xm = make_xm()
    from vmlab.hypervisor.domain import DomainKind
    cfg = pv("win1", disk=["file:/OVS/running_pool/win1/System.img,hda,w"], vif=["bridge=xenbr0"]).with_(kind=DomainKind.HVM)
    vm = xm.create(cfg)
    io = io_system(xm.hv)
    (dev,) = io.devices[vm.domid]
    assert dev.kind == "ioemu"
    assert io.xenstore.read(0, f"/local/domain/0/backend/vbd/{vm.domid}/768/type") == "ioemu"
    with pytest.raises(DomainStateError, match="HVM"):
        devices.block_attach(xm.hv, vm, "file:/OVS/x.img,hdb,w")
    xm.destroy("win1")
    assert all(v == 0 for v in io.leftovers(vm.domid).values())


def test_a_reconnected_guest_keeps_its_generated_mac_when_told_to():
    xm = make_xm()
    vm = _vm(xm, disk=[])
    macs = devices.vif_macs(vm)
    assert macs == [f"00:16:3e:00:{vm.domid:02x}:00"]
    devices.disconnect(xm.hv, vm)
    devices.connect(xm.hv, vm, macs=["00:16:3e:00:77:00"])
    assert devices.vif_macs(vm) == ["00:16:3e:00:77:00"]
    (net,) = io_system(xm.hv).devices[vm.domid]
    assert net.mac == "00:16:3e:00:77:00"


def test_reconnect_rebuilds_devices_for_a_hypervisor_loaded_from_a_state_file():
    from vmlab.hypervisor.persist import load_hypervisor, save_hypervisor
    xm = make_xm()
    vm = _vm(xm)
    mac = devices.vif_macs(vm)
    meta, arrays = save_hypervisor(xm.hv)
    hv2 = load_hypervisor(meta, arrays)
    vm2 = hv2.domains[vm.domid]
    assert devices.reconnect(hv2) == 1 and devices.reconnect(hv2) == 0
    io = io_system(hv2)
    assert devices.vif_macs(vm2) == mac and [d.kind for d in vm2.devices] == ["vif", "vbd"]
    (blk,) = [d for d in io.devices[vm2.domid] if d.kind == "vbd"]
    assert blk.front.connected


def test_after_live_migration_the_devices_are_up_on_the_target_with_the_same_mac():
    from vmlab.hardware.host import Disk, HostSpec, StorageKind
    from vmlab.hypervisor.domain import DiskSpec, DomainConfig, VifSpec
    from vmlab.migration import UniformWrites
    from vmlab.toolstack.migrate import migrate
    from vmlab.toolstack.pool import ServerPool
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=2048, disks=(Disk(name="repo0", storage=StorageKind.NFS, mount="/OVS"),)))
    cfg = DomainConfig(name="vm1", memory_mib=128, disks=(DiskSpec(path="/OVS/running_pool/vm1/System.img"),),
                       vifs=(VifSpec(),))
    old = pool.xm("ovs1").create(cfg)
    mac = devices.vif_macs(old)
    migrate(pool, "vm1", "ovs2", live=True, workload=UniformWrites(rate_pages_s=1000, wws_pages=100))
    src, dst = pool.server("ovs1"), pool.server("ovs2")
    new = next(d for d in dst.domains.values() if d.name == "vm1")
    assert devices.reconnect(dst) == 0  # migration's activation already connected them
    io = io_system(dst)
    assert len(io.devices[new.domid]) == 2
    assert devices.vif_macs(new) == mac and all(d.front.connected for d in io.devices[new.domid] if d.kind == "vbd")
    io_system(src).reap()   # the source forgets the guest that left
    assert all(v == 0 for v in io_system(src).leftovers(old.domid).values())


def test_a_guest_destroyed_behind_the_toolstacks_back_is_reaped_at_the_next_run():
    from vmlab.hypervisor import constants as C
    xm = make_xm()
    vm = _vm(xm)
    io = io_system(xm.hv)
    xm.hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], vm.domid)   # no disconnect first
    io.run()
    assert all(v == 0 for v in io.leftovers(vm.domid).values())
    assert io.grants.live_mappings(0) == 0 and io.events.open_ports(0) == 0
