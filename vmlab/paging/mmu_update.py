"""mmu_update and update_va_mapping: one PTE write, validated against Xen's type rules.

`pt_update` is one request (mod_l1..l4_entry in xen/arch/x86/mm.c); the handlers stop
at the first bad request and report `done`, as Xen's do_mmu_update does.
"""

from __future__ import annotations

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_A, PTE_D, PTE_P, PTE_PS, is_canonical, pte_frame, va_indices
from vmlab.hypervisor import constants as C
from vmlab.paging.pv_types import (_TABLE_TYPES, EXPLAIN, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE,
                                   MMU_PT_UPDATE_PRESERVE_AD, UVMF_ALL, UVMF_FLUSHTYPE_MASK, UVMF_NONE, _Txn,
                                   domain_arg, guest_array, pt_maddr, run_atomic, state)

__all__ = ["pt_update", "foreign", "do_mmu_update", "do_update_va_mapping"]


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
    if owner != txn.dom.domid and not (txn.dom.privileged and owner >= 0):
        return txn.fail(C.EINVAL, f"ptr {ptr:#x} is in frame {mfn:#x} of domain {owner}: " + EXPLAIN["owner"])
    if cmd == MMU_MACHPHYS_UPDATE:
        txn.st.m2p[mfn] = val
        return 0
    t, cnt = int(mem.page_type[mfn]), int(mem.type_count[mfn])
    old = int(mem.table(mfn)[idx])
    if cmd == MMU_PT_UPDATE_PRESERVE_AD:
        val = (val & ~(PTE_A | PTE_D)) | (old & (PTE_A | PTE_D))
    if t in _TABLE_TYPES and cnt > 0:
        rc = txn.get_entry(t, val)
        if rc < 0:
            return rc
        txn.put_entry(t, old)
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


foreign = domain_arg   # the foreigndom rule, shared with mmuext_op


def do_mmu_update(hv, caller, reqs, count=None, out=None, foreigndom=C.DOMID_SELF) -> int:
    """mmu_update(reqs, count, &done, foreigndom): stops at the first bad request."""
    dom = foreign(hv, caller, foreigndom)   # Xen's set_foreigndom comes before any copy_from_guest
    if isinstance(dom, int):
        return dom
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
        rc = run_atomic(hv, dom, lambda txn: pt_update(txn, ptr, val))
        if rc < 0:
            out["reason"] = f"request {k}: {state(hv).last_error}"
            return rc
        done += 1
        out["done"] = done
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


def do_update_va_mapping(hv, caller, va, val, flags=UVMF_NONE) -> int:
    """update_va_mapping(va, val, flags): change the L1 entry that maps va in the current tables."""
    try:
        va, val, flags = int(va), int(val), int(flags)
    except (TypeError, ValueError, OverflowError):
        return C.EINVAL
    st = state(hv)
    if not is_canonical(va):
        st.last_error = f"va {va:#x}: " + EXPLAIN["noncanonical"]
        return C.EINVAL
    if flags & ~(UVMF_FLUSHTYPE_MASK | UVMF_ALL) or flags & UVMF_FLUSHTYPE_MASK == 3:
        st.last_error = f"flags {flags:#x} are not UVMF_NONE/TLB_FLUSH/INVLPG optionally | UVMF_ALL"
        return C.EINVAL
    slot = _l1_slot(hv, caller, va)
    if isinstance(slot, int):
        st.last_error = f"va {va:#x}: " + EXPLAIN["no_l1"]
        return slot
    rc = run_atomic(hv, caller, lambda txn: pt_update(txn, pt_maddr(*slot), val))
    if rc == 0 and flags & UVMF_FLUSHTYPE_MASK:
        st.tlb_flushes[caller.domid] = st.tlb_flushes.get(caller.domid, 0) + 1
    return rc


