#!/usr/bin/env python3
"""What the migration target costs: grid runs again with QEMU's trace events, summarised per run.

    python tools/qemu_groundtruth/trace_target.py --reps 2 --out datasets/measurements/qemu_target_trace \\
        idle05 idle08 fresh01 fresh08 bw04 ceil00 big00 mix06

Each named run of the grids (tools/qemu_groundtruth/grid.py) is repeated with ``-trace`` events and
``-msg timestamp=on`` (QEMU's "log" trace backend, as Debian builds it): on the target
``ram_load_loop`` (one line per page record, ram.c ram_load_precopy) and ``ram_load_complete`` (the end
of each ram_save_iterate's section), on the source the section and bitmap-sync events and
``migration_completion_vm_stop``. From them, per run:

- the target's cost of a page record, data (RAM_SAVE_FLAG_PAGE) or zero (RAM_SAVE_FLAG_ZERO): the median
  gap to the next record, less the logging's own cost (the smallest zero-record gap);
- the first write of data into each 2 MiB region of the target's RAM: QEMU madvises guest RAM
  MADV_HUGEPAGE, so that write faults in a transparent huge page (allocate and zero 2 MiB); the median gap
  after such a record is its cost;
- the bytes still in the sockets when the source finished writing the final copy
  (``savevm_section_end ram`` of ram_save_complete): the records the target had not read by then, i.e.
  how far the sender may run ahead of the target;
- downtime, and how much of the final copy waited for the target;
- the parts of the downtime that are not RAM: stopping the guest (``vm_stop_ms``: from the last event
  before ``migration_completion_vm_stop``, the final live bitmap sync's end, to it) and the device
  state (``device_state_ms``: from the end of the final ram section to the end of the last section);
- the target's backlog when the guest stopped (``target_backlog_ms``: from ``migration_completion_vm_stop``
  to the target's last record before the final ram section; negative: the target had been idle that
  long), the huge-page first writes in it (``backlog_first_writes``), and how long before the stop the
  source had last written live data (``last_live_write_ms``: the end of the last live ram section; a
  rate-limit sleep makes it long).

``--from-logs`` recomputes these columns from the logs a previous run left in ``--work`` (the run
columns stay as measured), for when the summary gains a column.

Writes ``--out``/runs.csv (one row per run) and provenance.json. Needs what run.py needs (setup.sh).
The per-record logging slows the target, so these runs are not used as migration ground truth.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import guest  # noqa: E402
import migrate  # noqa: E402
from grid import GRIDS  # noqa: E402

SRC_EVENTS = ("savevm_section_start", "savevm_section_end", "migration_bitmap_sync_start",
              "migration_bitmap_sync_end", "migration_completion_vm_stop", "migrate_set_state",
              "ram_save_iterate_big_wait", "migration_rate_limit_pre", "migration_rate_limit_post")
DST_EVENTS = ("ram_load_loop", "ram_load_complete", "qemu_loadvm_state_post_main", "migrate_set_state")
HUGEPAGE = 2 << 20           # x86-64 transparent huge page (HPAGE_PMD_SIZE)
DATA, ZERO = 0x08, 0x02      # ram.c RAM_SAVE_FLAG_PAGE, RAM_SAVE_FLAG_ZERO
REC_DATA, REC_ZERO = 4096 + 8, 8 + 1   # bytes on the wire (save_normal_page, save_zero_page)
LINE = re.compile(r"\d+@(\d+\.\d+):(\w+)\s?(.*)")
LOOP = re.compile(r"\S+: addr: 0x([0-9a-f]+) flags: 0x([0-9a-f]+)")
COLUMNS = ("run_id", "rep", "ram_mib", "wset_mib", "rate_req_pages_s", "max_bandwidth_mib_s", "downtime_limit_ms",
           "outcome", "downtime_ms", "total_time_ms", "downtime_bytes", "data_records", "zero_records",
           "hugepage_first_writes", "hugepage_fault_ms_median", "hugepage_fault_ms_p10", "hugepage_fault_ms_p90",
           "data_record_us", "zero_record_us", "log_overhead_us", "final_ram_end_ms", "target_done_ms",
           "socket_backlog_bytes", "vm_stop_ms", "device_state_ms", "target_backlog_ms", "backlog_first_writes",
           "last_live_write_ms", "loadavg_1m_before", "started_utc")


def _argv_with_trace(out: Path, tag: str):
    plain = migrate.qemu_argv

    def argv(spec, accel, kernel, initrd, rundir, role, port):
        a = plain(spec, accel, kernel, initrd, rundir, role, port)
        for ev in (DST_EVENTS if role == "dst" else SRC_EVENTS):
            a += ["-trace", f"enable={ev}"]
        return a + ["-msg", "timestamp=on", "-D", str(out / f"{tag}-{role}.log")]
    return argv


def _events(path: Path):
    for ln in path.open(errors="replace"):
        m = LINE.match(ln)
        if m:
            yield float(m[1]), m[2], m[3]


def summarise(src_log: Path, dst_log: Path) -> dict:
    """The per-run figures (see the module docstring) from the two trace logs."""
    ts, addr, flags, sections = [], [], [], []
    for t, ev, rest in _events(dst_log):
        if ev == "ram_load_loop":
            m = LOOP.match(rest)
            if m:
                ts.append(t)
                addr.append(int(m[1], 16))
                flags.append(int(m[2], 16))
        elif ev == "ram_load_complete":
            sections.append(len(ts))                 # records loaded when each ram section ended
    src = list(_events(src_log))
    i_stop = next(i for i, (_, ev, _) in enumerate(src) if ev == "migration_completion_vm_stop")
    stop = src[i_stop][0]
    ram_end = next(t for t, ev, rest in src if t >= stop and ev == "savevm_section_end" and rest.startswith("ram"))
    sections_end = max(t for t, ev, _ in src if t >= stop and ev == "savevm_section_end")
    live_end = max((t for t, ev, rest in src if t < stop and ev == "savevm_section_end" and rest.startswith("ram")),
                   default=None)
    ts, addr, flags = np.array(ts), np.array(addr, dtype=np.int64), np.array(flags)
    gap = np.append(np.diff(ts), 0.0) * 1e6          # us until the next record: this record's cost
    data, zero = (flags & DATA) > 0, (flags & ZERO) > 0
    first = np.zeros(ts.size, dtype=bool)            # the first data record into each 2 MiB region
    seen: set[int] = set()
    for i in np.flatnonzero(data):
        r = int(addr[i]) // HUGEPAGE
        if r not in seen:
            seen.add(r)
            first[i] = True
    plain = ~first & (gap < 50)                      # records that neither fault nor wait for the sender
    log_us = float(np.percentile(gap[zero & plain], 5)) if np.any(zero & plain) else 0.0
    wire = np.where(data, REC_DATA, np.where(zero, REC_ZERO, 0))
    unread = ts > ram_end                            # records the target had not read when the source was done
    fault_ms = gap[first] / 1000
    return {
        "data_records": int(data.sum()), "zero_records": int(zero.sum()), "hugepage_first_writes": int(first.sum()),
        "hugepage_fault_ms_median": round(float(np.median(fault_ms)), 3) if fault_ms.size else None,
        "hugepage_fault_ms_p10": round(float(np.percentile(fault_ms, 10)), 3) if fault_ms.size else None,
        "hugepage_fault_ms_p90": round(float(np.percentile(fault_ms, 90)), 3) if fault_ms.size else None,
        "data_record_us": round(float(np.median(gap[data & plain])) - log_us, 3) if np.any(data & plain) else None,
        "zero_record_us": round(float(np.median(gap[zero & plain])) - log_us, 3) if np.any(zero & plain) else None,
        "log_overhead_us": round(log_us, 3),
        "final_ram_end_ms": round((ram_end - stop) * 1000, 3),
        "target_done_ms": round((ts[-1] - stop) * 1000, 3) if ts.size else None,
        "socket_backlog_bytes": int(wire[unread].sum()),
        "vm_stop_ms": round((stop - src[i_stop - 1][0]) * 1000, 3) if i_stop else None,
        "device_state_ms": round((sections_end - ram_end) * 1000, 3),
        **_backlog(ts, first, sections, stop, live_end),
    }


def _backlog(ts: np.ndarray, first: np.ndarray, sections: list[int], stop: float, live_end: float | None) -> dict:
    """What the target still had to place of the live phase when the guest stopped (see the docstring)."""
    if len(sections) < 2 or not sections[-2]:
        return {}
    final0 = sections[-2]                             # the first record of the final (stop-and-copy) section
    after = np.flatnonzero(ts[:final0] > stop)
    return {"target_backlog_ms": round((ts[final0 - 1] - stop) * 1000, 3),
            "backlog_first_writes": int(first[after].sum()),
            "last_live_write_ms": round((stop - live_end) * 1000, 3) if live_end is not None else None}


def _write_rows(out: Path, rows: list[dict]) -> None:
    with (out / "runs.csv").open("w", newline="") as f:
        f.write("# Target-side cost of real QEMU migrations (tools/qemu_groundtruth/trace_target.py); "
                "see datasets/README.md\n")
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) for k in COLUMNS})


def from_logs(work: Path, out: Path) -> int:
    """Rewrite out/runs.csv with the summary columns recomputed from the logs in `work`; the columns the
    run itself measured (query-migrate, load, start time) are kept as they are."""
    with (out / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(ln for ln in f if not ln.startswith("#")))
    for row in rows:
        tag = f"{row['run_id']}-r{row['rep']}"
        if row["outcome"] == "completed":
            row.update(summarise(work / f"{tag}-src.log", work / f"{tag}-dst.log"))
    _write_rows(out, rows)
    prov_path = out / "provenance.json"
    prov = json.loads(prov_path.read_text())
    prov["summarised_from_logs_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prov_path.write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    print(f"rewrote {out / 'runs.csv'} from the logs in {work} ({len(rows)} runs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="run ids of the grids (grid.py)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default="datasets/measurements/qemu_target_trace")
    ap.add_argument("--work", default=str(guest.CACHE / "target_trace"))
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--from-logs", action="store_true",
                    help="recompute the summary columns of --out/runs.csv from the logs in --work (no QEMU run)")
    args = ap.parse_args(argv)
    if args.from_logs:
        return from_logs(Path(args.work), Path(args.out))
    if not args.runs:
        ap.error("name the run ids to trace (see tools/qemu_groundtruth/grid.py), or pass --from-logs")
    migrate.NICE = args.nice
    specs = {s.run_id: s for grid in GRIDS.values() for s in grid()}
    unknown = [r for r in args.runs if r not in specs]
    if unknown:
        ap.error(f"unknown run ids {unknown}; see tools/qemu_groundtruth/grid.py")
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    accel, why = guest.detect_accelerator()
    kernel = guest.find_kernel()
    initrd, initrd_sha = guest.build_initramfs()
    rows = []
    for rid in args.runs:
        for rep in range(args.reps):
            tag = f"{rid}-r{rep}"
            migrate.qemu_argv = _argv_with_trace(work, tag)
            load = os.getloadavg()[0]
            rec = migrate.run_one(specs[rid], accel, kernel, initrd)
            last = rec["trace"][-1] if rec.get("trace") else {}
            spec = specs[rid]
            row = {"run_id": rid, "rep": rep, "ram_mib": spec.ram_mib, "wset_mib": spec.wset_mib,
                   "rate_req_pages_s": spec.rate_pages_s, "max_bandwidth_mib_s": spec.max_bandwidth_mib_s,
                   "downtime_limit_ms": spec.downtime_limit_ms, "outcome": rec["outcome"],
                   "downtime_ms": last.get("downtime"), "total_time_ms": last.get("total-time"),
                   "downtime_bytes": last.get("ram.downtime-bytes"), "loadavg_1m_before": round(load, 2),
                   "started_utc": rec["started_utc"]}
            if rec["outcome"] == "completed":
                row.update(summarise(work / f"{tag}-src.log", work / f"{tag}-dst.log"))
            rows.append(row)
            print(" ".join(f"{k}={row.get(k)}" for k in ("run_id", "rep", "downtime_ms", "hugepage_fault_ms_median",
                                                         "socket_backlog_bytes", "final_ram_end_ms",
                                                         "target_done_ms")), flush=True)
    _write_rows(out, rows)
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    prov = {"tool": "tools/qemu_groundtruth/trace_target.py", "command": " ".join(["python", *sys.argv]),
            "qemu": qemu, "accelerator": accel, "accelerator_detection": why, "kernel": kernel.name,
            "initramfs_sha256": initrd_sha, "host_kernel": os.uname().release,
            "thp_enabled": Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip(),
            "thp_defrag": Path("/sys/kernel/mm/transparent_hugepage/defrag").read_text().strip(),
            "cpus": os.cpu_count(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "src_events": SRC_EVENTS, "dst_events": DST_EVENTS}
    (out / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
