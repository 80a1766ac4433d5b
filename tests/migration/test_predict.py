import pytest

from vmlab.errors import ConfigError
from vmlab.migration import SequentialScan, UniformWrites, dirtying_workload, predict_migration


def test_idle_guest_on_a_fast_link_has_a_short_downtime_and_sends_zero_pages_as_duplicates():
    rep = predict_migration(memory_mib=1024, used_mib=256, bandwidth_mbps=10_000)
    assert rep.status == "completed"
    assert rep.duplicate_pages == 3 * 65_536 and rep.normal_pages == 65_536
    assert rep.downtime_ms < 100


def test_rate_limit_sets_the_live_throughput():
    rep = predict_migration(memory_mib=512, bandwidth_mbps=10_000, max_bandwidth_mib_s=64)
    live = rep.rounds[0]
    assert live.bandwidth_mbps == pytest.approx(64 * 2**20 * 8 / 1e6, rel=0.05)


def test_a_larger_downtime_limit_switches_over_sooner():
    kw = dict(memory_mib=1024, dirty_rate_mib_s=60, wws_mib=256, bandwidth_mbps=1000, pattern="uniform")
    tight = predict_migration(downtime_limit_ms=100, **kw)
    loose = predict_migration(downtime_limit_ms=2000, **kw)
    assert loose.total_time_ms <= tight.total_time_ms or tight.status != "completed"
    assert loose.dirty_sync_count <= tight.dirty_sync_count or tight.status != "completed"


def test_dirtying_workload_patterns():
    assert isinstance(dirtying_workload(10, 64), SequentialScan)
    assert isinstance(dirtying_workload(10, 64, pattern="uniform"), UniformWrites)
    with pytest.raises(ConfigError, match="pattern"):
        dirtying_workload(10, 64, pattern="zigzag")
