from collections import Counter

from helpers import make_xm, pv
from vmlab.widgets.dashboard import DomainDashboard


def frames(dash):
    c = Counter()
    for label, n in zip(dash.source.data["label"], dash.source.data["frames"]):
        c[label] += n
    return c


def test_memory_map_updates_when_a_guest_is_created_and_destroyed():
    xm = make_xm(memory_mib=4096)
    dash = DomainDashboard(xm, rows=32)
    free = frames(dash)["free"]
    dash.name.value, dash.memory.value, dash.kind.value = "web", 512, "hvm"
    dash.buttons["create"].click()
    assert frames(dash)["web"] == 131072 and frames(dash)["free"] == free - 131072
    assert "web" in dash.table.value and "ok" in dash.message.value
    dash.target.value = "web"
    dash.buttons["destroy"].click()
    assert "web" not in frames(dash) and frames(dash)["free"] == free
    assert dash.target.value is None


def test_buttons_report_refusals_in_one_line_and_change_nothing():
    xm = make_xm(memory_mib=2048)
    dash = DomainDashboard(xm)
    dash.memory.value = 8192
    dash.buttons["create"].click()
    assert "exceeds" in dash.message.value and len(xm.hv.domains) == 1
    dash.buttons["pause"].click()
    assert "no domain chosen" in dash.message.value


def test_pause_and_mem_set_buttons_drive_the_toolstack():
    xm = make_xm()
    xm.create(pv("vm1", memory=512))
    dash = DomainDashboard(xm)
    dash.target.value = "vm1"
    dash.buttons["pause"].click()
    assert "--p---" in dash.table.value
    dash.buttons["unpause"].click()
    dash.mem_target.value = 256
    dash.buttons["mem-set"].click()
    assert frames(dash)["vm1"] == 65536


def test_widget_tree_builds_without_a_browser():
    dash = DomainDashboard(make_xm())
    box = dash.widget
    assert len(box.children) == 5


def test_dashboard_follows_verbs_run_outside_it():
    xm = make_xm()
    dash = DomainDashboard(xm)
    xm.create(pv("side", memory=256))
    assert frames(dash)["side"] == 65536 and "side" in dash.table.value
    xm.pause("side")
    assert "--p---" in dash.table.value
    xm.destroy("side")
    assert "side" not in frames(dash)
