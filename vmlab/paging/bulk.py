"""The bulk path: k queued PTE updates flushed in batches of b (what Linux's lazy MMU does).

Per-entry results are identical to issuing the batches one by one; independent leaf
updates are applied with numpy, anything order-dependent goes down the exact path
(`mmu_update.pt_update`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlab.paging.mmu_update import pt_update
from vmlab.paging.pv_hypercalls import pv_state
from vmlab.paging.pv_types import run_atomic
from vmlab.paging.vector import _apply_vector, _eligible

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
