"""The toolstack, the I/O system and migration agree on a guest's devices."""

import pytest

from helpers import make_xm
from vmlab.hypervisor import constants as C
from vmlab.io.system import io_system
from vmlab.toolstack import devices
from vmlab.toolstack.config import virt_install


def test_a_raw_domctl_destroy_still_removes_every_io_trace():
    xm = make_xm()
    dom = xm.create(virt_install(name="vm1", ram=256))
    io = io_system(xm.hv)
    assert any(io.leftovers(dom.domid).values())
    assert xm.hv.hypercall(0, "domctl", C.XEN_DOMCTL["destroydomain"], dom.domid) == 0
    assert not any(io.leftovers(dom.domid).values())
    io.check()
    xm.hv.check_invariants()


def test_restore_keeps_the_guests_mac(tmp_path):
    xm = make_xm()
    dom = xm.create(virt_install(name="vm1", ram=256))
    macs = devices.vif_macs(dom)
    xm.save("vm1", str(tmp_path / "vm1.sav"))
    xm.create(virt_install(name="other", ram=128))  # takes the next domid
    back = xm.restore(str(tmp_path / "vm1.sav"))
    assert devices.vif_macs(back) == macs and back.domid != dom.domid


def test_block_and_network_attach_through_xm():
    xm = make_xm()
    xm.create(virt_install(name="vm1", ram=256))
    xm.block_attach("vm1", "file:/OVS/running_pool/vm1/data.img,xvdb,w")
    xm.network_attach("vm1", "bridge=xenbr0")
    kinds = sorted(d.kind + ":" + d.name for d in xm.lookup("vm1").devices)
    assert "vbd:xvdb" in kinds and sum(k.startswith("vif") for k in kinds) == 2
    with pytest.raises(Exception, match="already has xvdb"):
        xm.block_attach("vm1", "file:/OVS/x.img,xvdb,w")


def test_cli_state_reload_brings_devices_back(tmp_path, capsys):
    from vmlab.toolstack.state import StateFile
    sf = StateFile(tmp_path / "s.sqlite")
    with sf.transaction() as pool:
        pool.xm().create(virt_install(name="vm1", ram=256))
    with sf.transaction(write=False) as pool:
        hv = pool.server()
        dom = pool.xm().lookup("vm1")
        assert len(io_system(hv).devices.get(dom.domid, [])) == 2  # vbd + vif live again


def test_migrated_guest_gets_devices_on_the_target_and_keeps_its_mac():
    from vmlab.toolstack.migrate import migrate
    from vmlab.toolstack.pool import ServerPool
    pool = ServerPool()
    pool.add_server(name="ovs1", memory_mib=2048)
    pool.add_server(name="ovs2", memory_mib=2048)
    dom = pool.xm("ovs1").create(virt_install(name="vm1", ram=256))
    macs = devices.vif_macs(dom)
    old = dom.domid
    migrate(pool, "vm1", "ovs2", live=True)
    src_io, dst_io = io_system(pool.server("ovs1")), io_system(pool.server("ovs2"))
    assert not any(src_io.leftovers(old).values())
    moved = pool.xm("ovs2").lookup("vm1")
    assert devices.vif_macs(moved) == macs
    assert len(dst_io.devices[moved.domid]) == 2
    src_io.check(), dst_io.check()
