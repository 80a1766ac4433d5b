"""Seeded access-stream generators: arrays of virtual addresses (and write flags).

Every generator is a plain function returning numpy arrays, deterministic for a
given `seed`. Addresses are byte addresses inside [base, base + pages * 4096);
`writes` is a bool array of the same length. The shapes (sequential scan, uniform
random, hot/cold, strided) are the classic TLB-study patterns; their parameters are
ILLUSTRATIVE defaults, not measurements. Real-program traces come from
`vmlab.datasets.load_trace` and can be fed to the same consumers.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import ConfigError

__all__ = ["sequential", "uniform", "hot_cold", "strided", "with_writes", "WORKLOADS", "access_stream"]

PAGE = 4096
DEFAULT_BASE = 0x0000_4000_0000   # 1 GiB: where the kernel driver maps user regions by default


def _check(n: int, pages: int) -> None:
    if n < 0 or pages < 1:
        raise ConfigError(f"n={n}, pages={pages}: need n >= 0 accesses over pages >= 1")


def sequential(n: int, pages: int, *, base: int = DEFAULT_BASE, stride_bytes: int = 64, seed: int = 0) -> np.ndarray:
    """A scan: cache-line steps through the region, wrapping around (seed unused; kept for a uniform API)."""
    _check(n, pages)
    off = (np.arange(n, dtype=np.int64) * stride_bytes) % (pages * PAGE)
    return base + off


def uniform(n: int, pages: int, *, base: int = DEFAULT_BASE, seed: int = 0) -> np.ndarray:
    """Uniformly random pages (the TLB's worst case once pages exceed its reach)."""
    _check(n, pages)
    rng = np.random.default_rng(seed)
    return base + rng.integers(0, pages, n, dtype=np.int64) * PAGE + rng.integers(0, PAGE // 8, n) * 8


def hot_cold(n: int, pages: int, *, base: int = DEFAULT_BASE, hot_fraction: float = 0.1,
             hot_probability: float = 0.9, seed: int = 0) -> np.ndarray:
    """`hot_probability` of accesses go to the first `hot_fraction` of pages (ILLUSTRATIVE 90/10)."""
    _check(n, pages)
    if not 0 < hot_fraction <= 1 or not 0 <= hot_probability <= 1:
        raise ConfigError(f"hot_fraction={hot_fraction} must be in (0, 1] and hot_probability={hot_probability} in [0, 1]")
    rng = np.random.default_rng(seed)
    hot = max(1, int(pages * hot_fraction))
    is_hot = rng.random(n) < hot_probability
    page = np.where(is_hot, rng.integers(0, hot, n), rng.integers(0, pages, n))
    return base + page.astype(np.int64) * PAGE


def strided(n: int, pages: int, *, base: int = DEFAULT_BASE, stride_pages: int = 1, seed: int = 0) -> np.ndarray:
    """One access per page, `stride_pages` apart, wrapping (a page-granular sweep)."""
    _check(n, pages)
    return base + ((np.arange(n, dtype=np.int64) * stride_pages) % pages) * PAGE


def with_writes(addresses: np.ndarray, *, write_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pair a stream with seeded write flags (ILLUSTRATIVE 30% stores)."""
    rng = np.random.default_rng(seed + 1)
    return np.asarray(addresses, np.int64), rng.random(len(addresses)) < write_fraction


WORKLOADS = {"sequential": sequential, "uniform": uniform, "hot_cold": hot_cold, "strided": strided}


def access_stream(name: str, n: int, pages: int, *, base: int = DEFAULT_BASE, write_fraction: float = 0.3,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(addresses, writes) for a named workload."""
    if name not in WORKLOADS:
        raise ConfigError(f"workload {name!r} is not one of {', '.join(WORKLOADS)}")
    return with_writes(WORKLOADS[name](n, pages, base=base, seed=seed), write_fraction=write_fraction, seed=seed)
