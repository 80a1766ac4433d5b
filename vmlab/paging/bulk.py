"""The bulk path: k queued PTE updates flushed in batches of b (what Linux's lazy MMU does).

Per-entry results are identical to issuing the batches one by one; independent leaf
updates are applied with numpy, anything order-dependent goes down the exact path
(`mmu_update.pt_update`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_RW
from vmlab.paging.mmu_update import pt_update
from vmlab.paging.pv_hypercalls import pv_state
from vmlab.paging.pv_types import DISALLOW, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, run_atomic

__all__ = ["BatchResult", "apply_updates"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchResult:
    """What flushing k queued PTE updates in batches of b cost and produced."""

    updates: int                 # PTE updates submitted
    applied: int                 # of those, how many succeeded
    hypercalls: int              # traps into Xen (one per batch; a batch of 1 is a plain mmu_update)
    multicalls: int              # of those, multicall hypercalls
    batch_sizes: tuple           # entries per hypercall, in order (the batch-size histogram's input)
    results: np.ndarray          # per-update rc (0 or a negative errno)
    vectorized: int              # updates taken by the vectorized path (a performance detail)


def _eligible(hv, dom, ptrs: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Updates whose effect does not depend on their order: leaf writes into live L1s of the caller."""
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
    good_target = tin & (mem.owner[t] == dom.domid) & ((uvals & np.uint64(DISALLOW[1])) == 0)
    rw = (uvals & np.uint64(PTE_RW)) != 0
    good_target &= ~rw | (mem.page_type[t] == PageType.WRITABLE) | (mem.page_type[t] == PageType.NONE)
    ok &= ~present | good_target
    # repeated slots depend on order: send them down the exact path
    _, inv, cnt = np.unique(ptrs & ~7, return_inverse=True, return_counts=True)
    ok &= cnt[inv] == 1
    return ok


def _apply_vector(hv, ptrs: np.ndarray, vals: np.ndarray) -> None:
    mem = hv.memory
    slots = ptrs & ~7
    mfns = slots >> 12
    idx = (slots & 0xFFF) >> 3
    uvals = vals.astype(np.uint64)
    old = np.empty(ptrs.size, dtype=np.uint64)
    order = np.argsort(mfns, kind="stable")
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
        u, c = np.unique(frames, return_counts=True)
        mem.tot_count[u] += sign * c.astype(np.int32)
        rwf = ((arr[pres] & RW) != 0)
        if sign > 0:   # first writable use of an untyped frame types it PGT_writable
            mem.page_type[frames[rwf]] = PageType.WRITABLE
        u, c = np.unique(frames[rwf], return_counts=True)
        mem.type_count[u] += sign * c.astype(np.int32)
    for tbl, sel in tables:
        tbl[idx[sel]] = uvals[sel]


def apply_updates(hv, domid: int, ptrs, vals, *, batch_size: int = 32, chunk: int = 65536,
                  record: bool = True) -> BatchResult:
    """Flush k PTE updates (mmu_update requests) from `domid` in batches of `batch_size`.

    Equivalent to issuing ceil(k / b) hypercalls — multicall of b single-request
    mmu_updates, or a plain mmu_update when a batch holds one entry (Linux's
    xen_mc_flush does the same) — and returns per-update results: a bad entry gets its
    errno, the others are applied (a multicall runs every entry). Independent leaf
    updates are applied with numpy; anything else goes through the exact path.
    """
    pv_state(hv)
    dom = hv.domains[domid]
    ptrs = np.asarray(ptrs, dtype=np.int64).ravel()
    vals = np.asarray(vals, dtype=np.uint64).ravel().astype(np.int64) if np.asarray(vals).dtype == np.uint64 \
        else np.asarray(vals, dtype=np.int64).ravel()
    if ptrs.size != vals.size:
        raise ValueError(f"{ptrs.size} ptrs but {vals.size} vals; pass one val per ptr")
    if batch_size < 1:
        from vmlab.errors import ConfigError
        raise ConfigError(f"batch_size={batch_size} must be >= 1 (Linux's MC_BATCH is 32)")
    k = ptrs.size
    results = np.zeros(k, dtype=np.int64)
    pos = vec = 0
    step = 64   # adaptive: small after an order-dependent update, doubling while all are independent
    while pos < k:
        end = min(pos + step, k)
        ok = _eligible(hv, dom, ptrs[pos:end], vals[pos:end])
        bad = np.flatnonzero(~ok)
        stop = pos + (int(bad[0]) if bad.size else end - pos)
        if stop > pos:
            _apply_vector(hv, ptrs[pos:stop], vals[pos:stop])
            vec += stop - pos
        if stop < end:
            # the whole run of order-dependent updates goes down the exact path, in order
            run_end = stop + 1
            while run_end < end and not ok[run_end - pos]:
                run_end += 1
            for j in range(stop, run_end):
                p, v = int(ptrs[j]), int(vals[j]) & ((1 << 64) - 1)
                results[j] = run_atomic(hv, dom, lambda txn: pt_update(txn, p, v))
            pos = run_end
            step = 64
        else:
            pos = end
            step = min(step * 2, chunk)
    sizes = tuple([batch_size] * (k // batch_size) + ([k % batch_size] if k % batch_size else []))
    if record:
        for s in sizes:
            name = "multicall" if s > 1 else "mmu_update(1)"
            hv.trace.record(time_ns=hv.now_ns, domid=domid, kind="hypercall", detail=name, value=s)
    return BatchResult(updates=k, applied=int(np.count_nonzero(results == 0)), hypercalls=len(sizes),
                       multicalls=sum(1 for s in sizes if s > 1), batch_sizes=sizes, results=results,
                       vectorized=vec)
