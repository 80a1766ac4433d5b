"""Page-table traffic traces and the cost helpers the execution-paths model uses."""

import pytest

from vmlab.errors import ConfigError
from vmlab.paging.traffic import (COUNTERS, compare_schemes, pte_update_cost, run_scenario, tlb_miss_cost,
                                  traffic_trace)


def test_tlb_miss_cost_is_4_24_19():
    assert [tlb_miss_cost(s)["refs"] for s in ("native", "pv", "shadow", "nested")] == [4, 4, 4, 24]
    assert tlb_miss_cost("nested", large_nested_pages=True)["refs"] == 19


def test_pte_update_cost_counts_real_pv_hypercalls():
    assert pte_update_cost("pv", 100, batch_size=32)["hypercalls"] == 4
    assert pte_update_cost("pv", 100, batch_size=1)["hypercalls"] == 100
    assert pte_update_cost("shadow", 100)["exits"] == 100
    assert pte_update_cost("nested", 100)["exits"] == pte_update_cost("nested", 100)["hypercalls"] == 0


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


def test_unknown_scenario_is_refused():
    with pytest.raises(ConfigError):
        run_scenario("pv", "boot-storm")
