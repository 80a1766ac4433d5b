"""dom0 reading a guest's memory the way xc_domain_save does: map a batch, read, unmap.

xc_domain_save (tools/libxc, Xen 3.1) reads a guest's pages in batches of MAX_BATCH_SIZE
(1024) with xc_map_foreign_batch: privcmd's IOCTL_PRIVCMD_MMAPBATCH puts the guest's frames
into dom0's own page tables with mmu_update, naming the guest in `foreigndom` (Xen 3.1
do_mmu_update: the L1 edited is dom0's, the frames mapped belong to FOREIGNDOM), and
munmap takes them out again. Here dom0's window is a few of its own frames validated as L1
tables for the duration of one read; each batch is one mmu_update that maps (read-only),
the read goes through the mapping, and one mmu_update that unmaps. PV guests are named by
mfn (dom0 read their p2m), HVM guests by pfn (Xen translates), as in xc_domain_save.

Hypercall counts: vmlab traces one mmu_update per batch each way. XenLinux 2.6.18's privcmd
(IOCTL_PRIVCMD_MMAPBATCH) calls direct_remap_pfn_range once per page, one mmu_update each, so
on a real Oracle VM 2.x dom0 the map side is up to MAX_BATCH_SIZE hypercalls per batch: read the
count here as a lower bound (what a batching privcmd, as in later kernels, would issue).
"""

from __future__ import annotations

import numpy as np

from vmlab.errors import HypercallError
from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_P, PTE_US
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainKind
from vmlab.paging.pv_hypercalls import pv_state
from vmlab.paging.pv_types import MMUEXT, pt_maddr

__all__ = ["MAX_BATCH_SIZE", "foreign_read", "window_frames"]

MAX_BATCH_SIZE = 1024     # tools/libxc/xc_domain_save.c
_ENTRIES = 512            # entries per L1 table


def window_frames(hv, n_tables: int) -> list[int]:
    """dom0 frames free to become its mapping window's L1 tables (untyped, unreferenced),
    looked for from the top of dom0's memory down."""
    mem = hv.memory
    p2m = hv.dom0.p2m
    found: list[int] = []
    for end in range(p2m.size, 0, -64):
        mfns = p2m[max(0, end - 64):end][::-1]
        mfns = mfns[mfns >= 0]
        ok = (mem.type_count[mfns] == 0) & (mem.tot_count[mfns] == 0) & (
            (mem.page_type[mfns] == PageType.NONE) | (mem.page_type[mfns] == PageType.WRITABLE)
            | (mem.page_type[mfns] == PageType.L1))
        found += [int(m) for m in mfns[ok][:n_tables - len(found)]]
        if len(found) == n_tables:
            return found
    raise HypercallError("mmuext_op(PIN_L1_TABLE)", C.ENOMEM, "dom0 has no free frame for a mapping window")


def _call(hv, name: str, *args) -> None:
    rc = hv.hypercall(0, name, *args)
    if rc < 0:
        raise HypercallError(name, rc, f"dom0 mapping a guest's memory ({args[-1] if args else ''})")


def foreign_read(hv, domid: int, pfns, *, batch: int = MAX_BATCH_SIZE, exact: bool = False) -> np.ndarray:
    """The content stamps of guest `domid`'s `pfns`, read by dom0 through foreign mappings.

    Every batch is one mmu_update that maps (foreigndom = the guest) and one that unmaps.
    When every request of every batch is one the rules accept, the batches are applied
    at once (their net effect on the frames is nil) and each hypercall is traced as
    issued, exactly as the one-by-one path (`exact=True`) traces it; otherwise that path
    runs and the first refusal raises HypercallError.
    """
    pv_state(hv)
    dom = hv.domains[domid]
    pfns = np.arange(dom.p2m.size)[pfns] if isinstance(pfns, slice) else np.asarray(pfns, dtype=np.int64)
    out = np.empty(pfns.size, dtype=np.uint64)
    if pfns.size == 0:
        return out
    width = min(batch, pfns.size)
    tables = sorted(window_frames(hv, -(-width // _ENTRIES)))
    if not exact and _all_mappable(hv, dom, pfns):
        return _traced_read(hv, dom, pfns, tables, width)
    _call(hv, "mmuext_op", [(MMUEXT["PIN_L1_TABLE"], t) for t in tables], len(tables), {})
    slots = np.array([pt_maddr(t, i) for t in tables for i in range(_ENTRIES)], dtype=np.int64)[:width]
    try:
        hvm = dom.kind is DomainKind.HVM
        for a in range(0, pfns.size, width):
            chunk = pfns[a:a + width]
            frames = chunk if hvm else dom.p2m[chunk]
            reqs = np.stack([slots[:chunk.size], (frames << 12) | (PTE_P | PTE_US)], axis=1)
            _call(hv, "mmu_update", reqs, chunk.size, {}, domid)
            words = np.concatenate([hv.memory.table(t) for t in tables])[:chunk.size]
            mapped = (words & np.uint64(0x000F_FFFF_FFFF_F000)) >> np.uint64(12)
            out[a:a + chunk.size] = hv.memory.content[mapped.astype(np.int64)]
            reqs[:, 1] = 0
            _call(hv, "mmu_update", reqs, chunk.size, {})
    finally:
        hv.hypercall(0, "mmuext_op", [(MMUEXT["UNPIN_TABLE"], t) for t in tables], len(tables), {})
    return out


def _all_mappable(hv, dom, pfns: np.ndarray) -> bool:
    """Would every map request be accepted? (the guest's own, present frames; dom0 privileged)"""
    if dom.domid == 0 or not hv.dom0.privileged or np.any((pfns < 0) | (pfns >= dom.p2m.size)):
        return False
    mfns = dom.p2m[pfns]
    if np.any(mfns < 0) or np.any(mfns >= hv.memory.total_frames):
        return False
    return bool(np.all(hv.memory.owner[mfns] == dom.domid))


def _traced_read(hv, dom, pfns: np.ndarray, tables: list[int], width: int) -> np.ndarray:
    """The batches' net effect (none but the window's L1 type) and the trace they leave."""
    rec, t = hv.trace.record, hv.now_ns
    rec(time_ns=t, domid=0, kind="hypercall", detail="mmuext_op", value=0)          # PIN_L1_TABLE
    for a in range(0, pfns.size, width):
        n = min(width, pfns.size - a)
        rec(time_ns=t, domid=0, kind="foreign_map", detail=f"mmu_update foreigndom={dom.domid}", value=n)
        rec(time_ns=t, domid=0, kind="hypercall", detail="mmu_update", value=0)     # map the batch
        rec(time_ns=t, domid=0, kind="hypercall", detail="mmu_update", value=0)     # and unmap it
    rec(time_ns=t, domid=0, kind="hypercall", detail="mmuext_op", value=0)          # UNPIN_TABLE
    for m in tables:   # validated as L1 and released: the type stays, the counts are back at 0
        hv.memory.page_type[m] = PageType.L1
    return hv.memory.content[dom.p2m[pfns]].astype(np.uint64)
