"""PV direct paging's bookkeeping: page types, reference counts, and the undo journal.

Xen's rules (xen/arch/x86/mm.c) as `vmlab.paging.direct` describes them: every frame
has one type at a time and a `type_count`; making a frame an Ln table validates its
entries; an RW L1 entry takes a writable type reference on its target; pins hold a
type reference. `_Txn` applies one request's changes through an undo journal, so a
refused request (`run_atomic`) leaves every word, type, count, pin and CR3 as before.
The per-hypervisor state lives in `hv.subsystems["pv_paging"]` (`state(hv)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import PTE_G, PTE_P, PTE_PCD, PTE_PS, PTE_PWT, PTE_RW, pte_frame
from vmlab.hypervisor import constants as C

# xen/include/public/xen.h
MMU_NORMAL_PT_UPDATE = 0
MMU_MACHPHYS_UPDATE = 1
MMU_PT_UPDATE_PRESERVE_AD = 2
MMUEXT = {
    "PIN_L1_TABLE": 0, "PIN_L2_TABLE": 1, "PIN_L3_TABLE": 2, "PIN_L4_TABLE": 3, "UNPIN_TABLE": 4,
    "NEW_BASEPTR": 5, "TLB_FLUSH_LOCAL": 6, "INVLPG_LOCAL": 7, "TLB_FLUSH_MULTI": 8, "INVLPG_MULTI": 9,
    "TLB_FLUSH_ALL": 10, "INVLPG_ALL": 11, "FLUSH_CACHE": 12, "SET_LDT": 13, "NEW_USER_BASEPTR": 15,
}
UVMF_NONE = 0
UVMF_TLB_FLUSH = 1
UVMF_INVLPG = 2
UVMF_FLUSHTYPE_MASK = 3
UVMF_ALL = 1 << 2

# xen/arch/x86/mm.c: BASE_DISALLOW_MASK = 0xFFFFF198 & ~_PAGE_NX over the flag bits,
# i.e. PWT, PCD, PS and G; L1 entries may set G (L1_DISALLOW_MASK drops _PAGE_GLOBAL).
# PS in an L2 is refused because PV superpages need Xen's `allowsuperpage` option (off by default).
_BASE = PTE_PWT | PTE_PCD | PTE_PS | PTE_G
DISALLOW = {1: PTE_PWT | PTE_PCD | PTE_PS, 2: _BASE, 3: _BASE, 4: _BASE}
_TABLE_TYPES = (PageType.L1, PageType.L2, PageType.L3, PageType.L4)

EXPLAIN = {
    "cmd": "ptr's low 3 bits select the command: 0 normal PT update, 1 machphys update, 2 preserve-A/D; "
           "the rest are unknown (-ENOSYS) — an unaligned ptr reads as one",
    "range": "the frame is outside machine memory",
    "owner": "the frame belongs to another domain; map only your own frames, or hold a grant",
    "flags": "the entry sets a flag this level disallows (PWT/PCD/PS/G above L1)",
    "type": "the frame is in use as another type; a type changes only when its type_count is 0",
    "writable_pt": "an RW mapping of a page-table frame; map page tables read-only",
    "cycle": "a table refers to itself while being validated",
    "pinned": "the frame is already pinned (pins do not nest) or not pinned (unpin)",
    "cr3": "the table is the live CR3; load another base pointer first",
    "noncanonical": "the address is not canonical (bits 63..48 must copy bit 47)",
    "no_l1": "no L1 table maps this address; build the upper levels first",
}


def pt_maddr(mfn: int, index: int) -> int:
    """The machine address of entry `index` in table frame `mfn` (an mmu_update ptr)."""
    return (int(mfn) << 12) | (int(index) << 3)


@dataclass
class PVPagingState:
    """What Xen keeps per host for PV paging beyond struct page_info."""

    pinned: set = field(default_factory=set)          # mfns pinned by their owners
    cr3: dict = field(default_factory=dict)           # domid -> mfn of the L4 in CR3
    user_cr3: dict = field(default_factory=dict)      # domid -> NEW_USER_BASEPTR
    m2p: dict = field(default_factory=dict)           # mfn -> pfn (MMU_MACHPHYS_UPDATE)
    tlb_flushes: dict = field(default_factory=dict)   # domid -> flushes requested
    last_error: str = ""                              # the reason of the last refusal


class _Txn:
    """An undo journal over page_info fields, table words and pins."""

    def __init__(self, hv, st: PVPagingState, dom) -> None:
        self.mem = hv.memory
        self.hv = hv
        self.st = st
        self.dom = dom
        self.log: list = []
        self.validating: set = set()
        self.reason = ""

    def fail(self, rc: int, reason: str) -> int:
        self.reason = self.reason or reason
        return rc

    def set_type(self, mfn: int, t: int) -> None:
        self.log.append(("type", mfn, int(self.mem.page_type[mfn])))
        self.mem.page_type[mfn] = t

    def add_type(self, mfn: int, d: int) -> None:
        self.log.append(("tc", mfn, d))
        self.mem.type_count[mfn] += d

    def add_tot(self, mfn: int, d: int) -> None:
        self.log.append(("tot", mfn, d))
        self.mem.tot_count[mfn] += d

    def write(self, mfn: int, i: int, val: int) -> None:
        t = self.mem.table(mfn)
        self.log.append(("w", mfn, i, int(t[i])))
        t[i] = np.uint64(val)

    def pin(self, mfn: int, on: bool) -> None:
        self.log.append(("pin", mfn, on))
        (self.st.pinned.add if on else self.st.pinned.discard)(mfn)

    def rollback(self) -> None:
        m = self.mem
        for rec in reversed(self.log):
            kind = rec[0]
            if kind == "type":
                m.page_type[rec[1]] = rec[2]
            elif kind == "tc":
                m.type_count[rec[1]] -= rec[2]
            elif kind == "tot":
                m.tot_count[rec[1]] -= rec[2]
            elif kind == "w":
                m.table(rec[1])[rec[2]] = np.uint64(rec[3])
            elif kind == "pin":
                (self.st.pinned.discard if rec[2] else self.st.pinned.add)(rec[1])
        self.log.clear()

    # --- Xen's reference rules --------------------------------------------------
    def may_map(self, mfn: int) -> bool:
        owner = int(self.mem.owner[mfn])
        if owner == self.dom.domid or self.dom.privileged and owner >= 0:
            return True
        grant = getattr(self.hv, "grant_allows", None)  # the grant-table model's hook, if installed
        return bool(grant and grant(self.dom.domid, mfn))

    def get_page(self, mfn: int) -> int:
        if not 0 <= mfn < self.mem.total_frames:
            return self.fail(C.EINVAL, f"frame {mfn:#x}: " + EXPLAIN["range"])
        if not self.may_map(mfn):
            return self.fail(C.EINVAL, f"frame {mfn:#x} (owner {int(self.mem.owner[mfn])}): " + EXPLAIN["owner"])
        self.add_tot(mfn, 1)
        return 0

    def get_type(self, mfn: int, t: int) -> int:
        m = self.mem
        cur, cnt = int(m.page_type[mfn]), int(m.type_count[mfn])
        if mfn in self.validating:
            # Xen has already given the frame its new type (not yet validated): any other type conflicts
            reason = EXPLAIN["writable_pt"] if t == PageType.WRITABLE else EXPLAIN["cycle"]
            return self.fail(C.EINVAL, f"frame {mfn:#x} is being validated as a page table: {reason}")
        if cnt > 0:
            if cur != t:
                what = "an RW mapping of page-table frame" if t == PageType.WRITABLE else "frame"
                reason = EXPLAIN["writable_pt"] if t == PageType.WRITABLE and cur in _TABLE_TYPES else EXPLAIN["type"]
                return self.fail(C.EINVAL, f"{what} {mfn:#x} is {PageType(cur).name} (type_count {cnt}), "
                                           f"wanted {PageType(t).name}: {reason}")
            self.add_type(mfn, 1)
            return 0
        if t in _TABLE_TYPES:
            self.validating.add(mfn)
            try:
                words = m.table(mfn)
                for i in np.flatnonzero(words & np.uint64(PTE_P)).tolist():
                    rc = self.get_entry(int(t), int(words[i]))
                    if rc < 0:
                        return rc
            finally:
                self.validating.discard(mfn)
        if cur != t:
            self.set_type(mfn, t)
        self.add_type(mfn, 1)
        return 0

    def put_type(self, mfn: int) -> None:
        self.add_type(mfn, -1)
        t = int(self.mem.page_type[mfn])
        if self.mem.type_count[mfn] == 0 and t in _TABLE_TYPES:
            words = self.mem.table(mfn)  # devalidate: drop what the entries hold
            for i in np.flatnonzero(words & np.uint64(PTE_P)).tolist():
                self.put_entry(t, int(words[i]))

    def get_entry(self, level: int, pte: int) -> int:
        if not pte & PTE_P:
            return 0
        bad = pte & DISALLOW[level] & 0xFFF
        if bad:
            return self.fail(C.EINVAL, f"L{level} entry {pte:#x} sets flags {bad:#x}: " + EXPLAIN["flags"])
        mfn = pte_frame(pte)
        rc = self.get_page(mfn)
        if rc < 0:
            return rc
        if level == 1:
            return self.get_type(mfn, PageType.WRITABLE) if pte & PTE_RW else 0
        return self.get_type(mfn, level - 1)

    def put_entry(self, level: int, pte: int) -> None:
        if not pte & PTE_P:
            return
        mfn = pte_frame(pte)
        if level > 1 or pte & PTE_RW:
            self.put_type(mfn)
        self.add_tot(mfn, -1)


def state(hv) -> "PVPagingState":
    """This hypervisor's PV paging state (no hypercalls registered: see `direct.install`)."""
    return hv.subsystem("pv_paging", PVPagingState)


def mark_dirty(hv, dom, mfn: int) -> None:
    log = getattr(dom, "dirty_bitmap", None)
    if log is not None:
        pfns = np.flatnonzero(dom.p2m == mfn)
        log[pfns] = True


def run_atomic(hv, dom, fn) -> int:
    """Run one request atomically: apply, or roll back and remember why."""
    st = state(hv)
    txn = _Txn(hv, st, dom)
    try:
        rc = fn(txn)
    except (TypeError, ValueError, IndexError, OverflowError) as e:
        rc = txn.fail(C.EINVAL, f"malformed request: {e}")
    if rc < 0:
        # CR3 changes are journalled too
        for rec in reversed(txn.log):
            if rec[0] == "cr3":
                if rec[3] is None:
                    rec[1].pop(rec[2], None)
                else:
                    rec[1][rec[2]] = rec[3]
        txn.rollback()
        st.last_error = txn.reason
    return rc


def guest_array(items, count, out) -> tuple[list, int, dict] | int:
    """Copy a guest's request array in (Xen's copy_from_guest): (items, count, out) or -EINVAL/-EFAULT.

    `items` must be a sequence (else -EFAULT: Xen cannot read the buffer), `count` a
    whole number within it, and `out` (where results are written back) a dict or None.
    """
    if out is not None and not isinstance(out, dict):
        return C.EFAULT
    if items is None:
        items = []
    if isinstance(items, (str, bytes)) or not hasattr(items, "__len__") or not hasattr(items, "__getitem__"):
        return C.EFAULT
    if count is None:
        count = len(items)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= len(items):
        return C.EINVAL
    return list(items), int(count), (out if out is not None else {})


def domain_arg(hv, caller, foreigndom):
    """The domain a request acts on: the caller, or (privileged callers only) `foreigndom`."""
    if foreigndom is None or (isinstance(foreigndom, (int, np.integer)) and
                              foreigndom in (C.DOMID_SELF, caller.domid)):
        return caller
    if not isinstance(foreigndom, (int, np.integer)):
        return C.EINVAL
    if not caller.privileged:
        return C.EPERM
    return hv.domains.get(int(foreigndom), C.ESRCH)

