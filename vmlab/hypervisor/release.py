"""Giving frames back as Xen does: the heap gets a frame only with its last reference.

xen/common/memory.c guest_remove_page (XENMEM_decrease_reservation, the balloon):
drop the pin (put_page_and_type) and the allocation reference (PGC_allocated,
put_page), then take the frame out of the physmap. A page whose count is still
non-zero (a page-table entry, a grant mapping, CR3 still refer to it) stays owned
by the domain and counted in its tot_pages; xen/common/page_alloc.c
free_domheap_pages returns it to the heap (scrubbed) only when the last reference
goes. A dying domain (domain_relinquish_resources) drops its CR3s, pins and the
references its own page tables hold; what other domains still hold keeps its frames
(and the domain, a zombie: its domid is not reused) until they let go.

Here the frames off every p2m but still referenced are `hv.held` (mfn -> owner);
`reap(hv)` frees those whose tot_count reached 0 and runs after every hypercall,
so a frame is free exactly when nothing refers to it any more. Subsystems that hold
references (pins: paging) or map the frames (shadow and EPT entries: Xen's
guest_physmap_remove_page and shadow_drop_references) drop them in
`hv.release_hooks`, called with (domain, pfns, mfns) before the frames leave the physmap.
"""

from __future__ import annotations

import numpy as np

from vmlab.hypervisor import constants as C

__all__ = ["remove_pages", "release_all", "reap", "held_count", "zombie_domids"]


def remove_pages(hv, dom, pfns: np.ndarray) -> None:
    """guest_remove_page for each pfn (all populated): hooks drop pins, then free or hold."""
    pfns = np.asarray(pfns, dtype=np.int64)
    if pfns.size == 0:
        return
    mfns = dom.p2m[pfns].copy()
    for hook in list(hv.release_hooks):
        hook(dom, pfns, mfns)
    dom.p2m[pfns] = C.INVALID_MFN
    _free_or_hold(hv, dom.domid, mfns)


def release_all(hv, dom) -> None:
    """The frames of a domain being destroyed (after its destroy hooks): free or hold each."""
    mfns = dom.mfns().copy()
    dom.p2m[:] = C.INVALID_MFN
    _free_or_hold(hv, dom.domid, mfns)


def _free_or_hold(hv, domid: int, mfns: np.ndarray) -> None:
    referenced = hv.memory.tot_count[mfns] > 0
    hv.memory.release(mfns[~referenced], owner=domid)
    for m in mfns[referenced].tolist():
        hv.held[m] = domid


def reap(hv) -> int:
    """free_domheap_pages for every held frame whose last reference is gone; returns frames freed."""
    if not hv.held:
        return 0
    mem = hv.memory
    free = [m for m in hv.held if mem.tot_count.item(m) == 0]
    for m in free:
        owner = hv.held.pop(m)
        mem.release(np.array([m], dtype=np.int64), owner=owner)
    return len(free)


def held_count(hv, domid: int) -> int:
    """Frames `domid` still owns outside its physmap (counted in Xen's d->tot_pages)."""
    return sum(1 for d in hv.held.values() if d == domid) if hv.held else 0


def zombie_domids(hv) -> set[int]:
    """Destroyed domains whose frames others still reference (Xen keeps their struct domain)."""
    return {d for d in hv.held.values() if d not in hv.domains}
