"""The MMU side of a guest kernel: what touching memory costs under the kernel's scheme.

`GuestKernel` inherits this: `translate` walks one address, `access` runs a stream
of addresses through the TLB, walks each distinct page once for its translation
(A/D bits, shadow builds) and charges the walk references per TLB miss. The
scheme (`kernel.paging`) supplies the walks.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import ConfigError

__all__ = ["MMUSide"]


class MMUSide:
    """Mixed into GuestKernel (uses its paging, tlb, stats, current, flush, _charge, _record)."""

    def translate(self, va: int, *, write: bool = False, user: bool = True) -> tuple[int, int | None]:
        """One TLB-miss walk under the scheme for the current process: (mfn or -1, #PF code or None)."""
        mfn, fault, _ = self._walk(int(va), write, user)
        return mfn, fault

    def _walk(self, va: int, write: bool, user: bool) -> tuple[int, int | None, int]:
        if self._qlen:
            self.flush("access")
        if self.current is None:
            raise ConfigError("no process is running; spawn() one first")
        return self.paging.walk(va, write, user)

    def count_walk(self, refs: int, cycles_per_ref: float) -> None:
        """A walk of `refs` memory references: counted and charged."""
        self.stats["walk_refs"] += refs
        self.stats["pt_reads"] += refs
        self._charge("walk", refs * cycles_per_ref)

    def access(self, vas, writes=None) -> dict:
        """Touch memory: every address goes through the TLB; misses walk; returns counts.

        Each distinct page is walked once for its translation (setting A/D, building
        shadows); a TLB miss on a page costs that page's walk references again. With
        nested walk caches the misses are walked one by one, in order.
        """
        vas = np.asarray(vas, np.int64)
        writes = np.zeros(vas.size, bool) if writes is None else np.asarray(writes, bool)
        if self._qlen:
            self.flush("access")
        vpns = vas >> 12
        uniq, inv = np.unique(vpns, return_inverse=True)
        wrote = np.zeros(uniq.size, bool)
        np.logical_or.at(wrote, inv, writes)
        frame = np.full(uniq.size, -1, np.int64)
        ok_read = np.zeros(uniq.size, bool)
        ok_write = np.zeros(uniq.size, bool)
        refs = np.zeros(uniq.size, np.int64)
        snap = dict(self.stats)
        todo = self._walk_pages(uniq, wrote, frame, ok_read, ok_write, refs)
        self._walk_one_by_one(np.flatnonzero(todo), uniq, wrote, frame, ok_read, ok_write, refs)
        # the per-page walks above are bookkeeping (A/D, shadow builds); walk costs are charged per miss below
        per_ref = self.paging.walk_ref_cycles
        bookkeeping = self.stats["walk_refs"] - snap["walk_refs"]
        self.stats["walk_refs"] -= bookkeeping
        self.stats["pt_reads"] -= bookkeeping
        self._charge("walk", -bookkeeping * per_ref)
        ok = np.where(writes, ok_write[inv], ok_read[inv])
        miss = self.tlb.run(vpns, present=ok, frames=frame[inv], page_ids=inv)
        n_miss = int(miss.sum())
        faults = int((~ok).sum())
        walk_refs = self.paging.miss_refs(uniq, inv, miss, writes, refs)
        self.stats["tlb_hits"] += vas.size - n_miss
        self.stats["tlb_misses"] += n_miss
        self.stats["walk_refs"] += walk_refs
        self.stats["pt_reads"] += walk_refs
        self.stats["faults"] += faults
        self._charge("walk", walk_refs * per_ref)
        self._charge("fault", faults * self.costs.native_page_fault_cycles)
        self._record("access")
        return {"accesses": int(vas.size), "tlb_misses": n_miss, "walk_refs": walk_refs, "faults": faults}

    def _walk_one_by_one(self, todo, uniq, wrote, frame, ok_read, ok_write, refs) -> None:
        """Pages the numpy path left (shadow faults, EPT violations, walk caches): walked in order."""
        for k in todo.tolist():
            v = int(uniq[k])
            mfn, fault, r = self._walk(v << 12, bool(wrote[k]), True)
            if fault is None:
                frame[k], ok_read[k], ok_write[k], refs[k] = mfn, True, bool(wrote[k]), r
            elif wrote[k]:
                mfn, fault, r = self._walk(v << 12, False, True)   # maybe readable, not writable
                frame[k], ok_read[k], refs[k] = mfn, fault is None, r
            else:
                refs[k] = r

    def _cached_nested_misses(self, uniq: np.ndarray, pages: np.ndarray, writes: np.ndarray) -> int:
        """Nested TLB misses with walk caches, one at a time (see NestedScheme.cached_misses)."""
        return self.paging.cached_misses(uniq, pages, writes)

    def _walk_pages(self, uniq, wrote, frame, ok_read, ok_write, refs) -> np.ndarray:
        """Walk every distinct page once with numpy (A/D bits, translations, refs per miss).

        Fills the arrays in place; returns a mask of pages that need the one-by-one path.
        """
        fr, read_ok, flt, rf, todo = self.paging.walk_pages(uniq, wrote)
        sel = ~todo
        frame[sel] = np.where(read_ok, fr, -1)[sel]
        ok_read[sel] = read_ok[sel]
        ok_write[sel] = (wrote & (flt < 0))[sel]
        refs[sel] = rf[sel]
        return todo

