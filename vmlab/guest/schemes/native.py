"""The native scheme, and the base every paging scheme refines.

A scheme is the part of the guest's memory manager that differs between paging
modes: what a PTE holds (machine or guest frames), how a PTE write reaches the
table, what a CR3 load and a TLB flush cost, and how a TLB miss is walked.
Native: the kernel owns the machine and stores machine frames straight into its
tables; a write is a plain store, a miss a 4-level walk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlab.hardware.mmu import walk, walk_many

__all__ = ["NativeScheme", "store_ptes", "walk_twice", "PageWalks"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PageWalks:
    """Every distinct page walked once for the access (a write if any access wrote)."""

    frame: np.ndarray      # the frame reached (of the read walk where the write was refused)
    read_ok: np.ndarray    # the page is at least readable
    fault: np.ndarray      # #PF code of the first walk, -1 if none
    refs: np.ndarray       # references of the walk that counts
    reads: list            # (pages, table frames) read per level by the first walk
    redo: np.ndarray       # pages walked again as reads
    reads2: list           # ... and what those second walks read


def walk_twice(mem, root: int, frame_of, uniq: np.ndarray, wrote: np.ndarray, *, reread: bool = True) -> PageWalks:
    """A walk of every page (a write walk where it was written), then a read walk of those the write refused."""
    fw, flt, rf, reads = walk_many(mem, root, uniq, writes=wrote, frame_of=frame_of)
    rf, fr, read_ok = rf.copy(), fw.copy(), flt < 0
    redo = np.flatnonzero(wrote & (flt >= 0)) if reread else np.zeros(0, np.int64)
    reads2: list = []
    if redo.size:
        f2, flt2, rf2, reads2 = walk_many(mem, root, uniq[redo], frame_of=frame_of)
        read_ok[redo], fr[redo], rf[redo] = flt2 < 0, f2, rf2
    return PageWalks(frame=fr, read_ok=read_ok, fault=flt, refs=rf, reads=reads, redo=redo, reads2=reads2)


def store_ptes(k, table_pfns: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> None:
    """Plain stores into the tables' frames, grouped by table."""
    order = np.argsort(table_pfns, kind="stable")
    t_sorted = table_pfns[order]
    bounds = np.flatnonzero(np.concatenate(([True], t_sorted[1:] != t_sorted[:-1], [True])))
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        sel = order[a:b]
        k.mem.table(int(k.p2m[t_sorted[a]]))[idx[sel]] = vals[sel]


class NativeScheme:
    """The kernel owns the machine: PTEs hold machine frames, writes are plain stores."""

    name = "native"
    cost_preset = "modern_kvm"
    guest_kind = "pv"          # the domain the guest runs in: a PV kernel (native, pv) or an HVM guest
    keeps_xen_tables = False   # shadow / nested tables live in Xen's frames (freed at domain_kill)

    def __init__(self, kernel, **options) -> None:
        self.k = kernel

    @property
    def walk_ref_cycles(self) -> float:
        return self.k.costs.tlb_miss_native_walk_ref_cycles

    def frame(self, pfns: np.ndarray) -> np.ndarray:
        """What a PTE holds for these pfns: machine frames here."""
        return self.k.p2m[pfns]

    def check_new_table(self, pfn: int, mfn: int) -> None:
        """Refuse a frame that cannot become a fresh table (PV: one still typed as a table)."""

    def write_ptes(self, table_pfns: np.ndarray, idx: np.ndarray, vals: np.ndarray, preserve_ad: bool) -> None:
        k = self.k
        k.stats["pt_writes"] += int(table_pfns.size)
        k._charge("pte_update", int(table_pfns.size) * k.costs.native_pte_write_cycles)
        store_ptes(k, table_pfns, idx, vals)

    def new_aspace(self, aspace) -> None:
        """A new mm's top-level table exists (PV pins it)."""

    def load_cr3(self, aspace) -> None:
        self.k._charge("cr3", self.k.costs.native_cr3_load_cycles)

    def teardown(self, aspace) -> None:
        """The address space's tables stop being tables before their frames are reused."""

    def flush_tlb(self, vpns) -> None:
        """What the scheme adds to a guest TLB flush (the kernel's own TLB is flushed already)."""

    def release(self) -> None:
        """The domain dies: give back what the scheme keeps in Xen's frames."""

    def counters(self) -> dict:
        return {}

    # --- the MMU side -----------------------------------------------------------------
    def walk(self, va: int, write: bool, user: bool) -> tuple[int, int | None, int]:
        """One TLB-miss walk for the current process: (mfn or -1, #PF code or None, references)."""
        k = self.k
        r = walk(k.mem, int(k.p2m[k.current.root]), va, write=write, user=user)
        k.count_walk(r.refs, self.walk_ref_cycles)
        return r.frame, r.fault, r.refs

    def walk_pages(self, uniq: np.ndarray, wrote: np.ndarray):
        """Walk every distinct page once with numpy: (frame, read_ok, flt, refs, todo).

        `todo` marks pages that need the one-by-one path (shadow faults, EPT
        violations, nested walk caches whose state is sequential).
        """
        k = self.k
        w = walk_twice(k.mem, int(k.p2m[k.current.root]), None, uniq, wrote)
        return w.frame, w.read_ok, w.fault, w.refs, np.zeros(uniq.size, bool)

    def miss_refs(self, uniq: np.ndarray, inv: np.ndarray, miss: np.ndarray, writes: np.ndarray,
                  refs: np.ndarray) -> int:
        """References of the TLB misses: each page's walk again, per miss."""
        return int(refs[inv][miss].sum())
