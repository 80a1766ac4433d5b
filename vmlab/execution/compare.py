"""Run one stream on every path and put the results side by side."""

from __future__ import annotations

from vmlab.costs import CostModel, preset
from vmlab.errors import ConfigError
from vmlab.execution.analysis import MC_BATCH, StreamAnalysis
from vmlab.execution.binary_translation import run_bt
from vmlab.execution.hvm import run_hvm
from vmlab.execution.native import run_native
from vmlab.execution.ops import OpStream
from vmlab.execution.pv import run_pv
from vmlab.execution.result import MECHANISMS, RunResult
from vmlab.execution.workloads import workload

__all__ = ["PATHS", "run_path", "compare_paths", "comparison_columns", "path_comparison"]

PATHS = ("native", "PV", "HVM", "BT")


def _costs(costs: CostModel | str) -> CostModel:
    return preset(costs) if isinstance(costs, str) else costs


def run_path(stream: OpStream, path: str, costs: CostModel | str, *, batch: int = MC_BATCH, paging: str = "shadow",
             large_nested_pages: bool = False, timeline: bool = True, state: bool = False,
             analysis: StreamAnalysis | None = None) -> RunResult:
    """Cost `stream` on one path: 'native', 'PV', 'HVM' or 'BT'."""
    c = _costs(costs)
    if path == "native":
        return run_native(stream, c, timeline=timeline, state=state, analysis=analysis)
    if path == "PV":
        return run_pv(stream, c, batch=batch, timeline=timeline, state=state, analysis=analysis)
    if path == "HVM":
        return run_hvm(stream, c, paging=paging, large_nested_pages=large_nested_pages, timeline=timeline,
                       state=state, analysis=analysis)
    if path == "BT":
        return run_bt(stream, c, timeline=timeline, state=state, analysis=analysis)
    raise ConfigError(f"path={path!r} is not an execution path; choose from {', '.join(PATHS)}")


def compare_paths(stream: OpStream, costs: CostModel | str, *, batch: int = MC_BATCH, paging: str = "shadow",
                  large_nested_pages: bool = False, timeline: bool = True, state: bool = False,
                  paths: tuple[str, ...] = PATHS, analysis: StreamAnalysis | None = None) -> dict[str, RunResult]:
    """{path: RunResult} for one stream, sharing the stream's analysis between paths."""
    a = analysis or StreamAnalysis(stream)
    return {p: run_path(stream, p, costs, batch=batch, paging=paging, large_nested_pages=large_nested_pages,
                        timeline=timeline, state=state, analysis=a) for p in paths}


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
    """The path comparer's one core call: generate a workload, cost it on all paths, return columns."""
    s = workload(workload_name, size, seed=seed)
    return comparison_columns(compare_paths(s, costs, batch=batch, paging=paging,
                                            large_nested_pages=large_nested_pages, timeline=False))
