from vmlab.ovm import Manager
from vmlab.widgets.pool_dashboard import PoolDashboard


def pool():
    m = Manager.create_pool(servers=3, memory_mib=2048)
    m.import_template("EL5", memory_mib=256, image_mib=256)
    for n, s in (("web1", "ovs1"), ("web2", "ovs2"), ("db1", "ovs2")):
        m.create_from_template("EL5", n, server=s, ha=True)
    m.set_pool_ha(True)
    return m


def guests_on(dash, label_start):
    d = dash.bars.data
    return sorted(n for s, n in zip(d["server"], d["name"]) if s.startswith(label_start)
                  and n not in ("free", "Xen + dom0"))


def test_bars_show_roles_and_guests_per_server():
    dash = PoolDashboard(pool())
    assert "ovs1 [master,utility,vm]" in dash.bars.data["server"]
    assert guests_on(dash, "ovs2") == ["db1", "web2"]
    # the bars of a server add up to its memory
    d = dash.bars.data
    assert max(r for s, r in zip(d["server"], d["right"]) if s.startswith("ovs1")) == 2048


def test_failing_a_server_and_advancing_shows_restart_on_the_timeline():
    m = pool()
    dash = PoolDashboard(m)
    dash.servers.value = "ovs2"
    dash.buttons["fail"].click()
    assert any(s.startswith("ovs2 [vm] DOWN") for s in dash.bars.data["server"])
    dash.buttons["advance 30 s"].click()
    dash.buttons["advance 30 s"].click()
    kinds = set(dash.dots.data["kind"])
    assert {"fault", "heartbeat-missed", "dead", "restart"} <= kinds
    assert guests_on(dash, "ovs2") == []


def test_buttons_report_refusals_in_one_line():
    dash = PoolDashboard(pool())
    dash.buttons["fail"].click()
    assert "no server chosen" in dash.message.value
    dash.servers.value = "ovs3"
    dash.buttons["fail"].click()
    dash.buttons["fail"].click()
    assert "already down" in dash.message.value


def test_widget_tree_builds_without_a_browser():
    dash = PoolDashboard(pool())
    assert len(dash.widget.children) == 4
    assert dash.memory_figure.xaxis[0].axis_label == "memory (MiB)"
    assert dash.timeline_figure.xaxis[0].axis_label == "simulated time (s)"


def test_a_split_brain_shows_the_stale_copy_outlined_on_a_cut_off_server():
    m = Manager.create_pool(servers=3, memory_mib=2048, fencing=False)
    m.import_template("EL5", memory_mib=256, image_mib=64)
    m.create_from_template("EL5", "db", server="ovs3", ha=True)
    m.set_pool_ha(True)
    m.isolate("ovs3")
    m.advance(60)
    dash = PoolDashboard(m)
    d = dash.bars.data
    rows = [(s, n, line) for s, n, line in zip(d["server"], d["name"], d["line"]) if n == "db"]
    assert ("ovs3 [vm] CUT OFF", "db", "#000000") in rows and len(rows) == 2
