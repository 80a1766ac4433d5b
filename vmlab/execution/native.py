"""Native execution: the baseline every path is compared with."""

from __future__ import annotations

from functools import lru_cache

from vmlab.costs import CostModel, as_costs
from vmlab.execution.analysis import StreamAnalysis
from vmlab.execution.ops import Op, OpStream, architectural_state
from vmlab.execution.result import Ledger, RunResult

__all__ = ["run_native", "native_parts", "walk_refs"]


@lru_cache(maxsize=None)
def walk_refs(mode: str) -> int:
    """Memory references of one TLB-miss walk: native/shadow 4, nested 24, nested_2mib 19.

    Read from datasets/tables/page_walk_refs.csv (Bhargava et al. 2008); the formula
    (n+1)(m+1)-1 is the fallback if the table is unavailable.
    """
    try:
        from vmlab.datasets import load_table
        for row in load_table("page_walk_refs"):
            if row["mode"] == mode:
                return int(row["memory_refs"])
    except Exception:  # pragma: no cover - dataset missing: use the formula
        pass
    return {"native": 4, "shadow": 4, "nested": 24, "nested_2mib": 19}[mode]


def native_parts(op: Op, c: CostModel) -> list[tuple[str, str, float]]:
    """What one op costs natively, as (mechanism, what, cycles) parts."""
    w = "native work"
    table = {
        Op.COMPUTE: [],  # arg cycles, added by the ledger
        Op.SYSCALL: [(w, "syscall", c.syscall_native_cycles)],
        Op.PTE_WRITE: [(w, "pte write", c.native_pte_write_cycles)],
        Op.CR3_LOAD: [(w, "cr3 load", c.native_cr3_load_cycles)],
        Op.TLB_FLUSH: [(w, "tlb flush", c.native_tlb_flush_cycles)],
        Op.PAGE_FAULT: [(w, "page fault", c.native_page_fault_cycles)],
        Op.PORT_IO: [(w, "port i/o", c.native_port_io_cycles)],
        Op.MMIO: [(w, "mmio", c.native_mmio_cycles)],
        Op.IRQ_DISABLE: [(w, "cli/sti", c.native_irq_mask_cycles)],
        Op.IRQ_ENABLE: [(w, "cli/sti", c.native_irq_mask_cycles)],
        Op.TIMER_IRQ: [(w, "timer interrupt", c.native_timer_irq_cycles)],
        Op.HLT: [(w, "hlt", c.native_hlt_cycles)],
        Op.CPUID: [(w, "cpuid", c.native_cpuid_cycles)],
        Op.CALL_RET: [(w, "call/ret", c.native_call_ret_cycles)],
        Op.DIVZERO: [(w, "exception", c.native_exception_cycles)],
        Op.CR8_WRITE: [(w, "cr8 write", c.native_cr8_write_cycles)],
        Op.TLB_MISS: [("page walks", "1D walk", walk_refs("native") * c.tlb_miss_native_walk_ref_cycles)],
    }
    return table[op]


def run_native(stream: OpStream, costs: CostModel | str, *, timeline: bool = True, state: bool = False,
               analysis: StreamAnalysis | None = None) -> RunResult:
    """Cost a stream on bare hardware. Never enters a hypervisor."""
    costs = as_costs(costs)
    a = analysis or StreamAnalysis(stream)
    led = Ledger(stream, a)
    for op in Op:
        led.row(op, native_parts(op, costs))
    led.count("walk_refs", int(a.counts[Op.TLB_MISS]) * walk_refs("native"))
    return led.finish(path="native", preset=costs.name, clock_ghz=costs.clock_ghz, timeline=timeline,
                      state=architectural_state(stream) if state else None)
