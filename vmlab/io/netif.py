"""The network split driver: netfront in the guest, netback in dom0, a bridge to the wire.

Two rings per vif (xen/include/public/io/netif.h), one event channel:

    TX (guest -> world): netif_tx_request {gref, offset, flags, id, size}  -> netif_tx_response {id, status}
    RX (world -> guest): netif_rx_request {id, gref}  -> netif_rx_response {id, offset, flags, status=len}

The guest pre-posts empty RX buffers (granted writable); netback copies each
incoming frame into one with GNTTABOP_copy and answers on the RX ring. For TX it
copies the guest's frame out of the granted page into its own buffer and hands
it to the bridge (xenbr0: dom0's software switch with the physical NIC, renamed
peth0, as its uplink). A vif with `vlan=` is an access port of that VLAN: its
frames are tagged on the way in, only reach ports of the same VLAN, and leave on
the uplink with an 802.1Q tag.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from vmlab.errors import ConfigError
from vmlab.hardware.memory import PAGE_SIZE
from vmlab.io.event_channel import EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_close, EVTCHNOP_send
from vmlab.io.grant_table import (GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_host_map, GNTST_okay,
                                  GNTTABOP_copy, GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref)
from vmlab.io.ring import NET_RX_RING_SIZE, NET_TX_RING_SIZE, BackRing, FrontRing, SharedRing
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["EthernetFrame", "Bridge", "BridgePort", "NetFront", "NetBack", "NetifTxRequest", "NetifTxResponse",
           "NetifRxRequest", "NetifRxResponse", "NETIF_RSP_OKAY", "NETIF_RSP_ERROR", "NETIF_RSP_DROPPED",
           "ETH_HLEN", "ETH_FRAME_MAX", "RX_DFL_MIN_TARGET", "BROADCAST"]

NETIF_RSP_DROPPED = -2
NETIF_RSP_ERROR = -1
NETIF_RSP_OKAY = 0
NETIF_RSP_NULL = 1
NETTXF_more_data = 1 << 2
ETH_HLEN = 14
ETH_FRAME_MAX = 1514          # 1500-byte MTU + header (untagged)
VLAN_HLEN = 4                 # 802.1Q tag
# Linux netfront keeps at least 64 RX buffers posted (drivers/xen/netfront: RX_DFL_MIN_TARGET).
RX_DFL_MIN_TARGET = 64
# Frames netback holds for a guest that has no RX buffer posted before dropping. ILLUSTRATIVE.
RX_BACKLOG_MAX = NET_RX_RING_SIZE
BROADCAST = "ff:ff:ff:ff:ff:ff"


@dataclass(frozen=True, slots=True)
class NetifTxRequest:
    gref: int
    offset: int
    flags: int
    id: int
    size: int


@dataclass(frozen=True, slots=True)
class NetifTxResponse:
    id: int
    status: int


@dataclass(frozen=True, slots=True)
class NetifRxRequest:
    id: int
    gref: int


@dataclass(frozen=True, slots=True)
class NetifRxResponse:
    id: int
    offset: int
    flags: int
    status: int


@dataclass(frozen=True, slots=True)
class EthernetFrame:
    """A frame on the bridge: addresses, 802.1Q VLAN (None = untagged), length, and its data stamp."""

    src: str
    dst: str
    length: int
    stamp: int
    vlan: int | None = None


@dataclass(slots=True)
class BridgePort:
    name: str
    vlan: int | None            # access VLAN for a vif; the uplink is a trunk (vlan ignored)
    deliver: Callable[[EthernetFrame], None] | None
    uplink: bool = False


class Bridge:
    """A learning Ethernet switch in dom0 (xenbr0) with the physical NIC as its trunk uplink."""

    def __init__(self, name: str, uplink: str = "peth0") -> None:
        self.name = name
        self.ports: dict[str, BridgePort] = {uplink: BridgePort(uplink, None, None, uplink=True)}
        self.uplink = uplink
        self.fdb: dict[tuple[int | None, str], str] = {}
        self.wire: list[tuple[str, EthernetFrame]] = []   # frames sent out of the uplink: (tag text, frame)
        self.log: list[tuple[str, str, int | None, int]] = []   # (in port, out port, vlan, length)

    def add_port(self, name: str, vlan: int | None, deliver: Callable[[EthernetFrame], None]) -> None:
        if name in self.ports:
            raise ConfigError(f"bridge {self.name} already has a port {name}; detach it first")
        self.ports[name] = BridgePort(name, vlan, deliver)

    def remove_port(self, name: str) -> None:
        self.ports.pop(name, None)
        self.fdb = {k: v for k, v in self.fdb.items() if v != name}

    def forward(self, in_port: str, frame: EthernetFrame) -> list[str]:
        """Learn the source, then deliver to the known port or flood within the VLAN. Returns ports reached."""
        port = self.ports.get(in_port)
        if port is None:
            return []
        if not port.uplink:
            frame = EthernetFrame(frame.src, frame.dst, frame.length, frame.stamp, port.vlan)
        self.fdb[(frame.vlan, frame.src)] = in_port
        known = self.fdb.get((frame.vlan, frame.dst)) if frame.dst != BROADCAST else None
        targets = [known] if known is not None and known != in_port else (
            [] if known == in_port else [n for n in self.ports if n != in_port])
        reached = []
        for name in targets:
            p = self.ports[name]
            if p.uplink:
                if port.uplink:
                    continue
                tag = f"802.1Q vid {frame.vlan}" if frame.vlan is not None else "untagged"
                self.wire.append((tag, frame))
            elif p.vlan != frame.vlan:
                continue  # another VLAN: the frame never reaches it
            else:
                p.deliver(frame)
            reached.append(name)
            self.log.append((in_port, name, frame.vlan, frame.length))
        return reached

    def inject(self, frame: EthernetFrame) -> list[str]:
        """A frame arrives from the wire on the uplink (tagged with frame.vlan, or untagged)."""
        return self.forward(self.uplink, frame)


def _counts() -> dict[str, int]:
    return {"tx_packets": 0, "rx_packets": 0, "tx_bytes": 0, "rx_bytes": 0, "tx_errors": 0, "rx_dropped": 0,
            "hypercalls": 0, "notify_sent": 0, "notify_suppressed": 0, "grant_copies": 0, "grants_issued": 0,
            "upcalls": 0}


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
        self.counts = _counts()

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


class NetBack:
    """netback in dom0: the vif<domid>.<devid> port on a bridge."""

    def __init__(self, io: "IoContext", frontend_domid: int, devid: int, bridge: Bridge, mac: str, *,
                 vlan: int | None = None, domid: int = 0, suppress: bool = True) -> None:
        self.io, self.domid, self.frontend_domid, self.devid = io, domid, frontend_domid, devid
        self.bridge, self.mac, self.vlan, self.suppress = bridge, mac, vlan, suppress
        self.name = f"vif{frontend_domid}.{devid}"
        self.node = f"/local/domain/{domid}/backend/vif/{frontend_domid}/{devid}"
        self.frontend_path = f"/local/domain/{frontend_domid}/device/vif/{devid}"
        self.tx: BackRing | None = None
        self.rx: BackRing | None = None
        self.handles: list[int] = []
        self.port = -1
        self.backlog: deque[EthernetFrame] = deque()
        (self.scratch_pfn,) = io.alloc_pages(domid, 1)
        self.counts = _counts()

    def _call(self, name: str, *args) -> int:
        self.counts["hypercalls"] += 1
        return self.io.hv.hypercall(self.domid, name, *args)

    def probe(self) -> None:
        xs, me = self.io.xenstore, self.domid
        xs.write(me, f"{self.node}/mac", self.mac)
        xs.write(me, f"{self.node}/bridge", self.bridge.name)
        if self.vlan is not None:
            xs.write(me, f"{self.node}/vlan", str(self.vlan))
        xs.write(me, f"{self.node}/feature-rx-copy", "1")
        switch_state(xs, me, self.node, XenbusState.InitWait)
        xs.watch(me, f"{self.frontend_path}/state", f"netback-{self.frontend_domid}-{self.devid}", self._frontend_changed)

    def _frontend_changed(self, path: str, token: str) -> None:
        xs, me = self.io.xenstore, self.domid
        f, mine = read_state(xs, me, self.frontend_path), read_state(xs, me, self.node)
        if f == XenbusState.Initialised and mine == XenbusState.InitWait:
            self._connect()
        elif f in (XenbusState.Closing, XenbusState.Closed) and mine not in (XenbusState.Closed, XenbusState.Unknown):
            self.disconnect()

    def _connect(self) -> None:
        xs, me, f = self.io.xenstore, self.domid, self.frontend_domid
        try:
            refs = [int(xs.read(me, f"{self.frontend_path}/{k}")) for k in ("tx-ring-ref", "rx-ring-ref")]
            evtchn = int(xs.read(me, f"{self.frontend_path}/event-channel"))
        except (OSError, ValueError):
            switch_state(xs, me, self.node, XenbusState.Closing)
            return
        out: dict = {}
        self._call("grant_table_op", GNTTABOP_map_grant_ref,
                   [{"ref": r, "dom": f, "flags": GNTMAP_host_map} for r in refs], 2, out)
        self.handles = [h for h, st in zip(out["handle"], out["status"]) if st == GNTST_okay]
        if len(self.handles) != 2:
            self._unmap()
            switch_state(xs, me, self.node, XenbusState.Closing)
            return
        self.tx = BackRing(self.io.ring_pages[out["mfn"][0]], suppress=self.suppress)
        self.rx = BackRing(self.io.ring_pages[out["mfn"][1]], suppress=self.suppress)
        port = self._call("event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": f, "remote_port": evtchn}, {})
        if port < 0:
            self._unmap()
            switch_state(xs, me, self.node, XenbusState.Closing)
            return
        self.port = port
        self.io.events.of(me).handlers[port] = self.interrupt
        self.io.events.unmask(me, port)
        self.bridge.add_port(self.name, self.vlan, self.receive)
        switch_state(xs, me, self.node, XenbusState.Connected)

    def _unmap(self) -> None:
        if self.handles:
            self._call("grant_table_op", GNTTABOP_unmap_grant_ref, [{"handle": h} for h in self.handles],
                       len(self.handles), {})
        self.handles = []
        self.tx = self.rx = None

    def disconnect(self) -> None:
        xs, me = self.io.xenstore, self.domid
        self.bridge.remove_port(self.name)
        if read_state(xs, me, self.node) not in (XenbusState.Closing, XenbusState.Closed):
            switch_state(xs, me, self.node, XenbusState.Closing)
        if self.port > 0:
            self._call("event_channel_op", EVTCHNOP_close, {"port": self.port})
            self.port = -1
        self._unmap()
        self.io.ready.pop(id(self), None)
        self.io.free_pages(me, [self.scratch_pfn])
        if read_state(xs, me, self.node) != XenbusState.Closed:
            switch_state(xs, me, self.node, XenbusState.Closed)

    def interrupt(self, port: int) -> None:
        self.counts["upcalls"] += 1
        self.io.wake(self)

    def receive(self, frame: EthernetFrame) -> None:
        """The bridge hands us a frame for the guest: queue it for the RX ring."""
        if len(self.backlog) >= RX_BACKLOG_MAX:
            self.counts["rx_dropped"] += 1
            return
        self.backlog.append(frame)
        self.io.wake(self)

    def process(self, budget: int | None = None) -> bool:
        if self.tx is None:
            return False
        io, me, f = self.io, self.domid, self.frontend_domid
        scratch_mfn = io.mfn(me, self.scratch_pfn)
        content = io.hv.memory.content
        headers = io.grants.headers
        notify = False
        while True:
            # TX: copy each frame out of the guest, answer, hand it to the bridge.
            while self.tx.unconsumed_requests():
                req = self.tx.get_request()
                if not isinstance(req, NetifTxRequest) or req.size < ETH_HLEN or req.offset < 0 \
                        or req.offset + req.size > PAGE_SIZE:
                    self.tx.put_response(NetifTxResponse(getattr(req, "id", -1), NETIF_RSP_ERROR))
                    self.counts["tx_errors"] += 1
                    continue
                out: dict = {}
                self._call("grant_table_op", GNTTABOP_copy, [{
                    "source": {"ref": req.gref, "domid": f, "offset": req.offset},
                    "dest": {"gmfn": self.scratch_pfn, "domid": me, "offset": 0},
                    "len": req.size, "flags": GNTCOPY_source_gref}], 1, out)
                self.counts["grant_copies"] += 1
                if out["status"][0] != GNTST_okay:
                    self.tx.put_response(NetifTxResponse(req.id, NETIF_RSP_ERROR))
                    self.counts["tx_errors"] += 1
                    continue
                self.tx.put_response(NetifTxResponse(req.id, NETIF_RSP_OKAY))
                self.counts["tx_packets"] += 1
                self.counts["tx_bytes"] += req.size
                dst, _src = headers.get(scratch_mfn, (BROADCAST, self.mac))
                self.bridge.forward(self.name, EthernetFrame(self.mac if _src is None else _src, dst, req.size,
                                                             int(content[scratch_mfn])))
            notify |= self._push(self.tx)
            # RX: copy queued frames into buffers the guest posted.
            while self.backlog and self.rx.unconsumed_requests():
                frame = self.backlog.popleft()
                req = self.rx.get_request()
                content[scratch_mfn] = frame.stamp
                headers[scratch_mfn] = (frame.dst, frame.src)
                out = {}
                self._call("grant_table_op", GNTTABOP_copy, [{
                    "source": {"gmfn": self.scratch_pfn, "domid": me, "offset": 0},
                    "dest": {"ref": getattr(req, "gref", -1), "domid": f, "offset": 0},
                    "len": frame.length, "flags": GNTCOPY_dest_gref}], 1, out)
                self.counts["grant_copies"] += 1
                ok = out["status"][0] == GNTST_okay
                self.rx.put_response(NetifRxResponse(getattr(req, "id", -1), 0, 0,
                                                     frame.length if ok else NETIF_RSP_ERROR))
                if ok:
                    self.counts["rx_packets"] += 1
                    self.counts["rx_bytes"] += frame.length
            if self.backlog and not self.rx.unconsumed_requests():
                self.counts["rx_dropped"] += len(self.backlog)  # no buffers posted: the guest loses them
                self.backlog.clear()
            notify |= self._push(self.rx)
            if not (self.tx.final_check_for_requests() or self.backlog):
                break
        if notify:
            self.counts["notify_sent"] += 1
            self._call("event_channel_op", EVTCHNOP_send, {"port": self.port})
        return False

    def _push(self, ring: BackRing) -> bool:
        before = ring.counts["pushes"]
        n = ring.push_responses()
        if ring.counts["pushes"] != before and not n:
            self.counts["notify_suppressed"] += 1
        return n
