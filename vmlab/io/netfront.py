"""netfront in a domU (Linux drivers/net/xen-netfront.c): posts RX buffers, sends frames on TX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlab.io.event_channel import EVTCHNOP_alloc_unbound, EVTCHNOP_close, EVTCHNOP_send
from vmlab.io.netif import NETIF_RSP_OKAY, RX_DFL_MIN_TARGET, NetifTxRequest, NetifRxRequest, new_counts
from vmlab.io.ring import NET_RX_RING_SIZE, NET_TX_RING_SIZE, FrontRing, SharedRing
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["NetFront"]


class NetFront:
    """xen-netfront in a domU: one vif with a MAC address."""

    def __init__(self, io: "IoContext", domid: int, devid: int, mac: str, backend_domid: int, backend_path: str, *,
                 suppress: bool = True, rx_target: int = RX_DFL_MIN_TARGET) -> None:
        self.io, self.domid, self.frontend_domid, self.devid, self.mac = io, domid, domid, devid, mac
        self.backend_domid, self.backend_path = backend_domid, backend_path
        self.node = f"/local/domain/{domid}/device/vif/{devid}"
        self.suppress = suppress
        self.rx_target = min(rx_target, NET_RX_RING_SIZE)
        self.tx: FrontRing | None = None
        self.rx: FrontRing | None = None
        self.refs: list[int] = []
        self.ring_pfns: list[int] = []
        self.port = -1
        self.tx_pending: dict[int, tuple[int, int]] = {}    # id -> (gref, pfn)
        self.rx_posted: dict[int, tuple[int, int]] = {}     # id -> (gref, pfn)
        self.free_tx_pfns: list[int] = []
        self.received: list[tuple[int, int]] = []           # (length, stamp) delivered to the guest stack
        self.tx_status: dict[int, int] = {}
        self._next_id = 0
        self.counts = new_counts()

    def _call(self, name: str, *args) -> int:
        self.counts["hypercalls"] += 1
        return self.io.hv.hypercall(self.domid, name, *args)

    def probe(self) -> None:
        self.io.xenstore.watch(self.domid, f"{self.backend_path}/state", f"netfront-{self.devid}", self._backend_changed)

    def _backend_changed(self, path: str, token: str) -> None:
        xs, me = self.io.xenstore, self.domid
        b, mine = read_state(xs, me, self.backend_path), read_state(xs, me, self.node)
        if b == XenbusState.InitWait and mine in (XenbusState.Initialising, XenbusState.Closed):
            self._setup()
        elif b == XenbusState.Connected and mine == XenbusState.Initialised:
            switch_state(xs, me, self.node, XenbusState.Connected)
        elif b == XenbusState.Closing and mine not in (XenbusState.Closing, XenbusState.Closed, XenbusState.Unknown):
            switch_state(xs, me, self.node, XenbusState.Closing)
            self._teardown()
            switch_state(xs, me, self.node, XenbusState.Closed)

    def _setup(self) -> None:
        io, xs, me = self.io, self.io.xenstore, self.domid
        table = io.grants.table(me)
        self.ring_pfns = io.alloc_pages(me, 2)
        rings = []
        for pfn, size in zip(self.ring_pfns, (NET_TX_RING_SIZE, NET_RX_RING_SIZE)):
            mfn = io.mfn(me, pfn)
            s = SharedRing.init(size)
            io.ring_pages[mfn] = s
            rings.append(FrontRing(s, suppress=self.suppress))
            self.refs.append(table.grant_foreign_access(self.backend_domid, mfn))
        self.tx, self.rx = rings
        port = self._call("event_channel_op", EVTCHNOP_alloc_unbound, {"dom": me, "remote_dom": self.backend_domid}, {})
        if port < 0:
            switch_state(xs, me, self.node, XenbusState.Closed)
            return
        self.port = port
        io.events.of(me).handlers[port] = self.interrupt
        io.events.unmask(me, port)
        self.free_tx_pfns = io.alloc_pages(me, 16)
        for pfn in io.alloc_pages(me, self.rx_target):
            self._post_rx(pfn)
        self.rx.push_requests()
        for key, value in (("tx-ring-ref", self.refs[0]), ("rx-ring-ref", self.refs[1]), ("event-channel", port),
                           ("request-rx-copy", 1), ("feature-rx-notify", 1)):
            xs.write(me, f"{self.node}/{key}", str(value))
        switch_state(xs, me, self.node, XenbusState.Initialised)

    def _post_rx(self, pfn: int) -> None:
        ref = self.io.grants.table(self.domid).grant_foreign_access(self.backend_domid, self.io.mfn(self.domid, pfn))
        self.counts["grants_issued"] += 1
        rid = self._next_id
        self._next_id += 1
        self.rx_posted[rid] = (ref, pfn)
        self.rx.put_request(NetifRxRequest(rid, ref))

    def _teardown(self) -> None:
        io, me = self.io, self.domid
        if self.port > 0:
            self._call("event_channel_op", EVTCHNOP_close, {"port": self.port})
            self.port = -1
        t = io.grants.tables.get(me)
        if t is not None:
            for ref in self.refs + [g for g, _ in self.rx_posted.values()] + [g for g, _ in self.tx_pending.values()]:
                t.end_foreign_access(ref)
        if me in io.hv.domains:
            for pfn in self.ring_pfns:
                io.ring_pages.pop(io.mfn(me, pfn), None)
        self.refs, self.rx_posted, self.tx_pending = [], {}, {}
        self.tx = self.rx = None

    def send(self, dst: str, length: int, *, push: bool = True) -> tuple[int, int]:
        """Transmit a frame of `length` bytes to MAC `dst`. Returns (id, data stamp); id -1 if no TX slot."""
        if self.tx is None or self.tx.full() or not self.free_tx_pfns:
            self.counts["tx_errors"] += 1
            return -1, 0
        io, me = self.io, self.domid
        pfn = self.free_tx_pfns.pop()
        io.hv.guest_write(me, [pfn])  # the guest's network stack writes the frame
        mfn = io.mfn(me, pfn)
        io.grants.headers[mfn] = (dst, self.mac)
        ref = io.grants.table(me).grant_foreign_access(self.backend_domid, mfn, readonly=True)
        self.counts["grants_issued"] += 1
        tid = self._next_id
        self._next_id += 1
        self.tx_pending[tid] = (ref, pfn)
        self.tx.put_request(NetifTxRequest(ref, 0, 0, tid, int(length)))
        if push:
            self.kick()
        return tid, int(io.hv.memory.content[mfn])

    def kick(self) -> bool:
        notify = False
        for ring in (self.tx, self.rx):
            if ring is None:
                continue
            before = ring.counts["pushes"]
            n = ring.push_requests()
            if ring.counts["pushes"] != before and not n:
                self.counts["notify_suppressed"] += 1
            notify |= n
        if notify:
            self.counts["notify_sent"] += 1
            self._call("event_channel_op", EVTCHNOP_send, {"port": self.port})
        return notify

    def interrupt(self, port: int) -> None:
        self.counts["upcalls"] += 1
        io, me = self.io, self.domid
        table = io.grants.table(me)
        content = io.hv.memory.content
        while self.tx is not None:
            while self.tx.unconsumed_responses():
                rsp = self.tx.get_response()
                ent = self.tx_pending.pop(rsp.id, None)
                if ent is None:
                    continue
                table.end_foreign_access(ent[0])
                self.free_tx_pfns.append(ent[1])
                self.tx_status[rsp.id] = rsp.status
                if rsp.status == NETIF_RSP_OKAY:
                    self.counts["tx_packets"] += 1
                else:
                    self.counts["tx_errors"] += 1
            refill = []
            while self.rx.unconsumed_responses():
                rsp = self.rx.get_response()
                ent = self.rx_posted.pop(rsp.id, None)
                if ent is None:
                    continue
                table.end_foreign_access(ent[0])
                if rsp.status > 0:
                    self.received.append((rsp.status, int(content[io.mfn(me, ent[1])])))
                    self.counts["rx_packets"] += 1
                    self.counts["rx_bytes"] += rsp.status
                refill.append(ent[1])
            for pfn in refill:
                self._post_rx(pfn)
            if not (self.tx.final_check_for_responses() | self.rx.final_check_for_responses()):
                break
        if self.rx is not None and self.rx.sring.req_prod != self.rx.req_prod_pvt:
            self.kick()
