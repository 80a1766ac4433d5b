"""The pool's event timeline: what the Server Pool Master saw, in simulated time."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "KINDS", "format_events"]

# Every kind of event, in the order the dashboard stacks them.
KINDS = ("fault", "heartbeat-missed", "dead", "fence", "master", "restart", "lost", "migrate", "refused",
         "copy", "create", "maintenance", "heal", "split-brain")


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    time_s: float
    kind: str
    server: str = ""
    guest: str = ""
    detail: str = ""

    def __str__(self) -> str:
        who = "/".join(x for x in (self.server, self.guest) if x)
        return f"t={self.time_s:7.1f} s  {self.kind:16s} {who:14s} {self.detail}".rstrip()


def format_events(events, *, kinds=None, last: int | None = None) -> str:
    chosen = [e for e in events if kinds is None or e.kind in kinds]
    if last is not None:
        chosen = chosen[-last:]
    return "\n".join(str(e) for e in chosen)
