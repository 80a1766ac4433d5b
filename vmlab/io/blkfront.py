"""blkfront in a domU (Linux drivers/block/xen-blkfront.c): grants buffers, fills the ring.

blkfront grants each buffer page (read-only for a WRITE, since dom0 only reads
it; writable for a READ), puts the request on the ring and notifies only when the
ring says so. Responses end the grants and complete the requests.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable, NamedTuple

from vmlab.errors import ConfigError
from vmlab.io.blkif import (BLKIF_OP_READ, BLKIF_RSP_OKAY, SECTORS_PER_PAGE, BlkifRequest, BlkifResponse,
                            BlkifSegment, new_counts)
from vmlab.io.event_channel import EVTCHNOP_alloc_unbound, EVTCHNOP_close, EVTCHNOP_send
from vmlab.io.ring import BLKIF_RING_SIZE, FrontRing, SharedRing
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["BlkFront"]


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
        self.counts = new_counts()
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
        ring = self.ring
        if ring is not None and not self.waiting and ring.free_requests():
            self._put(rid, operation, sector, list(pfns), first_sect, last_sect, done)  # what _fill_ring would do
        else:
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
        ring, waiting = self.ring, self.waiting
        if ring is None:
            return
        while waiting and ring.free_requests():
            self._put(*waiting.popleft())

    def _put(self, rid: int, op: int, sector: int, pfns: list[int], first: int, last: int,
             done: Callable | None) -> None:
        """Grant the pages and put one request on the ring (blkif_queue_request)."""
        io, me = self.io, self.domid
        grant = io.grants.table(me).grant_foreign_access
        p2m_item = io.hv.domains[me].p2m.item
        readonly = op != BLKIF_OP_READ  # the backend only reads our page for a write
        backend = self.backend_domid
        grefs, segs = [], []
        for p in pfns:
            g = grant(backend, p2m_item(p), readonly=readonly)
            grefs.append(g)
            segs.append(BlkifSegment(g, first, last))
        req = BlkifRequest(op, rid, sector, tuple(segs))
        self.shadow[rid] = _Shadow(req, grefs, pfns, done)
        self.ring.put_request(req)
        counts, n = self.counts, len(grefs)
        counts["grants_issued"] += n
        counts["requests"] += 1
        counts["segments"] += n

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
        shadow, completed, counts = self.shadow, self.completed, self.counts
        while True:
            while ring.unconsumed_responses():
                rsp = ring.get_response()
                sh = shadow.pop(getattr(rsp, "id", -1), None)
                if sh is None:
                    self.duplicates += 1
                    continue
                # still mapped by the backend: cannot revoke, the grant leaks
                self.leaked_grants += table.end_foreign_access_many(sh.grefs)
                rid, status = rsp.id, rsp.status
                if rid in completed:
                    self.duplicates += 1
                completed[rid] = status
                counts["responses"] += 1
                if status != BLKIF_RSP_OKAY:
                    counts["errors"] += 1
                if sh.done is not None:
                    sh.done(rid, rsp)
            if not ring.final_check_for_responses():
                break
        if self.waiting:
            self._fill_ring()
            self.kick()

    @property
    def outstanding(self) -> int:
        return len(self.shadow) + len(self.waiting)
