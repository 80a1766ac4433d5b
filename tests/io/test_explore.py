import pytest

from vmlab.errors import ConfigError
from vmlab.io.explore import io_compare, io_explore, ring_walkthrough


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




def test_io_compare_puts_the_two_paths_side_by_side():
    cols = io_compare(n_requests=16)
    pv, hvm = io_explore(path="pv", n_requests=16), io_explore(path="hvm", n_requests=16)
    assert cols["metrics"]["metric"] == pv["metric"]
    assert cols["metrics"]["pv"] == pv["per_request"] and cols["metrics"]["hvm"] == hvm["per_request"]
    assert cols["cycles"]["component"] == pv["component"]


def test_ring_walkthrough_answers_every_request_and_is_seeded():
    w = ring_walkthrough(n_requests=24, seed=3)
    assert w == ring_walkthrough(n_requests=24, seed=3)
    assert w["summary"]["requests"] == [24] and w["summary"]["current_step"] == w["summary"]["steps"]
    assert set(w["steps"]) >= {"req_prod", "rsp_prod", "notify", "suppressed"}
    off = ring_walkthrough(n_requests=24, suppression=False, seed=3)
    assert off["summary"]["suppressed"] == [0]


def test_ring_walkthrough_arguments_follow_io_ring_h():
    for bad in ({"size": 6}, {"batch": 9}, {"n_requests": 0}):
        with pytest.raises(ConfigError):
            ring_walkthrough(**bad)


def test_pv_on_hvm_uses_the_split_driver_but_its_hypercalls_are_vmcall_exits():
    """An HVM guest with PV drivers: blkfront's notify is a VMCALL (vmx_vmexit_handler -> hvm_do_hypercall);
    dom0's blkback is PV. The emulated path pays an ioreq round trip per IDE register access."""
    from vmlab.io.explore import io_compare
    from vmlab.io.pricing import DEFAULT_IO_COSTS, ioreq_round_trip
    c = io_compare(request_kib=4, batch=1, n_requests=16)
    m = {k: dict(pv=p, hvm=h, pvhvm=x) for k, p, h, x in zip(c["metrics"]["metric"], c["metrics"]["pv"],
                                                             c["metrics"]["hvm"], c["metrics"]["pvhvm"])}
    assert m["grant maps+unmaps"]["pvhvm"] == m["grant maps+unmaps"]["pv"] > 0
    assert m["hypercalls"]["pvhvm"] == m["hypercalls"]["pv"]
    assert m["VM exits"]["pv"] == 0 < m["VM exits"]["pvhvm"] < m["VM exits"]["hvm"] == 12
    assert m["cycles"]["pv"] < m["cycles"]["pvhvm"] < m["cycles"]["hvm"] / 4
    trip = ioreq_round_trip(DEFAULT_IO_COSTS)
    assert trip["hop"] == ["guest -> Xen", "Xen -> qemu-dm", "qemu-dm", "qemu-dm -> Xen", "Xen -> guest"]
    assert sum(trip["cycles"]) == DEFAULT_IO_COSTS.exit_to_device_model_cycles
    assert c["ioreq"] == trip
