"""The block split driver: blkfront in the guest, blkback in dom0, a disk image on the host.

A request (xen/include/public/io/blkif.h) names an operation, a start sector and
up to 11 segments, each a granted guest page and the 512-byte sectors used in it:

    blkif_request:  operation u8 | nr_segments u8 | handle u16 | id u64 | sector_number u64
                    seg[11]: { gref u32, first_sect u8, last_sect u8 }        (112 bytes)
    blkif_response: id u64 | operation u8 | status s16

blkfront grants each buffer page (read-only for a WRITE, since dom0 only reads
it; writable for a READ), puts the request on the ring and notifies only when the
ring says so. blkback maps the grants (one grant_table_op for all segments),
does the I/O on the image, unmaps, answers on the ring. A request it cannot
honour (bad op, too many segments, a grant it cannot map) gets BLKIF_RSP_ERROR
and never reaches the disk.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING, Callable, NamedTuple

from vmlab.errors import ConfigError
from vmlab.hardware.memory import PAGE_SIZE
from vmlab.io.event_channel import EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_close, EVTCHNOP_send
from vmlab.io.grant_table import (GNTMAP_host_map, GNTMAP_readonly, GNTST_okay, GNTTABOP_map_grant_ref,
                                  GNTTABOP_unmap_grant_ref, mix_stamp)
from vmlab.io.ring import BLKIF_RING_SIZE, BackRing, FrontRing, SharedRing
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["BlkifSegment", "BlkifRequest", "BlkifResponse", "VirtualDisk", "BlkFront", "BlkBack",
           "BLKIF_OP_READ", "BLKIF_OP_WRITE", "BLKIF_OP_WRITE_BARRIER", "BLKIF_OP_FLUSH_DISKCACHE",
           "BLKIF_RSP_OKAY", "BLKIF_RSP_ERROR", "BLKIF_RSP_EOPNOTSUPP", "BLKIF_MAX_SEGMENTS_PER_REQUEST",
           "SECTOR_SIZE", "SECTORS_PER_PAGE", "DEFAULT_IMAGE_SECTORS", "vbd_devid"]

BLKIF_OP_READ = 0
BLKIF_OP_WRITE = 1
BLKIF_OP_WRITE_BARRIER = 2
BLKIF_OP_FLUSH_DISKCACHE = 3
BLKIF_RSP_EOPNOTSUPP = -2
BLKIF_RSP_ERROR = -1
BLKIF_RSP_OKAY = 0
BLKIF_MAX_SEGMENTS_PER_REQUEST = 11
SECTOR_SIZE = 512
SECTORS_PER_PAGE = PAGE_SIZE // SECTOR_SIZE  # 8
# A disk= image's size when nothing says otherwise: 10 GiB. ILLUSTRATIVE.
DEFAULT_IMAGE_SECTORS = 10 * (1 << 30) // SECTOR_SIZE
XEN_BLKIF_MAJOR = 202  # the xvd major number (Linux drivers/block/xen-blkfront.c)


def vbd_devid(vdev: str) -> int:
    """Xenstore device id of a virtual disk: xvda -> 51712 (202 << 8), xvdb -> 51728, hda -> 768."""
    name = vdev.removeprefix("/dev/")
    if name.startswith(("xvd", "sd", "hd")) and len(name) >= 3:
        prefix = name[:3] if name.startswith("xvd") else name[:2]
        letters = name[len(prefix):].rstrip("0123456789")
        part = name[len(prefix) + len(letters):]
        if len(letters) == 1 and letters.isalpha():
            disk = ord(letters) - ord("a")
            p = int(part) if part else 0
            if prefix == "xvd":
                return (XEN_BLKIF_MAJOR << 8) | (disk << 4) | p
            if prefix == "hd":
                return ((3 if disk < 2 else 22) << 8) | ((disk % 2) << 6) | p
            return (8 << 8) | (disk << 4) | p
    raise ConfigError(f"virtual device {vdev!r} is not xvdX, hdX or sdX; name the disk e.g. 'xvda'")


# The ring records are NamedTuples, not dataclasses: a hundred thousand requests a
# second are built on the hot path and a tuple is several times cheaper to make.
class BlkifSegment(NamedTuple):
    gref: int
    first_sect: int = 0
    last_sect: int = SECTORS_PER_PAGE - 1


class BlkifRequest(NamedTuple):
    operation: int
    id: int
    sector_number: int
    seg: tuple = ()
    handle: int = 0
    nr_segments: int = -1  # -1: len(seg); a lying value is a malformed request

    @property
    def nsegs(self) -> int:
        return len(self.seg) if self.nr_segments < 0 else self.nr_segments


class BlkifResponse(NamedTuple):
    id: int
    operation: int
    status: int


class VirtualDisk:
    """A disk image on a host disk (a file under /OVS, or a phy: device): 512-byte sectors.

    Each written sector holds `page_stamp << 3 | sector_in_page`, so a page written
    whole and read back whole gets its exact stamp back, and any other mix of
    sectors reads as a new stamp derived from exactly those sectors.
    """

    def __init__(self, path: str, *, sectors: int = DEFAULT_IMAGE_SECTORS, storage: str = "local") -> None:
        if sectors <= 0:
            raise ConfigError(f"image {path!r}: sectors={sectors} must be positive")
        self.path = path
        self.sectors = int(sectors)
        self.storage = storage
        self.data: dict[int, int] = {}
        self.counts = {"reads": 0, "writes": 0, "sectors_read": 0, "sectors_written": 0}

    def write(self, sector: int, first: int, last: int, page_stamp: int) -> None:
        n = last - first + 1
        v0 = (page_stamp << 3) | first  # sector values page_stamp<<3|k for k = first..last are consecutive
        self.data.update(zip(range(sector, sector + n), range(v0, v0 + n)))
        c = self.counts
        c["writes"] += 1
        c["sectors_written"] += n

    def read(self, sector: int, first: int, last: int) -> list[int]:
        n = last - first + 1
        c = self.counts
        c["reads"] += 1
        c["sectors_read"] += n
        return list(map(self.data.get, range(sector, sector + n), repeat(0, n)))

    @staticmethod
    def page_from_sectors(old_stamp: int, first: int, last: int, values: list[int]) -> int:
        """The stamp of a page after `values` land in its sectors first..last."""
        if first == 0 and last == SECTORS_PER_PAGE - 1:
            v0 = values[0]
            if not any(values):
                return 0
            if v0 & 7 == 0 and values == list(range(v0, v0 + SECTORS_PER_PAGE)):
                return v0 >> 3  # a whole page that was written as a whole: the same bytes come back
        return mix_stamp(old_stamp, first, last, *values)

    def stamp_of(self, sector: int, nsect: int = SECTORS_PER_PAGE) -> int:
        """The page stamp a full-page read at `sector` would produce (for checks)."""
        return self.page_from_sectors(0, 0, nsect - 1, [self.data.get(sector + i, 0) for i in range(nsect)])


def _new_counts() -> dict[str, int]:
    return {"requests": 0, "responses": 0, "errors": 0, "hypercalls": 0, "notify_sent": 0, "notify_suppressed": 0,
            "grant_maps": 0, "grant_unmaps": 0, "grants_issued": 0, "bytes": 0, "segments": 0, "upcalls": 0,
            "batches": 0}


class _Shadow(NamedTuple):
    req: BlkifRequest
    grefs: list
    pfns: list
    done: Callable | None = None


class BlkFront:
    """xen-blkfront in a domU: one virtual disk (e.g. xvda) talking to one blkback."""

    def __init__(self, io: "IoContext", domid: int, devid: int, backend_domid: int, backend_path: str, *,
                 suppress: bool = True) -> None:
        self.io = io
        self.domid = domid
        self.frontend_domid = domid
        self.devid = devid
        self.backend_domid = backend_domid
        self.backend_path = backend_path
        self.node = f"/local/domain/{domid}/device/vbd/{devid}"
        self.suppress = suppress
        self.ring: FrontRing | None = None
        self.ring_pfn = -1
        self.ring_ref = -1
        self.port = -1
        self.sectors = 0
        self.shadow: dict[int, _Shadow] = {}
        self.waiting: deque = deque()
        self.completed: dict[int, int] = {}   # request id -> status (each exactly once)
        self.duplicates = 0
        self.leaked_grants = 0
        self._next_id = 0
        self.counts = _new_counts()
        self.log: list | None = None

    # --- xenbus ---------------------------------------------------------------------
    def probe(self) -> None:
        self.io.xenstore.watch(self.domid, f"{self.backend_path}/state", f"blkfront-{self.devid}", self._backend_changed)

    def _backend_changed(self, path: str, token: str) -> None:
        xs, me = self.io.xenstore, self.domid
        bstate = read_state(xs, me, self.backend_path)
        mine = read_state(xs, me, self.node)
        if bstate == XenbusState.InitWait and mine in (XenbusState.Initialising, XenbusState.Closed):
            self._setup_ring()
        elif bstate == XenbusState.Connected and mine == XenbusState.Initialised:
            self.sectors = int(xs.read(me, f"{self.backend_path}/sectors"))
            switch_state(xs, me, self.node, XenbusState.Connected)
        elif bstate == XenbusState.Closing and mine not in (XenbusState.Closing, XenbusState.Closed, XenbusState.Unknown):
            switch_state(xs, me, self.node, XenbusState.Closing)
            self._teardown()
            switch_state(xs, me, self.node, XenbusState.Closed)

    def _call(self, name: str, *args) -> int:
        self.counts["hypercalls"] += 1
        return self.io.hv.hypercall(self.domid, name, *args)

    def _setup_ring(self) -> None:
        io, xs, me = self.io, self.io.xenstore, self.domid
        (self.ring_pfn,) = io.alloc_pages(me, 1)
        mfn = io.mfn(me, self.ring_pfn)
        sring = SharedRing.init(BLKIF_RING_SIZE)
        io.ring_pages[mfn] = sring
        self.ring = FrontRing(sring, suppress=self.suppress, log=self.log)
        self.ring_ref = io.grants.table(me).grant_foreign_access(self.backend_domid, mfn)
        out: dict = {}
        port = self._call("event_channel_op", EVTCHNOP_alloc_unbound, {"dom": me, "remote_dom": self.backend_domid}, out)
        if port < 0:
            switch_state(xs, me, self.node, XenbusState.Closed)
            return
        self.port = port
        ev = io.events.of(me)
        ev.handlers[port] = self.interrupt
        io.events.unmask(me, port)  # Linux unmask_evtchn on the local vCPU: no hypercall
        while True:  # the Linux driver writes both keys in one transaction and retries on EAGAIN
            tx = xs.transaction_start(me)
            xs.write(me, f"{self.node}/ring-ref", str(self.ring_ref), tx)
            xs.write(me, f"{self.node}/event-channel", str(port), tx)
            xs.write(me, f"{self.node}/protocol", "x86_64-abi", tx)
            try:
                xs.transaction_end(me, tx)
                break
            except OSError as e:
                if getattr(e, "name", "") != "EAGAIN":
                    raise
        switch_state(xs, me, self.node, XenbusState.Initialised)

    def _teardown(self) -> None:
        io, me = self.io, self.domid
        if self.port > 0:
            self._call("event_channel_op", EVTCHNOP_close, {"port": self.port})
            self.port = -1
        if self.ring_ref >= 0:
            t = io.grants.tables.get(me)
            if t is not None and not t.end_foreign_access(self.ring_ref):
                self.leaked_grants += 1
            self.ring_ref = -1
        if self.ring_pfn >= 0 and me in io.hv.domains:
            io.ring_pages.pop(io.mfn(me, self.ring_pfn), None)
            io.free_pages(me, [self.ring_pfn])
            self.ring_pfn = -1

    @property
    def connected(self) -> bool:
        return read_state(self.io.xenstore, 0, self.node) == XenbusState.Connected

    # --- I/O -------------------------------------------------------------------------
    def submit(self, operation: int, sector: int, pfns: list[int], *, first_sect: int = 0,
               last_sect: int = SECTORS_PER_PAGE - 1, push: bool = True,
               done: Callable[[int, BlkifResponse], None] | None = None) -> int:
        """Queue one request over the buffer pages `pfns` (one segment each). Returns its id.

        If the ring is full the request waits (the block layer's queue) and goes on
        the ring when responses free slots. `push=False` lets callers batch several
        requests behind one notification (call `kick`).
        """
        rid = self._next_id
        self._next_id += 1
        self.waiting.append((rid, operation, sector, list(pfns), first_sect, last_sect, done))
        self._fill_ring()
        if push:
            self.kick()
        return rid

    def submit_raw(self, req: BlkifRequest, *, push: bool = True) -> int:
        """Put a request exactly as given on the ring (to test malformed ones). Returns req.id."""
        if self.ring is None or self.ring.full():
            raise ConfigError("ring not connected or full; connect the device and wait for responses first")
        self.shadow[req.id] = _Shadow(req, [], [])
        self.ring.put_request(req)
        self.counts["requests"] += 1
        if push:
            self.kick()
        return req.id

    def _fill_ring(self) -> None:
        ring = self.ring
        if ring is None:
            return
        grant = self.io.grants.table(self.domid).grant_foreign_access
        p2m_item = self.io.hv.domains[self.domid].p2m.item
        waiting, shadow, counts, backend = self.waiting, self.shadow, self.counts, self.backend_domid
        while waiting and not ring.full():
            rid, op, sector, pfns, first, last, done = waiting.popleft()
            readonly = op != BLKIF_OP_READ  # the backend only reads our page for a write
            grefs = [grant(backend, p2m_item(p), readonly=readonly) for p in pfns]
            req = BlkifRequest(op, rid, sector, tuple([BlkifSegment(g, first, last) for g in grefs]))
            shadow[rid] = _Shadow(req, grefs, pfns, done)
            ring.put_request(req)
            counts["grants_issued"] += len(grefs)
            counts["requests"] += 1
            counts["segments"] += len(grefs)

    def kick(self) -> bool:
        """flush_requests: publish queued requests; notify the backend if the ring asks. True if notified."""
        if self.ring is None:
            return False
        before = self.ring.counts["pushes"]
        notify = self.ring.push_requests()
        if self.ring.counts["pushes"] != before:
            self.counts["batches"] += 1
            if notify:
                self.counts["notify_sent"] += 1
                self._call("event_channel_op", EVTCHNOP_send, {"port": self.port})
            else:
                self.counts["notify_suppressed"] += 1
        return notify

    def interrupt(self, port: int) -> None:
        """blkif_interrupt: consume every response, end the grants, complete requests."""
        self.counts["upcalls"] += 1
        ring = self.ring
        if ring is None:
            return
        table = self.io.grants.table(self.domid)
        while True:
            while ring.unconsumed_responses():
                rsp = ring.get_response()
                sh = self.shadow.pop(getattr(rsp, "id", -1), None)
                if sh is None:
                    self.duplicates += 1
                    continue
                for g in sh.grefs:
                    if not table.end_foreign_access(g):
                        self.leaked_grants += 1  # still mapped by the backend: cannot revoke
                if rsp.id in self.completed:
                    self.duplicates += 1
                self.completed[rsp.id] = rsp.status
                self.counts["responses"] += 1
                if rsp.status != BLKIF_RSP_OKAY:
                    self.counts["errors"] += 1
                if sh.done is not None:
                    sh.done(rsp.id, rsp)
            if not ring.final_check_for_responses():
                break
        if self.waiting:
            self._fill_ring()
            self.kick()

    @property
    def outstanding(self) -> int:
        return len(self.shadow) + len(self.waiting)


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
        self.counts = _new_counts()
        self.log: list | None = None

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

        Requests taken from the ring together are served as one batch: the grants of
        all their segments are mapped with one grant_table_op and unmapped with one
        more, so the two hypercalls are shared by the whole batch.
        """
        ring = self.ring
        if ring is None:
            return False
        done = 0
        while True:
            batch = []
            while ring.unconsumed_requests() and len(batch) < BLKIF_RING_SIZE:
                if budget is not None and done >= budget:
                    break
                batch.append(ring.get_request())
                done += 1
            if batch:
                for rsp in self._dispatch_batch(batch):
                    ring.put_response(rsp)
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
        n = req.nsegs
        if n != len(req.seg) or not 1 <= n <= BLKIF_MAX_SEGMENTS_PER_REQUEST:
            return BLKIF_RSP_ERROR
        if op == BLKIF_OP_WRITE and self.readonly:
            return BLKIF_RSP_ERROR
        nsect = 0
        for s in req.seg:
            if not 0 <= s.first_sect <= s.last_sect < SECTORS_PER_PAGE:
                return BLKIF_RSP_ERROR
            nsect += s.last_sect - s.first_sect + 1
        if req.sector_number < 0 or req.sector_number + nsect > self.disk.sectors:
            return BLKIF_RSP_ERROR
        return BLKIF_RSP_OKAY

    def _dispatch_batch(self, reqs: list) -> list[BlkifResponse]:
        counts = self.counts
        counts["requests"] += len(reqs)
        status = []
        ops = []
        for req in reqs:
            st = BLKIF_RSP_OKAY if getattr(req, "operation", None) == BLKIF_OP_FLUSH_DISKCACHE else self._check(req)
            status.append(st)
            if st == BLKIF_RSP_OKAY and req.operation != BLKIF_OP_FLUSH_DISKCACHE:
                flags = GNTMAP_host_map | GNTMAP_readonly if req.operation == BLKIF_OP_WRITE else GNTMAP_host_map
                f = self.frontend_domid
                ops.extend({"ref": s.gref, "dom": f, "flags": flags} for s in req.seg)
        out: dict = {"status": [], "handle": [], "mfn": []}
        if ops:
            self._call("grant_table_op", GNTTABOP_map_grant_ref, ops, len(ops), out)
        mstatus, mhandle, mmfn = out["status"], out["handle"], out["mfn"]
        handles = [h for h, st in zip(mhandle, mstatus) if st == GNTST_okay]
        counts["grant_maps"] += len(handles)
        content = self.io.hv.memory.content
        disk = self.disk
        k = 0
        rsps = []
        for req, st in zip(reqs, status):
            if st != BLKIF_RSP_OKAY or req.operation == BLKIF_OP_FLUSH_DISKCACHE:
                if st != BLKIF_RSP_OKAY:
                    counts["errors"] += 1
                counts["responses"] += 1
                rsps.append(BlkifResponse(getattr(req, "id", -1), getattr(req, "operation", -1), st))
                continue
            n = len(req.seg)
            mine = range(k, k + n)
            k += n
            if any(mstatus[i] != GNTST_okay for i in mine):  # a bad or foreign grant: never touch the disk
                counts["errors"] += 1
                counts["responses"] += 1
                rsps.append(BlkifResponse(req.id, req.operation, BLKIF_RSP_ERROR))
                continue
            op = req.operation
            sector = req.sector_number
            for s, i in zip(req.seg, mine):
                mfn = mmfn[i]  # reachable only because the map above succeeded (GrantTables.frame_access)
                if op == BLKIF_OP_WRITE:
                    disk.write(sector, s.first_sect, s.last_sect, int(content[mfn]))
                else:
                    vals = disk.read(sector, s.first_sect, s.last_sect)
                    content[mfn] = VirtualDisk.page_from_sectors(int(content[mfn]), s.first_sect, s.last_sect, vals)
                sector += s.last_sect - s.first_sect + 1
            counts["segments"] += n
            counts["bytes"] += (sector - req.sector_number) * SECTOR_SIZE
            counts["responses"] += 1
            rsps.append(BlkifResponse(req.id, op, BLKIF_RSP_OKAY))
        if handles:
            self._call("grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h} for h in handles], len(handles), {})
            counts["grant_unmaps"] += len(handles)
        return rsps
