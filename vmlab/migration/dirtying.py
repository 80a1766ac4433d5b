"""Seeded guest workloads that dirty memory while a migration runs.

A workload answers one question: which pages does the guest write during the
next `duration_s` seconds, given that it gets `cpu_fraction` of its CPU? (QEMU's
auto-converge throttles the vCPUs, so a throttled guest dirties less: writes
scale with `cpu_fraction`.) The answer is an int64 array of pfns; a page may
appear more than once, exactly as repeated stores to one page set one dirty bit.

Rates are *store events* per second (`rate_pages_s`); how many distinct pages
that dirties depends on the working set, which is what decides convergence
(REFERENCE.md §6: "convergence is decided by the set of distinct pages
re-dirtied between syncs, bounded by the working set, not by write rate x page
size"). For a uniform writer over W pages, n stores dirty W(1 - e^(-n/W))
distinct pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.errors import ConfigError

__all__ = ["Workload", "Idle", "UniformWrites", "HotCold", "Zipf", "SequentialScan", "TraceWorkload", "WithGuestOS",
           "distinct_dirtied", "DenseWrites"]

_EMPTY = np.empty(0, dtype=np.int64)


def distinct_dirtied(rate_pages_s: float, wws_pages: int, seconds: float) -> float:
    """Expected distinct pages a uniform writer dirties in `seconds`: W(1 - e^(-rt/W))."""
    if wws_pages <= 0:
        return 0.0
    return wws_pages * -np.expm1(-rate_pages_s * seconds / wws_pages)


def _check_rate(rate: float, name: str = "rate_pages_s") -> None:
    if not rate >= 0:
        raise ConfigError(f"{name}={rate} must be >= 0 stores per second; use 0 for an idle guest")


def _speed(cpu_fraction: float, share_needed: float) -> float:
    """The writer's speed (0..1) when it gets `cpu_fraction` of its CPU and needs `share_needed`."""
    return max(0.0, min(1.0, cpu_fraction / share_needed if share_needed > 0 else 1.0))


class DenseWrites(np.ndarray):
    """Written pfns (sorted, unique) that also carry the per-page mask they were drawn as: pfn
    `dense_lo + i` is written iff `dense_mask[i]`. It is an ordinary int64 pfn array to everyone;
    a log-dirty bitmap may set its bits with one OR over the region instead of a scatter
    (DirtyLog.mark). Arrays derived from it (slices, sums, concatenations) carry no mask."""

    dense_mask: np.ndarray | None = None
    dense_lo: int = 0

    def __array_finalize__(self, obj) -> None:
        self.dense_mask, self.dense_lo = None, 0

    @classmethod
    def of(cls, pfns: np.ndarray, mask: np.ndarray, lo: int) -> "DenseWrites":
        out = pfns.view(cls)
        out.dense_mask, out.dense_lo = mask, int(lo)
        return out


def _uniform(rng: np.random.Generator, n: int, lo: int, size: int) -> np.ndarray:
    """n stores spread uniformly over pfns [lo, lo+size)."""
    if n <= 0 or size <= 0:
        return _EMPTY
    if n > size:  # many stores per page: one Bernoulli per page (unique pfns, fewer scatters)
        p = -np.expm1(-n / size)
        mask = rng.random(size, dtype=np.float32) < p
        pfns = np.flatnonzero(mask)
    else:
        mask, pfns = None, rng.integers(0, size, n, dtype=np.int64)
    if lo:   # in place: one pass fewer than `lo + pfns`, and none at all for a region at pfn 0
        pfns += lo
    return pfns if mask is None else DenseWrites.of(pfns, mask, lo)


class Workload:
    """Base class: override `writes`. `n_pages` is the guest size it was built for."""

    name = "workload"
    rate_pages_s = 0.0
    wws_pages = 0
    # The CPU share the writer needs to keep its rate. 1.0: a CPU-bound writer, its stores scale with
    # the share auto-converge leaves it. Below 1: a paced writer (it sleeps between bursts) that keeps
    # its rate until the share falls below this, then slows in proportion.
    cpu_share_needed = 1.0

    def writes(self, rng: np.random.Generator, duration_s: float, cpu_fraction: float = 1.0) -> np.ndarray:
        return _EMPTY

    def write_parts(self, rng: np.random.Generator, duration_s: float, cpu_fraction: float = 1.0) -> tuple:
        """`writes` as separate arrays (a composite keeps each part's dense mask); one by default."""
        return (self.writes(rng, duration_s, cpu_fraction),)

    def _stores(self, rng: np.random.Generator, duration_s: float, cpu_fraction: float) -> int:
        lam = self.rate_pages_s * max(0.0, duration_s) * _speed(cpu_fraction, self.cpu_share_needed)
        if lam <= 0:
            return 0
        return int(rng.poisson(lam)) if lam < 1e7 else int(round(lam))


@dataclass
class Idle(Workload):
    """A guest that writes nothing (dirty rate 0)."""

    name: str = "idle"

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        return _EMPTY


@dataclass
class UniformWrites(Workload):
    """Stores at `rate_pages_s`, uniformly over a writable working set of `wws_pages`."""

    rate_pages_s: float = 10_000.0
    wws_pages: int = 65_536
    offset: int = 0
    name: str = "uniform"
    cpu_share_needed: float = 1.0

    def __post_init__(self) -> None:
        _check_rate(self.rate_pages_s)
        if self.wws_pages < 0 or self.offset < 0:
            raise ConfigError(f"wws_pages={self.wws_pages}, offset={self.offset} must be >= 0")

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        return _uniform(rng, self._stores(rng, duration_s, cpu_fraction), self.offset, self.wws_pages)


@dataclass
class HotCold(Workload):
    """A hot set taking `hot_fraction` of the stores, and a larger cold set taking the rest."""

    rate_pages_s: float = 20_000.0
    hot_pages: int = 4_096
    cold_pages: int = 131_072
    hot_fraction: float = 0.9
    offset: int = 0
    name: str = "hot/cold"

    def __post_init__(self) -> None:
        _check_rate(self.rate_pages_s)
        if not 0.0 <= self.hot_fraction <= 1.0:
            raise ConfigError(f"hot_fraction={self.hot_fraction} is outside 0..1")

    @property
    def wws_pages(self) -> int:  # type: ignore[override]
        return self.hot_pages + self.cold_pages

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        n = self._stores(rng, duration_s, cpu_fraction)
        n_hot = int(rng.binomial(n, self.hot_fraction)) if n else 0
        hot = _uniform(rng, n_hot, self.offset, self.hot_pages)
        cold = _uniform(rng, n - n_hot, self.offset + self.hot_pages, self.cold_pages)
        return np.concatenate([hot, cold])


@dataclass
class Zipf(Workload):
    """Stores over `pages` pfns with Zipf popularity (rank k has weight 1/k^s).

    Ranks are scattered over the region by a fixed multiplicative hash, so the
    hottest pages are not all neighbours.
    """

    rate_pages_s: float = 20_000.0
    pages: int = 262_144
    s: float = 1.0
    offset: int = 0
    name: str = "zipf"
    _cdf: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        _check_rate(self.rate_pages_s)
        if self.pages <= 0 or self.s < 0:
            raise ConfigError(f"pages={self.pages} must be > 0 and s={self.s} >= 0")
        w = 1.0 / np.arange(1, self.pages + 1, dtype=np.float64) ** self.s
        self._cdf = np.cumsum(w) / w.sum()

    @property
    def wws_pages(self) -> int:  # type: ignore[override]
        return self.pages

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        n = self._stores(rng, duration_s, cpu_fraction)
        if n == 0:
            return _EMPTY
        n = min(n, 50 * self.pages)  # beyond this every page with weight is dirty anyway
        ranks = np.searchsorted(self._cdf, rng.random(n)).astype(np.int64)
        ranks = np.minimum(ranks, self.pages - 1)
        return self.offset + (ranks * 2_654_435_761) % self.pages


@dataclass
class SequentialScan(Workload):
    """Writes pages in order over a region, wrapping round (a memset / copy loop)."""

    rate_pages_s: float = 50_000.0
    region_pages: int = 262_144
    offset: int = 0
    name: str = "sequential"
    cursor: int = 0
    cpu_share_needed: float = 1.0

    def __post_init__(self) -> None:
        _check_rate(self.rate_pages_s)
        if self.region_pages <= 0:
            raise ConfigError(f"region_pages={self.region_pages} must be > 0")

    @property
    def wws_pages(self) -> int:  # type: ignore[override]
        return self.region_pages

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        n = int(round(self.rate_pages_s * max(0.0, duration_s) * _speed(cpu_fraction, self.cpu_share_needed)))
        if n <= 0:
            return _EMPTY
        start = self.cursor
        self.cursor = (start + n) % self.region_pages
        n = min(n, self.region_pages)
        return self.offset + (start + np.arange(n, dtype=np.int64)) % self.region_pages


@dataclass
class TraceWorkload(Workload):
    """Replays a real program's per-window dirty sets (vmlab.datasets traces).

    `windows[i]` are dense page ids dirtied in window i; a window lasts
    `window_s` seconds of guest time (instructions / instructions_per_s). The
    program's pages are laid at `offset`; `copies` independent instances (e.g.
    one per vCPU or process) are laid side by side and run in lock-step. The
    trace loops when it ends.
    """

    windows: tuple = ()
    window_s: float = 1e-4
    n_trace_pages: int = 0
    copies: int = 1
    offset: int = 0
    name: str = "trace"
    _t: float = 0.0

    @classmethod
    def from_dataset(cls, name: str, *, instructions_per_s: float = 1e9, copies: int = 1, offset: int = 0,
                     window_instructions: int | None = None) -> "TraceWorkload":
        """Load `vmlab.datasets.trace_dirtying_workload(name)`; 1e9 instructions/s is ILLUSTRATIVE (1 IPC at 1 GHz)."""
        from vmlab.datasets import trace_dirtying_workload
        d = trace_dirtying_workload(name, window_instructions=window_instructions, dense=True)
        return cls(windows=d.windows, window_s=d.window_instructions / instructions_per_s,
                   n_trace_pages=d.n_pages, copies=copies, offset=offset, name=f"trace:{name}")

    def __post_init__(self) -> None:
        if not self.windows:
            raise ConfigError("a trace workload needs at least one window of dirtied pages")
        if self.window_s <= 0:
            raise ConfigError(f"window_s={self.window_s} must be > 0")
        if self.n_trace_pages <= 0:
            self.n_trace_pages = int(max(int(w.max()) + 1 if len(w) else 1 for w in self.windows))

    @property
    def wws_pages(self) -> int:  # type: ignore[override]
        return self.n_trace_pages * self.copies

    @property
    def rate_pages_s(self) -> float:  # type: ignore[override]
        return float(np.mean([len(w) for w in self.windows])) * self.copies / self.window_s

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        span = max(0.0, duration_s) * max(0.0, min(1.0, cpu_fraction))
        n_win = len(self.windows)
        i0 = int(self._t / self.window_s)
        self._t += span
        i1 = int(self._t / self.window_s)
        if i1 <= i0:
            return _EMPTY
        if i1 - i0 >= n_win:  # the whole trace ran at least once
            idx = range(n_win)
        else:
            idx = (i % n_win for i in range(i0, i1))
        pages = np.concatenate([self.windows[i] for i in idx]).astype(np.int64)
        if self.copies == 1:
            return self.offset + pages
        return (self.offset + pages[None, :] + (np.arange(self.copies, dtype=np.int64) * self.n_trace_pages)[:, None]).ravel()


@dataclass
class WithGuestOS(Workload):
    """`inner` (what the user says the guest writes) plus the guest OS's own hot pages.

    A running Linux guest re-dirties a small set of pages continually besides its workload: timer
    and scheduler state, kernel and user stacks, the page tables a paced loop changes. `hot_pages`
    pages at `hot_offset` take `hot_rate_pages_s` uniform stores per second; they run with the
    inner workload's CPU share (auto-converge slows both alike). Rates and working set reported for
    the workload are the inner one's.
    """

    inner: Workload = field(default_factory=Idle)
    hot_pages: int = 0
    hot_rate_pages_s: float = 0.0
    hot_offset: int = 0
    name: str = "with guest OS"

    def __post_init__(self) -> None:
        _check_rate(self.hot_rate_pages_s, "hot_rate_pages_s")
        if self.hot_pages < 0 or self.hot_offset < 0:
            raise ConfigError(f"hot_pages={self.hot_pages}, hot_offset={self.hot_offset} must be >= 0")

    @property
    def rate_pages_s(self) -> float:  # type: ignore[override]
        return self.inner.rate_pages_s

    @property
    def wws_pages(self) -> int:  # type: ignore[override]
        return self.inner.wws_pages

    @property
    def cpu_share_needed(self) -> float:  # type: ignore[override]
        return self.inner.cpu_share_needed

    @property
    def extent_pages(self) -> int:
        inner = int(getattr(self.inner, "extent_pages", getattr(self.inner, "offset", 0) + self.inner.wws_pages))
        return max(inner, self.hot_offset + self.hot_pages)

    def _hot(self, rng, duration_s, cpu_fraction) -> np.ndarray:
        lam = self.hot_rate_pages_s * max(0.0, duration_s) * _speed(cpu_fraction, self.cpu_share_needed)
        return _uniform(rng, int(rng.poisson(lam)) if lam > 0 else 0, self.hot_offset, self.hot_pages)

    def write_parts(self, rng, duration_s, cpu_fraction=1.0):
        return self.inner.write_parts(rng, duration_s, cpu_fraction) + (self._hot(rng, duration_s, cpu_fraction),)

    def writes(self, rng, duration_s, cpu_fraction=1.0):
        return np.concatenate([np.asarray(w) for w in self.write_parts(rng, duration_s, cpu_fraction)])
