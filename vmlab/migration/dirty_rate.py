"""How fast does a guest dirty memory? QEMU's calc-dirty-rate and a WWS analysis.

`calc_dirty_rate` follows QEMU's migration/dirtyrate.c (REFERENCE.md §6):
- page-sampling (default): pick 512 random pages per GiB, hash them at the
  start and again after calc-time; the fraction that changed, times RAM, over
  the time, is the rate (MiB/s);
- dirty-bitmap: turn on log-dirty for calc-time and count the bits.
A page written twice in the window counts once, so a longer window reports a
lower rate for a guest that rewrites a small working set.

`wws_over_time` / `wws_curve` are Clark et al.'s writable-working-set analysis:
how many distinct pages the guest dirties per window, and how that number
saturates as the window grows (the saturation level is the WWS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlab.errors import ConfigError
from vmlab.migration.policies import PAGE_SIZE
from vmlab.migration.dirtying import Workload

__all__ = ["DirtyRate", "calc_dirty_rate", "wws_over_time", "wws_curve", "SAMPLE_PAGES_PER_GIB"]

SAMPLE_PAGES_PER_GIB = 512   # QEMU DIRTYRATE_DEFAULT_SAMPLE_PAGES
MODES = ("page-sampling", "dirty-bitmap")


@dataclass(frozen=True, kw_only=True, slots=True)
class DirtyRate:
    mode: str
    calc_time_s: float
    dirty_rate_mib_s: float
    dirty_pages: int           # bitmap mode: pages dirtied; sampling mode: estimate from the sample
    sample_pages: int          # pages hashed (sampling) or 0
    sampled_dirty: int         # of those, how many changed
    memory_pages: int
    sample_pages_per_gib: int = SAMPLE_PAGES_PER_GIB

    def query_dirty_rate(self) -> dict:
        """QMP `query-dirty-rate` reply (dirty-rate in MB/s as QEMU reports it)."""
        return {"status": "measured", "dirty-rate": int(round(self.dirty_rate_mib_s)), "mode": self.mode,
                "calc-time": int(round(self.calc_time_s)), "sample-pages": self.sample_pages_per_gib,
                "start-time": 0}


def calc_dirty_rate(image, workload: Workload, *, calc_time_s: float = 1.0, mode: str = "page-sampling",
                    sample_pages_per_gib: int = SAMPLE_PAGES_PER_GIB, seed: int = 0,
                    rng: np.random.Generator | None = None) -> DirtyRate:
    """Measure `workload`'s dirty rate on `image` (a MemoryImage or DomainSource) over `calc_time_s`."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    if not calc_time_s > 0:
        raise ConfigError(f"calc_time_s={calc_time_s} must be > 0 (QEMU: calc-time is 1..60 s)")
    rng = rng if rng is not None else np.random.default_rng(seed)
    pfns = np.asarray(image.pfns)
    n = int(pfns.size)
    if mode == "dirty-bitmap":
        if image.log is not None:
            raise ConfigError("log-dirty is already on for this guest (a migration is running); measure later")
        log = image.enable_log()
        image.write(workload.writes(rng, calc_time_s))
        dirty = int(log.clean().size)
        image.disable_log()
        return DirtyRate(mode=mode, calc_time_s=calc_time_s, dirty_rate_mib_s=dirty * PAGE_SIZE / 2**20 / calc_time_s,
                         dirty_pages=dirty, sample_pages=0, sampled_dirty=0, memory_pages=n)
    gib = n * PAGE_SIZE / 2**30
    k = max(1, min(n, int(round(sample_pages_per_gib * gib))))
    sample = pfns[rng.choice(n, size=k, replace=False)] if k < n else pfns
    before = image.read(sample).copy()
    image.write(workload.writes(rng, calc_time_s))
    changed = int(np.count_nonzero(image.read(sample) != before))
    est = changed / k * n
    return DirtyRate(mode=mode, calc_time_s=calc_time_s, dirty_rate_mib_s=est * PAGE_SIZE / 2**20 / calc_time_s,
                     dirty_pages=int(round(est)), sample_pages=k, sampled_dirty=changed, memory_pages=n,
                     sample_pages_per_gib=sample_pages_per_gib)


def wws_over_time(workload: Workload, n_pages: int, *, window_s: float = 1.0, duration_s: float = 30.0,
                  seed: int = 0) -> dict[str, list]:
    """Distinct pages dirtied in each window, how many were new, and the running total."""
    if not 0 < window_s <= duration_s:
        raise ConfigError(f"window_s={window_s} must be > 0 and <= duration_s={duration_s}")
    rng = np.random.default_rng(seed)
    ever = np.zeros(int(n_pages), dtype=np.bool_)
    win = np.zeros(int(n_pages), dtype=np.bool_)
    cols: dict[str, list] = {"start_s": [], "dirtied_pages": [], "new_pages": [], "cumulative_pages": [],
                             "dirty_rate_mib_s": []}
    for i in range(int(round(duration_s / window_s))):
        w = workload.writes(rng, window_s)
        win[w] = True
        idx = np.flatnonzero(win)
        new = int(np.count_nonzero(~ever[idx]))
        ever[idx] = True
        win[idx] = False
        cols["start_s"].append(i * window_s)
        cols["dirtied_pages"].append(int(idx.size))
        cols["new_pages"].append(new)
        cols["cumulative_pages"].append(int(np.count_nonzero(ever)))
        cols["dirty_rate_mib_s"].append(idx.size * PAGE_SIZE / 2**20 / window_s)
    return cols


def wws_curve(workload: Workload, n_pages: int, *, windows_s=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
              repeats: int = 3, seed: int = 0) -> dict[str, list]:
    """Mean distinct pages dirtied in a window of each length: it saturates at the WWS.

    The apparent dirty rate (distinct pages x 4 KiB / window) falls as the window
    grows - the same effect that makes a longer calc-dirty-rate report less.
    """
    rng = np.random.default_rng(seed)
    mark = np.zeros(int(n_pages), dtype=np.bool_)
    cols: dict[str, list] = {"window_s": [], "distinct_pages": [], "dirty_rate_mib_s": []}
    for w_s in windows_s:
        counts = []
        for _ in range(repeats):
            pages = workload.writes(rng, w_s)
            mark[pages] = True
            idx = np.flatnonzero(mark)
            counts.append(idx.size)
            mark[idx] = False
        mean = float(np.mean(counts))
        cols["window_s"].append(float(w_s))
        cols["distinct_pages"].append(mean)
        cols["dirty_rate_mib_s"].append(mean * PAGE_SIZE / 2**20 / w_s)
    return cols
