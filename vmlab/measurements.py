"""Real QEMU live migrations measured by the project: ``datasets/measurements/qemu_migration/``.

Made by ``tools/qemu_groundtruth/run.py`` (see datasets/README.md for the method and every column):
a small Linux guest whose init is a memory dirtier (W MiB working set, R page writes/s, random or
sequential) migrated between two QEMU processes on one machine over TCP loopback, with
``query-migrate`` polled every 100 ms and the target's memory compared with the source's.

* ``load_qemu_runs()`` -> one ``QemuRun`` per run (parameters, achieved dirty rate, outcome,
  QEMU's final counters, verification verdict);
* ``load_qemu_trace(run_id)`` -> ``QemuTrace``: the run's ``query-migrate`` polls as numpy columns
  (NaN where QEMU did not report a field in that poll) and the dirtier's 1 s reports;
* ``qemu_provenance()`` -> QEMU version, accelerator, kernels, command lines, QMP conversation;
* ``load_target_trace()`` -> the target's costs per traced run (``measurements/qemu_target_trace``,
  from ``tools/qemu_groundtruth/trace_target.py``): record costs, huge-page faults, socket backlog.

Every file is checked against ``datasets/registry.json`` (sha256) with the helpers of
``vmlab.datasets`` before it is read; a missing, altered or malformed file raises ``DatasetError``.
Units are in the names: ``_ms``, ``_s``, ``_bytes``, ``_pages`` (4 KiB target pages),
``_pages_s`` (pages per second), ``_mib`` / ``_mib_s`` (MiB, MiB/s), ``_pct``; ``mbps`` is QEMU's
Mbit/s (1e6 bits).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from vmlab.datasets import _checked, _root
from vmlab.datasets.tables import parse_cell
from vmlab.errors import DatasetError

__all__ = [
    "QEMU_MIGRATION_DIR",
    "QEMU_DATASETS",
    "QemuRun",
    "QemuTrace",
    "OUTCOMES",
    "VERDICTS",
    "PATTERNS",
    "RUN_COLUMNS",
    "TRACE_COLUMNS",
    "DIRTIER_COLUMNS",
    "load_qemu_runs",
    "load_qemu_trace",
    "qemu_provenance",
    "load_target_trace",
    "TARGET_TRACE_COLUMNS",
]

QEMU_MIGRATION_DIR = "measurements/qemu_migration"
# The same grid measured twice: "qemu_migration" on an otherwise idle host with QEMU at nice -10 (the
# one the model is calibrated and validated on), "qemu_migration_loaded" earlier the same day with
# QEMU at nice +10 while other work loaded the 2 cores (loadavg 1-8): what host contention does.
# "qemu_migration_fresh": 32 new combinations measured after the model was calibrated (grid "fresh"),
# for validation only: no constant is fitted on them.
QEMU_DATASETS = ("qemu_migration", "qemu_migration_loaded", "qemu_migration_fresh")


def _dir(dataset: str) -> str:
    if dataset not in QEMU_DATASETS:
        raise DatasetError(f"dataset={dataset!r} is not one of {QEMU_DATASETS}; the default is 'qemu_migration'")
    return f"measurements/{dataset}"
OUTCOMES = ("completed", "cancelled_timeout", "failed")
VERDICTS = ("match", "mismatch", "not_run")
PATTERNS = ("rand", "seq")
_REGEN = "python tools/qemu_groundtruth/run.py --assemble, then python tools/capture_trace.py --registry"


@dataclass(frozen=True, kw_only=True, slots=True)
class QemuRun:
    """One real migration: what was asked, what the guest did, what QEMU reported at the end.

    For ``outcome == "completed"`` the counters are QEMU's final ``query-migrate``; for a run
    cancelled at ``timeout_s`` (``cancelled_timeout``: it never converged) they are from the last
    poll before the cancel, and ``downtime_ms`` is None. ``rate_during_pages_s`` is the dirtier's
    own count of page writes per second while the migration ran (None if it ended before the first
    report); under TCG and auto-converge it may be well below ``rate_req_pages_s``.
    """

    run_id: str
    ram_mib: int
    wset_mib: int
    pattern: str
    rate_req_pages_s: int
    tlb_flush: bool
    max_bandwidth_mib_s: float
    downtime_limit_ms: int
    auto_converge: bool
    timeout_s: float
    seed: int
    accel: str
    rate_before_pages_s: float | None
    rate_during_pages_s: float | None
    distinct_during_pages_s: float | None
    outcome: str
    total_time_ms: int | None
    setup_time_ms: int | None
    downtime_ms: int | None
    expected_downtime_ms: int | None
    transferred_bytes: int | None
    precopy_bytes: int | None
    downtime_bytes: int | None
    ram_total_bytes: int | None
    duplicate_pages: int | None
    normal_pages: int | None
    normal_bytes: int | None
    dirty_sync_count: int | None
    final_throttle_pct: int
    max_throttle_pct: int
    mbps: float | None
    verification: str
    mismatched_pages: int | None
    target_resumed: bool | None
    n_polls: int
    boot_to_warm_s: float | None
    wall_s: float
    loadavg_1m_before: float | None
    started_utc: str
    error: str | None

    @property
    def converged(self) -> bool:
        """True when QEMU completed the migration (switchover happened before the timeout)."""
        return self.outcome == "completed"


_TYPES: dict[str, tuple[type, bool]] = {}
for _f in fields(QemuRun):
    _t = str(_f.type)
    _TYPES[_f.name] = ({"int": int, "float": float, "bool": bool, "str": str}[_t.split(" ")[0]], "None" in _t)
RUN_COLUMNS = tuple(_TYPES)

TRACE_COLUMNS = (
    "total_time_ms", "setup_time_ms", "expected_downtime_ms", "downtime_ms", "cpu_throttle_pct",
    "transferred_bytes", "remaining_bytes", "total_bytes", "duplicate_pages", "skipped_pages", "normal_pages",
    "normal_bytes", "dirty_sync_count", "dirty_pages_rate", "mbps", "pages_per_second", "precopy_bytes",
    "downtime_bytes",
)
DIRTIER_COLUMNS = ("t_s", "guest_t_s", "writes", "distinct_pages", "rate_pages_s")


@dataclass(frozen=True, kw_only=True, slots=True)
class QemuTrace:
    """One run's ``query-migrate`` polls (read-only numpy arrays, one entry per poll).

    ``t_s`` is host seconds since the ``migrate`` command (polls every ~0.1 s); ``status`` QEMU's
    migration status string; ``columns[name]`` (float64, NaN = not reported in that poll) for each
    name of ``TRACE_COLUMNS`` (``query_migrate_fields`` maps each to its ``query-migrate`` field).
    ``dirtier[name]`` holds the guest dirtier's 1 s reports (``DIRTIER_COLUMNS``); its ``t_s`` is
    when the host first saw the report (same clock as ``t_s``, negative = before migrating).
    """

    run_id: str
    t_s: np.ndarray
    status: np.ndarray
    columns: Mapping[str, np.ndarray]
    dirtier: Mapping[str, np.ndarray]
    argv: Mapping[str, tuple[str, ...]] = field(repr=False)
    qmp: Mapping[str, tuple[tuple[float, str, str], ...]] = field(repr=False)
    query_migrate_fields: Mapping[str, str] = field(repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        """``trace["transferred_bytes"]``: a query-migrate column by name (also ``t_s``, ``status``)."""
        if name == "t_s":
            return self.t_s
        if name == "status":
            return self.status
        if name not in self.columns:
            raise DatasetError(f"no trace column {name!r}; choose from t_s, status, {', '.join(self.columns)}")
        return self.columns[name]


def _check_run(run: QemuRun, where: str) -> None:
    for name, value, allowed in (("outcome", run.outcome, OUTCOMES), ("verification", run.verification, VERDICTS),
                                 ("pattern", run.pattern, PATTERNS)):
        if value not in allowed:
            raise DatasetError(f"{where} {name}={value!r}; must be one of {allowed}; regenerate with {_REGEN}")


def _csv_rows(root: Path | str | None, rel: str, columns: tuple[str, ...], fix: str) -> list[list[str]]:
    """The hash-checked CSV's data rows (comment lines skipped), after checking its header and row widths."""
    path = _checked(_root(root), rel)
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    reader = csv.reader(lines)
    header = next(reader, None)
    if header != list(columns):
        raise DatasetError(f"datasets/{rel} has columns {header}; expected {list(columns)}; {fix}")
    rows = list(reader)
    for n, raw in enumerate(rows, start=1):
        if len(raw) != len(columns):
            raise DatasetError(f"datasets/{rel} row {n} has {len(raw)} fields, expected {len(columns)}; {fix}")
    return rows


def load_qemu_runs(*, root: Path | str | None = None, dataset: str = "qemu_migration") -> list[QemuRun]:
    """Every run of runs.csv as a ``QemuRun``, in file order (a fresh list each call)."""
    rel = f"{_dir(dataset)}/runs.csv"
    runs = []
    for n, raw in enumerate(_csv_rows(root, rel, RUN_COLUMNS, f"regenerate with {_REGEN}"), start=1):
        values = {c: parse_cell(v, *_TYPES[c], where=f"datasets/{rel} row {n} column {c}", fix=f"regenerate with {_REGEN}")
                  for c, v in zip(RUN_COLUMNS, raw)}
        run = QemuRun(**values)
        _check_run(run, f"datasets/{rel} row {n}")
        runs.append(run)
    return runs


_TRACE_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


def _traces(root: Path, dataset: str) -> dict[str, Any]:
    where = _dir(dataset)
    path = _checked(root, f"{where}/traces.json.gz")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _TRACE_CACHE:
        try:
            data = json.loads(gzip.decompress(path.read_bytes()))
            if data.get("format") != 1 or not isinstance(data.get("runs"), dict):
                raise ValueError("format is not 1 or runs is missing")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"datasets/{where}/traces.json.gz is malformed ({exc}); "
                               f"regenerate with {_REGEN}") from None
        if len(_TRACE_CACHE) >= 2:
            _TRACE_CACHE.clear()
        _TRACE_CACHE[key] = data
    return _TRACE_CACHE[key]


def _float_column(values: list[Any]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    a.flags.writeable = False
    return a


def load_qemu_trace(run_id: str, *, root: Path | str | None = None, dataset: str = "qemu_migration") -> QemuTrace:
    """The ``query-migrate`` polls and dirtier reports of one run (see ``QemuTrace``)."""
    data = _traces(_root(root), dataset)
    runs = data["runs"]
    if run_id not in runs:
        raise DatasetError(f"no QEMU run named {run_id!r} in datasets/{_dir(dataset)}; "
                           f"choose one of load_qemu_runs() (e.g. {', '.join(sorted(runs)[:3])})")
    rec = runs[run_id]
    cols, dirt = rec["columns"], rec["dirtier"]
    missing = [c for c in ("t_s", "status", *TRACE_COLUMNS) if c not in cols] + \
        [c for c in DIRTIER_COLUMNS if c not in dirt]
    if missing:
        raise DatasetError(f"datasets/{_dir(dataset)}/traces.json.gz run {run_id} lacks columns {missing}; "
                           f"regenerate with {_REGEN}")
    status = np.array(cols["status"], dtype=str)
    status.flags.writeable = False
    return QemuTrace(
        run_id=run_id, t_s=_float_column(cols["t_s"]), status=status,
        columns=MappingProxyType({c: _float_column(cols[c]) for c in TRACE_COLUMNS}),
        dirtier=MappingProxyType({c: _float_column(dirt[c]) for c in DIRTIER_COLUMNS}),
        argv=MappingProxyType({r: tuple(a) for r, a in (rec.get("argv") or {}).items()}),
        qmp=MappingProxyType({r: tuple(tuple(m) for m in log) for r, log in (rec.get("qmp") or {}).items()}),
        query_migrate_fields=MappingProxyType(dict(data.get("query_migrate_fields", {}))),
    )


def qemu_provenance(*, root: Path | str | None = None, dataset: str = "qemu_migration") -> Mapping[str, Any]:
    """provenance.json: QEMU version, accelerator, kernels, command lines, QMP example, dates, commit."""
    path = _checked(_root(root), f"{_dir(dataset)}/provenance.json")
    try:
        return MappingProxyType(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise DatasetError(f"datasets/{_dir(dataset)}/provenance.json is malformed ({exc}); "
                           f"regenerate with {_REGEN}") from None


TARGET_TRACE_DIR = "measurements/qemu_target_trace"
TARGET_TRACE_COLUMNS = (
    "run_id", "rep", "ram_mib", "wset_mib", "rate_req_pages_s", "max_bandwidth_mib_s", "downtime_limit_ms",
    "outcome", "downtime_ms", "total_time_ms", "downtime_bytes", "data_records", "zero_records",
    "hugepage_first_writes", "hugepage_fault_ms_median", "hugepage_fault_ms_p10", "hugepage_fault_ms_p90",
    "data_record_us", "zero_record_us", "log_overhead_us", "final_ram_end_ms", "target_done_ms",
    "socket_backlog_bytes", "vm_stop_ms", "device_state_ms", "target_backlog_ms", "backlog_first_writes",
    "last_live_write_ms", "loadavg_1m_before", "started_utc")


def load_target_trace(*, root: Path | str | None = None) -> list[dict[str, Any]]:
    """The traced runs' rows (one per run and repeat) as dicts; numbers as float, text as str, '' as None."""
    rel = f"{TARGET_TRACE_DIR}/runs.csv"
    fix = "regenerate with python tools/qemu_groundtruth/trace_target.py, then tools/capture_trace.py --registry"
    rows = []
    for raw in _csv_rows(root, rel, TARGET_TRACE_COLUMNS, fix):
        row: dict[str, Any] = {}
        for c, v in zip(TARGET_TRACE_COLUMNS, raw):
            try:
                row[c] = None if v == "" else (v if c in ("run_id", "outcome", "started_utc") else float(v))
            except ValueError:
                raise DatasetError(f"datasets/{rel}: {c}={v!r} is not a number; {fix}") from None
        rows.append(row)
    return rows
