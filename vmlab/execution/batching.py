"""The hypercall-batching explorer's core: what batch size does to a PV guest's page-table traffic.

Per PTE update, a batch of b costs  hypercall_roundtrip / b + multicall_per_entry
+ pv_queue_entry : the trap is amortized over the batch (Linux's multicalls.c
comment), the per-entry work is not. Real streams also have flush points (TLB
flushes, CR3 loads, faults) that cut runs short, so measured batches are often
smaller than the buffer: the sweep shows both the formula and the stream.
"""

from __future__ import annotations

import numpy as np

from vmlab.costs import CostModel, as_costs
from vmlab.execution.analysis import MC_BATCH, StreamAnalysis, batch_plan
from vmlab.execution.exits import handling_cycles
from vmlab.execution.ops import Op, OpStream
from vmlab.execution.pv import break_even_batch, run_pv

__all__ = ["per_update_cycles", "batching_columns", "DEFAULT_SWEEP"]

DEFAULT_SWEEP = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def per_update_cycles(costs: CostModel | str, batch) -> np.ndarray:
    """The amortization curve: cycles per PTE update for full batches of `batch` (array-friendly)."""
    c = as_costs(costs)
    b = np.asarray(batch, np.float64)
    return c.hypercall_roundtrip_cycles / b + c.multicall_per_entry_cycles + c.pv_queue_entry_cycles


def batching_columns(stream: OpStream, costs: CostModel | str, batch: int = MC_BATCH, *,
                     sweep: tuple[int, ...] = DEFAULT_SWEEP, analysis: StreamAnalysis | None = None,
                     timeline_points: int = 2000) -> dict[str, dict[str, list]]:
    """Everything the batching explorer draws, as plain columns.

    Returns {"sweep": per batch size (hypercalls, hypervisor_entries, cycles_per_update
    measured on the stream and by the formula), "curve": the formula on a fine grid,
    "histogram": Linux's batch_histo for `batch`, "reasons": flush reasons,
    "timeline": a sample of hypervisor entries, "summary": one row of headline numbers}.
    """
    c = as_costs(costs)
    a = analysis or StreamAnalysis(stream)
    k = int(a.counts[Op.PTE_WRITE])
    run = run_pv(stream, c, batch=batch, analysis=a)
    other_entries = run.hypervisor_entries - run.counts.get("batches", 0)
    per_entry = c.multicall_per_entry_cycles + c.pv_queue_entry_cycles
    sizes = sorted(set(sweep) | {int(batch)})
    calls, entries, measured = [], [], []
    for b in sizes:
        plan = batch_plan(stream, b)
        calls.append(plan.hypercalls)
        entries.append(other_entries + plan.hypercalls)
        measured.append((plan.hypercalls * c.hypercall_roundtrip_cycles + k * per_entry) / k if k else 0.0)
    grid = np.unique(np.r_[np.geomspace(1, max(sizes), 60).round(), sizes]).astype(int)
    hvm_shadow = sum(p[2] for p in handling_cycles(Op.PTE_WRITE, "shadow", c))
    plan = run.extra["plan"]
    hist = plan.histogram()
    reasons = plan.flush_reasons()
    tl = run.timeline.to_columns(limit=timeline_points)
    be_shadow = break_even_batch(c, hvm_shadow)
    be_bt = break_even_batch(c, c.bt_pte_write_cycles)
    return {
        "sweep": {"batch": sizes, "hypercalls": calls, "hypervisor_entries": entries,
                  "cycles_per_update": measured, "formula": per_update_cycles(c, sizes).tolist()},
        "curve": {"batch": grid.tolist(), "cycles_per_update": per_update_cycles(c, grid).tolist(),
                  "hvm_shadow": [hvm_shadow] * grid.size, "bt_callout": [c.bt_pte_write_cycles] * grid.size},
        "histogram": {"size": list(range(hist.size)), "batches": hist.tolist()},
        "reasons": {"reason": list(reasons), "count": list(reasons.values())},
        "timeline": {"time_ms": [t / (c.clock_ghz * 1e6) for t in tl["time_cycles"]], "kind": tl["kind"],
                     "index": tl["index"]},
        "summary": {"batch": [int(batch)], "pte_updates": [k], "pte_hypercalls": [plan.hypercalls],
                    "hypervisor_entries": [run.hypervisor_entries], "total_cycles": [run.total_cycles],
                    "break_even_vs_hvm_shadow": [be_shadow], "break_even_vs_bt_callout": [be_bt]},
    }
