"""For any sequence of toolstack operations: every frame has exactly one owner,
owned + free == total, and a refused operation leaves the state unchanged."""

from hypothesis import given, strategies as st

from helpers import make_xm, snapshot
from vmlab.errors import VmlabError
from vmlab.hypervisor import constants as C
from vmlab.toolstack.config import virt_install

NAMES = ["a", "b", "c", "d"]
op = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES), st.integers(16, 500), st.booleans(), st.integers(1, 4)),
    st.tuples(st.just("destroy"), st.sampled_from(NAMES + ["0", "zz"])),
    st.tuples(st.just("pause"), st.sampled_from(NAMES)),
    st.tuples(st.just("unpause"), st.sampled_from(NAMES)),
    st.tuples(st.just("shutdown"), st.sampled_from(NAMES)),
    st.tuples(st.just("mem_set"), st.sampled_from(NAMES + ["Domain-0"]), st.integers(1, 700)),
    st.tuples(st.just("mem_max"), st.sampled_from(NAMES), st.integers(1, 700)),
    st.tuples(st.just("vcpu_set"), st.sampled_from(NAMES), st.integers(0, 5)),
    st.tuples(st.just("load"), st.sampled_from(NAMES), st.floats(0, 1)),
    st.tuples(st.just("crash"), st.sampled_from(NAMES)),
    st.tuples(st.just("guest_domctl"), st.sampled_from(NAMES), st.sampled_from(sorted(C.XEN_DOMCTL.values()))),
)


def apply(xm, o):
    verb = o[0]
    if verb == "create":
        return xm.create(virt_install(name=o[1], ram=o[2], hvm=o[3], vcpus=o[4]))
    if verb == "load":
        return xm.hv.set_load(xm.lookup(o[1]).domid, o[2])
    if verb == "crash":
        dom = xm.lookup(o[1])
        rc = xm.hv.hypercall(dom.domid, "sched_op", C.SCHEDOP_shutdown, C.SHUTDOWN_crash)
        xm.reap()
        return rc
    if verb == "guest_domctl":
        dom = xm.lookup(o[1])
        rc = xm.hv.hypercall(dom.domid, "domctl", o[2], 0)
        assert rc == C.EPERM
        return rc
    return getattr(xm, verb)(*o[1:])


@given(st.lists(op, max_size=25))
def test_any_sequence_keeps_frame_accounting_exact_and_refusals_change_nothing(ops):
    xm = make_xm(memory_mib=1536, dom0_mem_mib=256)
    total = xm.hv.memory.total_frames
    for o in ops:
        before = snapshot(xm.hv)
        try:
            apply(xm, o)
        except VmlabError:
            assert snapshot(xm.hv) == before, f"refused {o} changed the state"
        xm.hv.check_invariants()
        counts = xm.hv.memory.counts_by_owner()
        assert sum(counts.values()) == total
        assert all(d.tot_pages == counts.get(d.domid, 0) for d in xm.hv.domains.values())
