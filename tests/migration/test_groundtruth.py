"""vmlab/migration/groundtruth.py: the measures that put the model next to real runs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vmlab.migration.groundtruth import config_of, downtime_ratio, repeat_noise
from vmlab.measurements import load_qemu_runs


def test_downtime_ratio_is_symmetric_with_a_1_ms_floor_as_query_migrate_reports_whole_ms():
    assert downtime_ratio(2.0, 8.0) == downtime_ratio(8.0, 2.0) == 4.0
    assert downtime_ratio(0.2, 1.0) == 1.0          # 0 ms and 1 ms are one tick of QEMU's clock
    assert downtime_ratio(0.3, 2.0) == 2.0


def test_repeat_noise_counts_the_repeat_the_model_and_the_best_number_on_each_run():
    a, b, solo = ("a",), ("b",), ("solo",)
    obs = [(a, "a1", 2.0), (a, "a2", 50.0), (b, "b1", 10.0), (b, "b2", 12.0), (b, "b3", 30.0), (solo, "s", 5.0)]
    got = repeat_noise(obs, {a: 10.0, b: 11.0, solo: 5.0})
    assert (got["configs"], got["runs"]) == (2, 5)          # a configuration run once is not a repeat
    # a1 vs a2 25x apart: neither predicts the other; b1 <- median(12, 30) = 21 no, b2 <- 20 yes, b3 <- 11 no
    assert got["repeat_within_2x"] == 1
    assert got["model_within_2x"] == 2                       # 11 ms: b1 and b2; 10 ms is 5x from both a's
    assert got["best_constant_within_2x"] == 1 + 3           # one number for a (2 and 50 are > 4x apart)
    assert [g["runs"] for g in got["groups"]] == [["a1", "a2"], ["b1", "b2", "b3"]]


def test_repeat_noise_skips_a_configuration_the_model_gave_no_downtime_for():
    a = ("a",)
    got = repeat_noise([(a, "x", 3.0), (a, "y", 4.0)], {a: None})
    assert got["runs"] == got["configs"] == got["model_within_2x"] == 0


@given(st.lists(st.floats(0.0, 2000.0), min_size=2, max_size=8), st.floats(0.0, 2000.0))
def test_no_model_beats_the_best_number_chosen_with_hindsight(dts, model):
    cfg = ("c",)
    got = repeat_noise([(cfg, str(i), d) for i, d in enumerate(dts)], {cfg: model})
    assert got["model_within_2x"] <= got["best_constant_within_2x"] <= got["runs"] == len(dts)
    assert got["repeat_within_2x"] <= got["runs"]


def test_config_of_is_equal_for_the_repeats_of_the_grid_and_differs_between_configurations():
    runs = {r.run_id: r for r in load_qemu_runs()}
    assert config_of(runs["rate01"]) == config_of(runs["rep00"]) == config_of(runs["rep02"])
    assert config_of(runs["idle05"]) == config_of(runs["reidle00"])
    assert config_of(runs["rate01"]) != config_of(runs["idle05"])
