"""What the execution widgets (and Labs 3-4) call: one function per view, plain column dicts.

- `path_comparison`: one workload costed natively, under PV, HVM and BT, one row per path
  and one column per mechanism (the path comparer).
- `batching_explore`: what the multicall batch size does to a PV guest's page-table traffic
  (the batching explorer). Per PTE update, a batch of b costs
  hypercall_roundtrip / b + multicall_per_entry + pv_queue_entry : the trap is amortized
  over the batch (Linux's multicalls.c comment), the per-entry work is not. Real streams
  also have flush points (TLB flushes, CR3 loads, faults) that cut runs short, so measured
  batches are often smaller than the buffer: the sweep shows both the formula and the stream.

Generated workloads and their analyses are cached per (workload, size, seed), so moving a
cost slider only re-costs.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vmlab.costs import CostModel, as_costs, preset
from vmlab.execution.analysis import MC_BATCH, StreamAnalysis, batch_plan
from vmlab.execution.compare import compare_paths
from vmlab.execution.exits import handling_cycles
from vmlab.execution.ops import Op, OpStream
from vmlab.execution.pv import break_even_batch, run_pv
from vmlab.execution.result import MECHANISMS, RunResult
from vmlab.execution.workloads import workload

__all__ = ["analysed_workload", "costs_with", "comparison_columns", "path_comparison", "per_update_cycles",
           "batching_columns", "batching_explore", "DEFAULT_SWEEP"]


@lru_cache(maxsize=4)
def analysed_workload(name: str, size: int | None = None, seed: int = 0) -> tuple[OpStream, StreamAnalysis]:
    """The workload's stream and its analysis, generated once per (name, size, seed)."""
    s = workload(name, size, seed=seed)
    return s, StreamAnalysis(s)


def costs_with(preset_name: str, overrides: dict[str, float] | None = None) -> CostModel:
    """A preset with the fields a student moved (only those that differ become overrides)."""
    base = preset(preset_name)
    changes = {f: float(v) for f, v in (overrides or {}).items() if float(v) != getattr(base, f)}
    return base.replace(**changes) if changes else base


def comparison_columns(results: dict[str, RunResult]) -> dict[str, list]:
    """Plain columns for a stacked bar chart: one row per path, one column per mechanism (cycles)."""
    cols: dict[str, list] = {"path": [r.label for r in results.values()],
                             "total_cycles": [r.total_cycles for r in results.values()],
                             "seconds": [r.seconds for r in results.values()],
                             "hypervisor_entries": [r.hypervisor_entries for r in results.values()]}
    base = results.get("native")
    cols["slowdown"] = [r.slowdown(base) if base else 1.0 for r in results.values()]
    for m in MECHANISMS:
        cols[m] = [r.breakdown.get(m, 0.0) for r in results.values()]
    return cols


def path_comparison(workload_name: str, costs: CostModel | str = "p4_vtx_2006", *, size: int | None = None,
                    seed: int = 0, batch: int = MC_BATCH, paging: str = "shadow",
                    large_nested_pages: bool = False) -> dict[str, list]:
    """The path comparer's one core call: the (cached) workload costed on all paths, as columns."""
    s, a = analysed_workload(workload_name, size, seed)
    return comparison_columns(compare_paths(s, costs, batch=batch, paging=paging,
                                            large_nested_pages=large_nested_pages, timeline=False, analysis=a))


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


def batching_explore(workload_name: str, costs: CostModel | str, batch: int = MC_BATCH, *, size: int | None = None,
                     seed: int = 0) -> dict[str, dict[str, list]]:
    """The batching explorer's one core call: `batching_columns` on the (cached) workload."""
    s, a = analysed_workload(workload_name, size, seed)
    return batching_columns(s, as_costs(costs), batch, analysis=a)
