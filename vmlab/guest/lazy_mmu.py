"""Linux's lazy MMU mode for a Xen PV guest: the per-CPU multicall buffer (pvops Linux).

Which kernel: pvops Linux (arch/x86/xen/multicalls.c, Jeremy Fitzhardinge 2007, in
mainline from 2.6.23), the kernel of today's PV guests. Oracle VM 2.x guests ran the
2.6.18 XenLinux kernel, which had no lazy-MMU multicall buffer: it wrote page tables
not yet pinned with plain stores, pinned a whole address space at once on first use,
and sent other updates as single mmu_update / update_va_mapping hypercalls or
multicalls built where it needed them. MC_BATCH and the counters below are pvops'.

Follows arch/x86/xen/multicalls.c: page-table updates go into a buffer of
`batch_size` entries (MC_BATCH = 32), flushed when full ("slots"), before a TLB
flush or CR3 load, before the guest touches memory, or on demand; a flush of one
entry is issued as a plain hypercall. Counters mirror Linux's mc stats: batches,
hypercalls (entries issued), batch_histo and flush_reasons.
Simplification: Linux also coalesces consecutive mmu_updates into one multicall
entry (up to MC_ARGS bytes); here every PTE update is its own entry. A flush enters
Xen through `vmlab.paging.direct.apply_updates` / `apply_ext_op` — the same
validation code the mmu_update, mmuext_op and multicall handlers run — and records
one trace event per hypercall (a long run of full batches is one "multicall xN" event).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from vmlab.errors import VmlabError
from vmlab.paging import direct

__all__ = ["LazyMMU", "GuestKernelBug", "MC_BATCH", "MC_BATCH_KERNEL"]

MC_BATCH = 32   # pvops Linux arch/x86/xen/multicalls.c (not the 2.6.18 XenLinux of Oracle VM 2.x guests)
MC_BATCH_KERNEL = "pvops Linux >= 2.6.23 (arch/x86/xen/multicalls.c); not 2.6.18 XenLinux (Oracle VM 2.x guests)"


class GuestKernelBug(VmlabError, RuntimeError):
    """The hypervisor refused an update the kernel model issued (Linux would BUG())."""


class LazyMMU:
    """The multicall buffer of one guest kernel (`kernel` keeps the stats it charges)."""

    def __init__(self, kernel, batch_size: int = MC_BATCH) -> None:
        self.k = kernel
        self.batch_size = int(batch_size)
        self.mc = {"batches": 0, "hypercalls": 0, "batch_histo": np.zeros(self.batch_size + 1, np.int64),
                   "flush_reasons": Counter()}
        self._queue: list = []
        self.queued = 0   # entries waiting in the buffer

    def queue_mmu(self, ptrs: np.ndarray, vals: np.ndarray) -> None:
        self._queue.append(("mmu", np.asarray(ptrs, np.int64), np.asarray(vals, np.uint64).astype(np.int64)))
        self.queued += len(ptrs)
        if self.queued >= self.batch_size:
            self._flush_full()

    def queue_ext(self, cmd: int, arg: int) -> None:
        self._queue.append(("ext", cmd, int(arg)))
        self.queued += 1
        if self.queued >= self.batch_size:
            self._flush_full()

    def flush(self, reason: str = "explicit") -> None:
        """Leave lazy MMU mode / xen_mc_flush(): issue whatever is queued as one hypercall."""
        if self.queued:
            n = self.queued
            self._issue(self._take(n), [n], reason)

    def _flush_full(self) -> None:
        full = self.queued // self.batch_size
        if full:
            self._issue(self._take(full * self.batch_size), [self.batch_size] * full, "slots")

    def _take(self, n: int) -> list:
        """Remove the first n entries from the queue (splitting a segment if needed)."""
        out, left = [], n
        while left:
            seg = self._queue[0]
            size = len(seg[1]) if seg[0] == "mmu" else 1
            if size <= left:
                out.append(self._queue.pop(0))
                left -= size
            else:
                out.append(("mmu", seg[1][:left], seg[2][:left]))
                self._queue[0] = ("mmu", seg[1][left:], seg[2][left:])
                left = 0
        self.queued -= n
        return out

    def _send(self, segs: list) -> None:
        """Enter Xen with each segment; a refusal is a kernel bug."""
        hv, domid = self.k.hv, self.k.domid
        for seg in segs:
            if seg[0] == "mmu":
                r = direct.apply_updates(hv, domid, seg[1], seg[2], batch_size=max(len(seg[1]), 1), record=False)
                if r.applied != r.updates:
                    bad = int(np.flatnonzero(r.results)[0])
                    raise GuestKernelBug(f"mmu_update of ptr {int(seg[1][bad]):#x} refused "
                                         f"({int(r.results[bad])}): {direct.explain(hv)}")
            else:
                rc = direct.apply_ext_op(hv, domid, seg[1], seg[2])
                if rc < 0:
                    raise GuestKernelBug(f"mmuext_op {seg[1]} on {seg[2]:#x} refused ({rc}): {direct.explain(hv)}")

    def _issue(self, segs: list, sizes: list[int], reason: str) -> None:
        """Send entries to Xen as len(sizes) hypercalls and account for them."""
        self._send(segs)
        k = self.k
        if len(sizes) <= 16:
            for s in sizes:
                k.hv.trace.record(time_ns=k.hv.now_ns, domid=k.domid, kind="hypercall",
                                  detail="multicall" if s > 1 else "mmu_update", value=s)
        else:   # one record for a run of full batches keeps the trace readable (and small)
            k.hv.trace.record(time_ns=k.hv.now_ns, domid=k.domid, kind="hypercall",
                              detail=f"multicall x{len(sizes)}", value=sum(sizes))
        n, entries = len(sizes), sum(sizes)
        self.mc["batches"] += n
        self.mc["hypercalls"] += entries
        np.add.at(self.mc["batch_histo"], np.minimum(np.asarray(sizes, np.int64), self.batch_size), 1)
        self.mc["flush_reasons"][reason] += n
        k.stats["hypercalls"] += n
        k.stats["pt_writes"] += sum(len(s[1]) for s in segs if s[0] == "mmu")
        c = k.costs
        k._charge("hypercall", n * c.hypercall_roundtrip_cycles)
        k._charge("pte_update", entries * (c.multicall_per_entry_cycles + c.pv_queue_entry_cycles))
