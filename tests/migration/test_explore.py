import pytest

from vmlab.errors import ConfigError
from vmlab.migration.explore import EXPLORER_POLICIES, compare_models, explore

from vmlab.migration.defaults import default_used_mib as _default_used

_USED_1024 = _default_used(1024, 64)   # the calibrated minimal guest + a 64 MiB working set


def test_explore_returns_plain_columns_for_bars_timeline_and_readouts():
    out = explore(memory_mib=64, wws_mib=8, dirty_rate_mib_s=16)
    bars, rounds = out["bars"], out["rounds"]
    assert len(bars["x"]) == len(rounds["round"]) == out["totals"]["rounds"]
    assert bars["sent_mib"] == [b / 2**20 for b in rounds["bytes_sent"]]
    assert bars["dirtied_mib"] == [p * 4096 / 2**20 for p in rounds["pages_dirtied"]]
    assert out["timeline"]["remaining_mib"][0] == 64
    assert all(isinstance(v, list) for v in (*bars.values(), *out["timeline"].values()))


def test_every_listed_policy_runs_and_an_unknown_one_is_refused():
    for p in EXPLORER_POLICIES:
        assert explore(memory_mib=64, wws_mib=8, policy=p)["totals"]["policy"].startswith(p.split("-")[0])
    with pytest.raises(ConfigError, match="policy"):
        explore(policy="vmware")


def test_compare_models_puts_cloudsim_simgrid_and_vmlab_side_by_side():
    cols = compare_models(64, 1000, rate_pages_s=5_000, wws_pages=1_000)
    assert cols["model"][:2] == ["CloudSim", "SimGrid"] and cols["model"][2].startswith("vmlab")
    assert cols["downtime_ms"][0] == 0.0  # CloudSim has no downtime at all


def test_explore_states_its_assumptions_and_a_slow_link_cap_in_the_readouts():
    t = explore(memory_mib=1024, bandwidth_mbps=1000)["totals"]
    assert any(a.startswith(f"assumed: {_USED_1024:.0f} of 1024 MiB non-zero") for a in t["assumed"])
    assert sum(a.startswith("capped: max-bandwidth 128 MiB/s") for a in t["assumed"]) == 1
    fast = explore(memory_mib=1024)["totals"]
    assert any(a.startswith("assumed: a 10 Gbit/s link") for a in fast["assumed"])
