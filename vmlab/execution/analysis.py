"""The stateful parts of costing a stream, done with cumulative numpy tricks.

Everything a path pays per operation type is counts x cost. What is left depends
on history, and lives here:

- `hidden_faults`: under shadow paging (HVM-shadow and BT) a guest PTE write
  leaves the shadow entry stale (the shadow is refilled lazily, as Xen's
  out-of-sync shadows and KVM's unsync pages do); the next TLB miss on that entry
  is a *hidden* page fault the hypervisor handles without the guest knowing.
- `new_roots`: the first CR3 load of a root makes shadow paging build a shadow.
- `translations`: BT translates a kernel block the first time it runs after the
  translation cache was (re)started; a full cache is flushed whole.
- `adaptive_traps`: BT lets the first `threshold` PTE writes of a block trap;
  then adaptive translation rewrites the block to call out instead.
- `batch_plan`: PV queues PTE writes in a multicall buffer (Linux
  arch/x86/xen/multicalls.c): flushed when full ("slots"), before a TLB flush or
  a CR3 load, in the page-fault handler, and at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from vmlab.errors import ConfigError
from vmlab.execution.ops import FLUSH_POINTS, Op, OpStream

__all__ = ["StreamAnalysis", "BatchPlan", "batch_plan", "first_occurrences", "hidden_fault_positions", "MC_BATCH"]

# Entries per per-CPU multicall buffer in pvops Linux (arch/x86/xen/multicalls.c, 2.6.23+); the 2.6.18
# XenLinux kernel Oracle VM 2.x guests ran had no such buffer (see vmlab.guest.lazy_mmu).
MC_BATCH = 32
_BIG = np.iinfo(np.int64).max


def first_occurrences(keys: np.ndarray, n_keys: int | None = None) -> np.ndarray:
    """Sorted positions where each distinct (non-negative int) key occurs first."""
    return first_k_occurrences(keys, 1, n_keys)


def first_k_occurrences(keys: np.ndarray, k: int, n_keys: int | None = None) -> np.ndarray:
    """Sorted positions of the first `k` occurrences of each distinct (non-negative int) key.

    First occurrences cluster at the start of a stream, so only a prefix is sorted:
    it grows (x4) until it holds min(k, total count) occurrences of every key.
    """
    if keys.size == 0 or k <= 0:
        return np.zeros(0, np.int64)
    n_keys = int(keys.max()) + 1 if n_keys is None else n_keys
    need = np.minimum(np.bincount(keys, minlength=n_keys), k)
    length = min(keys.size, 1 << 16)
    while True:
        chunk = keys[:length]
        if length >= keys.size or np.all(np.bincount(chunk, minlength=n_keys) >= need):
            break
        length = min(keys.size, length * 4)
    order = np.argsort(chunk, kind="stable")
    ks = chunk[order]
    start = np.r_[0, np.flatnonzero(ks[1:] != ks[:-1]) + 1]
    rank = np.arange(ks.size) - np.repeat(start, np.diff(np.r_[start, ks.size]))
    return np.sort(order[rank < k]).astype(np.int64)


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchPlan:
    """How a PV guest's PTE writes become hypercalls for one batch size."""

    batch: int
    updates: int
    issue_pos: np.ndarray      # op index at which each batch is issued
    sizes: np.ndarray          # entries per batch
    reason: np.ndarray         # int8 codes into REASONS
    runs: np.ndarray           # updates per run between flush points (k_i)

    REASONS = ("slots", "tlb_flush", "cr3_load", "page_fault", "end")

    @property
    def hypercalls(self) -> int:
        return int(self.sizes.size)

    def histogram(self) -> np.ndarray:
        """batch_histo as Linux keeps it: how many batches had 0..batch entries."""
        return np.bincount(self.sizes, minlength=self.batch + 1)

    def flush_reasons(self) -> dict[str, int]:
        c = np.bincount(self.reason, minlength=len(self.REASONS))
        return {r: int(n) for r, n in zip(self.REASONS, c)}


_REASON_OF_OP = {Op.TLB_FLUSH: 1, Op.CR3_LOAD: 2, Op.PAGE_FAULT: 3}


def batch_plan(stream: OpStream, batch: int = MC_BATCH) -> BatchPlan:
    """Group a stream's PTE writes into multicall batches of at most `batch` entries.

    Runs of writes between flush points are cut into ceil(k/batch) batches; a
    batch is issued when the next write finds the buffer full (Linux flushes
    before adding) or at the flush point that ends the run.
    """
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ConfigError(f"batch={batch!r} must be an integer >= 1 (1 = no batching; Linux uses {MC_BATCH})")
    batch = int(batch)
    op = stream.op
    P = np.flatnonzero(op == Op.PTE_WRITE)
    flush_mask = op == FLUSH_POINTS[0]
    for f in FLUSH_POINTS[1:]:
        flush_mask |= op == f
    F = np.flatnonzero(flush_mask)
    n = op.size
    # run r holds the writes before flush point F[r] (the last run: up to the end)
    k = np.diff(np.r_[0, np.searchsorted(P, F), P.size])
    nb = -(-k // batch)
    total = int(nb.sum())
    if total == 0:
        z = np.zeros(0, np.int64)
        return BatchPlan(batch=batch, updates=0, issue_pos=z, sizes=z, reason=z.astype(np.int8), runs=k[k > 0])
    r = np.repeat(np.arange(k.size), nb)
    first_batch = np.cumsum(nb) - nb
    j = np.arange(total) - first_batch[r]
    last = j == nb[r] - 1
    run_start = np.cumsum(k) - k                       # index into P of each run's first write
    sizes = np.full(total, batch, np.int64)
    sizes[last] = k[r[last]] - (nb[r[last]] - 1) * batch
    pos = np.empty(total, np.int64)
    nl = ~last
    pos[nl] = P[run_start[r[nl]] + (j[nl] + 1) * batch]
    F_end = np.r_[F, n - 1]
    pos[last] = F_end[r[last]]
    reason = np.zeros(total, np.int8)
    end_ops = np.r_[op[F], 255].astype(np.int64)
    lr = end_ops[r[last]]
    codes = np.full(lr.size, 4, np.int8)
    for o, c in _REASON_OF_OP.items():
        codes[lr == o] = c
    reason[last] = codes
    return BatchPlan(batch=batch, updates=int(P.size), issue_pos=pos, sizes=sizes, reason=reason, runs=k[k > 0])


class StreamAnalysis:
    """History-dependent facts about one stream, computed once and shared by the paths."""

    def __init__(self, stream: OpStream) -> None:
        self.stream = stream

    @cached_property
    def counts(self) -> np.ndarray:
        return self.stream.counts()

    @cached_property
    def compute_cycles(self) -> int:
        return self.stream.compute_cycles()

    @cached_property
    def work(self) -> np.ndarray:
        """Per-op native cycles of plain work (COMPUTE args, 0 elsewhere), as float64."""
        return np.where(self.stream.op == Op.COMPUTE, self.stream.arg, 0).astype(np.float64)

    @cached_property
    def kernel_index(self) -> np.ndarray:
        return np.flatnonzero(self.stream.block >= 0)

    @cached_property
    def hidden_faults(self) -> np.ndarray:
        """Positions of TLB misses on an entry whose latest event was a guest PTE write."""
        return hidden_fault_positions(self.stream)

    @cached_property
    def new_roots(self) -> np.ndarray:
        """Positions of CR3 loads of a root never loaded before."""
        c = np.flatnonzero(self.stream.op == Op.CR3_LOAD)
        if c.size == 0:
            return c
        _, first = np.unique(self.stream.arg[c], return_index=True)
        return np.sort(c[first])

    def translations(self, capacity: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions of block translations, positions of whole-cache flushes) for a cache of `capacity` blocks."""
        kidx = self.kernel_index
        kb = self.stream.block[kidx].astype(np.int64)
        if kb.size == 0:
            z = np.zeros(0, np.int64)
            return z, z
        nkeys = int(kb.max()) + 1
        trans, flushes = [], []
        start = 0
        capacity = int(capacity)
        while start < kb.size:
            firsts = first_occurrences(kb[start:], nkeys)
            if firsts.size <= capacity:
                trans.append(firsts + start)
                break
            cut = int(firsts[capacity])                  # the block that finds the cache full
            trans.append(firsts[:capacity] + start)
            flushes.append(start + cut)
            start += cut
        return kidx[np.concatenate(trans)], kidx[np.asarray(flushes, np.int64)]

    def adaptive_traps(self, threshold: int, flush_positions: np.ndarray) -> np.ndarray:
        """Positions of PTE writes that still trap: the first `threshold` per (block, cache epoch)."""
        s = self.stream
        w = np.flatnonzero((s.op == Op.PTE_WRITE) & (s.block >= 0))
        threshold = int(threshold)
        if w.size == 0 or threshold <= 0:
            return np.zeros(0, np.int64)
        nb = int(s.block.max()) + 1
        if flush_positions.size:
            bounds = np.searchsorted(w, flush_positions)
            epoch = np.repeat(np.arange(bounds.size + 1), np.diff(np.r_[0, bounds, w.size]))
            key = epoch.astype(np.int64) * nb + s.block[w]
        else:
            key = s.block[w].astype(np.int64)
        return w[first_k_occurrences(key, threshold)]


def hidden_fault_positions(stream: OpStream) -> np.ndarray:
    """Positions of TLB misses on an entry whose latest event was a guest PTE write.

    Only slots both written and missed matter. They are renumbered densely (0..K-1), and
    the events are put in (slot, program order) by one stable argsort of those small ids
    (no 64-bit key sort); a miss is hidden when the event before it on its slot is a write.
    """
    s = stream
    w = np.flatnonzero(s.op == Op.PTE_WRITE)
    m = np.flatnonzero(s.op == Op.TLB_MISS)
    if w.size == 0 or m.size == 0:
        return np.zeros(0, np.int64)
    ws, ms = s.arg[w], s.arg[m]
    if (w.size + m.size) < 200_000:
        both = np.intersect1d(np.unique(ws), np.unique(ms), assume_unique=True)
        w, m = w[np.isin(ws, both)], m[np.isin(ms, both)]
        dense = None
    else:  # bitmap filter, and the bitmap's running count gives the dense ids
        hi = int(max(ws.max(), ms.max())) + 1
        keep = np.zeros(hi, bool)
        keep[ws] = True
        mi = np.zeros(hi, bool)
        mi[ms] = True
        keep &= mi
        w, m = w[keep[ws]], m[keep[ms]]
        dense = np.cumsum(keep, dtype=np.int64 if hi >= 1 << 31 else np.int32)
    mark = np.zeros(s.op.size, np.int8)            # merge the two sorted position lists
    mark[w] = 2                                    # 2: a guest PTE write, 1: a TLB miss
    mark[m] = 1
    ev = np.flatnonzero(mark)                      # events in program order
    is_write = mark[ev] == 2
    slots = s.arg[ev]
    ids = np.searchsorted(both, slots).astype(np.int32) if dense is None else dense[slots]
    order = np.argsort(ids, kind="stable")         # by (slot, program order)
    sl_o = ids[order]
    w_o = is_write[order]
    hidden = ~w_o[1:] & w_o[:-1] & (sl_o[1:] == sl_o[:-1])
    out = np.zeros(ev.size, np.bool_)              # back to program order without a second sort
    out[order[1:][hidden]] = True
    return ev[out]
