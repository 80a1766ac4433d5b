"""blkback in dom0 (Linux drivers/xen/blkback): maps the guest's grants, does the I/O, answers.

blkback maps each request's grants (one grant_table_op per request, as
dispatch_rw_block_io), does the I/O on the image, unmaps them (one more per request,
fast_flush_area), answers on the ring. A request it cannot honour
(bad op, too many segments, a grant it cannot map) gets BLKIF_RSP_ERROR and never
reaches the disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlab.io.blkif import (BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
                            BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY,
                            SECTOR_SIZE, SECTORS_PER_PAGE, BlkifRequest, BlkifResponse, VirtualDisk, new_counts)
from vmlab.io.blkback_bulk import bulk_ready, map_unmap_bulk
from vmlab.io.event_channel import EVTCHNOP_bind_interdomain, EVTCHNOP_close, EVTCHNOP_send
from vmlab.io.grant_table import (GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, GNTTABOP_map_grant_ref,
                                  GNTTABOP_unmap_grant_ref)
from vmlab.io.ring import BLKIF_RING_SIZE, BackRing
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["BlkBack"]

_MAP_RO = GNTMAP_host_map | GNTMAP_readonly  # a WRITE only reads the guest's page


class BlkBack:
    """blkback in dom0: serves one frontend's ring from a VirtualDisk."""

    def __init__(self, io: "IoContext", frontend_domid: int, devid: int, disk: VirtualDisk, *, readonly: bool = False,
                 domid: int = 0, suppress: bool = True) -> None:
        self.io = io
        self.domid = domid
        self.frontend_domid = frontend_domid
        self.devid = devid
        self.disk = disk
        self.readonly = readonly
        self.suppress = suppress
        self.node = f"/local/domain/{domid}/backend/vbd/{frontend_domid}/{devid}"
        self.frontend_path = f"/local/domain/{frontend_domid}/device/vbd/{devid}"
        self.ring: BackRing | None = None
        self.ring_handle = -1
        self.port = -1
        self.counts = new_counts()
        self.log: list | None = None
        self.exact = False  # True: every grant_table_op through Hypervisor.hypercall (blkback_bulk's reference path)

    # --- xenbus ---------------------------------------------------------------------
    def probe(self) -> None:
        xs, me = self.io.xenstore, self.domid
        xs.write(me, f"{self.node}/sectors", str(self.disk.sectors))
        xs.write(me, f"{self.node}/info", "1" if self.readonly else "0")   # VDISK_READONLY = 4; 0 = plain disk
        xs.write(me, f"{self.node}/sector-size", str(SECTOR_SIZE))
        xs.write(me, f"{self.node}/feature-flush-cache", "1")
        xs.write(me, f"{self.node}/feature-barrier", "0")
        switch_state(xs, me, self.node, XenbusState.InitWait)
        xs.watch(me, f"{self.frontend_path}/state", f"blkback-{self.frontend_domid}-{self.devid}", self._frontend_changed)

    def _call(self, name: str, *args) -> int:
        self.counts["hypercalls"] += 1
        return self.io.hv.hypercall(self.domid, name, *args)

    def _frontend_changed(self, path: str, token: str) -> None:
        xs, me = self.io.xenstore, self.domid
        fstate = read_state(xs, me, self.frontend_path)
        mine = read_state(xs, me, self.node)
        if fstate == XenbusState.Initialised and mine == XenbusState.InitWait:
            self._connect()
        elif fstate in (XenbusState.Closing, XenbusState.Closed) and mine not in (XenbusState.Closed, XenbusState.Unknown):
            self.disconnect()

    def _connect(self) -> None:
        xs, me, f = self.io.xenstore, self.domid, self.frontend_domid
        try:
            ring_ref = int(xs.read(me, f"{self.frontend_path}/ring-ref"))
            evtchn = int(xs.read(me, f"{self.frontend_path}/event-channel"))
        except (OSError, ValueError):
            switch_state(xs, me, self.node, XenbusState.Closing)
            return
        out: dict = {}
        self._call("grant_table_op", GNTTABOP_map_grant_ref, [{"ref": ring_ref, "dom": f, "flags": GNTMAP_host_map}], 1, out)
        if out["status"][0] != GNTST_okay:
            xs.write(me, f"{self.node}/error", f"mapping ring-ref {ring_ref}: status {out['status'][0]}")
            switch_state(xs, me, self.node, XenbusState.Closing)
            return
        self.ring_handle = out["handle"][0]
        sring = self.io.ring_pages[out["mfn"][0]]
        self.ring = BackRing(sring, suppress=self.suppress, log=self.log)
        out = {}
        port = self._call("event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": f, "remote_port": evtchn}, out)
        if port < 0:
            self._unmap_ring()
            switch_state(xs, me, self.node, XenbusState.Closing)
            return
        self.port = port
        self.io.events.of(me).handlers[port] = self.interrupt
        self.io.events.unmask(me, port)
        switch_state(xs, me, self.node, XenbusState.Connected)

    def _unmap_ring(self) -> None:
        if self.ring_handle >= 0:
            self._call("grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": self.ring_handle}], 1, {})
            self.ring_handle = -1
        self.ring = None

    def disconnect(self) -> None:
        """Closing -> Closed: stop serving, unbind, unmap the ring (xen_blkif_disconnect)."""
        xs, me = self.io.xenstore, self.domid
        if read_state(xs, me, self.node) not in (XenbusState.Closing, XenbusState.Closed):
            switch_state(xs, me, self.node, XenbusState.Closing)
        if self.port > 0:
            self._call("event_channel_op", EVTCHNOP_close, {"port": self.port})
            self.port = -1
        self._unmap_ring()
        self.io.ready.pop(id(self), None)
        if read_state(xs, me, self.node) != XenbusState.Closed:
            switch_state(xs, me, self.node, XenbusState.Closed)

    # --- I/O -------------------------------------------------------------------------
    def interrupt(self, port: int) -> None:
        """blkif_be_int: wake the blkback thread; the work happens in `process`."""
        self.counts["upcalls"] += 1
        self.io.wake(self)

    def process(self, budget: int | None = None) -> bool:
        """do_block_io_op: serve up to `budget` requests. True if work is left (stay runnable).

        Requests taken from the ring together are answered together (one push), but
        each request's grants are mapped with its own grant_table_op and unmapped with
        one more (XenLinux 2.6.18 dispatch_rw_block_io and fast_flush_area).
        """
        ring = self.ring
        if ring is None:
            return False
        done = 0
        while True:
            n = min(ring.unconsumed_requests(), BLKIF_RING_SIZE)
            if budget is not None:
                n = max(0, min(n, budget - done))
            if n:
                done += n
                ring.put_responses(self._dispatch_batch(ring.get_requests(n)))
                self._push()
                continue
            if ring.unconsumed_requests():  # stopped by the budget
                return True
            if not ring.final_check_for_requests():
                return False

    def _push(self) -> None:
        ring = self.ring
        before = ring.counts["pushes"]
        notify = ring.push_responses()
        if ring.counts["pushes"] != before:
            if notify:
                self.counts["notify_sent"] += 1
                self._call("event_channel_op", EVTCHNOP_send, {"port": self.port})
            else:
                self.counts["notify_suppressed"] += 1

    def _check(self, req) -> int:
        """BLKIF_RSP_OKAY if the request may go to the disk, else the error status for it."""
        if not isinstance(req, BlkifRequest):
            return BLKIF_RSP_ERROR
        op = req.operation
        if op == BLKIF_OP_WRITE_BARRIER:
            return BLKIF_RSP_EOPNOTSUPP  # feature-barrier=0
        if op not in (BLKIF_OP_READ, BLKIF_OP_WRITE):
            return BLKIF_RSP_ERROR
        n, seg = req.nr_segments, req.seg
        if (n >= 0 and n != len(seg)) or not 1 <= len(seg) <= BLKIF_MAX_SEGMENTS_PER_REQUEST:
            return BLKIF_RSP_ERROR
        if op == BLKIF_OP_WRITE and self.readonly:
            return BLKIF_RSP_ERROR
        nsect = 0
        for s in seg:
            first, last = s.first_sect, s.last_sect
            if not 0 <= first <= last < SECTORS_PER_PAGE:
                return BLKIF_RSP_ERROR
            nsect += last - first + 1
        if req.sector_number < 0 or req.sector_number + nsect > self.disk.sectors:
            return BLKIF_RSP_ERROR
        return BLKIF_RSP_OKAY

    def _dispatch_batch(self, reqs: list) -> list[BlkifResponse]:
        """Serve requests taken together; per request: map its segments, the I/O, unmap."""
        counts = self.counts
        counts["requests"] += len(reqs)
        status, ops = self._check_batch(reqs)
        if not self.exact and bulk_ready(self, ops):
            n = sum(1 for r, st in zip(reqs, status) if st == BLKIF_RSP_OKAY and r.operation != BLKIF_OP_FLUSH_DISKCACHE)
            return map_unmap_bulk(self, n, ops, lambda ms, mfn: self._do_io(reqs, status, ms, mfn))
        mstatus: list[int] = []
        mmfn: list[int] = []
        unmaps: list[list[dict]] = []
        k = 0
        for req, st in zip(reqs, status):
            if st != BLKIF_RSP_OKAY or req.operation == BLKIF_OP_FLUSH_DISKCACHE:
                continue
            mine = ops[k:k + len(req.seg)]
            k += len(mine)
            out: dict = {"status": [], "handle": [], "mfn": []}
            self._call("grant_table_op", GNTTABOP_map_grant_ref, mine, len(mine), out)   # dispatch_rw_block_io
            handles = [h for h, ms in zip(out["handle"], out["status"]) if ms == GNTST_okay]
            counts["grant_maps"] += len(handles)
            mstatus += out["status"]
            mmfn += out["mfn"]
            # fast_flush_area: one unmap per request, issued even when nothing was mapped
            unmaps.append([{"handle": h} for h in handles])
        failed = any(ms != GNTST_okay for ms in mstatus)
        rsps = self._do_io(reqs, status, mstatus if failed else None, mmfn)
        for req_unmap in unmaps:
            self._call("grant_table_op", GNTTABOP_unmap_grant_ref, req_unmap, len(req_unmap), {})
            counts["grant_unmaps"] += len(req_unmap)
        return rsps

    def _check_batch(self, reqs: list) -> tuple[list[int], list[dict]]:
        """Each request's status before the disk, and the map ops for the segments of those that pass."""
        status: list[int] = []
        ops: list[dict] = []
        f, check, add = self.frontend_domid, self._check, ops.append
        for req in reqs:
            op = getattr(req, "operation", None)
            st = BLKIF_RSP_OKAY if op == BLKIF_OP_FLUSH_DISKCACHE else check(req)
            status.append(st)
            if st == BLKIF_RSP_OKAY and op != BLKIF_OP_FLUSH_DISKCACHE:
                flags = _MAP_RO if op == BLKIF_OP_WRITE else GNTMAP_host_map
                for s in req.seg:
                    add({"ref": s.gref, "dom": f, "flags": flags})
        return status, ops

    def _do_io(self, reqs: list, status: list[int], mstatus: list[int] | None, mmfn: list[int]) -> list[BlkifResponse]:
        """The disk I/O of a batch through the mapped frames (reachable only because the map succeeded)."""
        content = self.io.hv.memory.content
        item, write, read = content.item, self.disk.write, self.disk.read
        page_from_sectors = VirtualDisk.page_from_sectors
        rsps: list[BlkifResponse] = []
        k = errors = segments = sectors = 0
        for req, st in zip(reqs, status):
            if st != BLKIF_RSP_OKAY or req.operation == BLKIF_OP_FLUSH_DISKCACHE:
                errors += st != BLKIF_RSP_OKAY
                rsps.append(BlkifResponse(getattr(req, "id", -1), getattr(req, "operation", -1), st))
                continue
            seg, op, sector = req.seg, req.operation, req.sector_number
            n = len(seg)
            if mstatus is not None and any(st != GNTST_okay for st in mstatus[k:k + n]):
                k += n  # a bad or foreign grant: never touch the disk
                errors += 1
                rsps.append(BlkifResponse(req.id, op, BLKIF_RSP_ERROR))
                continue
            for s in seg:
                first, last, mfn = s.first_sect, s.last_sect, mmfn[k]
                k += 1
                if op == BLKIF_OP_WRITE:
                    write(sector, first, last, item(mfn))
                else:
                    content[mfn] = page_from_sectors(item(mfn), first, last, read(sector, first, last))
                sector += last - first + 1
            segments += n
            sectors += sector - req.sector_number
            rsps.append(BlkifResponse(req.id, op, BLKIF_RSP_OKAY))
        c = self.counts
        c["errors"] += errors
        c["responses"] += len(rsps)
        c["segments"] += segments
        c["bytes"] += sectors * SECTOR_SIZE
        return rsps
