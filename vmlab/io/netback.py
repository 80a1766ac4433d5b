"""netback in dom0 (Linux drivers/xen/netback): copies frames between the guest's grants and the bridge.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from vmlab.hardware.memory import PAGE_SIZE
from vmlab.io.event_channel import EVTCHNOP_bind_interdomain, EVTCHNOP_close, EVTCHNOP_send
from vmlab.io.grant_table import (GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_host_map, GNTST_okay, GNTTABOP_copy,
                                  GNTTABOP_map_grant_ref, GNTTABOP_unmap_grant_ref)
from vmlab.io.netif import (NETIF_RSP_ERROR, NETIF_RSP_OKAY, ETH_HLEN, RX_BACKLOG_MAX, BROADCAST, NetifTxRequest,
                            NetifTxResponse, NetifRxResponse, EthernetFrame, Bridge, new_counts)
from vmlab.io.ring import BackRing
from vmlab.io.xenbus import XenbusState, read_state, switch_state

if TYPE_CHECKING:
    from vmlab.io.context import IoContext

__all__ = ["NetBack"]


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
        self.counts = new_counts()

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
        """net_tx_action / net_rx_action: drain TX, fill RX, notify once. Never stays runnable."""
        if self.tx is None:
            return False
        scratch_mfn = self.io.mfn(self.domid, self.scratch_pfn)
        notify = False
        while True:
            self._serve_tx(scratch_mfn)
            notify |= self._push(self.tx)
            self._serve_rx(scratch_mfn)
            notify |= self._push(self.rx)
            if not (self.tx.final_check_for_requests() or self.backlog):
                break
        if notify:
            self.counts["notify_sent"] += 1
            self._call("event_channel_op", EVTCHNOP_send, {"port": self.port})
        return False

    def _serve_tx(self, scratch_mfn: int) -> None:
        """TX: copy each frame out of the guest, answer, hand it to the bridge."""
        content, headers = self.io.hv.memory.content, self.io.grants.headers
        while self.tx.unconsumed_requests():
            req = self.tx.get_request()
            if not isinstance(req, NetifTxRequest) or req.size < ETH_HLEN or req.offset < 0 \
                    or req.offset + req.size > PAGE_SIZE:
                self.tx.put_response(NetifTxResponse(getattr(req, "id", -1), NETIF_RSP_ERROR))
                self.counts["tx_errors"] += 1
                continue
            out: dict = {}
            self._call("grant_table_op", GNTTABOP_copy, [{
                "source": {"ref": req.gref, "domid": self.frontend_domid, "offset": req.offset},
                "dest": {"gmfn": self.scratch_pfn, "domid": self.domid, "offset": 0},
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

    def _serve_rx(self, scratch_mfn: int) -> None:
        """RX: copy queued frames into buffers the guest posted; without buffers the frames are lost."""
        content, headers = self.io.hv.memory.content, self.io.grants.headers
        while self.backlog and self.rx.unconsumed_requests():
            frame = self.backlog.popleft()
            req = self.rx.get_request()
            content[scratch_mfn] = frame.stamp
            headers[scratch_mfn] = (frame.dst, frame.src)
            out: dict = {}
            self._call("grant_table_op", GNTTABOP_copy, [{
                "source": {"gmfn": self.scratch_pfn, "domid": self.domid, "offset": 0},
                "dest": {"ref": getattr(req, "gref", -1), "domid": self.frontend_domid, "offset": 0},
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

    def _push(self, ring: BackRing) -> bool:
        before = ring.counts["pushes"]
        n = ring.push_responses()
        if ring.counts["pushes"] != before and not n:
            self.counts["notify_suppressed"] += 1
        return n
