"""Nested paging (EPT/NPT): an HVM guest's tables hold guest frames; hardware walks both.

A TLB miss is a 2D walk (`vmlab.paging.nested.walk_2d`): every guest table read
is itself translated through the nested table. Optional walk caches (a nested
TLB and a page-walk cache) make the misses sequential.
"""

from __future__ import annotations

import numpy as np

from vmlab.guest.schemes.native import NativeScheme, walk_twice
from vmlab.hardware.mmu import PFEC_RSVD, walk_many
from vmlab.paging.nested import EPT_VIOLATION, NestedTable, WalkCaches, walk_2d

__all__ = ["NestedScheme"]


class NestedScheme(NativeScheme):
    name = "nested"
    keeps_xen_tables = True
    guest_kind = "hvm"

    def __init__(self, kernel, *, nested_large_pages: bool = False, nested_tlb: int = 0, pwc: int = 0,
                 **options) -> None:
        super().__init__(kernel)
        self.nested = NestedTable(kernel.hv, kernel.domid, large_pages=nested_large_pages)
        self.caches = WalkCaches(nested_tlb=nested_tlb, pwc=pwc) if (nested_tlb or pwc) else None

    @property
    def walk_ref_cycles(self) -> float:
        return self.k.costs.nested_walk_ref_cycles

    def frame(self, pfns: np.ndarray) -> np.ndarray:
        return pfns

    def load_cr3(self, aspace) -> None:
        if self.caches is not None:
            self.caches.pwc.clear()   # the nested TLB is tagged by EPTP/VPID and survives a guest CR3 load
        super().load_cr3(aspace)

    def flush_tlb(self, vpns) -> None:
        if self.caches is not None:
            self.caches.pwc.clear()

    def release(self) -> None:
        self.nested.release()

    def walk(self, va: int, write: bool, user: bool) -> tuple[int, int | None, int]:
        k = self.k
        r = walk_2d(self.nested, k.current.root, va, write=write, user=user, caches=self.caches)
        k.count_walk(r.refs, self.walk_ref_cycles)
        if r.fault == EPT_VIOLATION:
            k.stats["exits"] += 1
            return -1, EPT_VIOLATION, r.refs
        return r.mfn, r.fault, r.refs

    def _nested_refs(self, reads: list, n: int, index=None) -> np.ndarray:
        """Nested-table references behind the guest table reads of a walk, per page."""
        out = np.zeros(n, np.int64)
        for a, t in reads:
            out[a if index is None else index[a]] += self.nested.levels_array(t)
        return out

    def walk_pages(self, uniq: np.ndarray, wrote: np.ndarray):
        """2D walks with numpy; with walk caches every page goes one by one (their state is sequential)."""
        k, n = self.k, uniq.size
        if self.caches is not None:
            empty = np.full(n, -1, np.int64)
            return empty, np.zeros(n, bool), empty, np.zeros(n, np.int64), np.ones(n, bool)
        w = walk_twice(k.mem, k.current.root, k.p2m, uniq, wrote)
        nested = self._nested_refs(w.reads, n)
        if w.redo.size:
            nested[w.redo] = self._nested_refs(w.reads2, n, w.redo)[w.redo]
        ok = np.flatnonzero(w.read_ok)
        data_mfn = np.full(n, -1, np.int64)
        data_mfn[ok] = k.p2m[w.frame[ok]]
        nested[ok] += self.nested.levels_array(w.frame[ok])
        todo = w.read_ok & (data_mfn < 0)
        todo |= (w.fault >= 0) & ((w.fault & PFEC_RSVD) != 0)   # a guest table outside the p2m: an EPT violation
        return np.where(w.read_ok, data_mfn, -1), w.read_ok, w.fault, w.refs + nested, todo

    def miss_refs(self, uniq, inv, miss, writes, refs) -> int:
        if self.caches is not None:
            return self.k._cached_nested_misses(uniq, inv[miss], writes[miss])
        return super().miss_refs(uniq, inv, miss, writes, refs)

    # --- TLB misses with walk caches, one at a time ----------------------------------------
    def _guest_paths(self, uniq: np.ndarray) -> tuple[list, list, list, list, list]:
        """Each page's guest path worked out once: (table gfns per depth, depth reached,
        readable, writable, data gfn) as lists."""
        k = self.k
        root = k.current.root
        frames, flt, _, reads = walk_many(k.mem, root, uniq, frame_of=k.p2m, set_ad=False)
        path = np.full((uniq.size, 4), -1, np.int64)
        for depth, (a, t) in enumerate(reads):
            path[a, depth] = t
        _, fltw, _, _ = walk_many(k.mem, root, uniq, writes=np.ones(uniq.size, bool), frame_of=k.p2m, set_ad=False)
        data = np.where(flt < 0, frames, -1)
        return (path.tolist(), (path >= 0).sum(axis=1).tolist(), (flt < 0).tolist(), (fltw < 0).tolist(),
                data.tolist())

    def _gpa_refs(self, gfn: int, levels: dict) -> int:
        """Nested references to translate one guest-physical frame, through the nested TLB."""
        c = self.caches
        if c.nested_tlb_size:
            if gfn in c.nested_tlb:
                c.nested_tlb.move_to_end(gfn)
                c.nested_hits += 1
                return 0
            c.nested_misses += 1
        lv = levels.get(gfn)
        if lv is None:
            lv = levels[gfn] = int(self.nested.levels_array(np.array([gfn]))[0])
        if c.nested_tlb_size:
            c.nested_tlb[gfn] = int(self.k.p2m[gfn])
            if len(c.nested_tlb) > c.nested_tlb_size:
                c.nested_tlb.popitem(last=False)
        return lv

    def _pwc_start(self, root: int, vpn: int) -> int:
        """The deepest guest level the page-walk cache lets the walk start at (0: none)."""
        c = self.caches
        for depth in (3, 2, 1):
            key = (root, depth, vpn >> (36 - 9 * depth))
            if key in c.pwc:
                c.pwc.move_to_end(key)
                c.pwc_hits += 1
                return depth
        c.pwc_misses += 1
        return 0

    def cached_misses(self, uniq: np.ndarray, pages: np.ndarray, writes: np.ndarray) -> int:
        """References of a run of nested TLB misses with walk caches, one miss at a time.

        Exactly what `walk_2d(..., caches=...)` does per miss (same cache hits, misses and LRU
        order), but with each page's guest path worked out once up front.
        """
        c, root = self.caches, self.k.current.root
        paths, reached, read_ok, write_ok, datas = self._guest_paths(uniq)
        levels: dict = {}
        uvpn, total = uniq.tolist(), 0
        for k, w in zip(pages.tolist(), writes.tolist()):
            vpn, pth, r = uvpn[k], paths[k], reached[k]
            start = self._pwc_start(root, vpn) if c.pwc_size else 0
            refs = 0
            for depth in range(start, r):
                refs += self._gpa_refs(pth[depth], levels) + 1
                if depth + 1 < r and c.pwc_size:
                    key = (root, depth + 1, vpn >> (36 - 9 * (depth + 1)))
                    c.pwc[key] = pth[depth + 1]
                    c.pwc.move_to_end(key)
                    if len(c.pwc) > c.pwc_size:
                        c.pwc.popitem(last=False)
            if read_ok[k] and (write_ok[k] or not w):
                refs += self._gpa_refs(datas[k], levels)
            total += refs
        return total
