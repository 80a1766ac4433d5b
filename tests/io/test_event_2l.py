"""The 2-level layout (xen/common/event_2l.c): pending and mask bits, the selector, the upcall."""

from vmlab.hypervisor import constants as C
from vmlab.io.event_2l import BITS_PER_WORD, NR_EVENT_CHANNELS, Event2L
from vmlab.io.event_channel import EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_send, EVTCHNOP_unmask


def _pair(hv, io, d):
    """An interdomain channel: domU offers a port to dom0, dom0 binds it. Returns (domU port, dom0 port)."""
    out = {}
    up = hv.hypercall(d, "event_channel_op", EVTCHNOP_alloc_unbound, {"dom": C.DOMID_SELF, "remote_dom": 0}, out)
    bp = hv.hypercall(0, "event_channel_op", EVTCHNOP_bind_interdomain, {"remote_dom": d, "remote_port": up}, out)
    io.events.of(0).pending[bp] = 0  # discard the bind-time event for a clean start
    return up, bp


def _handler(io, domid, port, seen):
    io.events.of(domid).handlers[port] = seen.append


def test_the_2level_layout_has_64_words_of_64_ports_all_masked_at_boot():
    lay = Event2L(nr_vcpus=2)
    assert NR_EVENT_CHANNELS == BITS_PER_WORD * BITS_PER_WORD == 4096
    assert all(lay.mask) and not any(lay.pending) and len(lay.vcpus) == 2


def test_set_pending_on_an_unmasked_port_sets_its_word_in_the_selector_of_its_vcpu():
    """evtchn_2l_set_pending: pending bit, then the selector bit port / 64, then upcall_pending."""
    lay = Event2L(nr_vcpus=2)
    lay.unmask(130, 1)
    lay.set_pending(130, 1)
    assert lay.pending[130] and lay.vcpus[1].pending_sel == 1 << 2 and lay.vcpus[1].upcall_pending
    assert not lay.vcpus[0].upcall_pending
    seen = []
    assert lay.upcall(1, {130: seen.append}) == [130] and seen == [130] and not lay.pending[130]


def test_sends_while_pending_merge_into_one_event(machine):
    hv, d, io = machine
    up, bp = _pair(hv, io, d)
    seen = []
    _handler(io, 0, bp, seen)
    io.events.unmask(0, bp)
    for _ in range(3):
        hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up})
    io.deliver_events(0)
    assert seen == [bp] and io.events.of(0).counts["merged"] == 2


def test_an_event_raised_while_masked_waits_and_the_unmask_hypercall_delivers_it(machine):
    hv, d, io = machine
    up, bp = _pair(hv, io, d)  # ports start masked, as Linux masks every port at boot
    seen = []
    _handler(io, 0, bp, seen)
    hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up})
    ev = io.events.of(0)
    assert ev.pending[bp] and not ev.vcpus[0].upcall_pending
    io.deliver_events(0)
    assert seen == []
    assert hv.hypercall(0, "event_channel_op", EVTCHNOP_unmask, {"port": bp}) == 0
    io.deliver_events(0)
    assert seen == [bp]


def test_clearing_the_mask_bit_without_rechecking_pending_loses_the_edge(machine):
    hv, d, io = machine
    up, bp = _pair(hv, io, d)
    seen = []
    _handler(io, 0, bp, seen)
    hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up})
    io.events.of(0).clear_mask_bit(bp)           # a bare store: nobody re-checks pending
    hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up})  # merges with the stuck pending bit
    io.deliver_events(0)
    assert seen == [] and io.events.of(0).pending[bp]  # lost: pending forever, no upcall


def test_the_upcall_mask_is_the_pv_interrupt_flag(machine):
    hv, d, io = machine
    up, bp = _pair(hv, io, d)
    seen = []
    _handler(io, 0, bp, seen)
    io.events.unmask(0, bp)
    ev = io.events.of(0)
    ev.local_irq_disable()                       # PV cli: a store, no hypercall
    calls = len(hv.trace.filter(kind="hypercall", domid=0))
    hv.hypercall(d, "event_channel_op", EVTCHNOP_send, {"port": up})
    io.deliver_events(0)
    assert seen == [] and ev.counts["deferred"] == 1
    assert ev.local_irq_enable() is True         # sti finds an upcall waiting
    io.deliver_events(0)
    assert seen == [bp]
    assert len(hv.trace.filter(kind="hypercall", domid=0)) == calls  # cli/sti made no hypercall
