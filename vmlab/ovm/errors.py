"""The Oracle VM layer's errors: each a VmlabError with one line (bad value, rule, fix)."""

from __future__ import annotations

from vmlab.errors import CapacityError, ConfigError, VmlabError

__all__ = ["OvmError", "NameInUse", "UnknownObject", "NoCapacity", "HaRefused", "VlanMissing",
           "AgentUnreachable", "CopyFailed", "MasterLost", "Refused"]


class OvmError(VmlabError, RuntimeError):
    """An Oracle VM Manager operation failed; nothing was changed."""


class NameInUse(ConfigError):
    """A guest, template or ISO with that name already exists in the pool."""


class UnknownObject(ConfigError):
    """No template, guest, server, repository or ISO with that name."""


class NoCapacity(CapacityError):
    """No server of the pool has the memory the guest needs."""


class HaRefused(ConfigError):
    """HA cannot be switched on here (local storage, or the pool's HA is off)."""


class VlanMissing(ConfigError):
    """The guest's VLAN is not configured on the server it would move to."""


class Refused(ConfigError):
    """The operation breaks a pool rule (e.g. a guest on local storage cannot migrate)."""


class AgentUnreachable(OvmError):
    """The Oracle VM Agent on a server does not answer (server down, fenced or partitioned)."""


class CopyFailed(OvmError):
    """The Utility Server died during a copy; the half-copied image was removed."""


class MasterLost(OvmError):
    """The Server Pool Master failed in the middle of an operation; it was rolled back."""
