"""The vectorized leaf-update path shared by `bulk` (a guest's lazy-MMU batches) and
`mmu_update` (a whole request array at once, e.g. dom0 mapping a batch of a guest's frames).

`_eligible` picks updates whose effect does not depend on their order (leaf writes into the
caller's live L1s, each slot once, targets the rules accept); `_apply_vector` applies them
with numpy, with the same counts the exact path (`mmu_update.pt_update`) would leave.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_RW
from vmlab.paging.pv_types import DISALLOW, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD

__all__ = ["_eligible", "_apply_vector"]


def _eligible(hv, dom, ptrs: np.ndarray, vals: np.ndarray, target_owner: int | None = None) -> np.ndarray:
    """Updates whose effect does not depend on their order: leaf writes into live L1s of the caller
    mapping frames of `target_owner` (FOREIGNDOM; the caller by default)."""
    target_owner = dom.domid if target_owner is None else target_owner
    mem = hv.memory
    n = mem.total_frames
    cmd = ptrs & 7
    mfn = ptrs >> 12
    ok = ((cmd == MMU_NORMAL_PT_UPDATE) | (cmd == MMU_PT_UPDATE_PRESERVE_AD)) & (mfn >= 0) & (mfn < n)
    m = np.where(ok, mfn, 0)
    ok &= (mem.owner[m] == dom.domid) & (mem.page_type[m] == PageType.L1) & (mem.type_count[m] > 0)
    uvals = vals.astype(np.uint64)
    present = (uvals & np.uint64(PTE_P)) != 0
    tgt = ((uvals & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
    tin = (tgt >= 0) & (tgt < n)
    t = np.where(tin, tgt, 0)
    good_target = tin & (mem.owner[t] == target_owner) & ((uvals & np.uint64(DISALLOW[1])) == 0)
    rw = (uvals & np.uint64(PTE_RW)) != 0
    good_target &= ~rw | (mem.page_type[t] == PageType.WRITABLE) | (mem.page_type[t] == PageType.NONE)
    ok &= ~present | good_target
    # repeated slots depend on order: send them down the exact path
    slots = ptrs & ~7
    if slots.size > 1 and not np.all(slots[1:] > slots[:-1]):   # (ascending slots are all distinct)
        _, inv, cnt = np.unique(slots, return_inverse=True, return_counts=True)
        ok &= cnt[inv] == 1
    return ok


def _bump(counts: np.ndarray, frames: np.ndarray, d: int) -> None:
    """counts[frames] += d, once per occurrence (a plain fancy add when the frames are distinct)."""
    if frames.size == 0:
        return
    srt = np.sort(frames)
    if np.all(srt[1:] != srt[:-1]):
        counts[frames] += d
    else:
        np.add.at(counts, frames, d)


def _apply_vector(hv, ptrs: np.ndarray, vals: np.ndarray) -> None:
    mem = hv.memory
    slots = ptrs & ~7
    mfns = slots >> 12
    idx = (slots & 0xFFF) >> 3
    uvals = vals.astype(np.uint64)
    old = np.empty(ptrs.size, dtype=np.uint64)
    ascending = mfns.size < 2 or bool(np.all(mfns[1:] >= mfns[:-1]))
    order = np.arange(mfns.size) if ascending else np.argsort(mfns, kind="stable")
    sm = mfns[order]
    bounds = np.flatnonzero(np.concatenate(([True], sm[1:] != sm[:-1], [True])))
    tables = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        sel = order[a:b]
        tbl = mem.table(int(sm[a]))
        old[sel] = tbl[idx[sel]]
        tables.append((tbl, sel))
    preserve = (ptrs & 7) == MMU_PT_UPDATE_PRESERVE_AD
    ad = np.uint64(PTE_A | PTE_D)
    uvals = np.where(preserve, (uvals & ~ad) | (old & ad), uvals)
    P, RW, FM = np.uint64(PTE_P), np.uint64(PTE_RW), np.uint64(PTE_FRAME_MASK)
    for arr, sign in ((uvals, 1), (old, -1)):
        pres = (arr & P) != 0
        frames = ((arr[pres] & FM) >> np.uint64(12)).astype(np.int64)
        _bump(mem.tot_count, frames, sign)
        rwf = ((arr[pres] & RW) != 0)
        if not rwf.any():
            continue
        if sign > 0:   # first writable use of an untyped frame types it PGT_writable
            mem.page_type[frames[rwf]] = PageType.WRITABLE
        _bump(mem.type_count, frames[rwf], sign)
    for tbl, sel in tables:
        tbl[idx[sel]] = uvals[sel]
