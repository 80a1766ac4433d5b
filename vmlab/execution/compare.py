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
from vmlab.execution.result import RunResult

__all__ = ["PATHS", "run_path", "compare_paths"]

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
