"""Guest memory as the migration engine sees it: pfn -> 64-bit content stamp.

Two sources share one interface, so the same engine runs on a standalone image
(for widgets and 64 GiB benchmarks) or on a live Domain of a Hypervisor:

    pfns            the populated pfns, sorted (holes are never sent)
    read(pfns)      content stamps now (0 = a zero page)
    write(pfns)     the guest stores: fresh stamps, and log-dirty bits set
    log             the DirtyLog (None until log-dirty is enabled)

A target holds what arrived; `store(pfns, stamps)` and `read(pfns)`. Correctness
is then one comparison: target.read(pfns) == source.read(pfns) at pause.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from vmlab.errors import ConfigError
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainKind
from vmlab.migration.dirty_log import DirtyLog, disable_log_dirty, enable_log_dirty
from vmlab.migration.xen3_order import ColumnChunk

if TYPE_CHECKING:
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["MemoryImage", "TargetImage", "DomainSource", "DomainTarget"]

_STAMP_TAG = np.uint64(1) << np.uint64(62)  # initial contents: never 0, never a write stamp


_CACHE_MAX_PAGES = 1 << 21   # initial contents of guests up to 8 GiB are built once and copied (16 MiB each)


# A booted guest's data sits in whole 2 MiB regions: of the regions holding any, the median is full
# (the target's first writes per region, datasets/measurements/qemu_target_trace)
REGION_PAGES = 512


def _build_content(n_pages: int, used: int, layout: str, top: int = 0, span: int | None = None) -> np.ndarray:
    """Initial stamps: `used` data pages (never-zero stamps) laid out by `layout`, the rest zero.
    "linux": `top` of them in a dense block at the top of RAM, the others scattered over the
    lowest `span` pages in whole REGION_PAGES regions spread evenly (default: scattered page by page
    over all of RAM below the block)."""
    if layout == "linux":
        top = min(used, top, n_pages)
        low = n_pages - top if span is None else max(used - top, min(n_pages - top, span))
        content = np.zeros(n_pages, dtype=np.uint64)
        if low > 0:
            content[:low] = _build_content(low, used - top, "scattered" if span is None else "regions")
        content[n_pages - top:] = np.arange(int(_STAMP_TAG) + used - top + 1, int(_STAMP_TAG) + used + 1,
                                            dtype=np.uint64)
        return content
    content = np.zeros(n_pages, dtype=np.uint64)
    slots, runs = n_pages // REGION_PAGES, -(-used // REGION_PAGES)
    if layout == "regions" and runs <= slots:
        first = (np.arange(runs, dtype=np.int64) * slots) // runs * REGION_PAGES   # evenly spread, distinct
        idx = (first[:, None] + np.arange(REGION_PAGES, dtype=np.int64)).ravel()[:used]
        content[idx] = np.arange(int(_STAMP_TAG) + 1, int(_STAMP_TAG) + 1 + used, dtype=np.uint64)
    elif layout == "front":
        content[:used] = np.arange(int(_STAMP_TAG) + 1, int(_STAMP_TAG) + 1 + used, dtype=np.uint64)
    elif used:
        # pfn is used iff its image under a fixed bijection of [0, n) falls below `used`
        a = 2_654_435_761
        while math.gcd(a, n_pages) != 1:
            a += 2
        rank = (np.arange(n_pages, dtype=np.int64) * a) % n_pages
        idx = np.flatnonzero(rank < used)
        content[idx] = np.arange(int(_STAMP_TAG) + 1, int(_STAMP_TAG) + 1 + idx.size, dtype=np.uint64)
    return content


@functools.lru_cache(maxsize=8)
def _initial_content(n_pages: int, used: int, layout: str, top: int, span: int | None) -> np.ndarray:
    content = _build_content(n_pages, used, layout, top, span)
    content.flags.writeable = False   # a template: every image copies it
    return content


@functools.lru_cache(maxsize=2)
def _all_pfns(n_pages: int) -> np.ndarray:
    pfns = np.arange(n_pages, dtype=np.int64)
    pfns.flags.writeable = False
    return pfns


class MemoryImage:
    """A standalone guest memory of `n_pages` 4 KiB pages.

    `used_pages` of them hold data; the rest are zero pages, as in a guest that
    has not touched all its RAM yet (QEMU sends those as tiny "duplicate"
    records). `layout="scattered"` (default) spreads the used pages over the whole
    guest, as a running kernel's allocator does; `"front"` packs them at pfn 0;
    `"linux"` puts `top_pages` of them in a dense block at the top of RAM and
    scatters the rest below it, as measured on a booted Linux guest (memblock
    allocates top-down: the struct page array and the initrd sit at the top; see
    `vmlab.migration.defaults.default_top_mib`); with `low_density` the rest fills
    the lowest part of RAM at that share of data pages (the kernel and early
    allocations sit low; the top half of a big guest's RAM was never touched).
    """

    def __init__(self, n_pages: int, *, used_pages: int | None = None, layout: str = "scattered",
                 top_pages: int = 0, low_density: float | None = None) -> None:
        n_pages = int(n_pages)
        if n_pages <= 0:
            raise ConfigError(f"n_pages={n_pages} must be positive; give the guest some memory")
        used = n_pages if used_pages is None else int(used_pages)
        if not 0 <= used <= n_pages:
            raise ConfigError(f"used_pages={used_pages} is outside 0..{n_pages}; at most every page holds data")
        if layout not in ("scattered", "front", "linux"):
            raise ConfigError(f"layout={layout!r} is not 'scattered', 'front' or 'linux'")
        if top_pages < 0:
            raise ConfigError(f"top_pages={top_pages} is negative; give 0 or more pages for the top block")
        if low_density is not None and not 0 < low_density <= 1:
            raise ConfigError(f"low_density={low_density} is outside (0, 1]; it is the share of data pages "
                              "in the low part of RAM (1: packed)")
        top = int(top_pages) if layout == "linux" else 0
        span = None
        if layout == "linux" and low_density is not None:
            span = int(math.ceil(max(0, used - min(used, top)) / low_density))
        self.n_pages = n_pages
        self.top_pages = min(used, top)   # "linux": the dense block that ends RAM (0 for the other layouts)
        if used == n_pages:  # one allocation, no temporary: matters at 16 M pages
            self.content = np.arange(int(_STAMP_TAG) + 1, int(_STAMP_TAG) + 1 + n_pages, dtype=np.uint64)
        elif n_pages <= _CACHE_MAX_PAGES:
            self.content = _initial_content(n_pages, used, layout, top, span).copy()
        else:
            self.content = _build_content(n_pages, used, layout, top, span)
        self._pfns: np.ndarray | None = None
        self.log: DirtyLog | None = None
        self._seq = 0
        self.paused = False

    @classmethod
    def from_mib(cls, memory_mib: float, *, used_fraction: float = 1.0, layout: str = "scattered",
                 top_mib: float = 0.0, low_density: float | None = None) -> "MemoryImage":
        n = int(round(memory_mib * 256))
        return cls(n, used_pages=int(round(n * used_fraction)), layout=layout, top_pages=int(round(top_mib * 256)),
                   low_density=low_density)

    @property
    def pfns(self) -> np.ndarray:
        """Every pfn (a standalone image has no holes): one shared read-only array per size."""
        if self._pfns is None:
            self._pfns = _all_pfns(self.n_pages)
        return self._pfns

    def read(self, pfns) -> np.ndarray:
        """Stamps of `pfns` (an index array, a slice for a contiguous run, or a ColumnChunk)."""
        if isinstance(pfns, ColumnChunk):
            return pfns.take(self.content)
        return self.content[pfns]

    def write(self, pfns: np.ndarray) -> None:
        if self.paused:
            raise ConfigError("the guest is paused; a paused guest cannot write memory")
        if len(pfns) == 0:
            return
        self._seq += 1
        self.content[pfns] = np.uint64(self._seq)  # one fresh, non-zero stamp per store burst
        if self.log is not None:
            self.log.mark(pfns)

    def enable_log(self) -> DirtyLog:
        self.log = DirtyLog(self.n_pages)
        return self.log

    def disable_log(self) -> None:
        self.log = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


class TargetImage:
    """What the receiving side holds: stamps per pfn, and which pfns have arrived."""

    def __init__(self, n_pages: int) -> None:
        self.content = np.zeros(int(n_pages), dtype=np.uint64)
        self.received = np.zeros(int(n_pages), dtype=np.bool_)

    def store(self, pfns: np.ndarray, stamps: np.ndarray) -> None:
        if isinstance(pfns, ColumnChunk):
            pfns = pfns.array()
        self.content[pfns] = stamps
        self.received[pfns] = True

    def read(self, pfns: np.ndarray) -> np.ndarray:
        return self.content[pfns]

    def write(self, pfns: np.ndarray, stamp: int) -> None:
        """The resumed guest stores on the target (post-copy)."""
        self.content[pfns] = np.uint64(stamp)

    def discard(self) -> None:
        self.content[:] = 0
        self.received[:] = False


class DomainSource:
    """A live domain on a source hypervisor, seen through dom0's eyes.

    dom0 reads the guest's pages as xc_domain_save does: a batch of MAX_BATCH_SIZE frames
    mapped into dom0's page tables with mmu_update naming the guest in foreigndom, read,
    unmapped (`vmlab.paging.foreign_map`), so the trace shows dom0's hypercalls.
    `stamps()` is the checker's direct view (verification, not something dom0 does).
    """

    def __init__(self, hv: "Hypervisor", domid: int) -> None:
        self.hv = hv
        self.domid = domid
        self.dom = hv.domains[domid]
        self.n_pages = int(self.dom.p2m.size)
        self.pfns = np.flatnonzero(self.dom.p2m != C.INVALID_MFN).astype(np.int64)
        self.log: DirtyLog | None = None
        self.paused = False
        self.pagetables: dict[int, np.ndarray] = {}   # pfn -> canonical words, as last sent
        self.races = 0

    def read(self, pfns: np.ndarray) -> np.ndarray:
        """dom0 maps and reads the batch; page-table pages are canonicalised (xc_domain_save)."""
        from vmlab.migration.canonical import canonicalize_batch
        from vmlab.paging.foreign_map import foreign_read
        if isinstance(pfns, slice):
            pfns = np.arange(*pfns.indices(self.n_pages), dtype=np.int64)
        elif isinstance(pfns, ColumnChunk):
            pfns = pfns.array()
        stamps = foreign_read(self.hv, self.domid, pfns)
        if self.dom.kind is DomainKind.PV:
            tables, races = canonicalize_batch(self.hv, self.dom, pfns)
            self.pagetables.update(tables)
            self.races += races
        return stamps

    def stamps(self, pfns: np.ndarray) -> np.ndarray:
        return self.hv.memory.content[self.dom.p2m[pfns]]

    def write(self, pfns: np.ndarray) -> None:
        if len(pfns):
            self.hv.guest_write(self.domid, pfns)

    def enable_log(self) -> DirtyLog:
        self.log = enable_log_dirty(self.hv, self.domid)
        return self.log

    def disable_log(self) -> None:
        disable_log_dirty(self.hv, self.domid)
        self.log = None

    def pause(self) -> None:
        from vmlab.errors import HypercallError
        rc = self.hv.hypercall(0, "domctl", C.XEN_DOMCTL["pausedomain"], self.domid)
        if rc < 0:
            raise HypercallError("domctl(pausedomain)", rc, f"domain {self.domid}")
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.domid in self.hv.domains:
            self.hv.hypercall(0, "domctl", C.XEN_DOMCTL["unpausedomain"], self.domid)
        self.paused = False


class DomainTarget:
    """The reservation on the target host: a paused domain with frames populated."""

    def __init__(self, hv: "Hypervisor", domid: int) -> None:
        self.hv = hv
        self.domid = domid
        self.dom = hv.domains[domid]
        self.received = np.zeros(self.dom.p2m.size, dtype=np.bool_)

    def store(self, pfns: np.ndarray, stamps: np.ndarray) -> None:
        if isinstance(pfns, ColumnChunk):
            pfns = pfns.array()
        self.hv.memory.content[self.dom.p2m[pfns]] = stamps
        self.received[pfns] = True

    def read(self, pfns: np.ndarray) -> np.ndarray:
        return self.hv.memory.content[self.dom.p2m[pfns]]

    def write(self, pfns: np.ndarray, stamp: int) -> None:
        self.hv.guest_write(self.domid, pfns)

    def discard(self) -> None:
        self.received[:] = False

    def load_pagetables(self, tables: dict[int, np.ndarray]) -> None:
        """xc_domain_restore: write each received page table back with this host's mfns."""
        from vmlab.migration.canonical import uncanonicalize
        for pfn, words in tables.items():
            self.hv.memory.table(int(self.dom.p2m[pfn]))[:] = uncanonicalize(words, self.dom.p2m)
