"""blkback's batch fast path: a whole batch's grant maps and unmaps applied at once.

blkback issues one GNTTABOP_map_grant_ref and one GNTTABOP_unmap_grant_ref per
request (XenLinux 2.6.18 dispatch_rw_block_io, fast_flush_area). When nothing but
the grant handler would act between those hypercalls (the caller alive, no held
frame for `reap`, the registered handler serving these grant tables, no trace
subscriber, every op a plain struct), issuing them one by one leaves exactly what
one `map_many` over all the batch's ops and one `unmap_many` over all its handles
leave: each op is applied in order either way, and reference counts only change
after the checks that read them. Each hypercall is still counted and traced as
issued (rc 0, in the same order); tests/io/test_blkback_bulk.py checks both paths
equal. Anything else takes the one-by-one path.
"""

from __future__ import annotations

from vmlab.hypervisor.domain import DomainState
from vmlab.io.grant_table import GNTST_okay, GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref

__all__ = ["bulk_ready", "map_unmap_bulk"]


def bulk_ready(back, ops: list[dict]) -> bool:  # back: a vmlab.io.blkback.BlkBack
    """Would `Hypervisor.hypercall` do nothing for these grant_table_ops but run the handler and trace rc 0?"""
    hv = back.io.hv
    dom = hv.domains.get(back.domid)
    entry = hv.hypercalls.get("grant_table_op")
    if dom is None or dom.state is DomainState.DYING or hv.held or entry is None:
        return False
    if getattr(entry.handler, "grants", None) is not back.io.grants or (entry.privileged and not dom.privileged):
        return False
    if not entry.accepts(4, {}) or hv.trace.wants("hypercall") or hv.trace.wants("refused"):
        return False
    return type(back.frontend_domid) is int and all(type(op["ref"]) is int and type(op["flags"]) is int for op in ops)


def map_unmap_bulk(back, n: int, ops: list[dict], do_io) -> list:
    """Map every request's grants (one traced hypercall per request), do the I/O, unmap (one more per request).

    `n` is the number of requests that reach the grant step (`ops` their segments' map ops), `do_io(mstatus, mmfn)`
    the batch's disk I/O; returns what `do_io` returns.
    """
    hv, g, me, counts = back.io.hv, back.io.grants, back.domid, back.counts
    mstatus, handles, mmfn, _ = g.map_many(me, ops)
    counts["hypercalls"] += n
    hv.trace.record_many(n, time_ns=hv.now_ns, domid=me, kind="hypercall",
                         detail=f"grant_table_op({GNTTABOP_map_grant_ref})", value=0)
    failed = any(ms != GNTST_okay for ms in mstatus)
    live = [h for h, ms in zip(handles, mstatus) if ms == GNTST_okay] if failed else handles
    counts["grant_maps"] += len(live)
    rsps = do_io(mstatus if failed else None, mmfn)
    g.unmap_many(me, live)
    counts["hypercalls"] += n
    hv.trace.record_many(n, time_ns=hv.now_ns, domid=me, kind="hypercall",
                         detail=f"grant_table_op({GNTTABOP_unmap_grant_ref})", value=0)
    counts["grant_unmaps"] += len(live)
    return rsps
