"""mmu_update and update_va_mapping: one PTE write, validated against Xen's type rules.

`pt_update` is one request (mod_l1..l4_entry in xen/arch/x86/mm.c); the handlers stop
at the first bad request and report `done`, as Xen's do_mmu_update does.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_A, PTE_D, PTE_FRAME_MASK, PTE_P, PTE_PS, is_canonical, pte_frame, va_indices
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.domain import DomainKind
from vmlab.paging.vector import _apply_vector, _eligible
from vmlab.paging.pv_types import (_TABLE_TYPES, EXPLAIN, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE,
                                   MMU_PT_UPDATE_PRESERVE_AD, UVMF_ALL, UVMF_FLUSHTYPE_MASK, UVMF_NONE, _Txn,
                                   guest_array, set_foreigndom, pt_maddr, run_atomic, state)

__all__ = ["pt_update", "foreign", "translate_foreign", "do_mmu_update", "do_update_va_mapping"]


def translate_foreign(fd, vals):
    """mod_l1_entry's gmfn_to_mfn(FOREIGNDOM, pfn): a translated (HVM) FOREIGNDOM is named by pfn,
    which Xen looks up in its p2m; a PV one by mfn (xc_domain_save: "PFNs for HVM guests and MFNs
    for PV guests"). Works on one int or a numpy array; a pfn outside the p2m stays as given."""
    if getattr(fd, "kind", None) is not DomainKind.HVM:
        return vals
    arr = np.asarray(vals, dtype=np.int64)
    pfn = (arr & PTE_FRAME_MASK) >> 12
    inside = (pfn >= 0) & (pfn < fd.p2m.size) & ((arr & PTE_P) != 0)
    mfn = np.where(inside, fd.p2m[np.where(inside, pfn, 0)], pfn)
    out = (arr & ~PTE_FRAME_MASK) | (np.where(mfn < 0, (1 << 40) - 1, mfn) << 12)   # INVALID_MFN: refused
    return int(out) if np.ndim(vals) == 0 else out


def pt_update(txn: _Txn, ptr: int, val: int) -> int:
    """One mmu_update request; on failure the caller rolls txn back."""
    mem = txn.mem
    try:
        ptr, val = int(ptr), int(val) & ((1 << 64) - 1)
    except (TypeError, ValueError, OverflowError):
        return txn.fail(C.EINVAL, "ptr and val must be integers")
    cmd = ptr & 7
    if cmd not in (MMU_NORMAL_PT_UPDATE, MMU_MACHPHYS_UPDATE, MMU_PT_UPDATE_PRESERVE_AD):
        return txn.fail(C.ENOSYS, f"ptr {ptr:#x} has command {cmd}: " + EXPLAIN["cmd"])
    mfn, idx = (ptr & ~7) >> 12, ((ptr & ~7) & 0xFFF) >> 3
    if not 0 <= mfn < mem.total_frames:
        return txn.fail(C.EINVAL, f"ptr {ptr:#x} names frame {mfn:#x}: " + EXPLAIN["range"])
    owner = int(mem.owner[mfn])
    if cmd == MMU_MACHPHYS_UPDATE:   # get_page_from_pagenr(mfn, FOREIGNDOM)
        if owner != txn.foreign.domid:
            return txn.fail(C.EINVAL, f"ptr {ptr:#x}: frame {mfn:#x} belongs to domain {owner}, not "
                                      f"FOREIGNDOM {txn.foreign.domid}: " + EXPLAIN["owner"])
        txn.st.m2p[mfn] = val
        return 0
    if owner != txn.dom.domid:       # get_page_from_pagenr(mfn, current->domain)
        return txn.fail(C.EINVAL, f"ptr {ptr:#x} is in frame {mfn:#x} of another domain ({owner}): "
                                  + EXPLAIN["pt_owner"])
    t, cnt = int(mem.page_type[mfn]), int(mem.type_count[mfn])
    old = int(mem.table(mfn)[idx])
    if cmd == MMU_PT_UPDATE_PRESERVE_AD:
        val = (val & ~(PTE_A | PTE_D)) | (old & (PTE_A | PTE_D))
    if t == PageType.L1 and cnt > 0:
        val = translate_foreign(txn.foreign, val)
    if t in _TABLE_TYPES and cnt > 0:
        rc = txn.get_entry(t, val, mfn)
        if rc < 0:
            return rc
        txn.put_entry(t, old, mfn)
        txn.write(mfn, idx, val)
        return 0
    if cnt > 0 and t != PageType.WRITABLE:
        return txn.fail(C.EINVAL, f"frame {mfn:#x} is {PageType(t).name}: " + EXPLAIN["type"])
    # not a live page table: Xen takes a writable type reference and writes the word
    rc = txn.get_type(mfn, PageType.WRITABLE)
    if rc < 0:
        return rc
    txn.write(mfn, idx, val)
    txn.put_type(mfn)
    return 0


foreign = set_foreigndom   # the foreigndom rule, shared with mmuext_op


def do_mmu_update(hv, caller, reqs, count=None, out=None, foreigndom=C.DOMID_SELF) -> int:
    """mmu_update(reqs, count, &done, foreigndom): stops at the first bad request.

    The tables edited are always the caller's; `foreigndom` names the owner of the frames
    the new L1 entries map (and of MMU_MACHPHYS_UPDATE's frame), as Xen 3.1's do_mmu_update.
    """
    fd = foreign(hv, caller, foreigndom)   # Xen's set_foreigndom comes before any copy_from_guest
    if isinstance(fd, int):
        return fd
    if fd is not caller:   # the trace says whose frames this call maps (dom0's reads of guest memory)
        hv.trace.record(time_ns=hv.now_ns, domid=caller.domid, kind="foreign_map",
                        detail=f"mmu_update foreigndom={fd.domid}", value=int(count or 0))
    fast = _vector_request(hv, caller, fd, reqs, count, out)
    if fast is not None:
        return fast
    copied = guest_array(reqs, count, out)
    if isinstance(copied, int):
        return copied
    reqs, count, out = copied
    done = 0
    out["done"] = 0
    for k in range(count):
        try:
            ptr, val = reqs[k]
        except (TypeError, ValueError, OverflowError):
            state(hv).last_error = f"request {k} is not a (ptr, val) pair"
            out["reason"] = state(hv).last_error
            return C.EINVAL
        rc = run_atomic(hv, caller, lambda txn: pt_update(txn, ptr, val), fd)
        if rc < 0:
            out["reason"] = f"request {k}: {state(hv).last_error}"
            return rc
        done += 1
        out["done"] = done
    return 0


def _vector_request(hv, caller, fd, reqs, count, out) -> int | None:
    """A numpy (n, 2) request array whose requests are all independent leaf updates (each slot
    once, into the caller's live L1s, targets FOREIGNDOM may map): applied at once, with the
    same result and counts as the loop below. Anything else returns None (the exact path)."""
    if not (isinstance(reqs, np.ndarray) and reqs.ndim == 2 and reqs.shape[1] == 2 and reqs.dtype.kind in "iu"):
        return None
    if out is not None and not isinstance(out, dict) or count is None or not 0 <= int(count) <= len(reqs):
        return None
    ptrs = reqs[:int(count), 0].astype(np.int64)
    vals = translate_foreign(fd, reqs[:int(count), 1].astype(np.int64))
    if not np.all(_eligible(hv, caller, ptrs, vals, fd.domid)):
        return None
    _apply_vector(hv, ptrs, vals)
    if out is not None:
        out["done"] = int(count)
    return 0


def _l1_slot(hv, dom, va: int):
    """(mfn, index) of the L1 entry for va in the domain's current tables, or an errno."""
    st = state(hv)
    root = st.cr3.get(dom.domid)
    if root is None:
        return C.EINVAL
    idx = va_indices(va)
    table = root
    for depth in range(3):
        pte = int(hv.memory.table(table)[idx[depth]])
        if not pte & PTE_P or pte & PTE_PS:
            return C.EINVAL
        table = pte_frame(pte)
    return table, idx[3]


def _readable(hv, dom, va: int) -> bool:
    """get_user(vmask, bmap_ptr) succeeds: va is canonical and mapped in the domain's tables."""
    if not is_canonical(va):
        return False
    slot = _l1_slot(hv, dom, va)
    return not isinstance(slot, int) and bool(int(hv.memory.table(slot[0])[slot[1]]) & PTE_P)


def do_update_va_mapping(hv, caller, va, val, flags=UVMF_NONE) -> int:
    """update_va_mapping(va, val, flags): change the L1 entry that maps va in the current tables.

    As Xen 3.1's do_update_va_mapping: the entry is updated first; then, for flush type
    UVMF_TLB_FLUSH or UVMF_INVLPG, the bits above it are UVMF_LOCAL (0), UVMF_ALL (4) or
    else a guest pointer to a vCPU bitmap (UVMF_MULTI), -EFAULT if it cannot be read.
    """
    try:
        va, val, flags = int(va), int(val), int(flags)
    except (TypeError, ValueError, OverflowError):
        return C.EINVAL
    st = state(hv)
    if not is_canonical(va):
        st.last_error = f"va {va:#x}: " + EXPLAIN["noncanonical"]
        return C.EINVAL
    slot = _l1_slot(hv, caller, va)
    if isinstance(slot, int):
        st.last_error = f"va {va:#x}: " + EXPLAIN["no_l1"]
        return slot
    rc = run_atomic(hv, caller, lambda txn: pt_update(txn, pt_maddr(*slot), val))
    ftype, bmap_ptr = flags & UVMF_FLUSHTYPE_MASK, flags & ~UVMF_FLUSHTYPE_MASK
    if ftype not in (1, 2):
        return rc   # UVMF_NONE (and the unused type 3): no flush, the other bits are not read
    if bmap_ptr not in (0, UVMF_ALL) and not _readable(hv, caller, bmap_ptr):
        st.last_error = f"flags {flags:#x}: the vCPU bitmap pointer {bmap_ptr:#x} (UVMF_MULTI) is not readable"
        return C.EFAULT
    st.tlb_flushes[caller.domid] = st.tlb_flushes.get(caller.domid, 0) + 1
    return rc
