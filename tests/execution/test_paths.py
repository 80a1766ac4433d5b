import math

import numpy as np
import pytest

from vmlab.costs import preset
from vmlab.errors import ConfigError
from vmlab.execution import (EXIT_TABLE, MECHANISMS, ExitReason, Op, OpStream, batch_plan, break_even_batch,
                             compare_paths, run_bt, run_hvm, run_loop, run_native, run_path, run_pv, workload)
from vmlab.execution.workloads import pte_run

P4 = preset("p4_vtx_2006")
KVM = preset("modern_kvm")


def test_native_never_enters_a_hypervisor():
    r = run_native(workload("forkwait", 2), P4)
    assert r.hypervisor_entries == 0 and len(r.timeline) == 0
    assert r.breakdown["native work"] + r.breakdown["page walks"] == pytest.approx(r.total_cycles)


def test_breakdown_sums_to_total_on_every_path():
    for r in compare_paths(workload("kernel_compile", 1), P4).values():
        assert sum(r.breakdown.values()) == pytest.approx(r.total_cycles)
        assert set(r.breakdown) == set(MECHANISMS)


def test_timeline_is_ordered_and_ends_within_the_run():
    r = run_pv(workload("forkwait", 3), P4)
    t = r.timeline.time_cycles
    assert len(r.timeline) == r.hypervisor_entries
    assert np.all(np.diff(t) >= 0) and t[-1] < r.total_cycles
    cols = r.timeline.to_columns(limit=50)
    assert len(cols["kind"]) == 50


def test_pv_hypercalls_for_one_run_are_ceil_k_over_b_plus_flushes():
    for k, b, f in [(100, 32, 0), (100, 32, 3), (64, 32, 1), (1, 32, 0), (100, 1, 2)]:
        r = run_pv(pte_run(k, flushes_after=f), P4, batch=b)
        assert sum(r.hypercalls.values()) == math.ceil(k / b) + f


def test_pv_without_batching_issues_one_mmu_update_per_write():
    r = run_pv(workload("ptemod", 500), P4, batch=1)
    assert r.hypercalls == {"mmu_update": 500}


def test_batches_are_flushed_before_a_tlb_flush():
    s = OpStream.build("t", [Op.PTE_WRITE] * 5 + [Op.TLB_FLUSH] + [Op.PTE_WRITE] * 3, arg=range(9))
    plan = batch_plan(s, 32)
    assert plan.sizes.tolist() == [5, 3]
    assert plan.issue_pos.tolist() == [5, 8]
    assert plan.flush_reasons()["tlb_flush"] == 1 and plan.flush_reasons()["end"] == 1


def test_full_buffer_is_issued_when_the_next_write_arrives():
    plan = batch_plan(pte_run(70), 32)
    assert plan.sizes.tolist() == [32, 32, 6]
    assert plan.issue_pos.tolist() == [32, 64, 69]
    assert plan.histogram()[32] == 2 and plan.flush_reasons()["slots"] == 2


def test_batch_size_must_be_positive():
    with pytest.raises(ConfigError, match="batch=0"):
        batch_plan(pte_run(3), 0)


def test_break_even_batch_size_matches_the_per_update_formula():
    b = break_even_batch(P4, 400.0)
    per = lambda n: P4.hypercall_roundtrip_cycles / n + P4.multicall_per_entry_cycles + P4.pv_queue_entry_cycles
    assert per(b) <= 400.0 < per(b - 1)
    assert break_even_batch(P4, 100.0) is None


def test_vectorized_hvm_equals_xens_literal_loop():
    s = workload("forkwait", 5)
    for paging in ("shadow", "nested"):
        loop = run_loop(s, P4, paging=paging)
        r = run_hvm(s, P4, paging=paging)
        assert r.total_cycles == pytest.approx(loop.total_cycles) and r.exits == loop.exits


def test_nested_paging_removes_pte_write_exits_but_raises_tlb_miss_cost():
    s = workload("forkwait", 3)
    sh, ne = run_hvm(s, KVM, paging="shadow"), run_hvm(s, KVM, paging="nested")
    assert sh.counts["pte_write_exits"] == s.counts()[Op.PTE_WRITE] > 0
    assert ne.counts["pte_write_exits"] == 0 and "EXCEPTION_NMI" not in ne.exits
    per_miss = lambda r: r.breakdown["page walks"] / s.counts()[Op.TLB_MISS]
    assert per_miss(ne) > per_miss(sh)
    assert ne.counts["walk_refs"] == 24 * s.counts()[Op.TLB_MISS]
    two_mb = run_hvm(s, KVM, paging="nested", large_nested_pages=True)
    assert two_mb.counts["walk_refs"] == 19 * s.counts()[Op.TLB_MISS]


def test_hvm_syscalls_do_not_exit_but_cpuid_and_io_do():
    s = OpStream.build("t", [Op.SYSCALL, Op.CPUID, Op.PORT_IO, Op.HLT], value=[0, 0, 1, 0])
    r = run_hvm(s, P4)
    assert r.exits == {"CPUID": 1, "IO_INSTRUCTION": 1, "HLT": 1}
    assert EXIT_TABLE[ExitReason.IO_INSTRUCTION].where == "qemu-dm in dom0 (ioreq)"   # Xen 3.4 handle_mmio


def test_cr8_writes_exit_only_without_tpr_shadow():
    s = workload("cr8wr", 10)
    assert run_hvm(s, P4).exits == {"CR_ACCESS": 10}
    assert run_hvm(s, KVM).exits == {}


def test_shadow_hidden_faults_follow_guest_pte_writes():
    s = OpStream.build("t", [Op.TLB_MISS, Op.PTE_WRITE, Op.TLB_MISS, Op.TLB_MISS], arg=[7, 7, 7, 7], value=[0, 9, 0, 0])
    assert run_hvm(s, P4).counts["hidden_faults"] == 1
    assert run_bt(s, P4).counts["hidden_faults"] == 1


def test_bt_translates_each_kernel_block_once_with_a_big_cache():
    s = workload("forkwait", 4)
    r = run_bt(s, P4)
    assert r.counts["translations"] == len(np.unique(s.block[s.block >= 0]))
    assert r.counts.get("tc_flushes", 0) == 0


def test_bt_small_cache_flushes_and_retranslates():
    s = workload("forkwait", 4)
    r = run_bt(s, P4.replace(bt_tc_capacity_blocks=4))
    assert r.counts["tc_flushes"] > 0
    assert r.counts["translations"] > len(np.unique(s.block[s.block >= 0]))


def test_bt_adaptive_translation_stops_pte_traps_after_threshold():
    r = run_bt(workload("ptemod", 1000), P4)
    assert r.counts["pte_write_traps"] == 4
    assert r.counts["pte_write_callouts"] == 996
    r0 = run_bt(workload("ptemod", 1000), P4.replace(bt_adapt_threshold=0))
    assert r0.counts.get("pte_write_traps", 0) == 0
    r_big = run_bt(workload("ptemod", 1000), P4.replace(bt_adapt_threshold=100))
    assert r_big.counts["pte_write_traps"] == 100


def test_bt_user_mode_call_ret_runs_directly():
    user = OpStream.build("u", [Op.CALL_RET] * 10)
    kern = OpStream.build("k", [Op.CALL_RET] * 10, block=[3] * 10)
    assert run_bt(user, P4).total_cycles == run_native(user, P4).total_cycles
    assert run_bt(kern, P4).total_cycles > run_native(kern, P4).total_cycles


def test_run_path_rejects_unknown_path_and_paging():
    with pytest.raises(ConfigError, match="BT"):
        run_path(pte_run(1), "VT", P4)
    with pytest.raises(ConfigError, match="nested"):
        run_hvm(pte_run(1), P4, paging="ept")


def test_costs_can_be_given_by_preset_name():
    r = run_path(workload("syscall", 10), "PV", "xen_pv")
    assert r.preset == "xen_pv"


def test_tlb_miss_costs_come_from_the_memory_model():
    from vmlab.guest.traffic import tlb_miss_cost
    from vmlab.execution.hvm import tlb_miss_walk
    for paging in ("shadow", "nested"):
        assert tlb_miss_walk(paging, KVM) == (tlb_miss_cost(paging, costs=KVM)["refs"],
                                              tlb_miss_cost(paging, costs=KVM)["cycles"])


def test_walk_refs_override_models_walk_caches():
    s = workload("database", 10)
    cold = run_hvm(s, KVM, paging="nested")
    cached = run_hvm(s, KVM, paging="nested", walk_refs_per_miss=8)
    assert cached.breakdown["page walks"] == pytest.approx(cold.breakdown["page walks"] * 8 / 24)


def test_timeline_is_built_lazily_and_only_when_asked():
    s = workload("web", 5)
    assert run_hvm(s, KVM, timeline=False).timeline is None
    r = run_hvm(s, KVM)
    assert r.timeline is r.timeline and len(r.timeline) == r.hypervisor_entries
    assert r.timeline.counts() == {f"exit:{k}": v for k, v in r.exits.items()}
