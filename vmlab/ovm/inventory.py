"""The Manager's inventory: servers and their roles, templates, guests (records, replaced on change)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

__all__ = ["Role", "ServerState", "ServerRecord", "Template", "Guest", "parse_roles"]


class Role(str, Enum):
    """Oracle VM 2.x agent roles (User's Guide 2.1, app. D). One server may hold several."""

    MASTER = "master"     # Server Pool Master: the pool's contact point, dispatches to the other agents
    UTILITY = "utility"   # Utility Server: the I/O-heavy work (creating, copying, removing images)
    VM = "vm"             # Virtual Machine Server: starts and stops guests

    @property
    def label(self) -> str:
        return {"master": "Server Pool Master", "utility": "Utility Server", "vm": "Virtual Machine Server"}[self.value]


def parse_roles(text: str) -> frozenset[Role]:
    from vmlab.errors import ConfigError
    try:
        return frozenset(Role(r.strip()) for r in text.split(",") if r.strip())
    except ValueError:
        raise ConfigError(f"roles {text!r}: each role is one of master, utility, vm (comma-separated), "
                          "e.g. 'utility,vm'") from None


class ServerState(str, Enum):
    UP = "up"
    DOWN = "down"                # failed (power, panic): its memory is gone
    FENCED = "fenced"            # fenced itself (rebooting) after losing quorum or its disk heartbeat
    MAINTENANCE = "maintenance"  # evacuated by the Manager; runs no guests


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerRecord:
    name: str
    node: int                    # the O2CB node number (the lowest survives an even split)
    roles: frozenset[Role]
    state: ServerState = ServerState.UP

    def with_(self, **kw) -> "ServerRecord":
        return replace(self, **kw)

    @property
    def roles_text(self) -> str:
        return ",".join(r.value for r in Role if r in self.roles) or "-"


@dataclass(frozen=True, kw_only=True, slots=True)
class Template:
    name: str
    repo: str
    kind: str            # "pv" or "hvm"
    memory_mib: int
    vcpus: int
    image_mib: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Guest:
    name: str
    uuid: str
    mac: str
    memory_mib: int
    vcpus: int
    kind: str
    repo: str
    origin: str                  # "template:<name>", "clone:<name>", "iso:<name>"
    server: str | None = None    # where it runs (None: stopped)
    epoch: int | None = None     # its image's current mount epoch
    ha: bool = False
    preferred: tuple[str, ...] = ()
    vlan: int | None = None
    state: str = "stopped"       # running, stopped, down (lost with its server, not restarted)
    iso: str | None = None       # installation ISO path attached as a read-only CD-ROM (hdc)

    def with_(self, **kw) -> "Guest":
        return replace(self, **kw)
