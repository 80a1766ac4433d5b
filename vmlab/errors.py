"""Every error the core raises is a `VmlabError`.

Errors are named after what went wrong and carry one line that names the bad
value, the rule it broke and a fix (the `packaging` style). Only the CLI and the
widgets turn them into messages; the core never prints.

Guests are different: a guest that misbehaves gets Xen's answer, a negative errno
returned from the hypercall, never an exception (see `vmlab.hypervisor.hypercalls`).
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "VmlabError",
    "ConfigError",
    "UsageError",
    "CapacityError",
    "DomainNotFound",
    "DomainStateError",
    "HypercallError",
    "SnapshotError",
    "StateFileError",
    "DatasetError",
    "MigrationError",
    "MigrationRefused",
    "MigrationFailed",
]


class VmlabError(Exception):
    """Base class of every error vmlab raises on purpose."""


class ConfigError(VmlabError, ValueError):
    """A domain, host or model description is invalid (unknown key, bad value)."""


class UsageError(ConfigError):
    """A command line is malformed (unknown verb, missing argument): the CLI exits 2 for it."""


class CapacityError(VmlabError, ValueError):
    """A request needs more of a resource (frames, vCPUs, ids) than is available."""


class DomainNotFound(VmlabError, KeyError):
    """No domain with that name or domid exists."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DomainStateError(VmlabError, RuntimeError):
    """The verb is not legal in the domain's current state."""


class HypercallError(VmlabError, OSError):
    """A hypercall made on the toolstack's behalf returned a negative errno."""

    def __init__(self, hypercall: str, rc: int, detail: str = "") -> None:
        self.hypercall = hypercall
        self.rc = rc
        name = _errno.errorcode.get(-rc, str(rc))
        msg = f"{hypercall} returned -{name} ({rc})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)

    def __str__(self) -> str:
        return self.args[0]


class SnapshotError(VmlabError, ValueError):
    """A save file is truncated, altered, or written by another format version."""


class StateFileError(VmlabError, ValueError):
    """The CLI's state file is corrupt, foreign, or from another format version."""


class DatasetError(VmlabError, ValueError):
    """A dataset file is missing, altered (hash mismatch) or malformed."""


class MigrationError(VmlabError, RuntimeError):
    """A migration was refused or failed (the report says what happened to the guest)."""


class MigrationRefused(MigrationError):
    """Stage 0 said no (storage, pool, memory, state); nothing was changed."""


class MigrationFailed(MigrationError):
    """The migration started but failed or was cancelled; `.report` (a MigrationReport) says where the guest is."""

    def __init__(self, message: str, report) -> None:
        super().__init__(message)
        self.report = report
