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

`apply_updates` is the bulk path the guest kernel (and the execution-paths model) uses:
k queued PTE updates flushed in batches of b, with per-entry results identical to
issuing the batches one by one, vectorized where the updates are independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import (PTE_G, PTE_P, PTE_PCD, PTE_PS, PTE_PWT, PTE_RW, PTE_A, PTE_D,
                                PTE_FRAME_MASK, is_canonical, pte_frame, va_indices)
from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypercalls import HypercallEntry

__all__ = [
    "MMU_NORMAL_PT_UPDATE", "MMU_MACHPHYS_UPDATE", "MMU_PT_UPDATE_PRESERVE_AD",
    "MMUEXT", "UVMF_NONE", "UVMF_TLB_FLUSH", "UVMF_INVLPG", "DISALLOW",
    "PVPagingState", "install", "pv_state", "BatchResult", "apply_updates", "pv_apply_updates",
    "pt_maddr", "explain", "audit", "apply_ext_op",
]

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


def pv_state(hv) -> PVPagingState:
    """The host's PV paging state (created, and the hypercalls registered, on first use)."""
    st = hv.subsystems.get("pv_paging")
    if st is None:
        install(hv)
        st = hv.subsystems["pv_paging"]
    return st


def _mark_dirty(hv, dom, mfn: int) -> None:
    log = getattr(dom, "dirty_bitmap", None)
    if log is not None:
        pfns = np.flatnonzero(dom.p2m == mfn)
        log[pfns] = True


# --- one request ----------------------------------------------------------------

def _pt_update(txn: _Txn, ptr: int, val: int) -> int:
    """One mmu_update request; on failure the caller rolls txn back."""
    mem = txn.mem
    try:
        ptr, val = int(ptr), int(val) & ((1 << 64) - 1)
    except (TypeError, ValueError):
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


def _ext_op(hv, txn: _Txn, cmd: int, arg) -> int:
    st, dom, mem = txn.st, txn.dom, txn.mem
    names = {v: k for k, v in MMUEXT.items()}
    if cmd not in names:
        return txn.fail(C.ENOSYS, f"mmuext cmd {cmd} is unknown; use one of {sorted(MMUEXT.values())}")
    name = names[cmd]
    if name.startswith(("TLB_FLUSH", "FLUSH_CACHE")):
        st.tlb_flushes[dom.domid] = st.tlb_flushes.get(dom.domid, 0) + 1
        return 0
    if name.startswith("INVLPG"):
        if not isinstance(arg, (int, np.integer)) or not is_canonical(int(arg)):
            return txn.fail(C.EINVAL, f"linear_addr {arg!r}: " + EXPLAIN["noncanonical"])
        return 0
    if name == "SET_LDT":
        return txn.fail(C.ENOSYS, "SET_LDT is not modelled")
    try:
        mfn = int(arg)
    except (TypeError, ValueError):
        return txn.fail(C.EINVAL, f"mfn {arg!r} is not a frame number")
    if not 0 <= mfn < mem.total_frames:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["range"])
    if int(mem.owner[mfn]) != dom.domid:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x} (owner {int(mem.owner[mfn])}): " + EXPLAIN["owner"])
    if name.startswith("PIN_L"):
        if mfn in st.pinned:
            return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["pinned"])
        rc = txn.get_page(mfn)
        if rc < 0:
            return rc
        rc = txn.get_type(mfn, int(name[5]))
        if rc < 0:
            return rc
        txn.pin(mfn, True)
        _mark_dirty(hv, dom, mfn)
        return 0
    if name == "UNPIN_TABLE":
        if mfn not in st.pinned:
            return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["pinned"])
        if st.cr3.get(dom.domid) == mfn or st.user_cr3.get(dom.domid) == mfn:
            return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["cr3"])
        txn.pin(mfn, False)
        txn.put_type(mfn)
        txn.add_tot(mfn, -1)
        _mark_dirty(hv, dom, mfn)
        return 0
    # NEW_BASEPTR / NEW_USER_BASEPTR: CR3 holds a validated-L4 reference
    table = st.cr3 if name == "NEW_BASEPTR" else st.user_cr3
    rc = txn.get_page(mfn)
    if rc < 0:
        return rc
    rc = txn.get_type(mfn, PageType.L4)
    if rc < 0:
        return rc
    old = table.get(dom.domid)
    if old is not None:
        txn.put_type(old)
        txn.add_tot(old, -1)
    txn.log.append(("cr3", table, dom.domid, old))
    table[dom.domid] = mfn
    st.tlb_flushes[dom.domid] = st.tlb_flushes.get(dom.domid, 0) + 1
    return 0


def _run(hv, dom, fn) -> int:
    """Run one request atomically: apply, or roll back and remember why."""
    st = pv_state(hv)
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


# --- hypercall handlers ------------------------------------------------------------

def _foreign(hv, caller, foreigndom):
    if foreigndom in (C.DOMID_SELF, caller.domid, None):
        return caller
    if not caller.privileged:
        return C.EPERM
    return hv.domains.get(foreigndom, C.ESRCH)


def do_mmu_update(hv, caller, reqs, count=None, out=None, foreigndom=C.DOMID_SELF) -> int:
    """mmu_update(reqs, count, &done, foreigndom): stops at the first bad request."""
    out = out if out is not None else {}
    dom = _foreign(hv, caller, foreigndom)
    if isinstance(dom, int):
        return dom
    reqs = list(reqs) if reqs is not None else []
    count = len(reqs) if count is None else int(count)
    if count < 0 or count > len(reqs):
        return C.EINVAL
    done = 0
    out["done"] = 0
    for k in range(count):
        try:
            ptr, val = reqs[k]
        except (TypeError, ValueError):
            pv_state(hv).last_error = f"request {k} is not a (ptr, val) pair"
            out["reason"] = pv_state(hv).last_error
            return C.EINVAL
        rc = _run(hv, dom, lambda txn: _pt_update(txn, ptr, val))
        if rc < 0:
            out["reason"] = f"request {k}: {pv_state(hv).last_error}"
            return rc
        done += 1
        out["done"] = done
    return 0


def do_mmuext_op(hv, caller, ops, count=None, out=None, foreigndom=C.DOMID_SELF) -> int:
    """mmuext_op(ops, count, &done, foreigndom): ops are (cmd, mfn-or-linear_addr) pairs."""
    out = out if out is not None else {}
    dom = _foreign(hv, caller, foreigndom)
    if isinstance(dom, int):
        return dom
    ops = list(ops) if ops is not None else []
    count = len(ops) if count is None else int(count)
    if count < 0 or count > len(ops):
        return C.EINVAL
    out["done"] = 0
    for k in range(count):
        try:
            cmd, arg = ops[k]
        except (TypeError, ValueError):
            out["reason"] = f"op {k} is not a (cmd, arg) pair"
            return C.EINVAL
        rc = _run(hv, dom, lambda txn: _ext_op(hv, txn, int(cmd), arg))
        if rc < 0:
            out["reason"] = f"op {k}: {pv_state(hv).last_error}"
            return rc
        out["done"] = k + 1
    return 0


def _l1_slot(hv, dom, va: int):
    """(mfn, index) of the L1 entry for va in the domain's current tables, or an errno."""
    st = pv_state(hv)
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
    except (TypeError, ValueError):
        return C.EINVAL
    st = pv_state(hv)
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
    rc = _run(hv, caller, lambda txn: _pt_update(txn, pt_maddr(*slot), val))
    if rc == 0 and flags & UVMF_FLUSHTYPE_MASK:
        st.tlb_flushes[caller.domid] = st.tlb_flushes.get(caller.domid, 0) + 1
    return rc


def do_multicall(hv, caller, entries, count=None, out=None) -> int:
    """multicall(list, n): run each entry in order, write its result; a nested multicall is -EINVAL."""
    out = out if out is not None else {}
    entries = list(entries) if entries is not None else []
    count = len(entries) if count is None else int(count)
    if count < 0 or count > len(entries):
        return C.EINVAL
    results = []
    for k in range(count):
        try:
            op, args = entries[k][0], tuple(entries[k][1])
        except (TypeError, IndexError):
            results.append(C.EINVAL)
            continue
        if op in ("multicall", C.HYPERCALL_NUMBERS["multicall"]):
            rc = C.EINVAL  # multicalls do not nest
        else:
            _, rc = hv.dispatch(caller, op, *args)
        results.append(rc)
    out["results"] = results
    out["done"] = count
    return 0


def _guarded(fn):
    """A malformed argument gets -EINVAL (with a reason), never a Python exception out of Xen."""
    def handler(hv, caller, *args, **kwargs):
        try:
            return fn(hv, caller, *args, **kwargs)
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, AttributeError) as e:
            pv_state(hv).last_error = f"malformed {fn.__name__.removeprefix('do_')} request: {e}"
            return C.EINVAL
    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def apply_ext_op(hv, domid: int, cmd: int, arg) -> int:
    """One mmuext_op request from `domid`, atomically (0 or -errno; `explain(hv)` says why)."""
    dom = hv.domains[domid]
    return _run(hv, dom, lambda txn: _ext_op(hv, txn, int(cmd), arg))


def install(hv) -> None:
    """Register mmu_update, mmuext_op, update_va_mapping and multicall on `hv`."""
    hv.subsystem("pv_paging", PVPagingState)
    for name, fn in (("mmu_update", do_mmu_update), ("mmuext_op", do_mmuext_op),
                     ("update_va_mapping", do_update_va_mapping), ("multicall", do_multicall)):
        hv.register(HypercallEntry(name, C.HYPERCALL_NUMBERS[name], _guarded(fn)))


def explain(hv) -> str:
    """Why the last refused paging request was refused (one line)."""
    return pv_state(hv).last_error


# --- the bulk path ------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True, slots=True)
class BatchResult:
    """What flushing k queued PTE updates in batches of b cost and produced."""

    updates: int                 # PTE updates submitted
    applied: int                 # of those, how many succeeded
    hypercalls: int              # traps into Xen (one per batch; a batch of 1 is a plain mmu_update)
    multicalls: int              # of those, multicall hypercalls
    batch_sizes: tuple           # entries per hypercall, in order (the batch-size histogram's input)
    results: np.ndarray          # per-update rc (0 or a negative errno)
    vectorized: int              # updates taken by the vectorized path (a performance detail)


def _eligible(hv, dom, ptrs: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Updates whose effect does not depend on their order: leaf writes into live L1s of the caller."""
    mem = hv.memory
    n = mem.total_frames
    cmd = ptrs & 7
    mfn = ptrs >> 12
    ok = ((cmd == MMU_NORMAL_PT_UPDATE) | (cmd == MMU_PT_UPDATE_PRESERVE_AD)) & (mfn >= 0) & (mfn < n)
    m = np.where(ok, mfn, 0)
    ok &= (mem.owner[m] == dom.domid) & (mem.page_type[m] == PageType.L1) & (mem.type_count[m] > 0)
    uvals = vals.astype(np.uint64)
    present = (uvals & np.uint64(PTE_P)) != 0
    tgt = ((uvals & np.uint64(PTE_FRAME_MASK)) >> np.uint64(12)).astype(np.int64)
    tin = (tgt >= 0) & (tgt < n)
    t = np.where(tin, tgt, 0)
    good_target = tin & (mem.owner[t] == dom.domid) & ((uvals & np.uint64(DISALLOW[1])) == 0)
    rw = (uvals & np.uint64(PTE_RW)) != 0
    good_target &= ~rw | (mem.page_type[t] == PageType.WRITABLE) | (mem.page_type[t] == PageType.NONE)
    ok &= ~present | good_target
    # repeated slots depend on order: send them down the exact path
    _, inv, cnt = np.unique(ptrs & ~7, return_inverse=True, return_counts=True)
    ok &= cnt[inv] == 1
    return ok


def _apply_vector(hv, ptrs: np.ndarray, vals: np.ndarray) -> None:
    mem = hv.memory
    slots = ptrs & ~7
    mfns = slots >> 12
    idx = (slots & 0xFFF) >> 3
    uvals = vals.astype(np.uint64)
    old = np.empty(ptrs.size, dtype=np.uint64)
    order = np.argsort(mfns, kind="stable")
    sm = mfns[order]
    bounds = np.flatnonzero(np.concatenate(([True], sm[1:] != sm[:-1], [True])))
    tables = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        sel = order[a:b]
        tbl = mem.table(int(sm[a]))
        old[sel] = tbl[idx[sel]]
        tables.append((tbl, sel))
    preserve = (ptrs & 7) == MMU_PT_UPDATE_PRESERVE_AD
    ad = np.uint64(PTE_A | PTE_D)
    uvals = np.where(preserve, (uvals & ~ad) | (old & ad), uvals)
    P, RW, FM = np.uint64(PTE_P), np.uint64(PTE_RW), np.uint64(PTE_FRAME_MASK)
    for arr, sign in ((uvals, 1), (old, -1)):
        pres = (arr & P) != 0
        frames = ((arr[pres] & FM) >> np.uint64(12)).astype(np.int64)
        u, c = np.unique(frames, return_counts=True)
        mem.tot_count[u] += sign * c.astype(np.int32)
        rwf = ((arr[pres] & RW) != 0)
        if sign > 0:   # first writable use of an untyped frame types it PGT_writable
            mem.page_type[frames[rwf]] = PageType.WRITABLE
        u, c = np.unique(frames[rwf], return_counts=True)
        mem.type_count[u] += sign * c.astype(np.int32)
    for tbl, sel in tables:
        tbl[idx[sel]] = uvals[sel]


def apply_updates(hv, domid: int, ptrs, vals, *, batch_size: int = 32, chunk: int = 65536,
                  record: bool = True) -> BatchResult:
    """Flush k PTE updates (mmu_update requests) from `domid` in batches of `batch_size`.

    Equivalent to issuing ceil(k / b) hypercalls — multicall of b single-request
    mmu_updates, or a plain mmu_update when a batch holds one entry (Linux's
    xen_mc_flush does the same) — and returns per-update results: a bad entry gets its
    errno, the others are applied (a multicall runs every entry). Independent leaf
    updates are applied with numpy; anything else goes through the exact path.
    """
    pv_state(hv)
    dom = hv.domains[domid]
    ptrs = np.asarray(ptrs, dtype=np.int64).ravel()
    vals = np.asarray(vals, dtype=np.uint64).ravel().astype(np.int64) if np.asarray(vals).dtype == np.uint64 \
        else np.asarray(vals, dtype=np.int64).ravel()
    if ptrs.size != vals.size:
        raise ValueError(f"{ptrs.size} ptrs but {vals.size} vals; pass one val per ptr")
    if batch_size < 1:
        from vmlab.errors import ConfigError
        raise ConfigError(f"batch_size={batch_size} must be >= 1 (Linux's MC_BATCH is 32)")
    k = ptrs.size
    results = np.zeros(k, dtype=np.int64)
    pos = vec = 0
    step = 64   # adaptive: small after an order-dependent update, doubling while all are independent
    while pos < k:
        end = min(pos + step, k)
        ok = _eligible(hv, dom, ptrs[pos:end], vals[pos:end])
        bad = np.flatnonzero(~ok)
        stop = pos + (int(bad[0]) if bad.size else end - pos)
        if stop > pos:
            _apply_vector(hv, ptrs[pos:stop], vals[pos:stop])
            vec += stop - pos
        if stop < end:
            # the whole run of order-dependent updates goes down the exact path, in order
            run_end = stop + 1
            while run_end < end and not ok[run_end - pos]:
                run_end += 1
            for j in range(stop, run_end):
                p, v = int(ptrs[j]), int(vals[j]) & ((1 << 64) - 1)
                results[j] = _run(hv, dom, lambda txn: _pt_update(txn, p, v))
            pos = run_end
            step = 64
        else:
            pos = end
            step = min(step * 2, chunk)
    sizes = tuple([batch_size] * (k // batch_size) + ([k % batch_size] if k % batch_size else []))
    if record:
        for s in sizes:
            name = "multicall" if s > 1 else "mmu_update(1)"
            hv.trace.record(time_ns=hv.now_ns, domid=domid, kind="hypercall", detail=name, value=s)
    return BatchResult(updates=k, applied=int(np.count_nonzero(results == 0)), hypercalls=len(sizes),
                       multicalls=sum(1 for s in sizes if s > 1), batch_sizes=sizes, results=results,
                       vectorized=vec)


def pv_apply_updates(hv, domid: int, ptrs, vals, batch_size: int = 32) -> dict:
    """`apply_updates` as plain numbers: {'updates','applied','hypercalls','multicalls','failed'}."""
    r = apply_updates(hv, domid, ptrs, vals, batch_size=batch_size)
    return {"updates": r.updates, "applied": r.applied, "hypercalls": r.hypercalls,
            "multicalls": r.multicalls, "failed": r.updates - r.applied}


def audit(hv, domid: int) -> list[str]:
    """Recount every reference from the domain's live tables, pins and CR3; list what disagrees.

    An empty list means Xen's invariants hold: each live table's entries map only frames the
    domain may map, RW leaf entries point at writable frames, and every frame's type_count and
    tot_count equal the references that really exist.
    """
    mem = hv.memory
    st = pv_state(hv)
    dom = hv.domains[domid]
    problems: list[str] = []
    live = [int(m) for m in np.flatnonzero((mem.owner == domid) & (mem.type_count > 0)
                                           & np.isin(mem.page_type, [1, 2, 3, 4]))]
    want_type: dict[int, int] = {}
    want_tot: dict[int, int] = {}
    for m in live:
        level = int(mem.page_type[m])
        words = mem.table(m)
        for i in np.flatnonzero(words & np.uint64(PTE_P)).tolist():
            e = int(words[i])
            f = pte_frame(e)
            if not 0 <= f < mem.total_frames or (int(mem.owner[f]) != domid and not dom.privileged):
                problems.append(f"L{level} {m:#x}[{i}] maps frame {f:#x} owned by {int(mem.owner[f]) if 0 <= f < mem.total_frames else '?'}")
                continue
            want_tot[f] = want_tot.get(f, 0) + 1
            if level == 1:
                if e & PTE_RW:
                    if int(mem.page_type[f]) != PageType.WRITABLE:
                        problems.append(f"L1 {m:#x}[{i}] maps {PageType(int(mem.page_type[f])).name} frame {f:#x} writable")
                    want_type[f] = want_type.get(f, 0) + 1
            else:
                if int(mem.page_type[f]) != level - 1:
                    problems.append(f"L{level} {m:#x}[{i}] points at a {PageType(int(mem.page_type[f])).name} frame {f:#x}")
                want_type[f] = want_type.get(f, 0) + 1
    for m in st.pinned:
        if int(mem.owner[m]) == domid:
            want_type[m] = want_type.get(m, 0) + 1
            want_tot[m] = want_tot.get(m, 0) + 1
    for table in (st.cr3, st.user_cr3):
        m = table.get(domid)
        if m is not None:
            want_type[m] = want_type.get(m, 0) + 1
            want_tot[m] = want_tot.get(m, 0) + 1
    for m in np.flatnonzero((mem.owner == domid) & ((mem.type_count != 0) | (mem.tot_count != 0))).tolist():
        want_type.setdefault(m, 0)
        want_tot.setdefault(m, 0)
    for m, n in want_type.items():
        if int(mem.owner[m]) == domid and int(mem.type_count[m]) != n:
            problems.append(f"frame {m:#x}: type_count {int(mem.type_count[m])} but {n} typed references exist")
    for m, n in want_tot.items():
        if int(mem.owner[m]) == domid and int(mem.tot_count[m]) != n:
            problems.append(f"frame {m:#x}: tot_count {int(mem.tot_count[m])} but {n} references exist")
    return problems
