"""The migration link between two servers, and the goodput a TCP stream gets over it."""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.errors import ConfigError

__all__ = ["Link", "TCP_EFFICIENCY", "link_goodput_Bps", "rtt_s"]

# TCP over Ethernet with a 1500-byte MTU: 1448 payload bytes (1500 - 20 IP - 32 TCP
# with timestamps) per 1538 bytes on the wire (+ 14 header, 4 FCS, 8 preamble,
# 12 inter-frame gap). Derived from the frame formats, not measured.
TCP_EFFICIENCY = 1448 / 1538


@dataclass(frozen=True, kw_only=True, slots=True)
class Link:
    """The migration network between the pool's servers.

    Default: gigabit Ethernet, 1000 Mbit/s = 119.2 MiB/s raw; 0.1 ms is a typical
    LAN round trip (ILLUSTRATIVE).
    """

    bandwidth_mbps: float = 1000.0
    latency_ms: float = 0.1

    def __post_init__(self) -> None:
        if not self.bandwidth_mbps > 0:
            raise ConfigError(f"bandwidth_mbps={self.bandwidth_mbps} must be positive; e.g. 1000 for gigabit Ethernet")
        if self.latency_ms < 0:
            raise ConfigError(f"latency_ms={self.latency_ms} must not be negative")


def link_goodput_Bps(link) -> float:
    """Payload bytes per second a TCP stream gets over `link` (its raw Mbit/s x TCP efficiency)."""
    return float(link.bandwidth_mbps) * 1e6 / 8 * TCP_EFFICIENCY


def rtt_s(link) -> float:
    """The link's round trip in seconds (0.1 ms for a link that does not say)."""
    return float(getattr(link, "latency_ms", 0.1)) / 1000.0
