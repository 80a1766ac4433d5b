from vmlab.widgets.pagewalk import PageWalkExplorer


def orders(w):
    return sorted(o for o in w.source.data["order"] if o)


def test_cold_walk_shows_24_references_in_order():
    w = PageWalkExplorer()
    assert orders(w) == list(range(1, 25))
    d = w.source.data
    first = [(r, c) for r, c, o in zip(d["row"], d["col"], d["order"]) if o in (1, 5, 24)]
    assert first == [("gL4", "nL4"), ("gL4", "guest"), ("data", "nL1")]
    assert "<b>24</b>" in w.summary.value


def test_large_nested_pages_drop_the_nl1_column_to_19():
    w = PageWalkExplorer()
    w.large.value = True
    assert orders(w) == list(range(1, 20))
    d = w.source.data
    assert all(k == "n/a" for c, k in zip(d["col"], d["kind"]) if c == "nL1")
    assert w.step.max == 19


def test_warm_caches_skip_cells():
    w = PageWalkExplorer()
    w.nested_tlb.value = True
    w.pwc.value = True
    w.warm.value = True
    assert len(orders(w)) == 5
    assert w.source.data["kind"].count("cached") == 19


def test_step_slider_replays_the_walk():
    w = PageWalkExplorer()
    w.step.value = 6
    d = w.source.data
    shown = [t for t, o in zip(d["text"], d["order"]) if o]
    assert shown.count("") == 18 and "6" in shown


def test_widget_tree_builds():
    assert len(PageWalkExplorer().widget.children) == 5
