"""What the Oracle VM Manager and the Oracle VM Agents say to each other.

The Manager never touches a server directly: it sends a typed request to the
agent on that server (ovs-agent, TCP 8899) and gets a typed reply. A reply is
either ok (with a value) or carries a `Failure` naming why: the agent is
unreachable, it refused, or it died while working.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.hypervisor.domain import DomainConfig

__all__ = ["Request", "StartGuest", "StopGuest", "MigrateGuest", "CopyImage", "Heartbeat", "GetInfo",
           "AddVlan", "Failure", "Reply", "UNREACHABLE", "REFUSED", "DIED"]

UNREACHABLE, REFUSED, DIED = "unreachable", "refused", "died"


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """Base of every request; `verb` is what ovs-agent's log would show."""

    @property
    def verb(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True, slots=True)
class StartGuest(Request):
    config: DomainConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class StopGuest(Request):
    name: str
    force: bool = True   # xm destroy (the Manager's "power off"); False = xm shutdown


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrateGuest(Request):
    name: str
    target: str
    bandwidth_mbps: float   # this migration's share of the pool link


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyImage(Request):
    """Utility Server work: copy `nbytes` of an image (template -> running_pool, clones)."""

    src: str
    dst: str
    nbytes: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Heartbeat(Request):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class GetInfo(Request):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class AddVlan(Request):
    vlan: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    kind: str        # UNREACHABLE, REFUSED or DIED
    message: str
    done_bytes: int = 0   # for a copy: how far it got before the agent died


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    server: str
    verb: str
    value: object = None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None
