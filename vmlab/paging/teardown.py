"""PV paging's part of giving memory back (xen/common/memory.c, xen/arch/x86/domain.c).

`on_release` is guest_remove_page's first step for each frame leaving a physmap:
a pinned table loses its pin (test_and_clear_bit(_PGT_pinned) -> put_page_and_type),
which devalidates it if that was its last type reference. `on_destroy` is
domain_relinquish_resources: vcpu_destroy_pagetables drops CR3 (and the user CR3),
relinquish_memory drops every pin and forcibly invalidates the tables still
validated, so the references the dying domain's own tables held are gone and only
other domains' references keep its frames (hypervisor/release.py).
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.mmu import PTE_P, PTE_RW, pte_frame
from vmlab.paging.pv_types import _TABLE_TYPES, _Txn, state

__all__ = ["on_release", "on_destroy", "references"]


def on_release(hv, dom, mfns: np.ndarray) -> None:
    """Unpin every pinned frame among `mfns` (put_page_and_type), as guest_remove_page does."""
    st = state(hv)
    pinned = [m for m in mfns.tolist() if m in st.pinned] if st.pinned else []
    if not pinned:
        return
    txn = _Txn(hv, st, dom)
    for m in pinned:
        txn.pin(m, False)
        txn.put_type(m)
        txn.add_tot(m, -1)


def on_destroy(hv, dom) -> None:
    """domain_relinquish_resources: CR3s, pins, then the references its validated tables hold."""
    st, mem, domid = state(hv), hv.memory, dom.domid
    owned = dom.mfns()
    # every table validated now holds its entries' references, whatever holds the table itself
    live = owned[np.isin(mem.page_type[owned], list(_TABLE_TYPES)) & (mem.type_count[owned] > 0)]
    for table in (st.cr3, st.user_cr3):
        m = table.pop(domid, None)
        if m is not None:
            mem.type_count[m] -= 1
            mem.tot_count[m] -= 1
    for m in [m for m in st.pinned if int(mem.owner[m]) == domid]:
        st.pinned.discard(m)
        mem.type_count[m] -= 1
        mem.tot_count[m] -= 1
    for m in live.tolist():  # every validated table at once: no recursion, each entry once
        level, words = int(mem.page_type[m]), mem.table(m)
        for i in np.flatnonzero(words & np.uint64(PTE_P)).tolist():
            e = int(words[i])
            f = pte_frame(e)
            mem.tot_count[f] -= 1
            if level > 1 or e & PTE_RW:
                mem.type_count[f] -= 1
    st.tlb_flushes.pop(domid, None)
    for m in owned.tolist() if st.m2p else ():
        st.m2p.pop(m, None)


def references(hv):
    """The references Xen records outside page tables: pins and CR3s (holder, mfn, writable, typed, counted)."""
    st = state(hv)
    owner = hv.memory.owner
    refs = [(int(owner[m]), m, False, True, True, "pin") for m in st.pinned]
    for table in (st.cr3, st.user_cr3):
        refs += [(d, m, False, True, True, "cr3") for d, m in table.items()]
    return refs, ()


