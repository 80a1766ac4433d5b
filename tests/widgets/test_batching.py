import math

from vmlab.widgets.batching import BatchingExplorer


def test_bigger_batches_mean_fewer_hypervisor_entries():
    w = BatchingExplorer()
    sweep = w.sources["sweep"].data
    entries = sweep["hypervisor_entries"]
    assert all(a >= b for a, b in zip(entries, entries[1:]))
    assert entries[0] > 3 * entries[sweep["batch"].index(32)]


def test_measured_cost_never_beats_the_full_batch_formula():
    d = BatchingExplorer().sources["sweep"].data
    for m, f in zip(d["cycles_per_update"], d["formula"]):
        assert m >= f - 1e-9


def test_ptemod_batches_fill_completely():
    w = BatchingExplorer()
    w.workload.value = "ptemod"
    w.batch.value = 16
    hist = w.sources["histogram"].data
    k = 20_000
    assert hist["batches"][16] == k // 16
    assert w.sources["sweep"].data["hypercalls"][w.sources["sweep"].data["batch"].index(16)] == math.ceil(k / 16)
    assert "in 1,250 hypercalls" in w.summary.value


def test_slider_moves_the_marker_histogram_and_reasons():
    w = BatchingExplorer()
    w.batch.value = 8
    assert w.marker.location == 8
    assert len(w.sources["histogram"].data["size"]) == 9
    reasons = dict(zip(w.sources["reasons"].data["reason"], w.sources["reasons"].data["count"]))
    assert reasons["slots"] > 0 and reasons["tlb_flush"] > 0


def test_timeline_is_sampled_and_in_time_order():
    t = BatchingExplorer().sources["timeline"].data["time_ms"]
    assert 0 < len(t) <= 2000 and t == sorted(t)


def test_widget_tree_builds_without_a_browser():
    assert len(BatchingExplorer().widget.children) == 3
