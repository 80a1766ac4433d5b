import pytest

from vmlab.errors import ConfigError
from vmlab.migration import HotCold, MemoryImage, UniformWrites
from vmlab.migration.baselines import cloudsim_migration, simgrid_precopy
from vmlab.migration.explore import compare_models
from vmlab.migration.dirty_rate import calc_dirty_rate, wws_curve, wws_over_time


def test_page_sampling_uses_512_pages_per_gib():
    img = MemoryImage.from_mib(2048)
    r = calc_dirty_rate(img, UniformWrites(rate_pages_s=1000, wws_pages=1000), calc_time_s=1)
    assert r.sample_pages == 1024
    assert r.query_dirty_rate()["sample-pages"] == 512


def test_bitmap_mode_counts_distinct_pages_and_leaves_log_dirty_off():
    img = MemoryImage.from_mib(256)
    r = calc_dirty_rate(img, UniformWrites(rate_pages_s=100_000, wws_pages=1_000), calc_time_s=1,
                        mode="dirty-bitmap")
    assert r.dirty_pages == 1_000
    assert r.dirty_rate_mib_s == pytest.approx(1_000 * 4096 / 2**20)
    assert img.log is None


def test_a_longer_window_reports_a_lower_rate():
    img = MemoryImage.from_mib(1024)
    wl = UniformWrites(rate_pages_s=50_000, wws_pages=20_000)
    short = calc_dirty_rate(img, wl, calc_time_s=1, mode="dirty-bitmap")
    long = calc_dirty_rate(img, wl, calc_time_s=10, mode="dirty-bitmap")
    assert long.dirty_rate_mib_s < short.dirty_rate_mib_s


def test_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="dirty-ring|page-sampling"):
        calc_dirty_rate(MemoryImage(100), UniformWrites(wws_pages=10), mode="dirty-ring")


def test_wws_curve_saturates_at_the_working_set():
    cols = wws_curve(UniformWrites(rate_pages_s=50_000, wws_pages=5_000), 10_000, windows_s=(0.01, 1.0, 10.0))
    assert cols["distinct_pages"][0] < cols["distinct_pages"][1] <= cols["distinct_pages"][2] == 5_000
    assert cols["dirty_rate_mib_s"][2] < cols["dirty_rate_mib_s"][0]


def test_wws_over_time_counts_new_pages_once():
    cols = wws_over_time(HotCold(rate_pages_s=10_000, hot_pages=100, cold_pages=1_000), 2_000, duration_s=5)
    assert cols["cumulative_pages"][-1] == sum(cols["new_pages"]) <= 1_100


def test_cloudsim_is_ram_over_half_the_bandwidth():
    r = cloudsim_migration(1024, 1000)
    assert r.total_time_s == pytest.approx(1024 * 2**20 / (125e6 / 2))
    assert r.downtime_ms == 0


def test_simgrid_never_converges_when_dirtying_beats_the_link():
    assert not simgrid_precopy(1024, 100, dirty_rate_mib_s=50).converged
    assert simgrid_precopy(1024, 1000, dirty_rate_mib_s=10).converged


def test_compare_models_gives_three_rows():
    cols = compare_models(256, 1000, rate_pages_s=10_000, wws_pages=4_096)
    assert cols["model"][:2] == ["CloudSim", "SimGrid"] and cols["model"][2].startswith("vmlab")
    assert all(len(v) == 3 for v in cols.values())
