from vmlab.widgets.io_explorer import IoExplorer


def _bar(w, metric, path):
    d = w.counts.data
    return d["value"][d["x"].index((metric, path))]


def test_pv_makes_no_exits_and_the_emulated_disk_a_dozen():
    w = IoExplorer()
    assert _bar(w, "VM exits", "PV") == 0 and _bar(w, "VM exits", "HVM") == 12
    assert w.metric("cycles", "hvm") > w.metric("cycles", "pv")


def test_a_bigger_batch_cuts_pv_notifications_per_request():
    w = IoExplorer()
    before = _bar(w, "notifications", "PV")
    w.batch.value = 16
    assert _bar(w, "notifications", "PV") < before / 2
    assert "PV" in w.summary.value


def test_suppression_off_costs_notifications():
    w = IoExplorer(batch=8)
    on = _bar(w, "notifications", "PV")
    w.suppression.value = False
    assert _bar(w, "notifications", "PV") > on


def test_bigger_requests_map_more_grants_per_request():
    w = IoExplorer()
    w.request_kib.value = 44
    assert _bar(w, "grant maps+unmaps", "PV") == 22


def test_the_breakdown_toggle_switches_paths():
    w = IoExplorer()
    pv = dict(zip(w.cycles.data["component"], w.cycles.data["cycles"]))
    w.path.value = "hvm"
    hvm = dict(zip(w.cycles.data["component"], w.cycles.data["cycles"]))
    assert pv["exits"] == 0 < hvm["exits"] and hvm["grant_ops"] == 0 < pv["grant_ops"]


def test_widget_tree_builds_without_a_browser():
    assert len(IoExplorer().widget.children) == 4
