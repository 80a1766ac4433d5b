"""Widget-facing functions of the guest area: each returns plain column dicts.

- `walk_grid`: the 5 x 5 grid of one 2D (nested) page walk, for the page-walk widget.
- `traffic_trace`, `compare_schemes`: page-table traffic per event and per scheme,
  for the page-table traffic widget (runs from `vmlab.guest.traffic`).
Times are estimated cycles divided by `traffic.CPU_GHZ` (ILLUSTRATIVE).
"""

from __future__ import annotations

from functools import lru_cache

from vmlab.guest.kernel import CYCLE_CATEGORIES, GuestKernel, boot_kernel
from vmlab.guest.traffic import COUNTERS, CPU_GHZ, run_scenario
from vmlab.paging.nested import WalkCaches, walk_2d, walk_refs

__all__ = ["walk_grid", "traffic_trace", "compare_schemes"]


def traffic_trace(kernel: GuestKernel, *, scheme: str | None = None) -> dict[str, list]:
    """Per-event deltas and cumulative counts from a kernel's log, as plain columns."""
    cols: dict[str, list] = {"step": [], "event": [], "scheme": [], "time_s": []}
    for key in COUNTERS + tuple(f"cycles_{c}" for c in CYCLE_CATEGORIES):
        cols[key] = []
        cols[f"cum_{key}"] = []
    prev: dict = {}
    for i, (event, snap) in enumerate(kernel.log):
        cols["step"].append(i)
        cols["event"].append(event)
        cols["scheme"].append(scheme or kernel.scheme)
        cols["time_s"].append(float(snap.get("cycles", 0)) / (CPU_GHZ * 1e9))
        for key in COUNTERS + tuple(f"cycles_{c}" for c in CYCLE_CATEGORIES):
            v = snap.get(key, 0)
            cols[key].append(v - prev.get(key, 0))
            cols[f"cum_{key}"].append(v)
        prev = snap
    return cols


@lru_cache(maxsize=64)
def _scheme_run(scheme: str, scenario: str, pages: int, accesses: int, workload: str, batch_size: int,
                seed: int) -> tuple[dict, dict]:
    k = run_scenario(scheme, scenario, pages=pages, accesses=accesses, workload=workload,
                     batch_size=batch_size, seed=seed)
    return dict(k.stats), traffic_trace(k)


def compare_schemes(scenario: str = "fork", *, schemes=("pv", "shadow", "nested"), pages: int = 256,
                    accesses: int = 4000, workload: str = "hot_cold", batch_size: int = 32,
                    seed: int = 0) -> dict[str, dict]:
    """Every scheme on the same scenario: {'totals': one row per scheme, 'timeline': all events}.

    Runs are deterministic, so each (scheme, scenario, size, seed) is computed once and
    reused; batch_size only matters under pv.
    """
    totals: dict[str, list] = {"scheme": []}
    for key in COUNTERS + tuple(f"cycles_{c}" for c in CYCLE_CATEGORIES):
        totals[key] = []
    timeline: dict[str, list] = {}
    for scheme in schemes:
        b = batch_size if scheme == "pv" else 32
        stats, tr = _scheme_run(scheme, scenario, int(pages), int(accesses), workload, int(b), int(seed))
        totals["scheme"].append(scheme)
        for key in totals:
            if key != "scheme":
                totals[key].append(stats.get(key, 0))
        for key, col in tr.items():
            timeline.setdefault(key, []).extend(col)
    return {"totals": totals, "timeline": timeline}


_GRID_ROWS = ["gL4", "gL3", "gL2", "gL1", "data"]
_GRID_COLS = ["nL4", "nL3", "nL2", "nL1", "guest"]


def walk_grid(*, large_nested_pages: bool = False, nested_tlb: bool = False, pwc: bool = False,
              warm: bool = False) -> dict[str, list]:
    """The 5 x 5 grid of a 2D walk (guest step x nested level) as plain columns.

    Builds a small nested-paging guest, maps a few pages, and walks one address. With
    `warm=True` it first walks the neighbouring page, so the nested TLB and the page-walk
    cache (when on) already hold what that walk learned. Each cell: `order` (1-based
    position of the reference, 0 if none), `kind` ('nested', 'guest', 'cached' = skipped
    thanks to a cache, 'n/a' = no such reference in this configuration).
    """
    return {k: list(v) for k, v in _walk_grid(large_nested_pages, nested_tlb, pwc, warm).items()}


@lru_cache(maxsize=32)
def _walk_grid(large: bool, ntlb: bool, use_pwc: bool, warm: bool) -> dict[str, tuple]:
    k = boot_kernel("nested", memory_mib=16, host_memory_mib=256, dom0_mem_mib=32, nested_large_pages=large)
    pid = k.spawn()
    va = 0x4000_0000
    k.map(pid, va, 4)
    caches = WalkCaches(nested_tlb=64 if ntlb else 0, pwc=32 if use_pwc else 0)
    if warm:
        walk_2d(k.nested, k.current.root, va + 4096, caches=caches)
    r = walk_2d(k.nested, k.current.root, va, caches=caches)
    taken = {(s[0], s[1]): i + 1 for i, s in enumerate(r.steps)}
    m = 3 if large else 4
    cols: dict[str, list] = {"row": [], "col": [], "order": [], "kind": [], "label": []}
    for ri, row in enumerate(_GRID_ROWS):
        for ci, col in enumerate(_GRID_COLS):
            level = 0 if col == "guest" else 4 - ci
            exists = (col == "guest" and row != "data") or (col != "guest" and level > 4 - m)
            order = taken.get((ri, level), 0)
            kind = ("guest" if col == "guest" else "nested") if order else ("cached" if exists else "n/a")
            cols["row"].append(row)
            cols["col"].append(col)
            cols["order"].append(order)
            cols["kind"].append(kind)
            cols["label"].append(str(order) if order else ("·" if kind == "cached" else ""))
    cols["total"] = [r.refs] * len(cols["row"])
    cols["cold_total"] = [walk_refs(4, m)] * len(cols["row"])
    return {k: tuple(v) for k, v in cols.items()}
