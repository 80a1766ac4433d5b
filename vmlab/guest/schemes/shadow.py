"""Shadow paging: an HVM guest's tables hold guest frames; Xen shadows them.

Writes to shadowed tables trap (`vmlab.paging.shadow`), a CR3 load exits, and a
TLB miss walks the shadow, which Xen fills on a shadow fault.
"""

from __future__ import annotations

import numpy as np

from vmlab.guest.schemes.native import NativeScheme, store_ptes, walk_twice
from vmlab.hardware.mmu import walk_many
from vmlab.paging.shadow import ShadowPaging

__all__ = ["ShadowScheme"]


class ShadowScheme(NativeScheme):
    name = "shadow"
    keeps_xen_tables = True
    guest_kind = "hvm"

    def __init__(self, kernel, *, shadow_cache: int = 2, oos: bool = False, **options) -> None:
        super().__init__(kernel)
        self.shadow = ShadowPaging(kernel.hv, kernel.domid, cache_size=shadow_cache, oos=oos)

    def frame(self, pfns: np.ndarray) -> np.ndarray:
        return pfns

    def charge(self, before: dict) -> None:
        """Account for what the shadow code did since `before` (a copy of its counters)."""
        k, c, now = self.k, self.k.costs, self.shadow.counters
        d = {key: now[key] - before.get(key, 0) for key in now}
        k.stats["exits"] += d["traps"] + d["shadow_faults"]
        k.stats["shadow_syncs"] += d["propagations"] + d["resyncs"] + d["builds"]
        k.stats["pt_reads"] += d["guest_reads"]
        k._charge("exit", d["traps"] * c.shadow_pte_write_trap_cycles + d["shadow_faults"] * c.vmexit_roundtrip_cycles)
        k._charge("shadow_sync", d["resyncs"] * c.shadow_resync_cycles
                  + (d["shadow_faults"] + d["builds"]) * c.shadow_fill_cycles)

    def write_ptes(self, table_pfns, idx, vals, preserve_ad: bool) -> None:
        k = self.k
        k.stats["pt_writes"] += int(table_pfns.size)
        k._charge("pte_update", int(table_pfns.size) * k.costs.native_pte_write_cycles)
        shadowed = np.zeros(table_pfns.size, bool)
        known = {g for t in self.shadow.trees.values() for g in t.shadow_of}
        if known:
            shadowed = np.isin(table_pfns, np.fromiter(known, np.int64, len(known)))
        before = dict(self.shadow.counters)
        for g, i, v in zip(table_pfns[shadowed].tolist(), idx[shadowed].tolist(), vals[shadowed].tolist()):
            self.shadow.guest_write(g, i, v)
        self.charge(before)
        if (~shadowed).any():
            store_ptes(k, table_pfns[~shadowed], idx[~shadowed], vals[~shadowed])

    def load_cr3(self, aspace) -> None:
        k, c = self.k, self.k.costs
        before = dict(self.shadow.counters)
        self.shadow.load_cr3(aspace.root)
        self.charge(before)
        k.stats["exits"] += 1
        k._charge("exit", c.vmexit_roundtrip_cycles + c.shadow_cr3_switch_cycles)

    def teardown(self, aspace) -> None:
        if aspace.root in self.shadow.trees:
            self.shadow._drop_tree(aspace.root)

    def flush_tlb(self, vpns) -> None:
        before = dict(self.shadow.counters)
        self.shadow.flush_tlb()
        self.charge(before)

    def release(self) -> None:
        self.shadow.release()

    def counters(self) -> dict:
        return {f"shadow_{key}": v for key, v in self.shadow.counters.items()}

    def walk(self, va: int, write: bool, user: bool) -> tuple[int, int | None, int]:
        before = dict(self.shadow.counters)
        mfn, fault, refs, _exits = self.shadow.translate(va, write=write, user=user)
        self.charge(before)
        self.k.count_walk(refs, self.walk_ref_cycles)
        return mfn, fault, refs

    def walk_pages(self, uniq: np.ndarray, wrote: np.ndarray):
        """Walk the shadow; a shadow fault needs Xen (one by one); A/D bits are copied back."""
        k, sh = self.k, self.shadow
        if sh.out_of_sync:
            sh._resync_all()
        w = walk_twice(k.mem, sh.current.root, None, uniq, wrote, reread=False)
        todo = w.fault >= 0                 # a shadow fault: Xen must look at the guest's table
        good = np.flatnonzero(~todo)
        if good.size:                       # copy A/D back into the guest's entries
            walk_many(k.mem, sh.current.root_gfn, uniq[good], writes=wrote[good], user=False, frame_of=k.p2m)
            sh.counters["ad_syncs"] += int(good.size)
        return w.frame, w.read_ok, w.fault, w.refs, todo
