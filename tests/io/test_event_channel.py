from vmlab.hypervisor import constants as C
from vmlab.io.event_channel import (ECS_INTERDOMAIN, ECS_UNBOUND, EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain,
                                    EVTCHNOP_bind_virq, EVTCHNOP_close, EVTCHNOP_send, EVTCHNOP_status,
                                    EVTCHNOP_TABLE, NR_EVENT_CHANNELS, VIRQ_TIMER)


def _pair(hv, io, d):
    """An interdomain channel: domU offers a port to dom0, dom0 binds it. Returns (domU port, dom0 port)."""
    out = {}
    up = hv.hypercall(d, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": C.DOMID_SELF, "remote_dom": 0}, out)
    assert up > 0 and out["port"] == up
    bp = hv.hypercall(0, "event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": d, "remote_port": up}, out)
    assert bp > 0 and out["local_port"] == bp
    io.events.of(0).pending[bp] = 0  # discard the bind-time event for a clean start
    return up, bp


def _handler(io, domid, port, seen):
    io.events.of(domid).handlers[port] = seen.append


def test_event_channel_op_is_hypercall_32_and_2level_gives_4096_ports(machine):
    hv, d, io = machine
    assert hv.hypercalls["event_channel_op"].number == 32
    assert NR_EVENT_CHANNELS == 4096
    assert hv.hypercall(d, 32, 77) == C.ENOSYS


def test_an_interdomain_send_raises_an_upcall_on_the_other_side(machine):
    hv, d, io = machine
    up, bp = _pair(hv, io, d)
    seen = []
    _handler(io, 0, bp, seen)
    io.events.unmask(0, bp)
    assert hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up}) == 0
    assert io.events.of(0).vcpus[0].upcall_pending
    io.deliver_events(0)
    assert seen == [bp] and not io.events.of(0).pending[bp]


def test_binding_a_port_offered_to_another_domain_is_einval(two_guests):
    hv, d1, d2, io = two_guests
    port = hv.hypercall(d1, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": C.DOMID_SELF, "remote_dom": 0})
    assert hv.hypercall(d2, "event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": d1, "remote_port": port}) == C.EINVAL
    assert hv.hypercall(d2, "event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": 999, "remote_port": 1}) == C.ESRCH


def test_only_dom0_allocates_a_port_in_another_domain(two_guests):
    hv, d1, d2, io = two_guests
    assert hv.hypercall(d1, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": d2, "remote_dom": 0}) == C.EPERM
    assert hv.hypercall(0, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": d2, "remote_dom": 0}) > 0


def test_closing_one_end_leaves_the_other_unbound(machine):
    hv, d, io = machine
    up, bp = _pair(hv, io, d)
    out = {}
    hv.hypercall(d, "event_channel_op", EVTCHNOP_status, {"port": up}, out)
    assert out["status"] == ECS_INTERDOMAIN and out["remote_port"] == bp
    assert hv.hypercall(0, "event_channel_op", EVTCHNOP_close, {"port": bp}) == 0
    hv.hypercall(d, "event_channel_op", EVTCHNOP_status, {"port": up}, out)
    assert out["status"] == ECS_UNBOUND and out["remote_dom"] == 0
    assert hv.hypercall(0, "event_channel_op", EVTCHNOP_close, {"port": bp}) == C.EINVAL
    assert hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up}) == 0  # unbound: dropped


def test_virq_timer_binds_once_per_vcpu_and_ticks_raise_it(machine):
    hv, d, io = machine
    port = hv.hypercall(d, "event_channel_op", EVTCHNOP_bind_virq, {"virq": VIRQ_TIMER, "vcpu": 0})
    assert port > 0
    assert hv.hypercall(d, "event_channel_op", EVTCHNOP_bind_virq, {"virq": VIRQ_TIMER, "vcpu": 0}) == C.EEXIST
    assert hv.hypercall(d, "event_channel_op", EVTCHNOP_bind_virq, {"virq": 99, "vcpu": 0}) == C.EINVAL
    seen = []
    _handler(io, d, port, seen)
    io.events.unmask(d, port)
    assert io.events.raise_virq(d, VIRQ_TIMER)
    io.deliver_events(d)
    assert seen == [port]


def test_a_timer_tick_raises_virq_timer_in_every_domain_that_bound_it(machine):
    hv, d, io = machine
    port = hv.hypercall(d, "event_channel_op", EVTCHNOP_bind_virq, {"virq": VIRQ_TIMER, "vcpu": 0})
    io.events.unmask(d, port)
    assert io.timer_tick() == 1
    assert io.events.of(d).vcpus[0].upcall_pending


def test_every_sub_operation_is_a_row_of_the_table_and_others_are_enosys(machine):
    """do_event_channel_op's switch (xen/common/event_channel.c): unknown cmd -> -ENOSYS, bad struct -> -EFAULT."""
    hv, d, io = machine
    assert sorted(EVTCHNOP_TABLE) == [0, 1, 3, 4, 5, 6, 7, 8, 9]  # bind_pirq (2) is not modelled
    assert hv.hypercall(d, "event_channel_op", 99, {}) == C.ENOSYS
    assert hv.hypercall(d, "event_channel_op", EVTCHNOP_send, "not a struct") == C.EFAULT


def test_each_hypervisor_has_its_own_channels(machine):
    """The handler is a closure over one hypervisor's tables: a port on one machine is unknown on another."""
    from vmlab.io.system import io_system, new_io_machine
    hv, d, io = machine
    out = {}
    port = hv.hypercall(d, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": C.DOMID_SELF, "remote_dom": 0}, out)
    hv2, d2 = new_io_machine()
    assert io_system(hv2).events.open_ports(d2) == 0 and io.events.open_ports(d) == 1
    # On the other machine the same domid has no channels at all (evtchn_status: -ESRCH).
    assert hv2.hypercall(d2, "event_channel_op", EVTCHNOP_status, {"dom": C.DOMID_SELF, "port": port}, {}) == C.ESRCH
