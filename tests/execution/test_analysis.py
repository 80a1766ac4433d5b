"""The history-dependent analysis (execution/analysis.py): the fast numpy versions equal their specifications."""

import numpy as np
import pytest

from vmlab.execution.analysis import StreamAnalysis, hidden_fault_positions
from vmlab.execution.ops import Op, OpStream
from vmlab.execution.workloads import MACRO_MIXES, stream_of_size


def _hidden_faults_literal(stream: OpStream) -> np.ndarray:
    """The specification loop: a TLB miss is hidden when the latest event on its slot was a guest PTE write."""
    last_was_write: dict[int, bool] = {}
    out = []
    for i, (op, slot) in enumerate(zip(stream.op.tolist(), stream.arg.tolist())):
        if op == Op.PTE_WRITE:
            last_was_write[slot] = True
        elif op == Op.TLB_MISS:
            if last_was_write.get(slot, False):
                out.append(i)
            last_was_write[slot] = False
    return np.asarray(out, np.int64)


def _hidden_faults_int64_key_sort(stream: OpStream) -> np.ndarray:
    """The previous vectorized algorithm (one np.sort of slot << bits | rank), kept as a reference."""
    w = np.flatnonzero(stream.op == Op.PTE_WRITE)
    m = np.flatnonzero(stream.op == Op.TLB_MISS)
    if w.size == 0 or m.size == 0:
        return np.zeros(0, np.int64)
    both = np.intersect1d(stream.arg[w], stream.arg[m])
    w, m = w[np.isin(stream.arg[w], both)], m[np.isin(stream.arg[m], both)]
    mark = np.zeros(stream.op.size, np.int8)
    mark[w], mark[m] = 2, 1
    ev = np.flatnonzero(mark)
    is_write = mark[ev] == 2
    bits = max(1, int(ev.size).bit_length())
    key = np.sort((stream.arg[ev] << bits) | np.arange(ev.size, dtype=np.int64))
    idx, sl = key & ((1 << bits) - 1), key >> bits
    w_o = is_write[idx]
    hidden = ~w_o[1:] & w_o[:-1] & (sl[1:] == sl[:-1])
    out = np.zeros(ev.size, np.bool_)
    out[idx[1:][hidden]] = True
    return ev[out]


def _random_stream(seed: int, n: int, n_slots: int) -> OpStream:
    rng = np.random.default_rng(seed)
    op = rng.choice(np.array([Op.PTE_WRITE, Op.TLB_MISS, Op.COMPUTE], np.uint8), n)
    arg = np.where(op == Op.COMPUTE, 10, rng.integers(0, n_slots, n)).astype(np.int64)
    return OpStream(name="random", op=op, arg=arg, value=np.zeros(n, np.int64), block=np.full(n, -1, np.int32))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n,n_slots", [(2_000, 50), (5_000, 3_000), (450_000, 200_000)])
def test_hidden_faults_follow_the_specification_loop_on_random_streams(seed, n, n_slots):
    s = _random_stream(seed, n, n_slots)
    expect = _hidden_faults_literal(s)
    assert np.array_equal(hidden_fault_positions(s), expect)
    assert np.array_equal(_hidden_faults_int64_key_sort(s), expect)


@pytest.mark.parametrize("name", MACRO_MIXES)
@pytest.mark.parametrize("seed", [1, 7])
def test_hidden_faults_equal_the_previous_sort_on_seeded_workloads(name, seed):
    s = stream_of_size(name, 400_000, seed=seed)   # large enough for the bitmap branch
    got = StreamAnalysis(s).hidden_faults
    assert got.dtype == np.int64
    assert np.array_equal(got, _hidden_faults_int64_key_sort(s))


def test_hidden_faults_follow_the_specification_loop_on_a_workload():
    s = stream_of_size("forkwait", 30_000, seed=3)
    assert np.array_equal(hidden_fault_positions(s), _hidden_faults_literal(s))


def test_no_writes_or_no_misses_means_no_hidden_faults():
    s = _random_stream(0, 1_000, 10)
    only_misses = OpStream(name="m", op=np.where(s.op == Op.PTE_WRITE, Op.COMPUTE, s.op).astype(np.uint8),
                           arg=s.arg, value=s.value, block=s.block)
    assert hidden_fault_positions(only_misses).size == 0
