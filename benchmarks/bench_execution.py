"""Execution-path benchmarks (issue 5): costing long operation streams, widget updates."""

from __future__ import annotations

from functools import lru_cache

from vmlab.costs import preset
from vmlab.execution import compare_paths
from vmlab.execution.workloads import stream_of_size

N = 10_000_000


@lru_cache(maxsize=None)
def _stream(name: str):
    return stream_of_size(name, N, seed=1)


def _all_paths(name: str, timeline: bool) -> str:
    s = _stream(name)
    r = compare_paths(s, preset("p4_vtx_2006"), timeline=timeline)
    return f"({len(s):,} ops; HVM/native {r['HVM'].slowdown(r['native']):.1f}x)"


def bench_forkwait_10m_all_paths():
    """target <= 2 s: cost a 10,000,000-op forkwait stream on native, PV, HVM, BT (no timeline)"""
    return _all_paths("forkwait", False)


def bench_forkwait_10m_all_paths_with_timeline():
    """target <= 2 s: the same with the timeline of hypervisor entries (cumulative times) built"""
    return _all_paths("forkwait", True)


def bench_kernel_compile_10m_all_paths():
    """target <= 2 s: cost a 10,000,000-op kernel_compile stream on all four paths (no timeline)"""
    return _all_paths("kernel_compile", False)


def bench_web_10m_all_paths_with_timeline():
    """target <= 2 s: cost a 10,000,000-op web stream on all four paths, with timelines"""
    return _all_paths("web", True)


def bench_path_comparer_update():
    """target <= 50 ms: one path-comparer update at default size (forkwait, 200 units)"""
    from widgets.path_comparer import PathComparer
    w = PathComparer()
    w.workload.value = "kernel_compile"
    w.workload.value = "forkwait"
    return "(forkwait default)"


def bench_batching_explorer_update():
    """target <= 50 ms: one batching-explorer update at default size (batch slider moved)"""
    from widgets.batching import BatchingExplorer
    w = BatchingExplorer()
    w.batch.value = 16
    return "(batch 16)"


if __name__ == "__main__":
    import time
    for name in ("forkwait", "kernel_compile", "web"):
        _stream(name)
        for tl in (False, True):
            t = time.perf_counter()
            note = _all_paths(name, tl)
            print(name, "timeline" if tl else "", f"{time.perf_counter() - t:.3f}s", note)
