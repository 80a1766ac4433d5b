"""Event channels: Xen's virtual interrupts, the binding half (xen/common/event_channel.c).

A domain's port is unbound, interdomain, VIRQ or IPI; this file allocates, binds,
closes, sends and reports ports, and dispatches event_channel_op (32) through a
table. Where a port's pending/mask bits live is the layout's business, behind
`PortOps`: the 2-level layout is event_2l.py (as Xen's event_2l.c).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from vmlab.hypervisor import constants as C
from vmlab.hypervisor.hypercalls import guest_struct
from vmlab.io.event_2l import NR_EVENT_CHANNELS, Event2L

if TYPE_CHECKING:
    from vmlab.hypervisor.domain import Domain
    from vmlab.hypervisor.hypervisor import Hypervisor

__all__ = [
    "EventChannels", "DomainEvents", "PortOps", "event_channel_op_handler", "EVTCHNOP_TABLE",
    "EVTCHNOP_bind_interdomain", "EVTCHNOP_bind_virq", "EVTCHNOP_close", "EVTCHNOP_send",
    "EVTCHNOP_status", "EVTCHNOP_alloc_unbound", "EVTCHNOP_bind_ipi", "EVTCHNOP_bind_vcpu", "EVTCHNOP_unmask",
    "ECS_FREE", "ECS_RESERVED", "ECS_UNBOUND", "ECS_INTERDOMAIN", "ECS_PIRQ", "ECS_VIRQ", "ECS_IPI",
    "VIRQ_TIMER", "VIRQ_DEBUG", "VIRQ_CONSOLE", "VIRQ_DOM_EXC", "NR_VIRQS", "NR_EVENT_CHANNELS",
]

# xen/include/public/event_channel.h
EVTCHNOP_bind_interdomain = 0
EVTCHNOP_bind_virq = 1
EVTCHNOP_bind_pirq = 2
EVTCHNOP_close = 3
EVTCHNOP_send = 4
EVTCHNOP_status = 5
EVTCHNOP_alloc_unbound = 6
EVTCHNOP_bind_ipi = 7
EVTCHNOP_bind_vcpu = 8
EVTCHNOP_unmask = 9

# EVTCHNSTAT_* / xen/include/xen/sched.h ECS_*
ECS_FREE = 0
ECS_RESERVED = 1
ECS_UNBOUND = 2
ECS_INTERDOMAIN = 3
ECS_PIRQ = 4
ECS_VIRQ = 5
ECS_IPI = 6

# xen/include/public/xen.h
VIRQ_TIMER = 0
VIRQ_DEBUG = 1
VIRQ_CONSOLE = 2
VIRQ_DOM_EXC = 3
NR_VIRQS = 24



class PortOps(Protocol):
    """A port layout (Xen's struct evtchn_port_ops): the only way binding code touches the bits."""

    pending: bytearray
    mask: bytearray
    vcpus: list
    counts: dict

    def set_pending(self, port: int, vcpu: int) -> None: ...
    def unmask(self, port: int, vcpu: int) -> None: ...
    def reset_port(self, port: int) -> None: ...
    def upcall(self, vcpu: int, handlers: dict) -> list[int]: ...
    def local_irq_disable(self, vcpu: int = 0) -> None: ...
    def local_irq_enable(self, vcpu: int = 0) -> bool: ...
    def clear_mask_bit(self, port: int) -> None: ...


@dataclass(slots=True)
class DomainEvents:
    """One domain's ports (binding state) and its port layout (`ops`)."""

    domid: int
    nr_vcpus: int = 1
    state: list[int] = field(default_factory=lambda: [ECS_RESERVED] + [ECS_FREE] * (NR_EVENT_CHANNELS - 1))
    remote_dom: dict[int, int] = field(default_factory=dict)
    remote_port: dict[int, int] = field(default_factory=dict)
    virq_of: dict[int, int] = field(default_factory=dict)
    vcpu_of: dict[int, int] = field(default_factory=dict)
    virq_port: dict[tuple[int, int], int] = field(default_factory=dict)  # (virq, vcpu) -> port
    handlers: dict[int, Callable[[int], None]] = field(default_factory=dict)
    ops: PortOps = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.ops is None:
            self.ops = Event2L(nr_vcpus=self.nr_vcpus)

    # The layout's state, read through the domain (tests and labs look at the bits).
    pending = property(lambda self: self.ops.pending)
    mask = property(lambda self: self.ops.mask)
    vcpus = property(lambda self: self.ops.vcpus)
    counts = property(lambda self: self.ops.counts)

    def alloc_port(self) -> int:
        try:
            return self.state.index(ECS_FREE)
        except ValueError:
            return -1

    def upcall(self, vcpu: int = 0) -> list[int]:
        """evtchn_do_upcall on `vcpu` (see Event2L.upcall)."""
        return self.ops.upcall(vcpu, self.handlers)

    def local_irq_disable(self, vcpu: int = 0) -> None:
        self.ops.local_irq_disable(vcpu)

    def local_irq_enable(self, vcpu: int = 0) -> bool:
        return self.ops.local_irq_enable(vcpu)

    def clear_mask_bit(self, port: int) -> None:
        self.ops.clear_mask_bit(port)


class EventChannels:
    """Every domain's event channels on one hypervisor."""

    def __init__(self, hv: "Hypervisor") -> None:
        self.hv = hv
        self.domains: dict[int, DomainEvents] = {}

    def of(self, domid: int) -> DomainEvents:
        d = self.domains.get(domid)
        if d is None:
            dom = self.hv.domains.get(domid)
            d = self.domains[domid] = DomainEvents(domid=domid, nr_vcpus=dom.config.vcpus if dom else 1)
        return d

    # --- Xen's side -----------------------------------------------------------------
    def set_pending(self, domid: int, port: int) -> None:
        d = self.domains.get(domid)
        if d is not None:
            d.ops.set_pending(port, d.vcpu_of.get(port, 0))

    def alloc_unbound(self, caller: "Domain", dom: int, remote_dom: int) -> int:
        dom = caller.domid if dom == C.DOMID_SELF else dom
        remote_dom = caller.domid if remote_dom == C.DOMID_SELF else remote_dom
        if dom != caller.domid and not caller.privileged:
            return C.EPERM
        if dom not in self.hv.domains:
            return C.ESRCH
        d = self.of(dom)
        port = d.alloc_port()
        if port < 0:
            return -28  # -ENOSPC
        d.state[port] = ECS_UNBOUND
        d.remote_dom[port] = remote_dom
        return port

    def bind_interdomain(self, caller: "Domain", remote_dom: int, remote_port: int) -> int:
        remote_dom = caller.domid if remote_dom == C.DOMID_SELF else remote_dom
        if remote_dom not in self.hv.domains:
            return C.ESRCH
        rd = self.of(remote_dom)
        if not 0 < remote_port < NR_EVENT_CHANNELS or rd.state[remote_port] != ECS_UNBOUND:
            return C.EINVAL
        if rd.remote_dom.get(remote_port) != caller.domid:
            return C.EINVAL  # the unbound port was offered to another domain
        ld = self.of(caller.domid)
        lport = ld.alloc_port()
        if lport < 0:
            return -28
        ld.state[lport] = ECS_INTERDOMAIN
        ld.remote_dom[lport], ld.remote_port[lport] = remote_dom, remote_port
        rd.state[remote_port] = ECS_INTERDOMAIN
        rd.remote_port[remote_port] = lport
        # Xen raises the event on the local port so neither side misses an event sent before the bind.
        self.set_pending(caller.domid, lport)
        return lport

    def bind_virq(self, caller: "Domain", virq: int, vcpu: int) -> int:
        if not 0 <= virq < NR_VIRQS:
            return C.EINVAL
        d = self.of(caller.domid)
        if not 0 <= vcpu < len(d.vcpus):
            return C.ENOENT
        if (virq, vcpu) in d.virq_port:
            return C.EEXIST
        port = d.alloc_port()
        if port < 0:
            return -28
        d.state[port] = ECS_VIRQ
        d.virq_of[port], d.vcpu_of[port] = virq, vcpu
        d.virq_port[(virq, vcpu)] = port
        return port

    def bind_ipi(self, caller: "Domain", vcpu: int) -> int:
        d = self.of(caller.domid)
        if not 0 <= vcpu < len(d.vcpus):
            return C.ENOENT
        port = d.alloc_port()
        if port < 0:
            return -28
        d.state[port] = ECS_IPI
        d.vcpu_of[port] = vcpu
        return port

    def close(self, domid: int, port: int) -> int:
        d = self.domains.get(domid)
        if d is None or not 0 < port < NR_EVENT_CHANNELS or d.state[port] in (ECS_FREE, ECS_RESERVED):
            return C.EINVAL
        st = d.state[port]
        if st == ECS_INTERDOMAIN:
            rdom, rport = d.remote_dom.get(port), d.remote_port.get(port)
            rd = self.domains.get(rdom)
            if rd is not None and rd.state[rport] == ECS_INTERDOMAIN and rd.remote_port.get(rport) == port:
                # The other end survives as an unbound port offered back to us (Xen does this).
                rd.state[rport] = ECS_UNBOUND
                rd.remote_dom[rport] = domid
                rd.remote_port.pop(rport, None)
        elif st == ECS_VIRQ:
            d.virq_port.pop((d.virq_of.get(port), d.vcpu_of.get(port, 0)), None)
        d.state[port] = ECS_FREE
        for m in (d.remote_dom, d.remote_port, d.virq_of, d.vcpu_of, d.handlers):
            m.pop(port, None)
        d.ops.reset_port(port)
        return 0

    def send(self, domid: int, port: int) -> int:
        d = self.domains.get(domid)
        if d is None or not 0 < port < NR_EVENT_CHANNELS:
            return C.EINVAL
        st = d.state[port]
        if st == ECS_INTERDOMAIN:
            self.set_pending(d.remote_dom[port], d.remote_port[port])
            return 0
        if st == ECS_IPI:
            self.set_pending(domid, port)
            return 0
        if st == ECS_UNBOUND:
            return 0  # nobody is listening yet: Xen drops it silently
        return C.EINVAL

    def unmask(self, domid: int, port: int) -> int:
        d = self.domains.get(domid)
        if d is None or not 0 <= port < NR_EVENT_CHANNELS:
            return C.EINVAL
        d.ops.unmask(port, d.vcpu_of.get(port, 0))
        return 0

    def raise_virq(self, domid: int, virq: int, vcpu: int = 0) -> bool:
        """Xen raises a virtual IRQ (e.g. VIRQ_TIMER on a timer tick). False if nobody bound it."""
        d = self.domains.get(domid)
        port = d.virq_port.get((virq, vcpu)) if d is not None else None
        if port is None:
            return False
        self.set_pending(domid, port)
        return True

    def status(self, domid: int, port: int, out: dict) -> int:
        d = self.domains.get(domid)
        if d is None:
            return C.ESRCH
        if not 0 <= port < NR_EVENT_CHANNELS:
            return C.EINVAL
        st = d.state[port]
        out["status"] = st
        out["vcpu"] = d.vcpu_of.get(port, 0)
        if st in (ECS_UNBOUND, ECS_INTERDOMAIN):
            out["remote_dom"] = d.remote_dom.get(port)
            out["remote_port"] = d.remote_port.get(port)
        if st == ECS_VIRQ:
            out["virq"] = d.virq_of[port]
        return 0

    def release_domain(self, domid: int) -> None:
        d = self.domains.get(domid)
        if d is None:
            return
        for port in range(1, NR_EVENT_CHANNELS):
            if d.state[port] != ECS_FREE:
                self.close(domid, port)
        # Ports elsewhere still offered to this domain (unbound, remote = domid) stay unbound
        # but point at nobody; Xen leaves them too. Nothing else names this domain.
        del self.domains[domid]

    def open_ports(self, domid: int) -> int:
        d = self.domains.get(domid)
        return 0 if d is None else sum(1 for s in d.state[1:] if s != ECS_FREE)


def _out(key: str, rc: int, out: dict) -> int:
    if rc >= 0:
        out[key] = rc
    return rc


def _op_status(ev: EventChannels, caller: "Domain", arg: dict, out: dict) -> int:
    dom = arg.get("dom", C.DOMID_SELF)
    dom = caller.domid if dom == C.DOMID_SELF else dom
    if dom != caller.domid and not caller.privileged:
        return C.EPERM
    return ev.status(dom, arg.get("port", -1), out)


def _op_bind_vcpu(ev: EventChannels, caller: "Domain", arg: dict, out: dict) -> int:
    d = ev.domains.get(caller.domid)
    port, vcpu = arg.get("port", -1), arg.get("vcpu", 0)
    if d is None or not 0 < port < NR_EVENT_CHANNELS or d.state[port] == ECS_FREE:
        return C.EINVAL
    if not 0 <= vcpu < len(d.vcpus):
        return C.ENOENT
    d.vcpu_of[port] = vcpu
    return 0


# EVTCHNOP_* -> fn(ev, caller, arg, out): the sub-operation table (Xen's do_event_channel_op switch).
EVTCHNOP_TABLE: dict[int, Callable[[EventChannels, "Domain", dict, dict], int]] = {
    EVTCHNOP_send: lambda ev, c, a, o: ev.send(c.domid, a.get("port", -1)),
    EVTCHNOP_alloc_unbound: lambda ev, c, a, o: _out(
        "port", ev.alloc_unbound(c, a.get("dom", C.DOMID_SELF), a.get("remote_dom", C.DOMID_INVALID)), o),
    EVTCHNOP_bind_interdomain: lambda ev, c, a, o: _out(
        "local_port", ev.bind_interdomain(c, a.get("remote_dom", C.DOMID_INVALID), a.get("remote_port", -1)), o),
    EVTCHNOP_bind_virq: lambda ev, c, a, o: _out("port", ev.bind_virq(c, a.get("virq", -1), a.get("vcpu", 0)), o),
    EVTCHNOP_bind_ipi: lambda ev, c, a, o: _out("port", ev.bind_ipi(c, a.get("vcpu", 0)), o),
    EVTCHNOP_close: lambda ev, c, a, o: ev.close(c.domid, a.get("port", -1)),
    EVTCHNOP_unmask: lambda ev, c, a, o: ev.unmask(c.domid, a.get("port", -1)),
    EVTCHNOP_status: _op_status,
    EVTCHNOP_bind_vcpu: _op_bind_vcpu,
}


def event_channel_op_handler(ev: EventChannels) -> Callable[..., int]:
    """The event_channel_op (32) hypercall handler, a closure over one hypervisor's `ev`."""

    def do_event_channel_op(hv: "Hypervisor", caller: "Domain", cmd: int, arg: dict | None = None,
                            out: dict | None = None) -> int:
        """event_channel_op(cmd, arg): arg holds the op struct's fields by their Xen names.

        alloc_unbound {dom, remote_dom} -> port; bind_interdomain {remote_dom, remote_port}
        -> local_port; bind_virq {virq, vcpu} -> port; bind_ipi {vcpu} -> port;
        close/send/unmask {port}; status {dom, port}. Ports come back both as the
        return value and in `out`.
        """
        if out is not None and not isinstance(out, dict):
            return C.EFAULT  # Xen could not write the results back to the guest
        arg = {} if arg is None else arg
        if not guest_struct(arg):
            return C.EFAULT  # Xen could not copy the op struct from guest memory
        op = EVTCHNOP_TABLE.get(cmd)
        if op is None:
            return C.ENOSYS
        return op(ev, caller, arg, out if out is not None else {})

    return do_event_channel_op
