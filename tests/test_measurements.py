"""datasets/measurements/qemu_migration: real QEMU migrations, loaded typed, hash-checked, self-consistent.

The dataset is made by tools/qemu_groundtruth/run.py (not part of the test suite: it boots QEMU).
These tests only read the committed files.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import shutil

import numpy as np
import pytest

from vmlab import datasets as ds
from vmlab import measurements as ms
from vmlab.errors import DatasetError, VmlabError

RUNS = ms.load_qemu_runs()
RUN_IDS = [r.run_id for r in RUNS]
CSV_REL = f"{ms.QEMU_MIGRATION_DIR}/runs.csv"
TRACES_REL = f"{ms.QEMU_MIGRATION_DIR}/traces.json.gz"


@pytest.fixture
def copy_of_datasets(tmp_path):
    root = tmp_path / "datasets"
    shutil.copytree(ds.DATASETS_DIR, root)
    return root


def _raw_rows():
    text = (ds.DATASETS_DIR / CSV_REL).read_text(encoding="utf-8")
    return list(csv.DictReader(ln for ln in text.splitlines() if ln and not ln.startswith("#")))


# --------------------------------------------------------------------------- loading


def test_every_file_is_registered_with_its_sha256():
    reg = ds.verify_registry()
    for name in ("runs.csv", "traces.json.gz", "provenance.json"):
        assert f"{ms.QEMU_MIGRATION_DIR}/{name}" in reg


def test_runs_load_as_typed_frozen_records_in_file_order():
    assert RUN_IDS == [row["run_id"] for row in _raw_rows()]
    assert len(set(RUN_IDS)) == len(RUN_IDS)
    run = RUNS[0]
    assert isinstance(run, ms.QemuRun) and isinstance(run.ram_mib, int) and isinstance(run.auto_converge, bool)
    with pytest.raises(AttributeError):
        run.ram_mib = 1  # type: ignore[misc]
    for r in RUNS:
        assert r.outcome in ms.OUTCOMES and r.verification in ms.VERDICTS and r.pattern in ms.PATTERNS
        assert r.converged == (r.outcome == "completed")


def test_loader_round_trip_every_typed_value_equals_its_csv_cell():
    for run, raw in zip(RUNS, _raw_rows()):
        for name, cell in raw.items():
            value = getattr(run, name)
            if cell == "":
                assert value is None, (run.run_id, name)
            elif isinstance(value, bool):
                assert cell == ("true" if value else "false"), (run.run_id, name)
            elif isinstance(value, float):
                assert value == pytest.approx(float(cell), rel=1e-12), (run.run_id, name)
            else:
                assert str(value) == cell, (run.run_id, name)


def test_every_run_has_a_trace_and_every_trace_a_run():
    data = json.loads(gzip.decompress((ds.DATASETS_DIR / TRACES_REL).read_bytes()))
    assert sorted(data["runs"]) == sorted(RUN_IDS)


def test_trace_columns_are_read_only_float_arrays_with_nan_for_unreported_fields():
    tr = ms.load_qemu_trace(RUN_IDS[0])
    assert tr.t_s.dtype == np.float64 and tr["transferred_bytes"].dtype == np.float64
    assert set(tr.columns) == set(ms.TRACE_COLUMNS) and set(tr.dirtier) == set(ms.DIRTIER_COLUMNS)
    assert tr.query_migrate_fields["transferred_bytes"] == "ram.transferred"
    with pytest.raises(ValueError):
        tr.t_s[0] = 0.0
    assert "-incoming" in tr.argv["dst"] and "-S" in tr.argv["dst"] and "-incoming" not in tr.argv["src"]


def test_unknown_run_is_refused_in_one_line_naming_the_choice():
    with pytest.raises(DatasetError) as err:
        ms.load_qemu_trace("no-such-run")
    assert "\n" not in str(err.value) and "no-such-run" in str(err.value) and "load_qemu_runs" in str(err.value)
    with pytest.raises(DatasetError):
        ms.load_qemu_trace(RUN_IDS[0])["no_such_column"]


# --------------------------------------------------------------------------- hash refusal


@pytest.mark.parametrize("rel", [CSV_REL, TRACES_REL, f"{ms.QEMU_MIGRATION_DIR}/provenance.json"])
def test_tampered_copy_is_refused_with_a_one_line_error_naming_file_rule_and_fix(copy_of_datasets, rel):
    path = copy_of_datasets / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    loaders = {CSV_REL: lambda: ms.load_qemu_runs(root=copy_of_datasets),
               TRACES_REL: lambda: ms.load_qemu_trace(RUN_IDS[0], root=copy_of_datasets)}
    with pytest.raises(DatasetError) as err:
        loaders.get(rel, lambda: ms.qemu_provenance(root=copy_of_datasets))()
    msg = str(err.value)
    assert "\n" not in msg and rel in msg and "sha256" in msg and "registry" in msg
    assert isinstance(err.value, VmlabError) and isinstance(err.value, ValueError)


def test_untampered_copy_loads_the_same_runs(copy_of_datasets):
    assert ms.load_qemu_runs(root=copy_of_datasets) == RUNS


# --------------------------------------------------------------------------- trace vs summary


def _same(summary, trace_value):
    return (summary is None and math.isnan(trace_value)) or (summary is not None and summary == trace_value)


@pytest.mark.parametrize("run", RUNS, ids=RUN_IDS)
def test_every_trace_is_consistent_with_its_summary_row(run):
    tr = ms.load_qemu_trace(run.run_id)
    assert len(tr.t_s) == run.n_polls
    if run.outcome == "failed" and run.n_polls == 0:
        return
    assert np.all(np.diff(tr.t_s) > 0), "polls in time order"
    total = tr["total_bytes"]
    for col in ("transferred_bytes", "duplicate_pages", "normal_pages", "dirty_sync_count"):
        seen = tr[col][~np.isnan(tr[col])]
        assert np.all(np.diff(seen) >= 0), f"{col} never decreases"
    last = len(tr.t_s) - 1 if run.outcome == "completed" else int(np.nonzero(~np.isnan(total))[0][-1])
    if run.outcome == "completed":
        assert tr.status[-1] == "completed" and run.verification in ("match", "mismatch")
        assert run.downtime_ms is not None and run.downtime_ms == tr["downtime_ms"][-1]
    else:
        assert tr.status[-1] != "completed" and run.verification == "not_run" and run.downtime_ms is None
    if run.outcome == "cancelled_timeout":
        assert run.total_time_ms >= 1000 * run.timeout_s - 200, "cancelled only after the timeout"
    for name, col in (("total_time_ms", "total_time_ms"), ("transferred_bytes", "transferred_bytes"),
                      ("precopy_bytes", "precopy_bytes"), ("downtime_bytes", "downtime_bytes"),
                      ("ram_total_bytes", "total_bytes"), ("duplicate_pages", "duplicate_pages"),
                      ("normal_pages", "normal_pages"), ("normal_bytes", "normal_bytes"),
                      ("dirty_sync_count", "dirty_sync_count"), ("setup_time_ms", "setup_time_ms")):
        assert _same(getattr(run, name), tr[col][last]), name
    throttle = np.nan_to_num(tr["cpu_throttle_pct"])
    assert run.max_throttle_pct == int(throttle.max(initial=0))
    assert run.ram_total_bytes is None or run.ram_total_bytes >= (run.ram_mib << 20)


# --------------------------------------------------------------------------- what the dataset covers


def test_dataset_covers_the_grid_the_calibration_needs():
    assert len(RUNS) >= 40
    assert {r.ram_mib for r in RUNS} >= {128, 256, 512}
    assert {r.pattern for r in RUNS} == {"rand", "seq"}
    assert {r.auto_converge for r in RUNS} == {True, False}
    assert len({r.downtime_limit_ms for r in RUNS}) >= 3 and len({r.max_bandwidth_mib_s for r in RUNS}) >= 4
    assert any(r.outcome == "cancelled_timeout" for r in RUNS), "includes runs that never converge"
    assert sum(r.converged for r in RUNS) >= 20


def test_provenance_names_qemu_accelerator_kernels_and_command_lines():
    prov = ms.qemu_provenance()
    assert prov["qemu_version"].startswith("QEMU emulator version")
    assert prov["accelerator"] in ("tcg", "kvm") and {r.accel for r in RUNS} == {prov["accelerator"]}
    assert prov["guest_kernel"] and prov["host_kernel"] and prov["harness_git_commit"]
    assert "qemu-system-x86_64" in prov["qemu_argv_example"]["src"]
    assert any('"migrate"' in m[2] for m in prov["qmp_example"]["src"])


# --- datasets/measurements/qemu_target_trace: the target's side, from QEMU's trace events -------------------

def test_target_trace_is_registered_and_loads_one_row_per_traced_run():
    reg = ds.verify_registry()
    for rel in ("measurements/qemu_target_trace/runs.csv", "measurements/qemu_target_trace/provenance.json"):
        assert rel in reg
    rows = ms.load_target_trace()
    assert len(rows) >= 8 and all(set(r) == set(ms.TARGET_TRACE_COLUMNS) for r in rows)
    done = [r for r in rows if r["outcome"] == "completed"]
    assert all(r["data_records"] > 0 and r["hugepage_first_writes"] > 0 and r["socket_backlog_bytes"] > 0
               for r in done)


def test_target_trace_shows_the_two_huge_page_fault_modes_and_a_few_mib_in_the_sockets():
    # the first write into a 2 MiB region of the target's RAM (a THP fault) costs ~0.2 ms or ~4.4 ms from
    # run to run on the measuring host; the sockets held a few MiB the target had not read at the stop
    done = [r for r in ms.load_target_trace() if r["outcome"] == "completed"]
    faults = np.array([r["hugepage_fault_ms_median"] for r in done])
    assert ((faults > 0.1) & (faults < 0.5)).any() and ((faults > 3.5) & (faults < 6.0)).any()
    assert not ((faults >= 0.5) & (faults <= 3.5)).any()                 # nothing in between: two modes
    backlog = np.array([r["socket_backlog_bytes"] for r in done]) / 2**20
    assert 2.0 < np.median(backlog) < 8.0


def test_tampered_target_trace_is_refused_in_one_line(copy_of_datasets):
    path = copy_of_datasets / "measurements/qemu_target_trace/runs.csv"
    path.write_text(path.read_text().replace("completed", "complete", 1))
    with pytest.raises(DatasetError) as err:
        ms.load_target_trace(root=copy_of_datasets)
    assert "\n" not in str(err.value) and "qemu_target_trace/runs.csv" in str(err.value)
