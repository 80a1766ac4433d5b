"""Event records: what happened, when, to whom.

The hypervisor appends one `Event` per thing worth plotting; `to_columns()` turns
them into plain lists that a bokeh ColumnDataSource takes as-is (no bokeh import).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "Trace"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    time_ns: int
    domid: int
    kind: str      # "boot", "create", "hypercall", "state", "balloon", "refused", ...
    detail: str = ""
    value: int = 0  # a number the event carries (rc of a hypercall, pages, ...)


class Trace:
    """An append-only list of events with a cap (oldest dropped first).

    The list may run up to 10% over `capacity` before the oldest events are cut in
    one go, so a full trace costs O(1) per record, not O(capacity).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.events: list[Event] = []
        self.dropped = 0
        self._subscribers: list[tuple[frozenset[str], object]] = []

    def subscribe(self, callback, kinds: set[str] | frozenset[str]) -> None:
        """Call `callback(event)` after each event of one of these kinds (a widget's refresh)."""
        self._subscribers.append((frozenset(kinds), callback))

    def record(self, **kwargs) -> Event:
        ev = Event(**kwargs)
        self.events.append(ev)
        if len(self.events) > self.capacity + self.capacity // 10:
            cut = len(self.events) - self.capacity
            del self.events[:cut]
            self.dropped += cut
        for kinds, callback in self._subscribers:
            if ev.kind in kinds:
                callback(ev)
        return ev

    def record_many(self, n: int, **kwargs) -> None:
        """`n` equal events, exactly as `n` calls of `record` leave them (one shared frozen Event)."""
        if n <= 0:
            return
        ev = Event(**kwargs)
        if len(self.events) + n > self.capacity + self.capacity // 10 or self.wants(ev.kind):
            for _ in range(n):  # the drop-oldest cut and the subscribers, one event at a time
                self.record(**kwargs)
            return
        self.events.extend([ev] * n)

    def wants(self, kind: str) -> bool:
        """Does a subscriber wait for events of this kind?"""
        return any(kind in kinds for kinds, _ in self._subscribers)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def filter(self, *, kind: str | None = None, domid: int | None = None) -> list[Event]:
        return [e for e in self.events if (kind is None or e.kind == kind) and (domid is None or e.domid == domid)]

    def to_columns(self) -> dict[str, list]:
        return {
            "time_ns": [e.time_ns for e in self.events],
            "time_s": [e.time_ns / 1e9 for e in self.events],
            "domid": [e.domid for e in self.events],
            "kind": [e.kind for e in self.events],
            "detail": [e.detail for e in self.events],
            "value": [e.value for e in self.events],
        }

    def save(self) -> list[list]:
        return [[e.time_ns, e.domid, e.kind, e.detail, e.value] for e in self.events]

    @classmethod
    def restore(cls, rows: list[list], capacity: int = 100_000) -> "Trace":
        t = cls(capacity)
        t.events = [Event(time_ns=int(a), domid=int(b), kind=str(c), detail=str(d), value=int(e)) for a, b, c, d, e in rows]
        return t
