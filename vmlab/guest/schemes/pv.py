"""Xen PV direct paging: tables hold machine frames but are read-only to the guest.

Every change is an mmu_update or mmuext_op, batched in Linux's lazy MMU mode
(`vmlab.guest.lazy_mmu`). Linux pins a new mm's pgd before using it
(xen_pgd_pin), loads CR3 with MMUEXT_NEW_BASEPTR, and unpins on teardown.
"""

from __future__ import annotations

import numpy as np

from vmlab.guest.lazy_mmu import GuestKernelBug
from vmlab.guest.schemes.native import NativeScheme
from vmlab.paging import direct
from vmlab.paging.direct import MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MMUEXT

__all__ = ["PVScheme"]


class PVScheme(NativeScheme):
    name = "pv"
    cost_preset = "xen_pv"

    def __init__(self, kernel, **options) -> None:
        super().__init__(kernel)
        direct.pv_state(kernel.hv)   # registers mmu_update & co. on first use

    def check_new_table(self, pfn: int, mfn: int) -> None:
        if self.k.mem.type_count[mfn] != 0:
            raise GuestKernelBug(f"pfn {pfn} is still in use as a page table; it cannot be zeroed")

    def write_ptes(self, table_pfns, idx, vals, preserve_ad: bool) -> None:
        cmd = MMU_PT_UPDATE_PRESERVE_AD if preserve_ad else MMU_NORMAL_PT_UPDATE
        self.k.batch.queue_mmu((self.k.p2m[table_pfns] << 12) | (idx << 3) | cmd, vals)

    def new_aspace(self, aspace) -> None:
        self.k.batch.queue_ext(MMUEXT["PIN_L4_TABLE"], int(self.k.p2m[aspace.root]))

    def load_cr3(self, aspace) -> None:
        self.k.batch.queue_ext(MMUEXT["NEW_BASEPTR"], int(self.k.p2m[aspace.root]))
        self.k.batch.flush("cr3")

    def teardown(self, aspace) -> None:
        self.k.batch.queue_ext(MMUEXT["UNPIN_TABLE"], int(self.k.p2m[aspace.root]))
        self.k.batch.flush("explicit")   # the frames must stop being tables before they are reused

    def flush_tlb(self, vpns) -> None:
        if vpns is None:
            self.k.batch.queue_ext(MMUEXT["TLB_FLUSH_LOCAL"], 0)
        else:
            for v in np.asarray(vpns).tolist():
                self.k.batch.queue_ext(MMUEXT["INVLPG_LOCAL"], v << 12)
        self.k.batch.flush("tlb_flush")
