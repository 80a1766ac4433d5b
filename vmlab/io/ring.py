"""io/ring.h: the shared producer/consumer ring every split driver uses.

One page, shared by granting it: a 64-byte header, then a power-of-two number of
slots, each a union of one request and one response (a response overwrites the
request it answers). Indices are free-running uint32 (RING_IDX) and wrap; a slot
is `idx & (size - 1)`.

    sring:  req_prod  req_event  rsp_prod  rsp_event  | pad | slot[0] .. slot[size-1]
    front (private): req_prod_pvt, rsp_cons      back (private): rsp_prod_pvt, req_cons

Notification suppression: a producer pushes, then notifies only if the consumer
asked to hear about the entries just published,

    notify = (u32)(new - req_event) < (u32)(new - old)          RING_PUSH_*_AND_CHECK_NOTIFY

and a consumer that runs out of work sets `req_event = req_cons + 1` ("wake me at
the next one") and checks once more (RING_FINAL_CHECK_FOR_*) so no request can
slip in between. While a consumer is busy, producers publish without a single
hypercall.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmlab.errors import ConfigError
from vmlab.hardware.memory import PAGE_SIZE

__all__ = ["SharedRing", "FrontRing", "BackRing", "ring_size", "RING_HEADER_BYTES", "BLKIF_RING_SIZE",
           "NET_TX_RING_SIZE", "NET_RX_RING_SIZE", "ring_columns"]

M32 = 0xFFFFFFFF
RING_HEADER_BYTES = 64  # req_prod, req_event, rsp_prod, rsp_event (4 x u32) + 48 bytes of padding/private


def ring_size(slot_bytes: int, page_bytes: int = PAGE_SIZE) -> int:
    """__RING_SIZE: the largest power of two of slots that fits in the page after the header."""
    n = (page_bytes - RING_HEADER_BYTES) // slot_bytes
    if n < 1:
        raise ConfigError(f"slot of {slot_bytes} bytes does not fit in a {page_bytes}-byte ring page")
    return 1 << (n.bit_length() - 1)


# Slot sizes on x86-64: blkif_request is 112 bytes (11 segments of 8 bytes);
# netif_tx_request 12, netif_rx_response 8, netif_rx_request 8 (xen/include/public/io/*.h).
BLKIF_RING_SIZE = ring_size(112)      # 32
NET_TX_RING_SIZE = ring_size(12)      # 256
NET_RX_RING_SIZE = ring_size(8)       # 256


def _push_and_check_notify(end, prod: str, event: str, new: int, what: str) -> bool:
    """The body both io/ring.h push macros share: publish `new` as the shared producer
    index and notify only if the other side's event index lies in (old, new]."""
    s = end.sring
    old = getattr(s, prod)
    if old == new:
        return False
    setattr(s, prod, new)
    end.counts["pushes"] += 1
    ev = getattr(s, event)
    notify = ((new - ev) & M32) < ((new - old) & M32) if end.suppress else True
    end.counts["notify" if notify else "suppressed"] += 1
    if end.log is not None:
        end.log.append((what, old, new, ev, notify))
    return notify


@dataclass(slots=True)
class SharedRing:
    """The shared page: producer indices, event thresholds and the slots."""

    size: int
    req_prod: int = 0
    req_event: int = 1
    rsp_prod: int = 0
    rsp_event: int = 1
    slots: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size < 1 or self.size & (self.size - 1):
            raise ConfigError(f"ring size {self.size} is not a power of two; io/ring.h rounds down to one")
        if not self.slots:
            self.slots = [None] * self.size

    @classmethod
    def init(cls, size: int, start: int = 0) -> "SharedRing":
        """SHARED_RING_INIT (with an optional starting index to exercise uint32 wrap-around)."""
        s = start & M32
        return cls(size=size, req_prod=s, req_event=(s + 1) & M32, rsp_prod=s, rsp_event=(s + 1) & M32)


class FrontRing:
    """The frontend's view: produces requests, consumes responses."""

    __slots__ = ("sring", "req_prod_pvt", "rsp_cons", "suppress", "counts", "log")

    def __init__(self, sring: SharedRing, *, suppress: bool = True, log: list | None = None) -> None:
        self.sring = sring
        self.req_prod_pvt = sring.req_prod
        self.rsp_cons = sring.rsp_prod
        self.suppress = suppress
        self.counts = {"pushes": 0, "notify": 0, "suppressed": 0, "requests": 0, "responses": 0}
        self.log = log

    @property
    def size(self) -> int:
        return self.sring.size

    def free_requests(self) -> int:
        """RING_FREE_REQUESTS"""
        return self.sring.size - ((self.req_prod_pvt - self.rsp_cons) & M32)

    def full(self) -> bool:
        return self.free_requests() == 0

    def put_request(self, req: Any) -> int:
        """Write a request into the next private slot (RING_GET_REQUEST + req_prod_pvt++). Returns its index."""
        idx, sr = self.req_prod_pvt, self.sring
        if (idx - self.rsp_cons) & M32 >= sr.size:  # full()
            raise ConfigError(f"ring full: {sr.size} requests outstanding; push and wait for responses first")
        sr.slots[idx & (sr.size - 1)] = req
        self.req_prod_pvt = (idx + 1) & M32
        self.counts["requests"] += 1
        return idx

    def push_requests(self) -> bool:
        """RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: publish; True if the backend must be notified."""
        return _push_and_check_notify(self, "req_prod", "req_event", self.req_prod_pvt, "push_requests")

    def unconsumed_responses(self) -> int:
        return (self.sring.rsp_prod - self.rsp_cons) & M32

    def get_response(self) -> Any:
        rsp = self.sring.slots[self.rsp_cons & (self.sring.size - 1)]
        self.rsp_cons = (self.rsp_cons + 1) & M32
        self.counts["responses"] += 1
        return rsp

    def get_responses(self) -> list:
        """Every unconsumed response, in order (get_response until none is left)."""
        sr, n = self.sring, self.unconsumed_responses()
        mask, cons = sr.size - 1, self.rsp_cons
        out = [sr.slots[(cons + i) & mask] for i in range(n)]
        self.rsp_cons = (cons + n) & M32
        self.counts["responses"] += n
        return out

    def final_check_for_responses(self) -> bool:
        """RING_FINAL_CHECK_FOR_RESPONSES: ask to be woken at the next response, then look once more."""
        if self.unconsumed_responses():
            return True
        self.sring.rsp_event = (self.rsp_cons + 1) & M32
        return self.unconsumed_responses() > 0


class BackRing:
    """The backend's view: consumes requests, produces responses."""

    __slots__ = ("sring", "rsp_prod_pvt", "req_cons", "suppress", "counts", "log")

    def __init__(self, sring: SharedRing, *, suppress: bool = True, log: list | None = None) -> None:
        self.sring = sring
        self.rsp_prod_pvt = sring.rsp_prod
        self.req_cons = sring.rsp_prod  # BACK_RING_ATTACH: requests start where responses stopped
        self.suppress = suppress
        self.counts = {"pushes": 0, "notify": 0, "suppressed": 0, "requests": 0, "responses": 0}
        self.log = log

    @property
    def size(self) -> int:
        return self.sring.size

    def unconsumed_requests(self) -> int:
        """RING_HAS_UNCONSUMED_REQUESTS: never more than the free response slots allow."""
        s = self.sring
        req = (s.req_prod - self.req_cons) & M32
        rsp = s.size - ((self.req_cons - self.rsp_prod_pvt) & M32)
        return min(req, rsp)

    def get_request(self) -> Any:
        req = self.sring.slots[self.req_cons & (self.sring.size - 1)]
        self.req_cons = (self.req_cons + 1) & M32
        self.counts["requests"] += 1
        return req

    def get_requests(self, n: int) -> list:
        """The next `n` requests (n <= unconsumed_requests()), as n calls of get_request."""
        sr, cons = self.sring, self.req_cons
        mask = sr.size - 1
        out = [sr.slots[(cons + i) & mask] for i in range(n)]
        self.req_cons = (cons + n) & M32
        self.counts["requests"] += n
        return out

    def put_responses(self, rsps: list) -> None:
        """put_response for each, in order."""
        sr, prod = self.sring, self.rsp_prod_pvt
        mask, slots = sr.size - 1, sr.slots
        for i, rsp in enumerate(rsps):
            slots[(prod + i) & mask] = rsp
        self.rsp_prod_pvt = (prod + len(rsps)) & M32
        self.counts["responses"] += len(rsps)

    def put_response(self, rsp: Any) -> None:
        self.sring.slots[self.rsp_prod_pvt & (self.sring.size - 1)] = rsp
        self.rsp_prod_pvt = (self.rsp_prod_pvt + 1) & M32
        self.counts["responses"] += 1

    def push_responses(self) -> bool:
        """RING_PUSH_RESPONSES_AND_CHECK_NOTIFY"""
        return _push_and_check_notify(self, "rsp_prod", "rsp_event", self.rsp_prod_pvt, "push_responses")

    def final_check_for_requests(self) -> bool:
        """RING_FINAL_CHECK_FOR_REQUESTS"""
        if self.unconsumed_requests():
            return True
        self.sring.req_event = (self.req_cons + 1) & M32
        return self.unconsumed_requests() > 0


def ring_columns(front: FrontRing, back: BackRing | None = None) -> dict[str, list]:
    """One row per slot, for a ring picture: which stage each slot is in.

    Stages, walking the indices: 'free'; 'request (private)' written but not pushed;
    'request' published, not yet taken; 'in flight' taken by the backend;
    'response (private)' answered, not pushed; 'response' published, not yet consumed.
    """
    s = front.sring
    size = s.size
    back_cons = back.req_cons if back is not None else s.req_prod
    back_rsp = back.rsp_prod_pvt if back is not None else s.rsp_prod
    stage = ["free"] * size
    marks = [
        (front.rsp_cons, s.rsp_prod, "response"),
        (s.rsp_prod, back_rsp, "response (private)"),
        (back_rsp, back_cons, "in flight"),
        (back_cons, s.req_prod, "request"),
        (s.req_prod, front.req_prod_pvt, "request (private)"),
    ]
    for lo, hi, name in marks:
        for k in range((hi - lo) & M32 if ((hi - lo) & M32) <= size else 0):
            stage[(lo + k) & (size - 1)] = name
    pointers = {"req_prod_pvt": front.req_prod_pvt, "req_prod": s.req_prod, "req_event": s.req_event,
                "req_cons": back_cons, "rsp_prod_pvt": back_rsp, "rsp_prod": s.rsp_prod,
                "rsp_event": s.rsp_event, "rsp_cons": front.rsp_cons}
    labels = [", ".join(k for k, v in pointers.items() if (v & (size - 1)) == i and k != "req_event" and k != "rsp_event")
              for i in range(size)]
    return {"slot": list(range(size)), "stage": stage, "pointers": labels,
            "req_event_slot": [int((s.req_event & (size - 1)) == i) for i in range(size)],
            "rsp_event_slot": [int((s.rsp_event & (size - 1)) == i) for i in range(size)]}
