"""vmlab's QEMU model against the project's real QEMU 7.2 runs: the constants are the fitted ones,
and the held-out errors may not get worse than the committed calibration report says.

tools/calibrate_migration.py refits and rewrites datasets/tables/qemu_migration_calibrated.csv and
datasets/measurements/qemu_migration/calibration.json; these tests read only committed files.
"""

from __future__ import annotations

import csv
import json

import pytest

from vmlab import datasets as ds
from vmlab.migration import defaults as D
from vmlab.migration.groundtruth import DIRTIER_CPU_SHARE, compare_runs, error_summary, held_out
from vmlab.migration.policies import QemuPolicy

TABLE = ds.DATASETS_DIR / "tables/qemu_migration_calibrated.csv"
REPORT = ds.DATASETS_DIR / "measurements/qemu_migration/calibration.json"


def _runs():
    from vmlab import measurements as ms
    try:
        return ms.load_qemu_runs()
    except Exception as exc:  # the dataset arrives with branch i13-qemu
        pytest.skip(f"real-QEMU dataset not available: {exc}")


def _table() -> dict[str, float]:
    rows = csv.DictReader(ln for ln in TABLE.read_text().splitlines() if not ln.startswith("#"))
    return {r["name"]: float(r["value"]) for r in rows}


def test_the_code_uses_the_fitted_constants_of_the_registered_table():
    reg = json.loads((ds.DATASETS_DIR / "registry.json").read_text())["files"]
    assert "tables/qemu_migration_calibrated.csv" in reg
    t, p = _table(), QemuPolicy()
    assert (D.GUEST_BASE_MIB, D.GUEST_PER_RAM, D.GUEST_WSET_SHARE) == (t["guest_base_mib"], t["guest_per_ram"],
                                                                         t["guest_wset_share"])
    assert D.GUEST_TOP_EXTRA_MIB == t["guest_top_extra_mib"]
    assert D.GUEST_LOW_DENSITY == t["guest_low_density"]
    assert (D.GUEST_HOT_PAGES, D.GUEST_HOT_RATE_PAGES_S) == (t["guest_hot_pages"], t["guest_hot_rate_pages_s"])
    assert (p.setup_ms, p.stop_overhead_ms, p.final_page_cpu_us) == (t["setup_ms"], t["stop_overhead_ms"],
                                                                       t["final_page_cpu_us"])
    assert (p.normal_page_cpu_us, p.zero_page_scan_us, p.sync_ms) == (t["normal_page_cpu_us"],
                                                                       t["zero_page_scan_us"], t["sync_ms"])
    assert DIRTIER_CPU_SHARE == t["dirtier_cpu_share"]
    assert (p.final_new_page_us, p.final_buffer_pages) == (t["final_new_page_us"], t["final_buffer_pages"])


def test_the_final_copys_target_constants_are_the_measured_ones_not_fitted():
    # final_new_page_us = the target's data-record cost + a 2 MiB huge-page fault per 512 pages (the median
    # traced run), final_buffer_pages = the median socket backlog at the stop / 4104 bytes a record
    # (tools/qemu_groundtruth/trace_target.py; QEMU's trace events ram_load_loop, savevm_section_end)
    import numpy as np
    from vmlab import measurements as ms
    done = [r for r in ms.load_target_trace() if r["outcome"] == "completed"]
    med = {k: float(np.median([r[k] for r in done])) for k in ("data_record_us", "hugepage_fault_ms_median",
                                                                  "socket_backlog_bytes")}
    p = QemuPolicy()
    assert p.final_new_page_us == round(med["data_record_us"] + med["hugepage_fault_ms_median"] * 1000 / 512, 1)
    assert p.final_buffer_pages == round(med["socket_backlog_bytes"] / 4104)
    assert _table()["final_new_page_us"] == p.final_new_page_us


def test_the_targets_live_pace_is_the_measured_one_and_the_traces_show_its_backlog():
    # ram.c ram_load_precopy on the target, per record and per huge page faulted in (medians of the traced
    # runs); the backlog it leaves when the guest stops mid-burst delays the final copy (Migration.backlog_s)
    import numpy as np
    from vmlab import measurements as ms
    done = [r for r in ms.load_target_trace() if r["outcome"] == "completed"]
    med = {k: float(np.median([r[k] for r in done])) for k in ("data_record_us", "zero_record_us",
                                                                  "hugepage_fault_ms_median")}
    p, t = QemuPolicy(), _table()
    assert (p.target_page_us, p.target_zero_us, p.target_region_fault_ms) == (
        round(med["data_record_us"], 2), round(med["zero_record_us"], 2), round(med["hugepage_fault_ms_median"], 2))
    assert (t["target_page_us"], t["target_zero_us"], t["target_region_fault_ms"]) == (
        p.target_page_us, p.target_zero_us, p.target_region_fault_ms)
    # what the mechanism rests on: a guest stopped right after a live write finds the target busy; one
    # stopped after a rate-limit sleep finds it idle (migration.c migration_rate_limit)
    burst = [r for r in done if r["last_live_write_ms"] < 1]
    slept = [r for r in done if r["last_live_write_ms"] >= 1]
    assert len(burst) >= 10 and all(r["target_backlog_ms"] > 1 for r in burst)
    assert slept and all(r["target_backlog_ms"] <= 0 for r in slept)


def test_the_fixed_part_of_the_downtime_is_the_measured_stop_and_device_state():
    # migration.c migration_completion: vm_stop_force_state (from the last live sync's end to the
    # migration_completion_vm_stop trace event), then qemu_savevm_state_complete_precopy's sections after
    # ram (cpu, apic, timers, devices): medians over the traced runs, whatever the target did meanwhile
    import numpy as np
    from vmlab import measurements as ms
    done = [r for r in ms.load_target_trace() if r["outcome"] == "completed"]
    stop = float(np.median([r["vm_stop_ms"] for r in done]))
    device = float(np.median([r["device_state_ms"] for r in done]))
    assert 0.05 < stop < 0.5 and 0.5 < device < 1.5      # what the traces show: ~0.1 ms and ~0.9 ms
    assert QemuPolicy().stop_overhead_ms == round(stop + device, 2) == _table()["stop_overhead_ms"]


def test_the_device_state_is_measured_in_every_run_as_the_streams_bytes_beyond_the_ram_counters():
    # migration.c migration_calculate_complete: mbps = migration_total_bytes (every byte of the stream) x 8 /
    # (total-time - setup-time), both whole ms from one clock; ram.transferred counts page records only
    # (ram.c ram_transferred_add). What is left is the vCPU and device state: ~111 KiB in every run, whatever
    # its RAM, on a quiet or a loaded host; QemuPolicy.device_state_kib is the training runs' median.
    import numpy as np
    from vmlab import measurements as ms
    rest = {d: [r.mbps * (r.total_time_ms - r.setup_time_ms) * 1000 / 8 - r.transferred_bytes
                for r in ms.load_qemu_runs(dataset=d) if r.outcome == "completed"]
            for d in ("qemu_migration", "qemu_migration_fresh", "qemu_migration_loaded")}
    every = np.concatenate([np.array(v) for v in rest.values()]) / 1024
    assert every.size > 120 and 108 < every.min() and every.max() < 120
    train = [r for r in _runs() if not held_out(r.run_id) and r.outcome == "completed"]
    med = np.median([r.mbps * (r.total_time_ms - r.setup_time_ms) * 1000 / 8 - r.transferred_bytes for r in train])
    assert QemuPolicy().device_state_kib == round(float(med) / 1024, 1) == _table()["device_state_kib"]


def test_the_split_is_fixed_by_the_run_id_hash():
    assert [held_out(r) for r in ("idle02", "idle07", "ac00", "idle00", "rate00")] == [True, True, True, False, False]


def test_held_out_errors_are_no_worse_than_the_committed_calibration_report():
    locked = json.loads(REPORT.read_text())["held_out"]
    rows = [r for r in compare_runs(_runs()) if r.held_out]   # the student path: predict_migration's defaults
    got = error_summary(rows)
    eps = 1e-6
    assert got["runs"] == locked["runs"]
    assert got["calls_right"] >= locked["calls_right"], got["wrong_calls"]
    assert got["time_err_median"] <= locked["time_err_median"] + eps
    assert got["time_err_max"] <= locked["time_err_max"] + eps
    assert got["bytes_err_median"] <= locked["bytes_err_median"] + eps
    assert got["bytes_err_max"] <= locked["bytes_err_max"] + eps
    assert got["downtime_ratio_median"] <= locked["downtime_ratio_median"] + eps
    assert got["downtime_ratio_max"] <= locked["downtime_ratio_max"] + eps
    assert got["downtime_within_2x"] >= locked["downtime_within_2x"]
    assert got["downtime_in_stated_range"] >= locked["downtime_in_stated_range"]
    assert got["throttle_abs_err_max"] <= locked["throttle_abs_err_max"]
    assert got["sync_abs_err_max"] <= locked["sync_abs_err_max"]


def test_held_out_calls_time_and_bytes_meet_the_issue_goals():
    got = error_summary([r for r in compare_runs(_runs()) if r.held_out])
    assert got["calls_right"] == got["runs"], got["wrong_calls"]
    assert got["time_err_median"] <= 0.10 and got["time_err_max"] <= 0.30, got["time_err_max_run"]
    assert got["bytes_err_max"] <= 0.05


def test_real_repeats_of_one_configuration_spread_beyond_2x_in_downtime():
    # The floor under "downtime within 2x": the same configuration run again gives downtimes 107x
    # apart (the idle guest at 256 MiB/s: the switchover check falls before or after the end of the
    # first pass) and 2.2x apart even for a busy guest at 32 MiB/s; a deterministic model gives one
    # number per configuration. The committed report lists them (tools/calibrate_migration.py).
    reps = {tuple(g["runs"]): g for g in json.loads(REPORT.read_text())["repeats"]}
    assert reps[("idle05", "reidle00", "reidle01")]["downtime_spread"] > 50
    assert reps[("rate01", "rep00", "rep01", "rep02")]["downtime_spread"] > 2
    assert reps[("rate01", "rep00", "rep01", "rep02")]["time_spread"] < 0.01     # while the time repeats


def test_the_model_predicts_a_real_runs_downtime_better_than_a_repeat_of_that_run_does():
    # "downtime within 2x of real" on every run is beyond any deterministic model: on the configurations
    # measured more than once (grid, fresh, the target trace's re-runs; and the grid on a loaded host) the
    # best single number per configuration, picked with hindsight, is within 2x of fewer than all runs. The
    # model must stay ahead of the median of the other real runs of the configuration, and no worse than
    # the committed report (groundtruth.real_downtimes, repeat_noise).
    from vmlab import measurements as ms
    from vmlab.migration.groundtruth import real_downtimes, repeat_summary
    runs, fresh = _runs(), ms.load_qemu_runs(dataset="qemu_migration_fresh")
    got = repeat_summary(real_downtimes(runs, fresh), compare_runs(runs) + compare_runs(fresh), runs + fresh)
    locked = json.loads(REPORT.read_text())["repeat_noise"]
    for host in ("unloaded_host", "with_loaded_host"):
        g, lk = got[host], locked[host]
        assert (g["runs"], g["configs"], g["repeat_within_2x"], g["best_constant_within_2x"]) == (
            lk["runs"], lk["configs"], lk["repeat_within_2x"], lk["best_constant_within_2x"])   # the data's facts
        assert g["best_constant_within_2x"] < g["runs"]            # reality repeats beyond 2x
        assert g["model_within_2x"] > g["repeat_within_2x"]
        assert g["model_within_2x"] >= lk["model_within_2x"]


def test_runs_measured_after_the_fit_are_no_worse_than_the_committed_report():
    # datasets/measurements/qemu_migration_fresh: 32 runs of the grid "fresh", measured once the
    # constants were fixed and never fitted on. The one wrong call (fresh22) is a run that converged
    # at 99% auto-converge with TCG's lost dirty bits (4 pages differed), as training ac04/ac06 did.
    from vmlab import measurements as ms
    locked = json.loads(REPORT.read_text())["fresh"]
    got = error_summary(compare_runs(ms.load_qemu_runs(dataset="qemu_migration_fresh")))
    eps = 1e-6
    assert got["runs"] == locked["runs"] == 32
    assert got["calls_right"] >= locked["calls_right"] >= 31, got["wrong_calls"]
    assert got["time_err_median"] <= min(0.10, locked["time_err_median"] + eps)
    assert got["time_err_max"] <= locked["time_err_max"] + eps
    assert got["bytes_err_median"] <= min(0.05, locked["bytes_err_median"] + eps)
    assert got["bytes_err_max"] <= locked["bytes_err_max"] + eps
    assert got["downtime_ratio_median"] <= locked["downtime_ratio_median"] + eps
    assert got["downtime_within_2x"] >= locked["downtime_within_2x"]
    assert got["downtime_in_stated_range"] >= locked["downtime_in_stated_range"]
