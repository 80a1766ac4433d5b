"""The network split driver's shared protocol: ring records, constants, the bridge to the wire.

netfront.py is the guest's half, netback.py dom0's half (Linux xen-netfront.c / netback).

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

from dataclasses import dataclass
from typing import Callable

from vmlab.errors import ConfigError
from vmlab.io.ring import NET_RX_RING_SIZE

__all__ = ["EthernetFrame", "Bridge", "BridgePort", "new_counts", "NetifTxRequest", "NetifTxResponse",
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


def new_counts() -> dict[str, int]:
    return {"tx_packets": 0, "rx_packets": 0, "tx_bytes": 0, "rx_bytes": 0, "tx_errors": 0, "rx_dropped": 0,
            "hypercalls": 0, "notify_sent": 0, "notify_suppressed": 0, "grant_copies": 0, "grants_issued": 0,
            "upcalls": 0}
