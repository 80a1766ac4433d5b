import pytest

from vmlab.hypervisor.domain import DiskSpec
from vmlab.io.hotplug import attach_block
from vmlab.io.xenbus import XenbusError, XenbusState, check_transition, read_state


def test_xenbus_states_have_xens_numbers():
    assert [int(s) for s in (XenbusState.Unknown, XenbusState.Initialising, XenbusState.InitWait,
                             XenbusState.Initialised, XenbusState.Connected, XenbusState.Closing,
                             XenbusState.Closed)] == list(range(7))


def test_a_driver_cannot_jump_from_connected_back_to_initwait():
    with pytest.raises(XenbusError, match="Connected.*InitWait"):
        check_transition(XenbusState.Connected, XenbusState.InitWait)
    check_transition(XenbusState.Connected, XenbusState.Closing)


def test_the_handshake_publishes_ring_ref_and_event_channel_and_both_ends_connect(machine):
    hv, d, io = machine
    dev = attach_block(io, d, DiskSpec(path="/OVS/a.img", vdev="xvda"), run=False)
    xs = io.xenstore
    assert read_state(xs, 0, dev.back.node) == XenbusState.InitWait
    io.xenstore.deliver_watches(limit=2)         # frontend sees InitWait, sets up its ring
    assert read_state(xs, 0, dev.front.node) == XenbusState.Initialised
    assert int(xs.read(0, f"{dev.front.node}/ring-ref")) == dev.front.ring_ref
    io.run()
    assert read_state(xs, 0, dev.back.node) == read_state(xs, 0, dev.front.node) == XenbusState.Connected
    assert dev.front.sectors == dev.back.disk.sectors


def test_closing_the_frontend_takes_the_backend_down_and_unmaps_the_ring(machine):
    hv, d, io = machine
    dev = attach_block(io, d, DiskSpec(path="/OVS/a.img", vdev="xvda"))
    from vmlab.io.xenbus import switch_state
    switch_state(io.xenstore, d, dev.front.node, XenbusState.Closing)
    io.run()
    assert read_state(io.xenstore, 0, dev.back.node) == XenbusState.Closed
    assert io.grants.live_mappings(0) == 0
