"""Widget-facing columns of the guest area: traffic traces, scheme comparison, the 2D walk grid."""

from vmlab.guest.explore import compare_schemes, traffic_trace, walk_grid
from vmlab.guest.traffic import COUNTERS, run_scenario


def test_trace_deltas_sum_to_the_cumulative_counts():
    k = run_scenario("pv", "fork", pages=64, accesses=500)
    t = traffic_trace(k)
    assert t["event"][:2] == ["switch", "spawn"] and t["event"][-1] == "end"
    for key in COUNTERS:
        assert sum(t[key]) == t[f"cum_{key}"][-1] == k.stats[key]
    assert t["time_s"] == sorted(t["time_s"])


def test_compare_schemes_runs_the_same_work():
    d = compare_schemes("build", pages=64, accesses=100)["totals"]
    assert d["scheme"] == ["pv", "shadow", "nested"]
    assert len(set(d["pt_writes"])) == 1 and len(set(d["tlb_misses"])) == 1


def test_walk_grid_cold_is_the_24_reference_walk():
    g = walk_grid()
    assert len(g["row"]) == 25 and g["total"][0] == g["cold_total"][0] == 24
    assert sorted(o for o in g["order"] if o) == list(range(1, 25))


def test_walk_grid_large_nested_pages_take_19_references():
    assert walk_grid(large_nested_pages=True)["total"][0] == 19
