"""A server pool: Oracle VM's group of servers that share storage and a network.

Guests live on one server at a time; live migration (vmlab.migration) moves them
between servers of the same pool over the pool's migration link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from vmlab.errors import ConfigError, DomainNotFound
from vmlab.hardware.host import Host, HostSpec
from vmlab.hypervisor.domain import Domain
from vmlab.hypervisor.hypervisor import Hypervisor
from vmlab.migration.link import Link
from vmlab.toolstack.xm import Toolstack

if TYPE_CHECKING:
    from vmlab.migration.report import RoundRecord

__all__ = ["Link", "ServerPool"]


class ServerPool:
    """Servers (each a Host running a Hypervisor) joined by one migration link."""

    def __init__(self, name: str = "pool1", *, link: Link | None = None) -> None:
        self.name = name
        self.link = link or Link()
        self.servers: dict[str, Hypervisor] = {}
        # Called with each RoundRecord of a migration while it runs (the CLI's progress
        # lines); attached once by the edge, never saved with the pool.
        self.round_observer: Callable[[RoundRecord], None] | None = None

    def reinit(self, servers: int, spec_of: Callable[[int], HostSpec]) -> None:
        """`pool init`: replace every server by `servers` new ones (spec_of(i) for i = 0..n-1)."""
        if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
            raise ConfigError(f"--servers {servers}: a pool needs at least one server; e.g. --servers 2")
        specs = [spec_of(i) for i in range(servers)]   # every spec checked before anything changes
        self.servers.clear()
        self.link = Link()
        for spec in specs:
            self.add_server(spec)

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
