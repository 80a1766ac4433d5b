"""Xenbus: the handshake by which a frontend and its backend find each other.

Both ends publish a `state` node in xenstore and watch the other's. The usual
block-device dance (Linux blkfront/blkback, Xen 3.x):

    backend                               frontend
    Initialising -> InitWait              (publishes sectors, info, feature-*)
                                          sees InitWait: grants the ring page, allocates an
                                          unbound event channel, writes ring-ref and
                                          event-channel -> Initialised
    sees Initialised: maps the ring,
    binds the event channel -> Connected
                                          sees Connected: reads sectors -> Connected
    ... Closing -> Closed on either side tears the connection down.
"""

from __future__ import annotations

from enum import IntEnum

from vmlab.errors import ConfigError

__all__ = ["XenbusState", "LEGAL_XENBUS_TRANSITIONS", "XenbusError", "check_transition", "switch_state", "read_state"]


class XenbusState(IntEnum):
    """xen/include/public/io/xenbus.h"""

    Unknown = 0
    Initialising = 1
    InitWait = 2
    Initialised = 3
    Connected = 4
    Closing = 5
    Closed = 6
    Reconfiguring = 7
    Reconfigured = 8


S = XenbusState
LEGAL_XENBUS_TRANSITIONS: dict[XenbusState, frozenset[XenbusState]] = {
    S.Unknown: frozenset({S.Initialising, S.Closing, S.Closed}),
    S.Initialising: frozenset({S.InitWait, S.Initialised, S.Connected, S.Closing, S.Closed}),
    S.InitWait: frozenset({S.Initialised, S.Connected, S.Closing, S.Closed}),
    S.Initialised: frozenset({S.Connected, S.Closing, S.Closed}),
    S.Connected: frozenset({S.Closing, S.Closed, S.Reconfiguring}),
    S.Closing: frozenset({S.Closed}),
    S.Closed: frozenset({S.Initialising, S.Closing}),
    S.Reconfiguring: frozenset({S.Reconfigured, S.Closing, S.Closed}),
    S.Reconfigured: frozenset({S.Connected, S.Closing, S.Closed}),
}


class XenbusError(ConfigError):
    """A driver tried a Xenbus state change the protocol does not allow."""


def check_transition(old: XenbusState, new: XenbusState, where: str = "") -> None:
    if new != old and new not in LEGAL_XENBUS_TRANSITIONS[old]:
        raise XenbusError(f"xenbus state {old.name}({int(old)}) -> {new.name}({int(new)}) at {where or '?'} is not "
                          f"allowed; from {old.name} go to one of "
                          f"{', '.join(s.name for s in sorted(LEGAL_XENBUS_TRANSITIONS[old]))}")


def read_state(xs, domid: int, node: str) -> XenbusState:
    """The state published under `node` (Unknown if the node is missing or garbled)."""
    try:
        return XenbusState(int(xs.read(domid, f"{node}/state")))
    except (ValueError, OSError):
        return XenbusState.Unknown


def switch_state(xs, domid: int, node: str, new: XenbusState) -> None:
    """xenbus_switch_state: write `<node>/state` after checking the transition is legal."""
    old = read_state(xs, domid, node)
    check_transition(old, new, node)
    if new != old:
        xs.write(domid, f"{node}/state", str(int(new)))
