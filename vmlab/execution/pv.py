"""Paravirtualization: the guest kernel knows it runs on Xen.

The guest kernel runs deprivileged, so privileged operations become hypercalls:
page-table writes are queued in Linux's per-CPU multicall buffer and issued as
one `multicall` (a singleton as a plain `mmu_update`), CR3 loads and TLB flushes
are `mmuext_op`, idling is `sched_op`, I/O goes through the split-driver ring
and an `event_channel_op` notify to dom0's backend. Interrupt masking is a store
to the shared-info page (no hypercall). Exceptions and (64-bit) system calls
enter Xen first and are bounced to the guest kernel.

With `state=True` the updates are really applied, batch by batch in issue
order, through a `PteSink` -- by default a Xen-like `mmu_update` over a table of
entries; pass `sink=` to route them through another implementation (e.g. the
memory model's validated PV direct paging).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vmlab.costs import CostModel, as_costs
from vmlab.execution.analysis import MC_BATCH, BatchPlan, StreamAnalysis, batch_plan
from vmlab.execution.native import native_parts, walk_refs
from vmlab.execution.ops import Op, OpStream, state_with_ptes
from vmlab.execution.result import Ledger, RunResult

__all__ = ["run_pv", "PteSink", "TablePteSink", "break_even_batch"]


class PteSink(Protocol):
    """Where a PV guest's queued page-table updates go: one call per issued batch."""

    def mmu_update(self, slots: np.ndarray, values: np.ndarray) -> int:
        """Apply the requests in order; return how many succeeded (Xen's `done`)."""

    def final_ptes(self) -> tuple[np.ndarray, np.ndarray]:
        """(slots, values) of every entry written, sorted by slot."""


class TablePteSink:
    """The simplest sink: Xen applies each request of a batch in order to a table of entries."""

    def __init__(self) -> None:
        self.table: dict[int, int] = {}
        self.calls = 0

    def mmu_update(self, slots: np.ndarray, values: np.ndarray) -> int:
        self.calls += 1
        for s, v in zip(slots.tolist(), values.tolist()):
            self.table[s] = v
        return int(slots.size)

    def final_ptes(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.table:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys = np.fromiter(self.table.keys(), np.int64, len(self.table))
        vals = np.fromiter(self.table.values(), np.int64, len(self.table))
        o = np.argsort(keys)
        return keys[o], vals[o]


def _pv_parts(op: Op, c: CostModel) -> tuple[list, str | None, str | None]:
    """(parts, entry kind, hypercall name) for the per-type part of each op under PV."""
    h = c.hypercall_roundtrip_cycles
    n = native_parts(op, c)
    if op == Op.SYSCALL:
        if c.pv_syscall_bounce_cycles > 0:
            return n + [("traps", "syscall bounce via Xen", c.pv_syscall_bounce_cycles)], "trap:syscall", None
        return n, None, None
    if op == Op.PTE_WRITE:  # costs come from the batch plan
        return [("hypercalls", "queue entry", c.pv_queue_entry_cycles),
                ("hypercalls", "validate entry", c.multicall_per_entry_cycles)], None, None
    if op in (Op.CR3_LOAD, Op.TLB_FLUSH):
        return n + [("hypercalls", "mmuext_op", h)], "hypercall:mmuext_op", "mmuext_op"
    if op in (Op.PAGE_FAULT, Op.DIVZERO, Op.CPUID):
        what = {Op.PAGE_FAULT: "page_fault", Op.DIVZERO: "divide_error", Op.CPUID: "cpuid"}[op]
        return n + [("traps", f"{what} bounce", c.pv_trap_bounce_cycles)], f"trap:{what}", None
    if op in (Op.PORT_IO, Op.MMIO):
        return [("device I/O", "ring request + backend", c.pv_ring_request_cycles),
                ("hypercalls", "event_channel_op send", c.event_channel_notify_cycles)], \
            "hypercall:event_channel_op", "event_channel_op"
    if op == Op.TIMER_IRQ:
        return n + [("traps", "event upcall", c.pv_upcall_cycles)], "interrupt:VIRQ_TIMER", None
    if op == Op.HLT:
        return n + [("hypercalls", "sched_op block", h)], "hypercall:sched_op", "sched_op"
    if op in (Op.IRQ_DISABLE, Op.IRQ_ENABLE):
        return [("native work", "evtchn_upcall_mask store", c.native_irq_mask_cycles)], None, None
    return n, None, None


def break_even_batch(c: CostModel, per_update_target_cycles: float) -> int | None:
    """Smallest batch size whose cost per PTE update is at most the target (None if never).

    Per update: hypercall_roundtrip / b + multicall_per_entry + pv_queue_entry.
    """
    fixed = c.multicall_per_entry_cycles + c.pv_queue_entry_cycles
    room = per_update_target_cycles - fixed
    if room <= 0:
        return None
    return max(1, int(np.ceil(c.hypercall_roundtrip_cycles / room - 1e-9)))


def run_pv(stream: OpStream, costs: CostModel | str, *, batch: int = MC_BATCH, timeline: bool = True, state: bool = False,
           sink: PteSink | None = None, analysis: StreamAnalysis | None = None) -> RunResult:
    """Cost a stream as a paravirtualized guest whose PTE writes are batched `batch` per hypercall."""
    costs = as_costs(costs)
    a = analysis or StreamAnalysis(stream)
    led = Ledger(stream, a)
    for op in Op:
        parts, entry, hc = _pv_parts(op, costs)
        led.row(op, parts, entry=entry, hypercall=hc)
    plan = batch_plan(stream, batch)
    singles = plan.sizes == 1
    hc = costs.hypercall_roundtrip_cycles
    led.extra(plan.issue_pos[singles], [("hypercalls", "mmu_update", hc)], entry="hypercall:mmu_update")
    led.extra(plan.issue_pos[~singles], [("hypercalls", "multicall", hc)], entry="hypercall:multicall")
    led.count("mmu_update", int(singles.sum()), led.hypercalls)
    led.count("multicall", int((~singles).sum()), led.hypercalls)
    led.count("pte_updates", plan.updates)
    led.count("batches", plan.hypercalls)
    led.count("walk_refs", int(a.counts[Op.TLB_MISS]) * walk_refs("native"))
    led.count("hypercalls_total", sum(led.hypercalls.values()))
    arch = None
    if state:
        arch = _pv_state(stream, plan, sink or TablePteSink())
    extra = {"batch": plan.batch, "batch_histogram": plan.histogram(), "flush_reasons": plan.flush_reasons(),
             "runs": plan.runs, "plan": plan}
    return led.finish(path="PV", preset=costs.name, clock_ghz=costs.clock_ghz, config=f"batch {batch}",
                      timeline=timeline, state=arch, extra=extra)


def _pv_state(stream: OpStream, plan: BatchPlan, sink: PteSink):
    """Apply the queued updates batch by batch, in the order the guest issues them."""
    P = np.flatnonzero(stream.op == Op.PTE_WRITE)
    slots, values = stream.arg[P], stream.value[P]
    order = np.argsort(plan.issue_pos, kind="stable")   # batches are numbered in issue order already
    start = np.r_[0, np.cumsum(plan.sizes)[:-1]] if plan.sizes.size else np.zeros(0, np.int64)
    for b in order:
        lo, hi = int(start[b]), int(start[b] + plan.sizes[b])
        sink.mmu_update(slots[lo:hi], values[lo:hi])
    s, v = sink.final_ptes()
    return state_with_ptes(stream, s, v)


