"""A server pool: Oracle VM's group of servers that share storage and a network.

Guests live on one server at a time; live migration (vmlab.migration) moves them
between servers of the same pool over the pool's migration link.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.errors import ConfigError, DomainNotFound
from vmlab.hardware.host import Host, HostSpec
from vmlab.hypervisor.domain import Domain
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.toolstack.xm import Toolstack

__all__ = ["Link", "ServerPool"]


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

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_mbps * 1e6 / 8


class ServerPool:
    """Servers (each a Host running a Hypervisor) joined by one migration link."""

    def __init__(self, name: str = "pool1", *, link: Link | None = None) -> None:
        self.name = name
        self.link = link or Link()
        self.servers: dict[str, Hypervisor] = {}

    def add_server(self, spec: HostSpec | None = None, *, dom0_mem_mib: int | None = None, **spec_kwargs) -> Hypervisor:
        spec = spec or HostSpec(**spec_kwargs)
        if spec.name in self.servers:
            raise ConfigError(f"server {spec.name!r} is already in pool {self.name}; give the new server another name")
        kwargs = {} if dom0_mem_mib is None else {"dom0_mem_mib": dom0_mem_mib}
        hv = Hypervisor(Host(spec), **kwargs)
        self.servers[spec.name] = hv
        return hv

    @property
    def master(self) -> str | None:
        """The Server Pool Master: the first server added."""
        return next(iter(self.servers), None)

    def server(self, name: str | None = None) -> Hypervisor:
        if name is None:
            if not self.servers:
                raise ConfigError(f"pool {self.name} has no servers; add one first")
            return self.servers[self.master]
        try:
            return self.servers[name]
        except KeyError:
            raise ConfigError(f"server {name!r} is not in pool {self.name} (servers: {', '.join(self.servers)}); "
                              "name one of those") from None

    def xm(self, name: str | None = None) -> Toolstack:
        return Toolstack(self.server(name))

    def find(self, ref: str | int) -> tuple[Hypervisor, Domain]:
        """The server and domain for a guest name anywhere in the pool (domids are per server)."""
        for hv in self.servers.values():
            for dom in hv.domains.values():
                if dom.name == ref:
                    return hv, dom
        raise DomainNotFound(f"no guest named {ref!r} in pool {self.name}; check `xm list` on each server")
