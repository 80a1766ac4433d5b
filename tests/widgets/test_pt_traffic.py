from vmlab.widgets.pt_traffic import TrafficExplorer


def row(w, scheme):
    d = w.totals.data
    i = d["scheme"].index(scheme)
    return {k: v[i] for k, v in d.items()}


def test_only_pv_makes_hypercalls_and_only_shadow_exits_on_pte_writes():
    w = TrafficExplorer("mmap_churn", pages=64, accesses=800)
    assert row(w, "pv")["hypercalls"] > 0 and row(w, "shadow")["hypercalls"] == 0
    assert row(w, "shadow")["exits"] > row(w, "nested")["exits"] == 0
    assert row(w, "nested")["walk_refs"] > 5 * row(w, "pv")["walk_refs"]


def test_batch_size_changes_pv_hypercalls_only():
    w = TrafficExplorer("build", pages=64, accesses=200)
    before = row(w, "pv")["hypercalls"], row(w, "shadow")["cycles"]
    w.batch.value = 1
    after = row(w, "pv")["hypercalls"], row(w, "shadow")["cycles"]
    assert after[0] > 10 * before[0] and after[1] == before[1]
    assert row(w, "pv")["pt_writes"] == row(w, "nested")["pt_writes"]


def test_stacked_categories_add_up_to_the_total():
    w = TrafficExplorer("fork", pages=64, accesses=800)
    d = w.totals.data
    for i in range(3):
        parts = sum(d[k][i] for k in d if k.startswith("k_"))
        assert abs(parts - d["kcycles"][i]) < 1e-6 * max(1, d["kcycles"][i])


def test_counter_dropdown_and_timeline():
    w = TrafficExplorer("switch", pages=64, accesses=600)
    w.counter.value = "tlb_misses"
    assert w.totals.data["selected"] == w.totals.data["tlb_misses"]
    t = w.timeline.data
    assert set(t["scheme"]) == {"pv", "shadow", "nested"}
    for s in ("pv", "shadow", "nested"):
        times = [x for x, sc in zip(t["time_s"], t["scheme"]) if sc == s]
        assert times == sorted(times)


def test_widget_tree_builds():
    assert len(TrafficExplorer("build", pages=32, accesses=100).widget.children) == 3
