"""Nested paging (Intel EPT / AMD NPT): a two-dimensional page walk.

The guest's tables hold guest-physical frame numbers (gfns) and live in guest
memory; the hypervisor's nested table maps gfn -> mfn. On a TLB miss the hardware
walks the guest table, and *every* guest-physical address it touches — the guest
CR3, each guest table, and finally the data page — is itself walked through the
nested table. With an n-level guest table and an m-level nested table that is

    n * m   nested references (m for each of the n guest tables)
  + n       guest entry reads
  + m       nested references for the data page
  = (n + 1)(m + 1) - 1   memory references: 24 for 4 + 4, 19 with 2 MiB nested pages, 4 natively.

(Bhargava, Serebrin, Spadini, Manne, "Accelerating two-dimensional page walks for
virtualized systems", ASPLOS 2008.) Two caches cut this, as in that paper: a nested
TLB (gfn -> mfn, skips a nested walk) and a page-walk cache (guest upper-level entries
keyed by address prefix, skips guest levels).

EPT entry layout (Intel SDM vol. 3 §28.2.2): bit 0 R, 1 W, 2 X, 7 large page
(in a level-2 or level-3 entry), frame number in bits 51..12.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from vmlab.errors import ConfigError
from vmlab.hardware.mmu import (PFEC_PRESENT, PFEC_USER, PFEC_WRITE, PTE_A, PTE_D, PTE_P, PTE_PS, PTE_RW,
                                PTE_US, is_canonical, pte_frame, va_indices)
from vmlab.hypervisor import constants as C

__all__ = ["EPT_R", "EPT_W", "EPT_X", "EPT_LARGE", "walk_refs", "NestedTable", "WalkCaches",
           "Walk2D", "walk_2d", "EPT_VIOLATION"]

EPT_R, EPT_W, EPT_X, EPT_LARGE = 1, 2, 4, 1 << 7
EPT_VIOLATION = -1   # Walk2D.fault value when the nested walk fails (a VM exit, not a guest #PF)


def walk_refs(guest_levels: int = 4, nested_levels: int = 4) -> int:
    """Memory references of a cold two-dimensional walk: (n + 1)(m + 1) - 1; native when m = 0."""
    return (guest_levels + 1) * (nested_levels + 1) - 1


class NestedTable:
    """A domain's EPT/NPT: gfn -> mfn, in frames owned by Xen, built from the p2m.

    `large_pages=True` maps each 2 MiB-aligned run of 512 gfns that is contiguous and
    2 MiB-aligned in machine memory with one level-2 entry (a 3-level nested walk).
    """

    def __init__(self, hv, domid: int, *, large_pages: bool = False) -> None:
        self.hv = hv
        self.memory = hv.memory
        self.domid = domid
        self.large_pages = large_pages
        self.frames: list[int] = []
        self.large_blocks: set[int] = set()   # gfn >> 9 of every 2 MiB nested mapping
        self.root = self._alloc()
        hv.mapping_sources[f"nested.{domid}.{id(self)}"] = self.mappings  # isolation.py reads the leaves
        hv.release_hooks.append(self._on_release)
        p2m = hv.domains[domid].p2m
        gfns = np.flatnonzero(p2m != C.INVALID_MFN)
        self.map(gfns, p2m[gfns])

    def _alloc(self) -> int:
        mfn = int(self.memory.allocate(C.DOMID_XEN, 1, what="nested page table")[0])
        self.memory.table(mfn)[:] = 0
        self.frames.append(mfn)
        return mfn

    def _table_for(self, gfn: int, level: int) -> np.ndarray:
        """The nested table at `level` (1..3) covering gfn, created on demand."""
        idx = va_indices(gfn << 12)
        t = self.root
        for depth in range(4 - level):
            words = self.memory.table(t)
            e = int(words[idx[depth]])
            if not e & EPT_R:
                child = self._alloc()
                words[idx[depth]] = np.uint64((child << 12) | EPT_R | EPT_W | EPT_X)
                t = child
            else:
                t = pte_frame(e)
        return self.memory.table(t)

    def map(self, gfns: np.ndarray, mfns: np.ndarray) -> None:
        gfns = np.asarray(gfns, np.int64)
        mfns = np.asarray(mfns, np.int64)
        if gfns.size == 0:
            return
        rwx = np.uint64(EPT_R | EPT_W | EPT_X)
        if self.large_pages:
            base = gfns >> 9
            keep = np.ones(gfns.size, bool)
            for b in np.unique(base).tolist():
                sel = np.flatnonzero(base == b)
                m0 = int(mfns[sel[0]])
                if sel.size == 512 and m0 % 512 == 0 and int(gfns[sel[0]]) % 512 == 0 \
                        and np.array_equal(mfns[sel], m0 + np.arange(512)):
                    l2 = self._table_for(int(gfns[sel[0]]), 2)
                    l2[b & 511] = np.uint64((m0 << 12) | EPT_R | EPT_W | EPT_X | EPT_LARGE)
                    keep[sel] = False
                    self.large_blocks.add(int(b))
            gfns, mfns = gfns[keep], mfns[keep]
            if gfns.size == 0:
                return
        groups = gfns >> 9
        bounds = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1], [True])))
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            l1 = self._table_for(int(gfns[a]), 1)
            l1[gfns[a:b] & 511] = (mfns[a:b].astype(np.uint64) << np.uint64(12)) | rwx

    def levels_array(self, gfns: np.ndarray) -> np.ndarray:
        """Nested levels walked for each gfn (mapped gfns only): 4, or 3 under a 2 MiB nested page."""
        gfns = np.asarray(gfns, np.int64)
        if not self.large_blocks:
            return np.full(gfns.size, 4, np.int64)
        blocks = np.fromiter(self.large_blocks, np.int64, len(self.large_blocks))
        return np.where(np.isin(gfns >> 9, blocks), 3, 4)

    def levels_for(self, gfn: int) -> int:
        """Nested levels a walk for gfn reads: 4, or 3 where a 2 MiB nested page maps it."""
        return self.translate(gfn)[1]

    def translate(self, gfn: int) -> tuple[int, int, list]:
        """(mfn or -1, references, [(table mfn, index), ...]) of a nested walk for gfn."""
        if not 0 <= gfn < (1 << 36):
            return -1, 0, []
        idx = va_indices(int(gfn) << 12)
        t = self.root
        path = []
        for depth, level in enumerate((4, 3, 2, 1)):
            e = int(self.memory.table(t)[idx[depth]])
            path.append((t, idx[depth]))
            if not e & EPT_R:
                return -1, depth + 1, path
            if level == 1 or (level == 2 and e & EPT_LARGE):
                frame = pte_frame(e)
                if level == 2:
                    frame = (frame & ~511) + (gfn & 511)
                return frame, depth + 1, path
            t = pte_frame(e)
        raise AssertionError("unreachable")  # pragma: no cover

    def mappings(self, hv) -> tuple[list[tuple], tuple]:
        """Every leaf of the EPT (4 KiB and 2 MiB) as a reference of the guest, uncounted."""
        refs, todo = [], [(self.root, 4)]
        while todo:
            t, level = todo.pop()
            w = self.memory.table(t)
            e = w[(w & np.uint64(EPT_R)) != 0]
            frames = (e >> np.uint64(12)).astype(np.int64) & ((1 << 40) - 1)
            leaf = np.ones(e.size, bool) if level == 1 else (e & np.uint64(EPT_LARGE)) != 0 if level == 2 else np.zeros(e.size, bool)
            todo += [(int(f), level - 1) for f in frames[~leaf].tolist()]
            big = frames[leaf] if level == 1 else (frames[leaf][:, None] + np.arange(512)).reshape(-1)
            rw = np.repeat((e[leaf] & np.uint64(EPT_W)) != 0, 1 if level == 1 else 512)
            refs += [(self.domid, big[rw], True, False, False, f"EPT L{level} {t:#x}"),
                     (self.domid, big[~rw], False, False, False, f"EPT L{level} {t:#x}")]
        return refs, ()

    def _on_release(self, dom, pfns, mfns) -> None:
        """guest_remove_page -> guest_physmap_remove_page: the EPT entry of each gfn goes (a
        2 MiB entry is split, its other 511 gfns mapped again with 4 KiB entries)."""
        if dom.domid != self.domid:
            return
        gone = {int(g) for g in np.asarray(pfns).tolist()}
        for b in sorted({g >> 9 for g in gone} & self.large_blocks):
            l2 = self._table_for(b << 9, 2)
            base = pte_frame(int(l2[b & 511])) & ~511
            l2[b & 511] = 0
            self.large_blocks.discard(b)
            keep = np.array([g for g in range(b << 9, (b + 1) << 9) if g not in gone], np.int64)
            self.map(keep, base + (keep - (b << 9)))
        for g in sorted(gone):
            if g >> 9 not in self.large_blocks:
                self._table_for(g, 1)[g & 511] = 0

    def release(self) -> None:
        """Give the nested table's frames back to the heap (domain destruction)."""
        self.hv.mapping_sources.pop(f"nested.{self.domid}.{id(self)}", None)
        if self._on_release in self.hv.release_hooks:
            self.hv.release_hooks.remove(self._on_release)
        for m in self.frames:
            self.memory.page_type[m] = 0
        self.memory.release(np.array(self.frames, np.int64), owner=C.DOMID_XEN)
        self.frames = []


class WalkCaches:
    """Translation caches a 2D walk can use (sizes are ILLUSTRATIVE, LRU).

    nested_tlb: gfn -> mfn, so a repeated guest-physical address needs no nested walk.
    pwc: guest upper-level entries keyed by (root, level, address prefix), so the walk
    restarts below the deepest cached level (an MMU cache / page-walk cache).
    """

    def __init__(self, *, nested_tlb: int = 0, pwc: int = 0) -> None:
        if nested_tlb < 0 or pwc < 0:
            raise ConfigError(f"nested_tlb={nested_tlb}, pwc={pwc}: cache sizes must be >= 0 (0 = off)")
        self.nested_tlb_size = nested_tlb
        self.pwc_size = pwc
        self.nested_tlb: OrderedDict = OrderedDict()
        self.pwc: OrderedDict = OrderedDict()
        self.nested_hits = self.nested_misses = self.pwc_hits = self.pwc_misses = 0

    def flush(self) -> None:
        self.nested_tlb.clear()
        self.pwc.clear()

    def _get(self, d: OrderedDict, key):
        v = d.get(key)
        if v is not None:
            d.move_to_end(key)
        return v

    def _put(self, d: OrderedDict, size: int, key, value) -> None:
        if size:
            d[key] = value
            d.move_to_end(key)
            while len(d) > size:
                d.popitem(last=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Walk2D:
    """One two-dimensional walk: the result and every reference in order."""

    mfn: int = -1
    fault: int | None = None     # guest #PF error code, EPT_VIOLATION, or None
    refs: int = 0
    steps: tuple = ()            # (guest_row 0..4, nested level 4..1 or 0 for the guest entry read, mfn)

    @property
    def ok(self) -> bool:
        return self.fault is None


def walk_2d(nested: NestedTable, guest_root_gfn: int, va: int, *, write: bool = False, user: bool = True,
            caches: WalkCaches | None = None, set_ad: bool = True) -> Walk2D:
    """Translate va through the guest's table (rooted at a gfn) and the nested table.

    Rows of `steps`: 0 = translating the guest L4 table's gfn and reading its entry,
    1 = L3, 2 = L2, 3 = L1, 4 = the data page. Column = nested level (4..1) of each
    nested reference, 0 for the guest entry read.
    """
    mem = nested.memory
    access = (PFEC_WRITE if write else 0) | (PFEC_USER if user else 0)
    if not is_canonical(va):
        return Walk2D(fault=access | 8)
    steps: list = []
    idx = va_indices(va)

    def gpa(row: int, gfn: int) -> int:
        return _gpa(nested, caches, steps, row, gfn)

    table, start = _pwc_start(caches, int(guest_root_gfn), int(va))
    rw = us = True
    touched = []
    for depth in range(start, 4):
        mfn = gpa(depth, table)
        if mfn < 0:
            return Walk2D(fault=EPT_VIOLATION, refs=len(steps), steps=tuple(steps))
        words = mem.table(mfn)
        pte = int(words[idx[depth]])
        steps.append((depth, 0, mfn))
        if not pte & PTE_P:
            return Walk2D(fault=access, refs=len(steps), steps=tuple(steps))
        rw &= bool(pte & PTE_RW)
        us &= bool(pte & PTE_US)
        touched.append((words, idx[depth], pte))
        leaf = depth == 3 or (depth in (1, 2) and pte & PTE_PS)
        if leaf:
            break
        table = pte_frame(pte)
        if caches is not None and caches.pwc_size:
            caches._put(caches.pwc, caches.pwc_size, (guest_root_gfn, depth + 1, int(va) >> (48 - 9 * (depth + 1))), table)
    if (write and not rw) or (user and not us):
        return Walk2D(fault=access | PFEC_PRESENT, refs=len(steps), steps=tuple(steps))
    shift = 12 + 9 * (3 - depth)
    gfn = (pte_frame(pte) & ~((1 << (shift - 12)) - 1)) + ((int(va) >> 12) & ((1 << (shift - 12)) - 1))
    mfn = gpa(4, gfn)
    if mfn < 0:
        return Walk2D(fault=EPT_VIOLATION, refs=len(steps), steps=tuple(steps))
    if set_ad:
        for k, (words, i, p) in enumerate(touched):
            new = p | PTE_A | (PTE_D if write and k == len(touched) - 1 else 0)
            if new != p:
                words[i] = np.uint64(new)
    return Walk2D(mfn=mfn, refs=len(steps), steps=tuple(steps))


def _gpa(nested: NestedTable, caches: WalkCaches | None, steps: list, row: int, gfn: int) -> int:
    """Translate one guest-physical frame (nested TLB first), appending the nested references to `steps`."""
    if caches is not None and caches.nested_tlb_size:
        hit = caches._get(caches.nested_tlb, gfn)
        if hit is not None:
            caches.nested_hits += 1
            return hit
        caches.nested_misses += 1
    mfn, _, path = nested.translate(gfn)
    for k, (t, _) in enumerate(path):
        steps.append((row, 4 - k, t))
    if mfn >= 0 and caches is not None:
        caches._put(caches.nested_tlb, caches.nested_tlb_size, gfn, mfn)
    return mfn


def _pwc_start(caches: WalkCaches | None, root_gfn: int, va: int) -> tuple[int, int]:
    """(table gfn, guest depth) the walk starts at: the deepest page-walk-cache hit, else the root."""
    if caches is None or not caches.pwc_size:
        return root_gfn, 0
    for depth in (3, 2, 1):   # deepest cached level first: the entry that points at the L(4-depth) table
        hit = caches._get(caches.pwc, (root_gfn, depth, va >> (48 - 9 * depth)))
        if hit is not None:
            caches.pwc_hits += 1
            return hit, depth
    caches.pwc_misses += 1
    return root_gfn, 0
