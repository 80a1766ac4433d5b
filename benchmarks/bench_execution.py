"""Execution-path benchmarks (issue 5): costing long operation streams, widget updates.

Issue 10 (timelines): building the four timelines of a 10 M-op forkwait stream (10.8 M
hypervisor entries) sorted every entry key once (np.sort of 10.8 M int64) and spread the
stateful extras with np.add.at. The pieces are already sorted, so they are now merged
(searchsorted), the extras summed with one bincount, and the native path (no entries)
skips the work. Same timelines, bit for bit. Measured on the shared 2-core box with other
jobs running (load 3-6), old and new code alternated, best of 3: timelines only
1.90-3.07 s -> 0.60-0.67 s (1.64 s in one run at load 6); see bench_forkwait_10m_timelines_only.

Issue 10 (costing): `hidden_faults` sorted 7.5 M int64 keys (slot << bits | rank) with np.sort;
the slots both written and missed are now renumbered densely (a running count of the bitmap it
already built) and put in (slot, program order) by one stable argsort of int32 ids, and the
timeline merge makes fewer 10 M-entry temporaries. Same positions and timelines, bit for bit
(tests/execution/test_analysis.py checks against the specification loop and the old sort).
Same box (load 2-4), old and new code alternated in fresh processes, best of 3 (wall = CPU
within 1-2 %): all paths 0.74-0.78 s -> 0.42-0.43 s; all paths with timelines 1.33-1.68 s ->
0.92-1.16 s; timelines only 0.50 s -> 0.45 s. The first call in a process is slower (1.1-1.6 s
with timelines), as fresh memory is first touched.
"""

from __future__ import annotations

from functools import lru_cache

from vmlab.costs import preset
from vmlab.execution import compare_paths
from vmlab.execution.explore import analysed_workload
from vmlab.execution.workloads import stream_of_size

N = 10_000_000


@lru_cache(maxsize=None)
def _stream(name: str):
    return stream_of_size(name, N, seed=1)


def _all_paths(name: str, timeline: bool) -> str:
    s = _stream(name)
    r = compare_paths(s, preset("p4_vtx_2006"))
    if timeline:  # materialize every path's timeline of hypervisor entries (built lazily otherwise)
        entries = sum(len(x.timeline) for x in r.values())
        return f"({len(s):,} ops; {entries:,} timeline entries)"
    return f"({len(s):,} ops; HVM/native {r['HVM'].slowdown(r['native']):.1f}x)"


def bench_forkwait_10m_all_paths():
    """target <= 2 s: cost a 10,000,000-op forkwait stream on native, PV, HVM, BT (cycles, breakdowns, counts)"""
    return _all_paths("forkwait", False)


def bench_forkwait_10m_all_paths_with_timeline():
    """target <= 2 s: the same, and build all four timelines of hypervisor entries (times by cumulative sum)"""
    return _all_paths("forkwait", True)


@lru_cache(maxsize=None)
def _costed(name: str):
    return compare_paths(_stream(name), preset("p4_vtx_2006"))


def bench_forkwait_10m_timelines_only():
    """target <= 1 s: build the four timelines of hypervisor entries of the 10 M-op forkwait stream (costs done)"""
    entries = sum(len(x.timeline_source()) for x in _costed("forkwait").values() if x.timeline_source is not None)
    return f"({entries:,} timeline entries)"


def bench_kernel_compile_10m_all_paths():
    """target <= 2 s: cost a 10,000,000-op kernel_compile stream on all four paths"""
    return _all_paths("kernel_compile", False)


def bench_web_10m_all_paths_with_timeline():
    """target <= 2 s: cost a 10,000,000-op web stream on all four paths and build the timelines"""
    return _all_paths("web", True)


@lru_cache(maxsize=None)
def _comparer():
    from vmlab.widgets.path_comparer import PathComparer
    return PathComparer()


@lru_cache(maxsize=None)
def _explorer():
    from vmlab.widgets.batching import BatchingExplorer
    return BatchingExplorer()


def bench_path_comparer_update_cost_slider():
    """target <= 50 ms: path-comparer update at default size (forkwait) after a cost slider moves"""
    w = _comparer()
    s = w.sliders["vmexit_roundtrip_cycles"]
    s.value = 1000 if s.value != 1000 else 2400
    from vmlab.widgets.path_comparer import DEFAULT_SIZES
    return f"({len(analysed_workload('forkwait', DEFAULT_SIZES['forkwait'], w.seed)[0]):,} ops)"


def bench_path_comparer_update_workload_switch():
    """target <= 50 ms: path-comparer update switching workload (stream generated + costed)"""
    w = _comparer()
    w.workload.value = "kernel_compile" if w.workload.value == "forkwait" else "forkwait"
    return f"(-> {w.workload.value})"


def bench_batching_explorer_update():
    """target <= 50 ms: batching-explorer update at default size (forkwait) after the batch slider moves"""
    w = _explorer()
    w.batch.value = 16 if w.batch.value != 16 else 32
    from vmlab.widgets.batching import SIZES
    return f"({len(analysed_workload('forkwait', SIZES['forkwait'], w.seed)[0]):,} ops, sweep of 9 sizes)"


if __name__ == "__main__":
    import time
    for name in ("forkwait", "kernel_compile", "web"):
        _stream(name)
        for tl in (False, True):
            t = time.perf_counter()
            note = _all_paths(name, tl)
            print(name, "timeline" if tl else "", f"{time.perf_counter() - t:.3f}s", note)
