from vmlab.widgets.ring import RingVisualizer


def test_slots_show_one_stage_each_and_the_ring_has_8_slots():
    w = RingVisualizer()
    d = w.slots.data
    assert len(d["slot"]) == 8 and len(d["color"]) == 8
    assert set(d["stage"]) <= {"free", "request (private)", "request", "in flight", "response (private)", "response"}


def test_moving_the_step_slider_changes_the_slots_and_the_marker():
    w = RingVisualizer(batch=4)
    w.step.value = 1
    first = list(w.slots.data["stage"])
    assert w.marker.location == 1 and "step 1 of" in w.summary.value
    assert first.count("request") == 4      # the first action pushed one batch of 4
    w.step.value = 3
    assert w.marker.location == 3


def test_turning_suppression_off_marks_no_suppressed_pushes():
    w = RingVisualizer(batch=2)
    assert "suppressed" in w.notes.data["kind"]
    w.suppression.value = False
    assert "suppressed" not in w.notes.data["kind"]
    assert w.step.value == w.step.max


def test_indices_never_run_backwards():
    w = RingVisualizer(batch=3, n_requests=30)
    s = w.steps.data
    for k in ("req_prod", "req_cons", "rsp_prod", "rsp_cons"):
        assert s[k] == sorted(s[k])
    assert all(c <= p for c, p in zip(s["req_cons"], s["req_prod"]))


def test_widget_tree_builds_without_a_browser():
    assert len(RingVisualizer().widget.children) == 4
