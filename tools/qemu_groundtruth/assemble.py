"""Write the saved runs as the dataset: runs.csv, traces.json.gz, provenance.json.

The file formats are described in datasets/README.md ("measurements/qemu_migration") and read by
vmlab.measurements. Output is deterministic for the same saved runs (sorted keys, gzip mtime 0).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import guest

# trace column -> query-migrate field (ram.* inside "ram")
TRACE_COLUMNS = {
    "total_time_ms": "total-time", "setup_time_ms": "setup-time", "expected_downtime_ms": "expected-downtime",
    "downtime_ms": "downtime", "cpu_throttle_pct": "cpu-throttle-percentage",
    "transferred_bytes": "ram.transferred", "remaining_bytes": "ram.remaining", "total_bytes": "ram.total",
    "duplicate_pages": "ram.duplicate", "skipped_pages": "ram.skipped", "normal_pages": "ram.normal",
    "normal_bytes": "ram.normal-bytes", "dirty_sync_count": "ram.dirty-sync-count",
    "dirty_pages_rate": "ram.dirty-pages-rate", "mbps": "ram.mbps", "pages_per_second": "ram.pages-per-second",
    "precopy_bytes": "ram.precopy-bytes", "downtime_bytes": "ram.downtime-bytes",
}
NOTES = [
    "Accelerator: TCG unless /dev/kvm is a VT-x/SVM KVM (accelerator_detection says why). Under TCG the guest "
    "runs slower than on hardware and the migration thread competes with the vCPU thread for 2 host cores "
    "shared with other work (loadavg_1m_before per run); QEMU runs under nice -n {nice}.",
    "QEMU < 9.0 under TCG can lose dirty bits: the fast path of cpu_physical_memory_sync_dirty_bitmap() clears "
    "bitmap words without re-arming TLB_NOTDIRTY, so writes through a TLB entry filled before a bitmap sync are "
    "not logged (fixed upstream in 2024, 'physmem: Fix migration dirty bitmap coherency with TCG memory "
    "access'). Seen here as target pages holding stale dirtier data. The dirtier therefore flushes the guest "
    "TLB after every 10 ms slice (mprotect of a 64-page scratch buffer; tlb_flush column true), which bounds "
    "the loss to writes within one slice; the noflush* runs are the same workloads without the flush. In the "
    "quiet measurement 51 of the 53 completed runs matched page for page; ac06 (with the flush; auto-converge "
    "at 99% throttle and downtime-limit 30 ms, so many bitmap syncs) differed in 7 pages, and noflush00 in 45 "
    "pages where the same workload with the flush (rate01, rep00-02) matched. (The loaded measurement, "
    "measurements/qemu_migration_loaded: 47 matched, 5 with the flush differed in 2-8 of 65,536 pages, "
    "noflush00 in 48.) "
    "Idle guests always matched. Treat dirty counts of TCG runs as lower bounds by a few pages per sync.",
    "Achieved dirty rate: the dirtier reports writes and distinct pages every second on the serial console; "
    "rate_during_pages_s averages the reports seen while the migration ran. It can be below the request "
    "(TCG speed, host load, auto-converge throttling).",
    "Zero pages: the guest's RAM includes what the kernel and boot left behind (kernel image, initramfs, "
    "page tables); the dirtier's working set is written once (non-zero) before migrating. QEMU counts "
    "all-zero pages as duplicate_pages (sent as a page header, no data).",
    "Timeout: a run is cancelled (migrate_cancel) after max(30 s, 1.5 x RAM / max-bandwidth), or max(60 s, ...) "
    "with auto-converge; outcome cancelled_timeout means it had not converged by then.",
    "Verification: after completion both VMs are stopped (source postmigrate, target paused by -S); pmemsave "
    "of guest-physical [0, RAM) on both, compared page by page (verification, mismatched_pages); then the "
    "target is resumed (cont) and target_resumed says whether its dirtier printed a report within 15 s.",
]
DIRTIER_COLUMNS = ("t_s", "guest_t_s", "writes", "distinct_pages", "rate_pages_s")

RUN_COLUMNS = (
    "run_id", "ram_mib", "wset_mib", "pattern", "rate_req_pages_s", "tlb_flush", "max_bandwidth_mib_s",
    "downtime_limit_ms", "auto_converge", "timeout_s", "seed", "accel",
    "rate_before_pages_s", "rate_during_pages_s", "distinct_during_pages_s",
    "outcome", "total_time_ms", "setup_time_ms", "downtime_ms", "expected_downtime_ms",
    "transferred_bytes", "precopy_bytes", "downtime_bytes", "ram_total_bytes",
    "duplicate_pages", "normal_pages", "normal_bytes", "dirty_sync_count",
    "final_throttle_pct", "max_throttle_pct", "mbps", "verification", "mismatched_pages", "target_resumed",
    "n_polls", "boot_to_warm_s", "wall_s", "loadavg_1m_before", "started_utc", "error",
)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else str(int(v))
    return str(v)


def _rates(rec: dict[str, Any], t_end: float) -> tuple[float | None, float | None, float | None]:
    """(rate before migrating, write rate during, distinct pages/s during) from the dirtier's reports.

    A report printed at guest time g covers (previous g, g]; it is attributed to the interval in
    which the host first saw it (its t_s, s since the migrate command, <= 0.1 s late).
    """
    reps = rec.get("dirtier") or []
    before = [r for r in reps if r[0] <= 0][-2:]
    during = [r for r in reps if 0 < r[0] <= t_end]

    def per_s(rows: list, k: int) -> float | None:
        if len(rows) < 2:
            return None
        span = rows[-1][1] - rows[0][1]
        return sum(r[k] for r in rows[1:]) / span if span > 0 else None

    prev = [r for r in reps if r[0] <= 0][-1:]
    return (per_s(before, 2) if len(before) == 2 else None,
            per_s(prev + during, 2), per_s(prev + during, 3))


def summary_row(rec: dict[str, Any]) -> dict[str, Any]:
    spec, trace = rec["spec"], rec.get("trace") or []
    final = trace[-1] if trace else {}
    last_active = next((p for p in reversed(trace) if p.get("ram.total") is not None), {})
    src = final if rec["outcome"] == "completed" else last_active
    throttle = [p.get("cpu-throttle-percentage") or 0 for p in trace]
    t_end = final.get("t", 0.0)
    before, during, distinct = _rates(rec, t_end)
    row = {
        "run_id": spec["run_id"], "ram_mib": spec["ram_mib"], "wset_mib": spec["wset_mib"],
        "pattern": spec["pattern"], "rate_req_pages_s": spec["rate_pages_s"], "tlb_flush": spec["tlb_flush"],
        "max_bandwidth_mib_s": float(spec["max_bandwidth_mib_s"]), "downtime_limit_ms": spec["downtime_limit_ms"],
        "auto_converge": spec["auto_converge"], "timeout_s": float(spec["timeout_s"]), "seed": spec["seed"],
        "accel": rec["accel"], "rate_before_pages_s": before, "rate_during_pages_s": during,
        "distinct_during_pages_s": distinct, "outcome": rec["outcome"],
        "total_time_ms": src.get("total-time"), "setup_time_ms": src.get("setup-time"),
        "downtime_ms": src.get("downtime"),
        "expected_downtime_ms": next((p["expected-downtime"] for p in reversed(trace)
                                      if p.get("expected-downtime") is not None), None),
        "transferred_bytes": src.get("ram.transferred"), "precopy_bytes": src.get("ram.precopy-bytes"),
        "downtime_bytes": src.get("ram.downtime-bytes"), "ram_total_bytes": src.get("ram.total"),
        "duplicate_pages": src.get("ram.duplicate"), "normal_pages": src.get("ram.normal"),
        "normal_bytes": src.get("ram.normal-bytes"), "dirty_sync_count": src.get("ram.dirty-sync-count"),
        "final_throttle_pct": next((p["cpu-throttle-percentage"] for p in reversed(trace)
                                    if p.get("cpu-throttle-percentage") is not None), 0),
        "max_throttle_pct": max(throttle, default=0), "mbps": src.get("ram.mbps"),
        "verification": rec.get("verification", "not_run"), "mismatched_pages": rec.get("mismatched_pages"),
        "target_resumed": rec.get("target_resumed"), "n_polls": len(trace),
        "boot_to_warm_s": rec.get("boot_to_warm_s"), "wall_s": rec.get("wall_s"),
        "loadavg_1m_before": rec.get("loadavg_1m_before"), "started_utc": rec.get("started_utc"),
        "error": rec.get("error"),
    }
    return row


def trace_columns(rec: dict[str, Any]) -> dict[str, Any]:
    trace = rec.get("trace") or []
    cols: dict[str, Any] = {"t_s": [p["t"] for p in trace], "status": [p["status"] for p in trace]}
    for name, field in TRACE_COLUMNS.items():
        cols[name] = [p.get(field) for p in trace]
    reps = rec.get("dirtier") or []
    dirtier = {c: [r[i] for r in reps] for i, c in enumerate(DIRTIER_COLUMNS)}
    return {"columns": cols, "dirtier": dirtier, "argv": rec.get("argv"), "qmp": rec.get("qmp"),
            "error": rec.get("error"), "qemu_output": rec.get("qemu_output"),
            "mismatched_page_index": rec.get("mismatched_page_index")}


def _cmd(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def provenance(recs: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    repo = guest.HERE.parent.parent
    kernel: Path = kw["kernel"]
    example = next((r for r in recs if r["outcome"] == "completed"), recs[0] if recs else {})
    starts = sorted(r["started_utc"] for r in recs)
    return {
        "description": "Live migrations of a small Linux guest between two QEMU processes on one machine, "
                       "over TCP loopback, with a memory dirtier in the guest; query-migrate polled every 100 ms.",
        "command": kw["command"], "grid": kw["grid"],
        "accelerator": kw["accel"], "accelerator_detection": kw["accel_why"],
        "qemu_version": _cmd(["qemu-system-x86_64", "--version"]).splitlines()[0],
        "qemu_package": _cmd(["dpkg-query", "-W", "-f", "${Package} ${Version}", "qemu-system-x86"]),
        "guest_kernel": guest.kernel_version(kernel),
        "guest_kernel_sha256": hashlib.sha256(kernel.read_bytes()).hexdigest(),
        "guest_kernel_source": "Debian package linux-image-" + guest.kernel_version(kernel)
                               + " (unpacked by setup.sh, not installed)" if guest.CACHE in kernel.parents
                               else str(kernel),
        "busybox": _cmd(["busybox"]).splitlines()[0] if _cmd(["busybox"]) else "",
        "gcc": _cmd(["gcc", "--version"]).splitlines()[0],
        "dirtier_c_sha256": hashlib.sha256((guest.HERE / "dirtier.c").read_bytes()).hexdigest(),
        "initramfs_sha256": kw["initrd_sha"],
        **guest.host_facts(),
        "harness_git_commit": _cmd(["git", "-C", str(repo), "rev-parse", "HEAD"]),
        "harness_git_dirty": bool(_cmd(["git", "-C", str(repo), "status", "--porcelain", "tools/qemu_groundtruth"])),
        "harness_git_commit_of_runs": sorted({r.get("harness_commit", "unrecorded") for r in recs}),
        "first_run_utc": starts[0] if starts else None, "last_run_utc": starts[-1] if starts else None,
        "n_runs": len(recs),
        "poll_period_s": 0.1,
        "qemu_argv_example": example.get("argv"),
        "qmp_example": example.get("qmp"),
        "qemu_nice": sorted({r.get("nice", 10) for r in recs}),
        "notes": [n.format(nice="/".join(str(v) for v in sorted({r.get("nice", 10) for r in recs})))
                  for n in kw.get("notes", NOTES)],
    }


def write_dataset(recs: list[dict[str, Any]], out: Path, **kw: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    buf.write("# Real QEMU live migrations (tools/qemu_groundtruth); one row per run; see datasets/README.md\n")
    buf.write(f"# accelerator={kw['accel']}; provenance in provenance.json; per-poll traces in traces.json.gz\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RUN_COLUMNS)
    for rec in recs:
        row = summary_row(rec)
        w.writerow([_fmt(row[c]) for c in RUN_COLUMNS])
    (out / "runs.csv").write_text(buf.getvalue())
    traces = {"format": 1, "poll_period_s": 0.1, "trace_columns": ["t_s", "status", *TRACE_COLUMNS],
              "query_migrate_fields": TRACE_COLUMNS, "dirtier_columns": list(DIRTIER_COLUMNS),
              "runs": {r["spec"]["run_id"]: trace_columns(r) for r in recs}}
    raw = json.dumps(traces, sort_keys=True, separators=(",", ":")).encode()
    (out / "traces.json.gz").write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    prov = provenance(recs, **kw)
    (out / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
