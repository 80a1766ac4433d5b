"""mmuext_op: pins, unpins, CR3 loads and TLB flushes, one table row per command.

Each command is a function (txn, name, arg) -> rc in `EXT_OPS`, dispatched like the
hypercall table (Xen's do_mmuext_op switch); the frame-taking commands share
`_owned_frame`'s checks.
"""

from __future__ import annotations

import numpy as np

from vmlab.hardware.memory import PageType
from vmlab.hardware.mmu import is_canonical
from vmlab.hypervisor import constants as C
from vmlab.paging.mmu_update import foreign
from vmlab.paging.pv_types import EXPLAIN, MMUEXT, _Txn, guest_array, mark_dirty, run_atomic, state

__all__ = ["EXT_OPS", "ext_op", "do_mmuext_op", "apply_ext_op"]


def _flush(hv, txn: _Txn, name: str, arg) -> int:
    """TLB_FLUSH_* / FLUSH_CACHE: counted per domain."""
    txn.st.tlb_flushes[txn.dom.domid] = txn.st.tlb_flushes.get(txn.dom.domid, 0) + 1
    return 0


def _invlpg(hv, txn: _Txn, name: str, arg) -> int:
    if not isinstance(arg, (int, np.integer)) or not is_canonical(int(arg)):
        return txn.fail(C.EINVAL, f"linear_addr {arg!r}: " + EXPLAIN["noncanonical"])
    return 0


def _set_ldt(hv, txn: _Txn, name: str, arg) -> int:
    return txn.fail(C.ENOSYS, "SET_LDT is not modelled")


def _owned_frame(txn: _Txn, arg) -> int:
    """The mfn `arg` names if it is a frame the caller owns, else txn.fail's -EINVAL."""
    mem = txn.mem
    try:
        mfn = int(arg)
    except (TypeError, ValueError, OverflowError):
        return txn.fail(C.EINVAL, f"mfn {arg!r} is not a frame number")
    if not 0 <= mfn < mem.total_frames:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["range"])
    if int(mem.owner[mfn]) != txn.dom.domid:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x} (owner {int(mem.owner[mfn])}): " + EXPLAIN["owner"])
    return mfn


def _pin(hv, txn: _Txn, name: str, arg) -> int:
    """PIN_Ln_TABLE: validate as an Ln table and hold a type reference; pins do not nest."""
    mfn = _owned_frame(txn, arg)
    if mfn < 0:
        return mfn
    if mfn in txn.st.pinned:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["pinned"])
    rc = txn.get_page(mfn)
    if rc >= 0:
        rc = txn.get_type(mfn, int(name[5]))
    if rc < 0:
        return rc
    txn.pin(mfn, True)
    mark_dirty(hv, txn.dom, mfn)
    return 0


def _unpin(hv, txn: _Txn, name: str, arg) -> int:
    """UNPIN_TABLE: only a pinned table, and never the one in CR3."""
    mfn = _owned_frame(txn, arg)
    if mfn < 0:
        return mfn
    st, domid = txn.st, txn.dom.domid
    if mfn not in st.pinned:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["pinned"])
    if st.cr3.get(domid) == mfn or st.user_cr3.get(domid) == mfn:
        return txn.fail(C.EINVAL, f"mfn {mfn:#x}: " + EXPLAIN["cr3"])
    txn.pin(mfn, False)
    txn.put_type(mfn)
    txn.add_tot(mfn, -1)
    mark_dirty(hv, txn.dom, mfn)
    return 0


def _new_baseptr(hv, txn: _Txn, name: str, arg) -> int:
    """NEW_BASEPTR / NEW_USER_BASEPTR: CR3 holds a validated-L4 reference (journalled)."""
    mfn = _owned_frame(txn, arg)
    if mfn < 0:
        return mfn
    st, domid = txn.st, txn.dom.domid
    table = st.cr3 if name == "NEW_BASEPTR" else st.user_cr3
    rc = txn.get_page(mfn)
    if rc >= 0:
        rc = txn.get_type(mfn, PageType.L4)
    if rc < 0:
        return rc
    old = table.get(domid)
    if old is not None:
        txn.put_type(old)
        txn.add_tot(old, -1)
    txn.log.append(("cr3", table, domid, old))
    table[domid] = mfn
    st.tlb_flushes[domid] = st.tlb_flushes.get(domid, 0) + 1
    return 0


def _handler_for(name: str):
    if name.startswith(("TLB_FLUSH", "FLUSH_CACHE")):
        return _flush
    if name.startswith("INVLPG"):
        return _invlpg
    if name.startswith("PIN_L"):
        return _pin
    return {"SET_LDT": _set_ldt, "UNPIN_TABLE": _unpin, "NEW_BASEPTR": _new_baseptr,
            "NEW_USER_BASEPTR": _new_baseptr}[name]


# cmd number -> (name, handler), for every MMUEXT_* command vmlab knows
EXT_OPS: dict[int, tuple[str, object]] = {cmd: (name, _handler_for(name)) for name, cmd in MMUEXT.items()}


def ext_op(hv, txn: _Txn, cmd: int, arg) -> int:
    """One mmuext_op command inside a transaction."""
    row = EXT_OPS.get(cmd)
    if row is None:
        return txn.fail(C.ENOSYS, f"mmuext cmd {cmd} is unknown; use one of {sorted(MMUEXT.values())}")
    name, handler = row
    return handler(hv, txn, name, arg)


def do_mmuext_op(hv, caller, ops, count=None, out=None, foreigndom=C.DOMID_SELF) -> int:
    """mmuext_op(ops, count, &done, foreigndom): ops are (cmd, mfn-or-linear_addr) pairs."""
    dom = foreign(hv, caller, foreigndom)   # Xen's set_foreigndom comes before any copy_from_guest
    if isinstance(dom, int):
        return dom
    copied = guest_array(ops, count, out)
    if isinstance(copied, int):
        return copied
    ops, count, out = copied
    out["done"] = 0
    for k in range(count):
        try:
            cmd, arg = ops[k]
        except (TypeError, ValueError, OverflowError):
            out["reason"] = f"op {k} is not a (cmd, arg) pair"
            return C.EINVAL
        rc = run_atomic(hv, dom, lambda txn: ext_op(hv, txn, int(cmd), arg))
        if rc < 0:
            out["reason"] = f"op {k}: {state(hv).last_error}"
            return rc
        out["done"] = k + 1
    return 0


def apply_ext_op(hv, domid: int, cmd: int, arg) -> int:
    """One mmuext_op request from `domid`, atomically (0 or -errno; `explain(hv)` says why)."""
    dom = hv.domains[domid]
    return run_atomic(hv, dom, lambda txn: ext_op(hv, txn, int(cmd), arg))


