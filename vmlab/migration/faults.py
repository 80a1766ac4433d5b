"""Faults to inject into a migration: the link or the target dies, or the admin cancels.

Before commitment (pre-copy, stop-and-copy) every fault aborts cleanly: the
guest keeps (or resumes) running on the source with nothing lost and the target
reservation is released (Clark et al. 2005, stage 4: the source keeps the VM
until commitment). During post-copy the guest's state is split between the two
hosts, so a link or target failure loses it (QEMU: "if migration fails during
post-copy the VM is lost").
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.errors import ConfigError

__all__ = ["Fault", "FAULT_KINDS", "PHASES"]

FAULT_KINDS = ("link", "target", "cancel")
PHASES = ("setup", "precopy", "stop-and-copy", "postcopy")


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """When and how a migration is interrupted.

    Give `at_s` (simulated seconds after the migration starts), or `phase` (the
    first moment of that phase; with phase="precopy", `round` picks a round).
    """

    kind: str = "link"
    at_s: float | None = None
    phase: str | None = None
    round: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if (self.at_s is None) == (self.phase is None):
            raise ConfigError("give a fault either at_s=<seconds> or phase=<name>, not both or neither")
        if self.phase is not None and self.phase not in PHASES:
            raise ConfigError(f"phase {self.phase!r} is not one of {', '.join(PHASES)}")
        if self.at_s is not None and self.at_s < 0:
            raise ConfigError(f"at_s={self.at_s} is negative; faults happen after the start")

    def due(self, t_s: float, phase: str, round_: int = 0) -> bool:
        """Has the fault happened by time `t_s`, now that we are in `phase` (round `round_`)?"""
        if self.at_s is not None:
            return t_s >= self.at_s
        if phase != self.phase:
            return False
        return phase != "precopy" or round_ >= self.round

    def describe(self) -> str:
        what = {"link": "the migration link failed", "target": "the target host failed",
                "cancel": "the migration was cancelled"}[self.kind]
        return what
