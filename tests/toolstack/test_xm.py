import numpy as np
import pytest

from helpers import make_xm, pv, snapshot
from vmlab.errors import CapacityError, ConfigError, DomainNotFound, DomainStateError
from vmlab.hypervisor import constants as C
from vmlab.toolstack.xm import LIST_HEADER, format_list


def test_xm_list_matches_xen3_format_byte_for_byte():
    xm = make_xm()
    xm.create(pv("vm1", memory=512, vcpus=2))
    xm.hv.set_load(1, 1.0)
    xm.hv.advance(12.34)
    xm.pause("vm1")
    text = xm.list_text()
    expected_header = "Name                                        ID   Mem VCPUs      State   Time(s)"
    assert text.splitlines()[0] == expected_header == LIST_HEADER
    assert text.splitlines()[2] == "vm1" + " " * 37 + "     1   512     2     --p---     24.7"
    assert text.splitlines()[1].startswith("Domain-0 ") and "r-----" in text.splitlines()[1]


def test_create_builds_through_hypercalls_and_boots():
    xm = make_xm()
    vm = xm.create(pv("vm1", memory=256))
    assert vm.tot_pages == 65536 and vm.state.value == "blocked"
    assert "vm1 login:" in xm.console("vm1")
    names = [e.detail for e in xm.hv.trace.filter(domid=0, kind="hypercall")]
    assert names[:4] == ["domctl(1)", "domctl(15)", "domctl(11)", "memory_op(6)"]


def test_create_refusals_change_nothing():
    xm = make_xm(memory_mib=2048)
    xm.create(pv("vm1"))
    before = snapshot(xm.hv)
    with pytest.raises(ConfigError, match="name='vm1' is already used"):
        xm.create(pv("vm1"))
    with pytest.raises(CapacityError, match="memory=4096 MiB exceeds the 1232 MiB free"):
        xm.create(pv("big", memory=4096))
    with pytest.raises(ConfigError, match="bridge='xenbr7' does not exist"):
        xm.create(pv("v2", vif=["bridge=xenbr7"]))
    assert snapshot(xm.hv) == before


def test_verbs_on_missing_or_wrong_state_domains_are_refused_without_change():
    xm = make_xm()
    xm.create(pv("vm1"))
    before = snapshot(xm.hv)
    with pytest.raises(DomainNotFound, match="'vm9' does not exist"):
        xm.pause("vm9")
    with pytest.raises(DomainStateError, match="not paused"):
        xm.unpause("vm1")
    with pytest.raises(DomainStateError, match="domain 0"):
        xm.destroy(0)
    xm.pause("vm1")
    mid = snapshot(xm.hv)
    with pytest.raises(DomainStateError, match="already paused"):
        xm.pause("vm1")
    with pytest.raises(DomainStateError, match="unpause"):
        xm.shutdown("vm1")
    assert snapshot(xm.hv) == mid
    xm.unpause("vm1")
    assert snapshot(xm.hv) == before


def test_mem_set_is_a_target_the_guest_may_not_reach():
    xm = make_xm()
    xm.create(pv("vm1", memory=512))
    assert xm.mem_set("vm1", 64) == 168  # 104 MiB + 512/8: the Linux balloon driver's floor
    assert xm.mem_set("vm1", 300) == 300
    hvm = xm.create(pv("w", builder="hvm"))
    assert xm.mem_set("w", 64) == 256  # no balloon driver in an unmodified guest
    with pytest.raises(ConfigError, match="above maxmem"):
        xm.mem_set("vm1", 1024)
    xm.hv.check_invariants()


def test_mem_max_then_balloon_up():
    xm = make_xm()
    xm.create(pv("vm1", memory=256))
    with pytest.raises(ConfigError, match="below the 256 MiB"):
        xm.mem_max("vm1", 128)
    xm.mem_max("vm1", 512)
    assert xm.mem_set("vm1", 512) == 512


def test_vcpu_set_within_the_created_maximum():
    xm = make_xm()
    xm.create(pv("vm1", vcpus=4))
    xm.vcpu_set("vm1", 2)
    assert xm.list("vm1")[0].vcpus == 2
    with pytest.raises(ConfigError, match="1..4"):
        xm.vcpu_set("vm1", 5)


def test_shutdown_reboot_and_crash_follow_the_on_actions():
    xm = make_xm()
    xm.create(pv("a"))
    xm.create(pv("b", on_crash="preserve"))
    xm.shutdown("a")
    assert [d.name for d in xm.hv.domains.values()] == ["Domain-0", "b"]
    xm.create(pv("a"))
    old = xm.lookup("a").domid
    assert xm.reboot("a").domid != old
    b = xm.lookup("b")
    assert xm.hv.hypercall(b.domid, "sched_op", C.SCHEDOP_shutdown, C.SHUTDOWN_crash) == 0
    xm.reap()
    assert xm.lookup("b").state.value == "crashed"
    assert "-c-" in format_list(xm.list("b"))
    xm.destroy("b")
    xm.hv.check_invariants()


def test_save_and_restore_bring_back_every_page_exactly(tmp_path):
    xm = make_xm()
    vm = xm.create(pv("vm1", memory=256, maxmem=512))
    xm.mem_set("vm1", 200)
    xm.hv.guest_write(vm.domid, np.arange(0, 50000, 7))
    pfns = np.flatnonzero(vm.p2m != C.INVALID_MFN)
    content = xm.hv.memory.content[vm.p2m[pfns]].copy()
    path = str(tmp_path / "vm1.sav")
    xm.save("vm1", path)
    assert "vm1" not in [d.name for d in xm.hv.domains.values()]
    back = xm.restore(path)
    assert back.domid != vm.domid
    assert np.array_equal(np.flatnonzero(back.p2m != C.INVALID_MFN), pfns)
    assert np.array_equal(xm.hv.memory.content[back.p2m[pfns]], content)
    xm.hv.check_invariants()


def test_a_create_that_fails_half_way_is_undone(monkeypatch):
    from vmlab.toolstack import devices
    xm = make_xm()
    before = snapshot(xm.hv)

    def broken(hv, dom):
        raise ConfigError("backend exploded")

    monkeypatch.setattr(devices, "connect", broken)
    with pytest.raises(ConfigError, match="backend exploded"):
        xm.create(pv("vm1"))
    assert snapshot(xm.hv) == before
    xm.hv.check_invariants()


def test_shutdown_goes_through_xenstore_and_the_guest_stops_itself():
    from vmlab.io.system import io_system
    xm = make_xm()
    vm = xm.create(pv("vm1", on_poweroff="preserve", vif=["bridge=xenbr0"]))
    xm.shutdown("vm1")
    xs = io_system(xm.hv).xenstore
    assert xs.read(0, f"/local/domain/{vm.domid}/control/shutdown") == "poweroff"
    asked = [e for e in xm.hv.trace.events if e.kind == "hypercall" and e.detail == "sched_op(2)"]
    assert asked and asked[-1].domid == vm.domid  # the guest itself, not dom0
    assert xm.lookup("vm1").state.value == "shutdown"
