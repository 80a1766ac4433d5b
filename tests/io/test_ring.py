import pytest

from vmlab.errors import ConfigError
from vmlab.io.ring import (BLKIF_RING_SIZE, NET_RX_RING_SIZE, NET_TX_RING_SIZE, BackRing, FrontRing, SharedRing,
                           ring_columns, ring_size)


def _pair(size=8, start=0, suppress=True):
    s = SharedRing.init(size, start)
    return FrontRing(s, suppress=suppress), BackRing(s, suppress=suppress)


def test_ring_sizes_are_the_power_of_two_that_fits_one_page():
    assert (BLKIF_RING_SIZE, NET_TX_RING_SIZE, NET_RX_RING_SIZE) == (32, 256, 256)
    assert ring_size(112) == 32 and ring_size(4000) == 1
    with pytest.raises(ConfigError):
        SharedRing(size=12)


def test_the_first_push_notifies_and_pushes_while_the_backend_is_busy_do_not():
    f, b = _pair()
    f.put_request("r0")
    assert f.push_requests() is True           # req_event = 1 asks for the first one
    b.get_request()                            # backend working, has not re-armed req_event
    f.put_request("r1")
    assert f.push_requests() is False
    f.put_request("r2")
    assert f.push_requests() is False
    assert f.counts["suppressed"] == 2


def test_a_backend_that_runs_dry_rearms_so_the_next_push_notifies():
    f, b = _pair()
    f.put_request("r0")
    f.push_requests()
    b.get_request()
    assert b.final_check_for_requests() is False   # sets req_event = req_cons + 1
    assert b.sring.req_event == 2
    f.put_request("r1")
    assert f.push_requests() is True


def test_the_final_check_catches_a_request_that_slipped_in():
    f, b = _pair()
    f.put_request("r0")
    f.push_requests()
    b.get_request()
    f.put_request("r1")
    assert f.push_requests() is False           # backend did not ask yet...
    assert b.final_check_for_requests() is True  # ...but its final check sees the request


def test_without_suppression_every_push_notifies():
    f, b = _pair(suppress=False)
    for i in range(3):
        f.put_request(i)
        assert f.push_requests() is True
    assert f.push_requests() is False           # nothing new: nothing to say


def test_responses_are_suppressed_the_same_way():
    f, b = _pair()
    for i in range(3):
        f.put_request(i)
    f.push_requests()
    for _ in range(3):
        b.put_response(b.get_request())
    assert b.push_responses() is True
    assert f.get_response() == 0
    b_more = f.final_check_for_responses()
    assert b_more is True and f.unconsumed_responses() == 2


def test_indices_wrap_around_2_to_the_32():
    f, b = _pair(size=4, start=2**32 - 2)
    got = []
    for i in range(10):
        f.put_request(i)
        f.push_requests()
        b.put_response(b.get_request())
        b.push_responses()
        got.append(f.get_response())
    assert got == list(range(10)) and f.req_prod_pvt == 8


def test_a_full_ring_refuses_another_request():
    f, _ = _pair(size=4)
    for i in range(4):
        f.put_request(i)
    assert f.full() and f.free_requests() == 0
    with pytest.raises(ConfigError, match="ring full"):
        f.put_request(4)


def test_ring_columns_show_each_slot_stage():
    f, b = _pair(size=8)
    for i in range(5):
        f.put_request(i)
    f.push_requests()
    f.put_request(5)
    b.get_request()
    b.get_request()
    b.put_response("x")
    b.push_responses()
    cols = ring_columns(f, b)
    assert cols["stage"] == ["response", "in flight", "request", "request", "request", "request (private)", "free", "free"]
    assert "rsp_cons" in cols["pointers"][0] and sum(cols["req_event_slot"]) == 1
