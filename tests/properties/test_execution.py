"""Paths change cost, not meaning; batching changes cost, not state."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vmlab.costs import preset
from vmlab.execution import Op, OpStream, architectural_state, batch_plan, compare_paths, run_hvm, run_pv
from vmlab.execution.direct_sink import DirectPagingSink
from vmlab.execution.ops import FLUSH_POINTS

P4 = preset("p4_vtx_2006")


@st.composite
def streams(draw, max_len=300, slots=64):
    n = draw(st.integers(0, max_len))
    op = draw(st.lists(st.sampled_from(list(Op)), min_size=n, max_size=n))
    arg = draw(st.lists(st.integers(0, slots - 1), min_size=n, max_size=n))
    value = draw(st.lists(st.integers(0, 1 << 30), min_size=n, max_size=n))
    block = draw(st.lists(st.integers(-1, 20), min_size=n, max_size=n))
    arg = [a * 50 + 1 if o == Op.COMPUTE else a for o, a in zip(op, arg)]
    value = [v & 1 if o == Op.PORT_IO else v for o, v in zip(op, value)]
    return OpStream.build("h", np.array(op, np.uint8), arg, value, block)


@given(streams(), st.sampled_from([1, 2, 7, 32, 1024]), st.sampled_from(["shadow", "nested"]))
def test_every_path_leaves_the_same_architectural_state(stream, batch, paging):
    ref = architectural_state(stream)
    for r in compare_paths(stream, P4, batch=batch, paging=paging, state=True).values():
        assert r.state == ref, r.label


@given(streams(), st.sampled_from([1, 3, 32, 1024]))
def test_pv_batches_cover_every_update_once_in_order(stream, batch):
    plan = batch_plan(stream, batch)
    assert int(plan.sizes.sum()) == int((stream.op == Op.PTE_WRITE).sum())
    assert np.all(plan.sizes >= 1) and np.all(plan.sizes <= batch)
    assert np.all(np.diff(plan.issue_pos) >= 0)
    runs = plan.runs
    assert plan.hypercalls == int(sum(math.ceil(k / batch) for k in runs))


@given(st.integers(0, 400), st.integers(1, 64), st.integers(0, 5))
def test_hypercalls_for_a_run_are_ceil_k_over_batch_plus_explicit_flushes(k, batch, flushes):
    ops = [Op.PTE_WRITE] * k + [Op.TLB_FLUSH] * flushes
    s = OpStream.build("run", ops, arg=list(range(k)) + [0] * flushes, value=[1] * (k + flushes))
    r = run_pv(s, P4, batch=batch, timeline=False)
    assert sum(r.hypercalls.values()) == math.ceil(k / batch) + flushes


@settings(max_examples=30)
@given(st.lists(st.tuples(st.sampled_from([Op.PTE_WRITE] * 6 + list(FLUSH_POINTS)), st.integers(0, 1023),
                          st.integers(0, 1 << 20)), max_size=120),
       st.sampled_from([1, 5, 32, 200]))
def test_batched_updates_through_xen_direct_paging_end_in_the_native_tables(entries, batch):
    ops = [e[0] for e in entries]
    s = OpStream.build("pt", ops, [e[1] for e in entries], [e[2] for e in entries], [12] * len(entries))
    sink = DirectPagingSink(1024)
    r = run_pv(s, P4, batch=batch, state=True, sink=sink, timeline=False)
    ref = architectural_state(s)
    assert r.state.pte_slots.tolist() == ref.pte_slots.tolist()
    assert r.state.pte_values.tolist() == sink.encode(ref.pte_values).tolist()
    batches = r.hypercalls.get("mmu_update", 0) + r.hypercalls.get("multicall", 0)
    assert sink.calls == batches == sink.hypercalls


@settings(max_examples=40)
@given(streams(max_len=200, slots=16))
def test_vectorized_hvm_matches_the_exit_loop_and_the_loop_keeps_meaning(stream):
    from vmlab.execution import run_loop
    ref = architectural_state(stream)
    for paging, hv in (("shadow", "xen"), ("nested", "xen"), ("shadow", "kvm"), ("nested", "kvm")):
        loop = run_loop(stream, P4, paging=paging, hypervisor=hv)
        r = run_hvm(stream, P4, paging=paging, timeline=False, hypervisor=hv)
        assert abs(r.total_cycles - loop.total_cycles) < 1e-6 * max(1.0, loop.total_cycles)
        assert r.exits == loop.exits
        assert r.counts.get("ioreqs", 0) == loop.ioreqs            # one ioreq per emulated access (Xen)
        assert loop.state == ref and loop.shadow_consistent
