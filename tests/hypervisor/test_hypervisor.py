import pytest

from helpers import make_xm, pv
from vmlab.errors import ConfigError
from vmlab.hardware.host import Host, HostSpec
from vmlab.hardware.memory import frames_from_mib
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.hypervisor.persist import load_hypervisor, save_hypervisor


def test_boot_reserves_xen_frames_then_builds_privileged_dom0():
    hv = Hypervisor(Host(HostSpec(memory_mib=8192, pcpus=4)), dom0_mem_mib=512)
    counts = hv.memory.counts_by_owner()
    assert counts[C.DOMID_XEN] == frames_from_mib(16) + frames_from_mib(8192) // 64
    assert counts[0] == frames_from_mib(512)
    dom0 = hv.dom0
    assert dom0.domid == 0 and dom0.privileged and dom0.vcpus_online == 4 and dom0.name == "Domain-0"
    hv.check_invariants()


def test_dom0_detects_every_device_and_bridges_each_nic():
    hv = Hypervisor(Host())
    assert {d.name for d in hv.hardware} == {"eth0", "sda", "nfs0"}
    assert hv.bridges == {"xenbr0": "peth0"}
    assert [d.driver for d in hv.hardware if d.kind == "disk"] == ["ahci", "nfs"]


def test_dom0_too_big_for_the_host_is_refused():
    with pytest.raises(ConfigError, match="dom0_mem=9000"):
        Hypervisor(Host(HostSpec(memory_mib=4096)), dom0_mem_mib=9000)


def test_credit_scheduler_shares_pcpus_fairly_between_domains():
    xm = make_xm(pcpus=2)
    a, b = xm.create(pv("a", vcpus=4)), xm.create(pv("b", vcpus=1))
    xm.hv.set_load(0, 0.0)
    xm.hv.set_load(a.domid, 1.0)
    xm.hv.set_load(b.domid, 1.0)
    shares = xm.hv.cpu_shares()
    assert shares[a.domid] == pytest.approx(1.0) and shares[b.domid] == pytest.approx(1.0)
    xm.hv.set_load(b.domid, 0.25)
    shares = xm.hv.cpu_shares()
    assert shares[b.domid] == pytest.approx(0.25) and shares[a.domid] == pytest.approx(1.75)
    xm.hv.advance(10)
    assert a.cpu_time_s == pytest.approx(17.5)


def test_idle_guests_block_and_busy_guests_run():
    xm = make_xm()
    vm = xm.create(pv())
    assert vm.state.value == "blocked"
    xm.hv.set_load(vm.domid, 0.3)
    assert vm.state.value == "running"
    with pytest.raises(ConfigError, match="load=2"):
        xm.hv.set_load(vm.domid, 2)


def test_guest_write_gives_fresh_content_and_feeds_a_dirty_bitmap():
    import numpy as np
    xm = make_xm()
    vm = xm.create(pv())
    vm.dirty_bitmap = np.zeros(vm.p2m.size, dtype=bool)
    old = xm.hv.memory.content[vm.p2m[[5, 6]]].copy()
    xm.hv.guest_write(vm.domid, [5, 6])
    new = xm.hv.memory.content[vm.p2m[[5, 6]]]
    assert np.all(new != old) and new[0] != new[1]
    assert np.flatnonzero(vm.dirty_bitmap).tolist() == [5, 6]


def test_memory_columns_cover_each_frame_once():
    xm = make_xm(memory_mib=1024)
    xm.create(pv("a", memory=300))
    cols = xm.hv.memory_columns(rows=16)
    assert sum(cols["frames"]) == xm.hv.memory.total_frames
    assert set(cols["label"]) == {"Xen", "Domain-0", "a", "free"}
    assert all(0 <= x0 < x1 <= 1 for x0, x1 in zip(cols["x0"], cols["x1"]))


def test_whole_hypervisor_saves_and_loads_equal():
    xm = make_xm()
    vm = xm.create(pv("a"))
    xm.hv.set_load(vm.domid, 1.0)
    xm.hv.advance(3)
    meta, arrays = save_hypervisor(xm.hv)
    hv2 = load_hypervisor(meta, arrays)
    assert hv2.domains.keys() == xm.hv.domains.keys()
    assert hv2.domains[vm.domid].cpu_time_s == vm.cpu_time_s
    assert (hv2.memory.owner == xm.hv.memory.owner).all()
    hv2.check_invariants()


def test_trace_keeps_the_newest_events_within_ten_percent_of_its_capacity():
    from vmlab.trace import Trace
    t = Trace(capacity=100)
    for i in range(1000):
        t.record(time_ns=i, domid=0, kind="x")
    assert 100 <= len(t) <= 110 and t.events[-1].time_ns == 999
    assert t.dropped + len(t) == 1000
