"""Route a PV stream's page-table updates through the memory model's validated PV direct paging.

`DirectPagingSink` boots a PV guest (vmlab.guest.kernel.boot_kernel), maps a
region so that real L1 page tables exist in machine frames, and then applies
each batch the PV path issues as ONE call of `vmlab.paging.direct.apply_updates`
(Xen's mmu_update/multicall with page-type and reference-count checks). The
final state is read back from the page tables in machine memory.

Stream slots and values are abstract; the sink maps slot s to entry s mod
`slots` of the region's L1 tables, and a value to a real PTE (one of the guest's
own data frames, present | user | writable; 0 stays 0 = not present), so every
update is one Xen accepts. `encode` gives the PTE a value becomes, so a test
can compare against the native reference.
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import VmlabError
from vmlab.hardware.mmu import PTE_P, PTE_RW, PTE_US

__all__ = ["DirectPagingSink", "PVUpdateRefused"]

_BASE_VA = 0x400000


class PVUpdateRefused(VmlabError, RuntimeError):
    """Xen refused an update the PV path issued (the sink only issues valid ones: a model bug)."""


class DirectPagingSink:
    """A PteSink backed by real PV page tables in simulated machine memory."""

    def __init__(self, slots: int = 1024, *, memory_mib: int = 16) -> None:
        from vmlab.guest.kernel import boot_kernel
        from vmlab.paging.direct import MMU_NORMAL_PT_UPDATE
        if slots < 1 or slots % 512:
            raise ValueError(f"slots={slots} must be a positive multiple of 512 (whole L1 tables)")
        self.kernel = boot_kernel("pv", memory_mib=memory_mib)
        self.hv, self.domid = self.kernel.hv, self.kernel.domid
        pid = self.kernel.spawn()
        self.data_pfns = self.kernel.map(pid, _BASE_VA, slots)
        self.kernel.flush()
        aspace = self.kernel.procs[pid]
        p2m = self.kernel.p2m
        vpn = (_BASE_VA >> 12) + np.arange(slots, dtype=np.int64)
        l1_pfn = np.array([aspace.tables[(1, int(v >> 9))] for v in vpn.tolist()], np.int64)
        self.l1_mfn = p2m[l1_pfn]
        self.index = vpn & 511
        self.ptr = (self.l1_mfn << 12) | (self.index << 3) | MMU_NORMAL_PT_UPDATE
        self.data_mfns = p2m[self.data_pfns]
        self.slots = slots
        self.written: set[int] = set()
        self.calls = 0
        self.hypercalls = 0

    def encode(self, values: np.ndarray) -> np.ndarray:
        """The real PTE an abstract value becomes (0 stays not-present)."""
        values = np.asarray(values, np.int64)
        frame = self.data_mfns[(values >> 12) % self.data_mfns.size]
        pte = (frame << 12) | (PTE_P | PTE_US | PTE_RW)
        return np.where(values == 0, 0, pte).astype(np.int64)

    def mmu_update(self, slots: np.ndarray, values: np.ndarray) -> int:
        from vmlab.paging.direct import apply_updates
        s = np.asarray(slots, np.int64) % self.slots
        r = apply_updates(self.hv, self.domid, self.ptr[s], self.encode(values), batch_size=max(1, s.size))
        self.calls += 1
        self.hypercalls += r.hypercalls
        if r.applied != r.updates:
            bad = int(np.flatnonzero(r.results)[0])
            raise PVUpdateRefused(f"update {bad} of a batch of {s.size} was refused ({int(r.results[bad])}); "
                                  "the sink only issues valid updates, so this is a model bug")
        self.written.update(s.tolist())
        return int(r.applied)

    def final_ptes(self) -> tuple[np.ndarray, np.ndarray]:
        s = np.array(sorted(self.written), np.int64)
        vals = np.array([int(self.hv.memory.table(int(self.l1_mfn[i]))[int(self.index[i])]) for i in s.tolist()],
                        np.int64)
        return s, vals
