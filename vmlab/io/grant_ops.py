"""grant_table_op (hypercall 20): the sub-operation table and the handler closure.

Each GNTTABOP_* is one row of `GNTTABOP_TABLE` (Xen's do_grant_table_op switch);
`grant_table_op_handler(grants)` returns the handler the IoSystem registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypercalls import guest_struct
from vmlab.io.grant_map import GrantTables
from vmlab.io.grant_table import (GNTST_bad_domain, GNTST_general_error, GNTST_okay,
                                  GNTST_permission_denied, GNTTABOP_copy, GNTTABOP_map_grant_ref,
                                  GNTTABOP_query_size, GNTTABOP_setup_table, GNTTABOP_transfer,
                                  GNTTABOP_unmap_grant_ref)

if TYPE_CHECKING:
    from vmlab.hypervisor.domain import Domain
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = ["grant_table_op_handler", "GNTTABOP_TABLE"]


def _map(g: GrantTables, hv, caller: "Domain", ops: list, out: dict) -> None:
    status, handles, mfns, device = g.map_many(caller.domid, ops)
    out["status"], out["handle"], out["mfn"] = status, handles, mfns
    bus = [0] * len(ops)
    for i in device:  # only GNTMAP_device_map mappings get a bus address
        if status[i] == GNTST_okay:
            bus[i] = mfns[i] << 12
    out["dev_bus_addr"] = bus


def _unmap(g: GrantTables, hv, caller: "Domain", ops: list, out: dict) -> None:
    out["status"] = g.unmap_many(caller.domid, [op.get("handle", -1) for op in ops])


def _copy(g: GrantTables, hv, caller: "Domain", ops: list, out: dict) -> None:
    out["status"] = [g.copy_one(caller.domid, op) for op in ops]


def _table_op(setup: bool) -> Callable:
    def run(g: GrantTables, hv, caller: "Domain", ops: list, out: dict) -> None:
        status, frames = [], []
        me = caller.domid
        for op in ops:
            dom = op.get("dom", C.DOMID_SELF)
            dom = me if dom == C.DOMID_SELF else dom
            if dom != me and not caller.privileged:
                status.append(GNTST_permission_denied)
                continue
            if dom not in hv.domains:
                status.append(GNTST_bad_domain)
                continue
            t = g.table(dom)
            if setup:
                ok = t.grow(max(t.nr_frames, op.get("nr_frames", 0)))
                status.append(GNTST_okay if ok else GNTST_general_error)
                frames.append(t.nr_frames)
            else:
                status.append(GNTST_okay)
                frames.append((t.nr_frames, t.max_frames))
        out["status"], out["nr_frames"] = status, frames
    return run


def _transfer(g: GrantTables, hv, caller: "Domain", ops: list, out: dict) -> None:
    # Page flipping (Xen 3 netback's old RX path) is not modelled; netback copies.
    out["status"] = [GNTST_general_error] * len(ops)


# GNTTABOP_* -> fn(grants, hv, caller, ops[:count], out)
GNTTABOP_TABLE: dict[int, Callable] = {
    GNTTABOP_map_grant_ref: _map,
    GNTTABOP_unmap_grant_ref: _unmap,
    GNTTABOP_copy: _copy,
    GNTTABOP_setup_table: _table_op(setup=True),
    GNTTABOP_query_size: _table_op(setup=False),
    GNTTABOP_transfer: _transfer,
}


def grant_table_op_handler(g: GrantTables) -> Callable[..., int]:
    """The grant_table_op (20) hypercall handler, a closure over one hypervisor's grant tables."""

    def do_grant_table_op(hv: "Hypervisor", caller: "Domain", cmd: int, ops=None, count: int | None = None,
                          out: dict | None = None) -> int:
        """grant_table_op(cmd, uop, count): each op's status (and handle, frames) goes into `out` lists.

        The hypercall returns 0 when it processed the ops (each op has its own GNTST_*
        status), -EINVAL for a bad count, -EFAULT for an unreadable op list, -ENOSYS
        for an unknown command.
        """
        if out is not None and not isinstance(out, dict):
            return C.EFAULT  # Xen could not write the results back to the guest
        out = out if out is not None else {}
        if ops is None:
            ops = []
        if isinstance(ops, dict):
            ops = [ops]
        if not isinstance(ops, (list, tuple)) or not all(guest_struct(op, nested=("source", "dest")) for op in ops):
            return C.EFAULT  # Xen could not copy the op array from guest memory
        count = len(ops) if count is None else count
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= len(ops):
            return C.EINVAL
        run = GNTTABOP_TABLE.get(cmd)
        if run is None:
            return C.ENOSYS
        run(g, hv, caller, ops[:count], out)
        return 0

    do_grant_table_op.grants = g  # lets a caller check whose tables a registered handler serves
    return do_grant_table_op
