"""Page-table traffic traces and the cost helpers the execution-paths model uses."""

import pytest

from vmlab.errors import ConfigError
from vmlab.guest.traffic import COUNTERS, pte_update_cost, run_scenario, tlb_miss_cost


def test_tlb_miss_cost_is_4_24_19():
    assert [tlb_miss_cost(s)["refs"] for s in ("native", "pv", "shadow", "nested")] == [4, 4, 4, 24]
    assert tlb_miss_cost("nested", large_nested_pages=True)["refs"] == 19


def test_pte_update_cost_counts_real_pv_hypercalls():
    assert pte_update_cost("pv", 100, batch_size=32)["hypercalls"] == 4
    assert pte_update_cost("pv", 100, batch_size=1)["hypercalls"] == 100
    assert pte_update_cost("shadow", 100)["exits"] == 100
    assert pte_update_cost("nested", 100)["exits"] == pte_update_cost("nested", 100)["hypercalls"] == 0


def test_unknown_scenario_is_refused():
    with pytest.raises(ConfigError):
        run_scenario("pv", "boot-storm")
