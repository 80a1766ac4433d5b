"""Page-table pages on the wire: canonicalised (mfn -> pfn) by the sender, and back on the receiver.

A PV guest's page tables hold machine frame numbers, which mean nothing on another host.
xc_domain_save (tools/libxc, Xen 3.1) asks Xen for the type of each page in a batch
(xc_get_pfn_type_batch) and, for L1..L4 tables, rewrites every present entry's mfn as the
guest pfn through the M2P (canonicalize_pagetable); an mfn outside the guest's pseudo-physical
map is a "race" (the guest changed the table under the sender), resent in a later pass or fatal
when not live. xc_domain_restore's uncanonicalize_pagetable maps each pfn to the new mfn.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_FRAME_MASK, PTE_P
from vmlab.hypervisor import constants as C

__all__ = ["canonicalize_batch", "uncanonicalize"]

_TABLES = [PageType.L1, PageType.L2, PageType.L3, PageType.L4]
_FM, _P = np.uint64(PTE_FRAME_MASK), np.uint64(PTE_P)


def canonicalize_batch(hv, dom, pfns) -> tuple[dict[int, np.ndarray], int]:
    """({pfn: canonical words} for the page-table pages among `pfns`, number of racing entries)."""
    pfns = np.asarray(pfns, dtype=np.int64)
    mfns = dom.p2m[pfns]
    ok = mfns != C.INVALID_MFN
    m = np.where(ok, mfns, 0)
    counted = ok & (hv.memory.type_count[m] > 0)        # only frames in use can be live tables
    if not counted.any():
        return {}, 0
    types = hv.memory.page_type[m]
    sel = np.flatnonzero(counted & (types >= min(_TABLES)) & (types <= max(_TABLES)))
    if sel.size == 0:
        return {}, 0
    valid = np.flatnonzero(dom.p2m != C.INVALID_MFN)
    order = np.argsort(dom.p2m[valid])
    m_sorted, p_sorted = dom.p2m[valid][order], valid[order]   # the M2P restricted to this guest
    out: dict[int, np.ndarray] = {}
    races = 0
    for j in sel.tolist():
        words = hv.memory.table(int(mfns[j])).copy()
        present = (words & _P) != 0
        frames = ((words[present] & _FM) >> np.uint64(12)).astype(np.int64)
        at = np.clip(np.searchsorted(m_sorted, frames), 0, max(m_sorted.size - 1, 0))
        hit = m_sorted[at] == frames if m_sorted.size else np.zeros(frames.size, bool)
        races += int(np.count_nonzero(~hit))
        pfn_of = np.where(hit, p_sorted[at], 0).astype(np.uint64)
        words[present] = (words[present] & ~_FM) | (pfn_of << np.uint64(12))
        out[int(pfns[j])] = words
    return out, races


def uncanonicalize(words: np.ndarray, p2m: np.ndarray) -> np.ndarray:
    """xc_domain_restore's uncanonicalize_pagetable: each present entry's pfn -> the new host's mfn."""
    words = np.asarray(words, dtype=np.uint64).copy()
    present = (words & _P) != 0
    pfn = ((words[present] & _FM) >> np.uint64(12)).astype(np.int64)
    words[present] = (words[present] & ~_FM) | (p2m[pfn].astype(np.uint64) << np.uint64(12))
    return words
