import numpy as np

from helpers import make_xm, pv, snapshot
from vmlab.hypervisor import constants as C


def test_domu_domctl_gets_eperm_and_nothing_changes():
    xm = make_xm()
    vm = xm.create(pv())
    before = snapshot(xm.hv)
    for cmd in ("destroydomain", "pausedomain", "max_mem", "createdomain"):
        assert xm.hv.hypercall(vm.domid, "domctl", C.XEN_DOMCTL[cmd], 0) == C.EPERM
    assert snapshot(xm.hv) == before
    assert xm.hv.trace.events[-1].kind == "refused"


def test_domu_cannot_touch_another_domains_memory():
    xm = make_xm()
    a, b = xm.create(pv("a")), xm.create(pv("b"))
    pfns = np.arange(4)
    before = snapshot(xm.hv)
    assert xm.hv.hypercall(a.domid, "memory_op", C.XENMEM_decrease_reservation, b.domid, 4, pfns) == C.EPERM
    assert xm.hv.hypercall(a.domid, "sched_op", C.SCHEDOP_remote_shutdown, {"domid": b.domid, "reason": 0}) == C.EPERM
    assert xm.hv.hypercall(a.domid, "console_io", 0, "hi") == C.EPERM
    assert snapshot(xm.hv) == before


def test_unknown_and_malformed_hypercalls_get_errno_not_exceptions():
    xm = make_xm()
    vm = xm.create(pv())
    assert xm.hv.hypercall(vm.domid, "no_such_call") == C.ENOSYS
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, 3, [1]) == C.EINVAL
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, 1, [10**9]) == C.EINVAL
    assert xm.hv.hypercall(vm.domid, "sched_op", C.SCHEDOP_shutdown, 99) == C.EINVAL
    assert xm.hv.hypercall(vm.domid, "xen_version", 0, 1, 2, 3, 4, 5) == C.EINVAL  # too many arguments
    xm.hv.check_invariants()


def test_hypercalls_resolve_by_number_too():
    xm = make_xm()
    assert xm.hv.hypercall(0, 17, C.XENVER_version) == (3 << 16) | 4


def test_balloon_down_then_up_through_memory_op():
    xm = make_xm()
    vm = xm.create(pv(memory=256, maxmem=512))
    top = np.flatnonzero(vm.p2m != C.INVALID_MFN)[-8:]
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_decrease_reservation, C.DOMID_SELF, 8, top) == 8
    assert vm.tot_pages == 65536 - 8
    holes = np.flatnonzero(vm.p2m == C.INVALID_MFN)[:16]
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, 16, holes) == 16
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_current_reservation) == 65536 + 8
    xm.hv.check_invariants()


def test_populate_physmap_stops_at_max_pages_and_reports_progress():
    xm = make_xm()
    vm = xm.create(pv(memory=256, maxmem=512))
    assert xm.hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], vm.domid, 256 * 1024 + 16) == 0  # 4 pages of room
    holes = np.arange(65536, 65546)
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_populate_physmap, C.DOMID_SELF, 10, holes) == 4
    assert vm.tot_pages == vm.max_pages


def test_increase_reservation_hands_back_the_mfns_it_allocated():
    xm = make_xm()
    vm = xm.create(pv(memory=256, maxmem=512))
    out = {}
    assert xm.hv.hypercall(vm.domid, "memory_op", C.XENMEM_increase_reservation, C.DOMID_SELF, 3, None, out) == 3
    assert len(out["extent_start"]) == 3 and all(xm.hv.memory.owner[m] == vm.domid for m in out["extent_start"])
    xm.hv.check_invariants()


def test_vcpu_op_brings_vcpus_up_and_down_in_order():
    xm = make_xm()
    vm = xm.create(pv(vcpus=4))
    assert xm.hv.hypercall(vm.domid, "vcpu_op", C.VCPUOP_down, 3) == 0 and vm.vcpus_online == 3
    assert xm.hv.hypercall(vm.domid, "vcpu_op", C.VCPUOP_down, 0) == C.EINVAL  # the boot CPU stays
    assert xm.hv.hypercall(vm.domid, "vcpu_op", C.VCPUOP_is_up, 3) == 0
    assert xm.hv.hypercall(vm.domid, "vcpu_op", C.VCPUOP_up, 9) == C.ENOENT
    assert xm.hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_vcpus"], vm.domid, 1) == C.EINVAL  # max cannot shrink


def test_max_mem_below_current_allocation_is_einval():
    xm = make_xm()
    vm = xm.create(pv(memory=256))
    assert xm.hv.hypercall(0, "domctl", C.XEN_DOMCTL["max_mem"], vm.domid, 128 * 1024) == C.EINVAL


from hypothesis import given, settings
from hypothesis import strategies as st

_junk = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=3), st.floats(),
                  st.lists(st.integers(-5, 2**40), max_size=3), st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["domctl", "memory_op", "sched_op", "vcpu_op", "xen_version", "console_io", "sysctl"]),
       st.lists(_junk, max_size=5), st.booleans())
def test_garbage_from_a_guest_gets_an_errno_never_an_exception(name, args, as_dom0):
    """The gate (Hypervisor.dispatch) checks arity; each handler checks its own arguments."""
    from helpers import make_xm, pv
    xm = make_xm(memory_mib=1024, dom0_mem_mib=256)
    vm = xm.create(pv("vm1", memory=64))
    rc = xm.hv.hypercall(0 if as_dom0 else vm.domid, name, *args)
    assert isinstance(rc, int)
