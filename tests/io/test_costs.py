import pytest

from vmlab.errors import ConfigError
from vmlab.io.costs import IoCosts, cycles_breakdown, io_explore


def _m(cols, name):
    return cols["per_request"][cols["metric"].index(name)]


def test_batching_cuts_notifications_per_request():
    one = io_explore(batch=1, n_requests=64)
    eight = io_explore(batch=8, n_requests=64)
    assert _m(eight, "notifications") < _m(one, "notifications")
    assert _m(eight, "cycles") < _m(one, "cycles")


def test_turning_suppression_off_sends_a_notification_per_push():
    on = io_explore(batch=4, suppression=True, n_requests=64, seed=1)
    off = io_explore(batch=4, suppression=False, n_requests=64, seed=1)
    assert _m(off, "notifications") > _m(on, "notifications")
    assert _m(off, "notifications suppressed") == 0 < _m(on, "notifications suppressed")


def test_the_emulated_path_pays_a_dozen_exits_per_request_and_pv_none():
    hvm = io_explore(path="hvm", n_requests=16)
    pv = io_explore(path="pv", n_requests=16)
    assert _m(hvm, "VM exits") == 12 and _m(pv, "VM exits") == 0
    assert _m(hvm, "cycles") > _m(pv, "cycles")
    assert io_explore(path="hvm", batch=8, n_requests=16) == hvm  # IDE cannot batch


def test_pv_grant_work_scales_with_segments():
    small = io_explore(request_kib=4, n_requests=16)
    big = io_explore(request_kib=44, n_requests=16)
    assert _m(small, "grant maps+unmaps") == 2 and _m(big, "grant maps+unmaps") == 22
    assert _m(big, "MB/s per CPU (overhead only)") > _m(small, "MB/s per CPU (overhead only)")


def test_explorer_arguments_are_checked():
    for bad in ({"path": "bt"}, {"request_kib": 6}, {"request_kib": 48}, {"batch": 0}, {"n_requests": 0}):
        with pytest.raises(ConfigError):
            io_explore(**bad)
    with pytest.raises(ConfigError, match="hypercall_cycles"):
        IoCosts(hypercall_cycles=-1)


def test_cycles_breakdown_prices_each_counted_event():
    br = cycles_breakdown({"hypercalls": 2, "exits": 1}, IoCosts(hypercall_cycles=10, exit_to_device_model_cycles=100))
    assert br["hypercalls"] == 20 and br["exits"] == 100 and br["grant_ops"] == 0


def test_io_costs_can_follow_a_cost_model_preset():
    from vmlab.costs import preset
    p = preset("xen_pv")
    c = IoCosts.from_cost_model(p, grant_map_cycles=1)
    assert c.hypercall_cycles == p.hypercall_roundtrip_cycles and c.cpu_hz == p.clock_ghz * 1e9
    assert c.grant_map_cycles == 1
