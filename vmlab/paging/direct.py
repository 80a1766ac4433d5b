"""PV direct paging: the guest's own page tables are the real ones, validated by Xen.

A PV guest (Oracle VM's mode) writes machine frame numbers into its page tables,
but the tables are mapped read-only to it: every change goes through a hypercall
that Xen checks against its page-type and reference-count rules (xen/arch/x86/mm.c):

* every frame has one type at a time (PGT_l1..l4, seg_desc, shared, writable) and a
  `type_count`; the type can change only when type_count is 0;
* making a frame an Ln table validates every entry in it (get_page_type recursion);
  when its type_count drops to 0 the references its entries hold are dropped again;
* an L1 entry with RW takes a *writable* type reference on its target, so no frame
  can be both a page table and writably mapped;
* a guest may map only frames it owns (or holds a grant for; a privileged domain may
  map any), and each level has flags it may not set (`DISALLOW`);
* pins (MMUEXT_PIN_Ln_TABLE) hold a type reference, do not nest (second pin -EINVAL),
  and the table in CR3 cannot be unpinned.

Handlers are registered on a Hypervisor by `install(hv)`. `mmu_update` and `mmuext_op`
stop at the first bad request and report `done`; `multicall` runs every entry and writes
each result, as Xen does. A refused request is rolled back through an undo journal, so
it leaves every table word, type, count and pin exactly as before.

The rooms: `pv_types` (types, counts, the undo journal), `mmu_update`, `mmuext`,
`pv_hypercalls` (the table rows), `bulk` (the batched path), `audit`. This module
is their one public face.

`apply_updates` is the bulk path the guest kernel (and the execution-paths model) uses:
k queued PTE updates flushed in batches of b, with per-entry results identical to
issuing the batches one by one, vectorized where the updates are independent.
"""

from __future__ import annotations

from vmlab.paging.audit import audit
from vmlab.paging.bulk import BatchResult, apply_updates
from vmlab.paging.mmu_update import do_mmu_update, do_update_va_mapping
from vmlab.paging.mmuext import EXT_OPS, apply_ext_op, do_mmuext_op
from vmlab.paging.pv_hypercalls import do_multicall, explain, install, pv_state
from vmlab.paging.pv_types import (DISALLOW, EXPLAIN, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE,
                                   MMU_PT_UPDATE_PRESERVE_AD, MMUEXT, UVMF_ALL, UVMF_INVLPG, UVMF_NONE,
                                   UVMF_TLB_FLUSH, PVPagingState, pt_maddr)

__all__ = [
    "MMU_NORMAL_PT_UPDATE", "MMU_MACHPHYS_UPDATE", "MMU_PT_UPDATE_PRESERVE_AD",
    "MMUEXT", "UVMF_NONE", "UVMF_TLB_FLUSH", "UVMF_INVLPG", "UVMF_ALL", "DISALLOW", "EXPLAIN", "EXT_OPS",
    "PVPagingState", "install", "pv_state", "BatchResult", "apply_updates",
    "pt_maddr", "explain", "audit", "apply_ext_op",
    "do_mmu_update", "do_mmuext_op", "do_update_va_mapping", "do_multicall",
]
