import numpy as np
import pytest

from vmlab.errors import ConfigError
from vmlab.execution.ops import Op, OpStream, architectural_state, concat
from vmlab.execution.workloads import MACRO_MIXES, NANOBENCHMARKS, WORKLOADS, pte_run, stream_of_size, workload


def test_stream_arrays_must_have_equal_length():
    with pytest.raises(ConfigError, match="same length"):
        OpStream(name="x", op=np.zeros(3, np.uint8), arg=np.zeros(2, np.int64), value=np.zeros(3, np.int64),
                 block=np.zeros(3, np.int32))


def test_unknown_op_code_is_refused():
    with pytest.raises(ConfigError, match="not an Op"):
        OpStream.build("x", [99])


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_workload_is_deterministic_for_a_seed(name):
    a, b = workload(name, 3, seed=5), workload(name, 3, seed=5)
    assert np.array_equal(a.op, b.op) and np.array_equal(a.arg, b.arg)


def test_jitter_depends_on_the_seed():
    assert not np.array_equal(workload("compute", 2, seed=1).arg, workload("compute", 2, seed=2).arg)


@pytest.mark.parametrize("name,op", [("syscall", Op.SYSCALL), ("in", Op.PORT_IO), ("cr8wr", Op.CR8_WRITE),
                                     ("call/ret", Op.CALL_RET), ("pgfault", Op.PAGE_FAULT),
                                     ("divzero", Op.DIVZERO), ("ptemod", Op.PTE_WRITE)])
def test_nanobenchmark_repeats_its_operation_once_per_iteration(name, op):
    s = workload(name, 100)
    assert s.counts()[op] == 100


def test_forkwait_is_page_table_heavy_and_compute_is_not():
    fw, comp = workload("forkwait", 2), workload("compute", 2)
    assert fw.counts()[Op.PTE_WRITE] > 1000
    assert comp.counts()[Op.PTE_WRITE] == 0
    assert comp.compute_cycles() > 100 * len(comp)


def test_each_fork_makes_a_fresh_child_root():
    s = workload("forkwait", 3)
    roots = s.arg[s.op == Op.CR3_LOAD]
    assert len(set(roots.tolist())) == 3 + 1   # three children and the parent


def test_stream_of_size_is_close_to_the_request():
    s = stream_of_size("web", 100_000)
    assert 0.9 * 100_000 <= len(s) <= 1.1 * 100_000


def test_unknown_workload_lists_choices():
    with pytest.raises(ConfigError, match="forkwait"):
        workload("fork-bomb")


def test_architectural_state_takes_the_last_write_per_slot():
    s = OpStream.build("t", [Op.PTE_WRITE, Op.PTE_WRITE, Op.PTE_WRITE, Op.CR3_LOAD, Op.IRQ_DISABLE],
                       arg=[5, 3, 5, 42, 0], value=[1, 2, 3, 0, 0])
    st = architectural_state(s)
    assert st.pte_slots.tolist() == [3, 5] and st.pte_values.tolist() == [2, 3]
    assert st.cr3 == 42 and st.interrupts_enabled is False


def test_io_reads_depend_on_order_per_port():
    a = OpStream.build("a", [Op.PORT_IO, Op.PORT_IO], arg=[1, 2], value=[1, 1])
    b = OpStream.build("b", [Op.PORT_IO, Op.PORT_IO], arg=[2, 1], value=[1, 1])
    assert architectural_state(a).io_digest != architectural_state(b).io_digest


def test_concat_and_pte_run():
    s = concat("c", [pte_run(10), pte_run(5, flushes_after=2)])
    assert len(s) == 17 and s.counts()[Op.TLB_FLUSH] == 2
    assert set(NANOBENCHMARKS) | set(MACRO_MIXES) == set(WORKLOADS)
