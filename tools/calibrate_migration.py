#!/usr/bin/env python3
"""Fit vmlab's QEMU migration constants on real runs and report the error on held-out runs.

    .venv/bin/python tools/calibrate_migration.py            # fit, evaluate, write the files below
    .venv/bin/python tools/calibrate_migration.py --check    # evaluate the constants in the code only

Data: datasets/measurements/qemu_migration (tools/qemu_groundtruth, QEMU 7.2, TCG). Split: fixed,
`vmlab.migration.groundtruth.held_out` (sha256(run_id)[0] % 3 == 0 is held out). Every fit uses
the training runs only:

1. non-zero memory: (ram.total/4 KiB - ram.duplicate) x 4 KiB = base + per_ram x RAM + wset_share x
   working set, least squares (the default for a guest whose used memory the user does not give); where it lies:
   the dense block at the top of RAM beyond RAM/64 (`fit_top_extra`);
2. setup: median `setup-time`;
3. switchover: downtime = stop_overhead + final_page_cpu x (downtime-bytes / 4104). Measured, not
   fitted, from QEMU's trace events (datasets/measurements/qemu_target_trace): stop_overhead (stopping
   the guest + saving the device state, `target_stop`), a never-sent page's cost (final_new_page_us) past
   the pages the sockets take first (final_buffer_pages, `target_final_new`), the target's own pace in
   the live phase, whose backlog a stop mid-burst waits for (target_page_us, target_zero_us,
   target_region_fault_ms, `target_pace`); final_page_cpu starts at the median over the runs of
   (downtime - stop_overhead) / pages;
4. live sender ceiling: normal_page_cpu_us and zero_page_scan_us on a grid (sync_ms = setup_ms: the
   setup's sync is measured inside setup-time), minimising
   the mean |log(model/real)| total time over the training runs; then final_page_cpu_us on a grid
   minimising the mean |log(model/real)| downtime; two passes.

Writes datasets/tables/qemu_migration_calibrated.csv (the constants with provenance),
datasets/measurements/qemu_migration/calibration.json and calibration.md (held-out and training
errors, per run), and updates their sha256 in datasets/registry.json. The numbers in
vmlab/migration/policies.py (QemuPolicy) and vmlab/migration/defaults.py must then equal the table
(tests/migration/test_calibration.py checks it and locks the held-out errors).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmlab import measurements as ms  # noqa: E402
from vmlab.migration import defaults as D  # noqa: E402
from vmlab.migration.groundtruth import (DIRTIER_CPU_SHARE, compare_runs, config_of, error_summary,  # noqa: E402
                                        held_out, real_downtimes, repeat_summary)
from vmlab.migration.engine.target import HUGEPAGE_PAGES  # noqa: E402
from vmlab.migration.policies import QemuPolicy  # noqa: E402

TABLE = "tables/qemu_migration_calibrated.csv"
REPORT_JSON = "measurements/qemu_migration/calibration.json"
REPORT_MD = "measurements/qemu_migration/calibration.md"
REC = 4096 + 8  # a data page on the wire: be64 offset|flags + 4096 bytes (ram.c save_normal_page)
NORMAL_US_GRID = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 17.0, 20.0, 24.0)
ZERO_US_GRID = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
FINAL_US_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)
HOT_PAGES_GRID = (0, 50, 100, 150, 200, 300, 400)
HOT_RATE_GRID = (500.0, 1000.0, 2000.0, 4000.0, 8000.0)


def usable(runs):
    return [r for r in runs if r.outcome in ("completed", "cancelled_timeout")]


def fit_nonzero(train) -> tuple[float, float, float]:
    """(base MiB, MiB per MiB of RAM, MiB per MiB of working set) of the non-zero memory, least squares."""
    x = np.array([[1.0, r.ram_mib, r.wset_mib] for r in train], dtype=float)
    y = np.array([(r.ram_total_bytes // 4096 - r.duplicate_pages) / 256 for r in train])
    base, per_ram, share = np.linalg.lstsq(x, y, rcond=None)[0]
    return round(float(base), 1), round(float(per_ram), 4), round(float(share), 3)


def _first_pass_profiles(train):
    """(run, pages scanned, data pages sent) at each first-pass poll of the training runs at <= 8 MiB/s,
    slow enough that the 100 ms polls map the first pass along the pfns."""
    for r in train:
        if r.max_bandwidth_mib_s > 8:
            continue
        c = ms.load_qemu_trace(r.run_id).columns
        first = (c["dirty_sync_count"] == 1) & ~np.isnan(c["normal_pages"])
        yield r, c["normal_pages"][first] + c["duplicate_pages"][first], c["normal_pages"][first]


def fit_top_extra(train) -> float:
    """The dense block at the top of RAM beyond RAM/64 (struct pages): median over the training runs slow
    enough (max-bandwidth <= 8 MiB/s) that the 100 ms query-migrate polls map the first pass: walking back
    from the pass end, the block is where the data share of the polls' steps stays >= 1/2."""
    extra = []
    for r, pos, data in _first_pass_profiles(train):
        n, top = r.ram_mib * 256, 0.0
        for a, b, k in reversed(list(zip(pos[:-1], pos[1:], np.diff(data)))):
            if b <= a:
                continue
            if k / (b - a) < 0.5:
                break
            top = n - a
        if top:
            extra.append(top / 256 - r.ram_mib * D.STRUCT_PAGE_PER_RAM)
    return round(float(np.median(extra)), 1)


def fit_low_density(train) -> float:
    """The share of data pages in the low part of RAM that holds the data below the top block: on the
    first-pass polls of the training runs at <= 8 MiB/s, 90% of that data (all of it less the top
    block) has been sent by pfn p90; density = 0.9 x data / p90, median over the runs."""
    rho = []
    for r, pos, data in _first_pass_profiles(train):
        pos, data = np.r_[0.0, pos], np.r_[0.0, data]
        below = data[-1] - D.default_top_mib(r.ram_mib) * 256
        if below > 0:
            rho.append(0.9 * below / float(np.interp(0.9 * below, data, pos)))
    return round(float(np.median(rho)), 2)


@functools.lru_cache(maxsize=None)
def _traced(root) -> tuple[dict, ...]:
    """The completed runs of datasets/measurements/qemu_target_trace (read once)."""
    return tuple(r for r in ms.load_target_trace(root=root) if r["outcome"] == "completed")


def target_final_new(root) -> tuple[float, int, dict]:
    """The final copy's price of a data page the target never had, and how many of them the sockets take
    first, from the target's trace (datasets/measurements/qemu_target_trace, measured, not fitted): past the
    sockets the source goes at the target's pace, target_page_us + a 2 MiB huge-page fault per 512 pages
    (the median run's fault: the host's common mode); the sockets hold the median backlog the source left
    when its ram_save_complete ended. Returns (new_us, buffer_pages, the medians)."""
    rows = _traced(root)
    med = {k: float(np.median([r[k] for r in rows]))
           for k in ("data_record_us", "zero_record_us", "hugepage_fault_ms_median", "socket_backlog_bytes")}
    modes = [r["hugepage_fault_ms_median"] for r in rows]
    med["fault_ms_resident"] = float(np.median([x for x in modes if x < 1.0] or [0.0]))
    med["fault_ms_backed"] = float(np.median([x for x in modes if x >= 1.0] or [0.0]))
    med["runs"] = len(rows)
    burst = [r["target_backlog_ms"] for r in rows if r["last_live_write_ms"] is not None and r["last_live_write_ms"] < 1]
    med.update(burst_stops=len(burst), backlog_ms_min=min(burst, default=0.0), backlog_ms_max=max(burst, default=0.0),
               backlog_ms_median=float(np.median(burst)) if burst else 0.0)
    new_us = round(med["data_record_us"] + med["hugepage_fault_ms_median"] * 1000 / HUGEPAGE_PAGES, 1)
    return new_us, int(round(med["socket_backlog_bytes"] / REC)), med


def target_pace(med: dict) -> dict:
    """The target's own costs in the live phase (`target_final_new`'s medians): per data record, per zero
    record, per 2 MiB huge page faulted in (engine/state.py Migration.backlog_s)."""
    return {"target_page_us": round(med["data_record_us"], 2), "target_zero_us": round(med["zero_record_us"], 2),
            "target_region_fault_ms": round(med["hugepage_fault_ms_median"], 2)}


def target_stop(root) -> tuple[float, dict]:
    """The downtime that is not RAM, from the source's trace (measured, not fitted): stopping the guest
    (migration_completion's vm_stop_force_state, after the last live bitmap sync) plus saving the device
    state (the sections after ram in qemu_savevm_state_complete_precopy). Returns (ms, the medians)."""
    med = {k: float(np.median([r[k] for r in _traced(root)])) for k in ("vm_stop_ms", "device_state_ms")}
    return round(med["vm_stop_ms"] + med["device_state_ms"], 2), med


def device_state(train) -> float:
    """KiB of the stream that are not RAM page records (the vCPU and device state at the stop, section headers,
    the setup's RAMBlock list), measured in every run, not fitted: migration_calculate_complete's mbps counts
    every byte QEMU wrote (migration_total_bytes) over total-time - setup-time, query-migrate's ram.transferred
    only the page records (ram.c ram_transferred_add). The median over the training runs."""
    done = [r for r in train if r.outcome == "completed"]
    rest = [r.mbps * (r.total_time_ms - r.setup_time_ms) * 1000 / 8 - r.transferred_bytes for r in done]
    return round(float(np.median(rest)) / 1024, 1)


def fit_downtime(train, stop_ms: float) -> float:
    """final_page_cpu_us's start: the median over the runs of (downtime - the measured stop) / pages."""
    done = [r for r in train if r.outcome == "completed" and r.downtime_ms is not None and r.downtime_bytes]
    per_page = [(float(r.downtime_ms) - stop_ms) / (r.downtime_bytes / REC) for r in done]
    return round(max(0.0, float(np.median(per_page)) * 1000), 2)  # us/page


def fit_writer_share(runs, root) -> float:
    """The dirtier's needed CPU share: at the 99% throttle (1% left) it slows to rate x 0.01/share.

    Uses the dirtier's reports from the second one at the top throttle on (the first straddles the step).
    """
    ratios = []
    for r in runs:
        if not r.auto_converge or r.max_throttle_pct < 99 or not r.rate_req_pages_s:
            continue
        tr = ms.load_qemu_trace(r.run_id, root=root)
        thr = np.nan_to_num(tr.columns["cpu_throttle_pct"])
        seen = 0
        for ts, rate in zip(tr.dirtier["t_s"], tr.dirtier["rate_pages_s"]):
            i = min(max(0, int(np.searchsorted(tr.t_s, ts)) - 1), thr.size - 1)
            if ts > 0 and thr[i] >= 99:
                seen += 1
                if seen >= 2:
                    ratios.append(rate / r.rate_req_pages_s)
    return round(0.01 / float(np.median(ratios)), 3)


def objective(rows) -> float:
    return float(np.mean([abs(np.log(r.model_total_ms / r.real_total_ms)) for r in rows]))


def _best(train, used_of, share, policies):
    scored = [(objective(compare_runs(train, policy=p, used_mib_of=used_of, writer_cpu_share=share)), i)
              for i, p in enumerate(policies)]
    return policies[min(scored)[1]]


def fit_guest_hot(train, pol: QemuPolicy, used_of, share) -> tuple[int, float]:
    """The guest OS's hot set (pages, stores/s) on a grid, minimising the mean |log(model/real)| total time.

    predict_migration reads defaults.GUEST_HOT_* at call time; they are left at the best pair.
    """
    scored = []
    for hot, rate in itertools.product(HOT_PAGES_GRID, HOT_RATE_GRID):
        if hot == 0 and rate != HOT_RATE_GRID[0]:
            continue
        D.GUEST_HOT_PAGES, D.GUEST_HOT_RATE_PAGES_S = hot, rate
        scored.append((objective(compare_runs(train, policy=pol, used_mib_of=used_of, writer_cpu_share=share)),
                       hot, rate))
    _, D.GUEST_HOT_PAGES, D.GUEST_HOT_RATE_PAGES_S = min(scored)
    return D.GUEST_HOT_PAGES, D.GUEST_HOT_RATE_PAGES_S


def downtime_objective(rows) -> float:
    ratios = [r.downtime_ratio for r in rows if r.downtime_ratio is not None]
    return float(np.mean(np.log(ratios)))


def fit_sender(train, pol: QemuPolicy, used_of, share) -> QemuPolicy:
    """Coordinate descent, two passes: (normal_page_cpu_us, zero_page_scan_us) on a grid,
    then final_page_cpu_us on downtime (stop_overhead_ms is measured, `target_stop`)."""
    for _ in range(2):
        pol = _best(train, used_of, share, [pol.with_(normal_page_cpu_us=n, zero_page_scan_us=z)
                                            for n, z in itertools.product(NORMAL_US_GRID, ZERO_US_GRID)])
        cands = [pol.with_(final_page_cpu_us=b) for b in FINAL_US_GRID] + [pol]
        scored = [(downtime_objective(compare_runs(train, policy=c, used_mib_of=used_of, writer_cpu_share=share)), i)
                  for i, c in enumerate(cands)]
        pol = cands[min(scored)[1]]
    return pol


def fit(runs, root) -> dict:
    train = [r for r in usable(runs) if not held_out(r.run_id)]
    share = fit_writer_share(train, root)
    base, per_ram, wset_share = fit_nonzero(train)
    D.GUEST_TOP_EXTRA_MIB = top_extra = fit_top_extra(train)   # predict_migration reads it at call time
    D.GUEST_LOW_DENSITY = low_density = fit_low_density(train)
    setup = float(np.median([r.setup_time_ms for r in train]))
    stop_ms, stop_parts = target_stop(root)
    final_us = fit_downtime(train, stop_ms)
    # a live bitmap sync costs what the setup's sync does: setup-time spans ram_init_bitmaps' first
    # migration_bitmap_sync_precopy (with the guest running). Fitting sync_ms on total time instead
    # latches onto knife-edge runs (dlhot00 flips at 50 ms) and stalls every link-bound migration.
    pol = QemuPolicy(setup_ms=setup, setup_ms_per_gib=0.0, stop_overhead_ms=stop_ms, final_page_cpu_us=final_us,
                     final_sync_ms=0.0, sync_ms=setup, sync_ms_per_gib=0.0, device_state_kib=device_state(train))
    new_us, buf, target = target_final_new(root)
    pol = pol.with_(final_new_page_us=new_us, final_buffer_pages=buf, **target_pace(target))

    def used_of(r):
        return min(float(r.ram_mib), base + per_ram * r.ram_mib + wset_share * r.wset_mib)

    # the sender first without the guest's hot set, then the hot set, then the sender again
    D.GUEST_HOT_PAGES = 0
    pol = fit_sender(train, pol, used_of, share)
    hot, hot_rate = fit_guest_hot(train, pol, used_of, share)
    pol = fit_sender(train, pol, used_of, share)
    return {"guest_base_mib": base, "guest_per_ram": per_ram, "guest_wset_share": wset_share,
            "guest_top_extra_mib": top_extra,
            "guest_low_density": low_density, "guest_hot_pages": hot, "guest_hot_rate_pages_s": hot_rate,
            "setup_ms": setup, "stop_overhead_ms": pol.stop_overhead_ms, "device_state_kib": pol.device_state_kib,
            "final_page_cpu_us": pol.final_page_cpu_us, "normal_page_cpu_us": pol.normal_page_cpu_us,
            "zero_page_scan_us": pol.zero_page_scan_us, "sync_ms": pol.sync_ms, "dirtier_cpu_share": share,
            "final_new_page_us": pol.final_new_page_us, "final_buffer_pages": pol.final_buffer_pages,
            **target_pace(target), "train_runs": [r.run_id for r in train], "target_trace": {**target, **stop_parts}}


def code_constants() -> dict:
    p = QemuPolicy()
    return {"guest_base_mib": D.GUEST_BASE_MIB, "guest_per_ram": D.GUEST_PER_RAM,
            "guest_wset_share": D.GUEST_WSET_SHARE,
            "guest_top_extra_mib": D.GUEST_TOP_EXTRA_MIB, "guest_low_density": D.GUEST_LOW_DENSITY,
            "guest_hot_pages": D.GUEST_HOT_PAGES,
            "guest_hot_rate_pages_s": D.GUEST_HOT_RATE_PAGES_S, "setup_ms": p.setup_ms,
            "stop_overhead_ms": p.stop_overhead_ms, "device_state_kib": p.device_state_kib,
            "final_page_cpu_us": p.final_page_cpu_us,
            "normal_page_cpu_us": p.normal_page_cpu_us, "zero_page_scan_us": p.zero_page_scan_us,
            "sync_ms": p.sync_ms, "dirtier_cpu_share": DIRTIER_CPU_SHARE,
            "final_new_page_us": p.final_new_page_us, "final_buffer_pages": p.final_buffer_pages,
            "target_page_us": p.target_page_us, "target_zero_us": p.target_zero_us,
            "target_region_fault_ms": p.target_region_fault_ms}


def evaluate(runs, c: dict, fresh=()) -> dict:
    """Errors with constants `c`, through the student path (no used_mib, default policy knobs); `fresh`:
    runs measured after the fit (datasets/measurements/qemu_migration_fresh), all of them validation."""
    pol = QemuPolicy(setup_ms=c["setup_ms"], setup_ms_per_gib=0.0, stop_overhead_ms=c["stop_overhead_ms"],
                     device_state_kib=c["device_state_kib"],
                     final_page_cpu_us=c["final_page_cpu_us"], normal_page_cpu_us=c["normal_page_cpu_us"],
                     zero_page_scan_us=c["zero_page_scan_us"], sync_ms=c["sync_ms"], sync_ms_per_gib=0.0,
                     final_sync_ms=0.0, final_new_page_us=c["final_new_page_us"],
                     final_buffer_pages=c["final_buffer_pages"], target_page_us=c["target_page_us"],
                     target_zero_us=c["target_zero_us"], target_region_fault_ms=c["target_region_fault_ms"])

    def used_of(r):
        return min(float(r.ram_mib), c["guest_base_mib"] + c["guest_per_ram"] * r.ram_mib
                   + c["guest_wset_share"] * r.wset_mib)

    D.GUEST_TOP_EXTRA_MIB = c["guest_top_extra_mib"]   # predict_migration reads these at call time
    D.GUEST_LOW_DENSITY = c["guest_low_density"]
    D.GUEST_HOT_PAGES, D.GUEST_HOT_RATE_PAGES_S = c["guest_hot_pages"], c["guest_hot_rate_pages_s"]
    rows = compare_runs(usable(runs), policy=pol, used_mib_of=used_of, writer_cpu_share=c["dirtier_cpu_share"])
    test = [r for r in rows if r.held_out]
    train = [r for r in rows if not r.held_out]
    fresh_rows = compare_runs(usable(fresh), policy=pol, used_mib_of=used_of, writer_cpu_share=c["dirtier_cpu_share"])
    return {"held_out": error_summary(test), "train": error_summary(train), "rows": rows,
            "fresh": error_summary(fresh_rows) if fresh_rows else None, "fresh_rows": fresh_rows}


def _traced_median(unit: str, column: str, qemu_source: str) -> tuple[str, str, str, str]:
    """A PROVENANCE row for a constant that is the median of a column of the target trace."""
    return unit, "measured", f"median {column} of the traced runs (datasets/measurements/qemu_target_trace)", qemu_source


PROVENANCE = {
    "guest_base_mib": ("MiB", "default", "least squares of non-zero MiB on RAM and working set (intercept)",
                       "non-zero = ram.total/4 KiB - ram.duplicate (ram.c save_zero_page counts duplicates)"),
    "guest_per_ram": ("MiB/MiB", "default", "least squares of non-zero MiB on RAM and working set (RAM slope)",
                      "struct pages, page tables and other per-RAM kernel data of the minimal guest"),
    "guest_wset_share": ("MiB/MiB", "default", "least squares of non-zero MiB on RAM and working set "
                         "(working-set slope)", "below 1: the working set reuses freed pages that still held "
                         "data (Linux does not zero pages on free)"),
    "guest_top_extra_mib": ("MiB", "default", "median of (dense block at the top of RAM - RAM/64) in the first "
                            "pass of the training runs at <= 8 MiB/s (query-migrate normal/duplicate pages per poll)",
                            "memblock allocates top-down: the struct page array (RAM/64) and the initrd at the top "
                            "of RAM; the end of ram.c's first pass (ram_find_and_save_block walks pfns upwards)"),
    "guest_low_density": ("fraction", "default", "median over the training runs at <= 8 MiB/s of 0.9 x (data below "
                          "the top block) / the pfn by which the first pass had sent 90% of it",
                          "the kernel and early allocations sit in low memory and a small guest never touches the "
                          "top of its free memory: the data below the top block fills the low part of RAM"),
    "guest_hot_pages": ("pages", "default", "grid with guest_hot_rate_pages_s, mean |log(model/real)| total time",
                        "pages the guest OS re-dirties besides the workload (timers, scheduler, stacks, page "
                        "tables): real dirty-pages-rate (ram.c migration_update_rates) exceeds the dirtier's "
                        "own distinct pages by ~100 per sync at 5 syncs/s (dlhot00)"),
    "guest_hot_rate_pages_s": ("stores/s", "default", "grid with guest_hot_pages, mean |log(model/real)| total time",
                               "uniform stores over the hot pages; at 100-200 ms sync intervals most are re-dirtied "
                               "each interval, over a 9 s first pass ~120 (idle00's dirty-pages-rate 13/s)"),
    "setup_ms": ("ms", "mechanism", "median setup-time", "migration.c migration_thread: setup_time covers "
                 "qemu_savevm_state_setup (ram_save_setup: ram_init_bitmaps, log-dirty on, first sync)"),
    "stop_overhead_ms": ("ms", "measured", "median vm stop + median device-state save, from QEMU's trace events on "
                         "the source (datasets/measurements/qemu_target_trace)",
                         "migration.c migration_completion: vm_stop_force_state, then "
                         "qemu_savevm_state_complete_precopy's sections after ram (cpu, apic, timers, devices)"),
    "device_state_kib": ("KiB", "measured", "median over the training runs of mbps x (total-time - setup-time) / 8 "
                         "- ram.transferred: the stream's bytes that are not RAM page records",
                         "savevm.c qemu_savevm_state_complete_precopy: the sections after ram (cpu, apic, timers, "
                         "devices) at the stop; query-migrate's ram counters leave them out (ram.c "
                         "ram_transferred_add), its mbps does not (migration.c migration_total_bytes)"),
    "final_page_cpu_us": ("us/page", "mechanism", "grid, mean |log(model/real)| downtime (start: median per-page "
                          "rest after the measured stop_overhead_ms)",
                          "migration.c migration_completion: qemu_file_set_rate_limit(INT64_MAX) before "
                          "qemu_savevm_state_complete_precopy: the final copy is not rate-limited"),
    "normal_page_cpu_us": ("us/page", "mechanism", "grid search, mean |log(model/real)| total time",
                           "ram.c ram_save_host_page -> save_normal_page: find dirty bit, copy, 8-byte header"),
    "sync_ms": ("ms", "mechanism", "= setup_ms: setup-time spans ram_init_bitmaps' first migration_bitmap_sync_precopy",
                "ram.c migration_bitmap_sync (under the iothread lock): log sync, KVM_GET_DIRTY_LOG / TCG "
                "dirty-memory snapshot, bitmap merge; between ram_save_iterate calls"),
    "dirtier_cpu_share": ("fraction", "workload", "0.01 / median(rate at 99% throttle / requested rate)",
                          "migration/cpu-throttle.c: a throttled vCPU sleeps pct/(1-pct) x 10 ms per 10 ms slice; "
                          "the paced dirtier (tools/qemu_groundtruth/dirtier.c) keeps its rate above this share"),
    "zero_page_scan_us": ("us/page", "mechanism", "grid search, mean |log(model/real)| total time",
                          "ram.c save_zero_page: buffer_is_zero, then an 8-byte header + 1 byte record"),
    "final_new_page_us": ("us/page", "measured", "target_page_us + the median run's 2 MiB huge-page fault / 512, "
                          "from QEMU's trace events on the target (datasets/measurements/qemu_target_trace)",
                          "stop-and-copy of data pages the target never had (the rest of an unfinished first "
                          "pass, ram.c ram_save_complete): once the sockets are full the source goes at the "
                          "target's pace, and the target's first write into each 2 MiB region faults in a "
                          "transparent huge page (QEMU madvises guest RAM MADV_HUGEPAGE). The fault is bimodal: "
                          "~4.4 ms when the measuring VM's own host must back the memory, ~0.18 ms when resident"),
    "final_buffer_pages": ("pages", "measured", "median bytes the target had not read when the source's "
                           "ram_save_complete section ended / 4104 (datasets/measurements/qemu_target_trace)",
                           "the loopback TCP sockets (tcp_wmem + tcp_rmem autotuning) between sender and target"),
    "target_page_us": _traced_median("us/record", "data_record_us", "ram.c ram_load_precopy on the target: read one "
                                     "4 KiB data record and copy it into guest RAM"),
    "target_zero_us": _traced_median("us/record", "zero_record_us", "ram.c ram_load_precopy -> ram_handle_compressed: "
                                     "a 9-byte zero record (memset only if the page is not zero already)"),
    "target_region_fault_ms": _traced_median(
        "ms", "hugepage_fault_ms_median", "the target's first data write into a 2 MiB region of guest RAM faults in "
        "a transparent huge page; what it has not placed when the guest stops (up to what the sockets hold) delays "
        "the final copy: migration.c migration_completion, the source's qemu_fflush blocks on the full socket"),
}


def write_table(root: Path, c: dict, prov: dict) -> Path:
    lines = ["# vmlab's QEMU migration constants fitted on real QEMU 7.2 runs (tools/calibrate_migration.py).",
             f"# data: datasets/measurements/qemu_migration ({prov.get('qemu_version', '?')}, accelerator "
             f"{prov.get('accelerator', '?')}); split: sha256(run_id)[0] % 3 == 0 held out; fit on "
             f"{len(c['train_runs'])} training runs",
             "name,value,unit,kind,fit,qemu_source,training_runs"]
    for name, (unit, kind, how, src) in PROVENANCE.items():
        lines.append(f"{name},{c[name]},{unit},{kind},\"{how}\",\"{src}\",{' '.join(c['train_runs'])}")
    path = root / TABLE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fmt(s: dict) -> str:
    dt = "n/a" if s.get("downtime_ratio_max") is None else \
        (f"{s['downtime_ratio_median']:.2f}x / {s['downtime_ratio_max']:.2f}x ({s['downtime_ratio_max_run']}); "
         f"{s['downtime_within_2x']}/{s['downtimes_compared']} within 2x, "
         f"{s['downtime_in_stated_range']}/{s['downtimes_compared']} within 2x of the stated range")
    return (f"| {s['runs']} | {s['calls_right']}/{s['runs']} | {s['time_err_median']:.1%} | {s['time_err_max']:.1%} "
            f"({s['time_err_max_run']}) | {s['bytes_err_median']:.1%} / {s['bytes_err_max']:.1%} | {dt} | "
            f"{s['sync_abs_err_median']:.0f} / {s['sync_abs_err_max']} | {s['throttle_abs_err_max']} |")


def repeat_spread(runs) -> list[dict]:
    """Runs of one configuration made more than once: the real run-to-run spread, the floor under
    any model's error (a deterministic model gives one number per configuration)."""
    groups: dict[tuple, list] = {}
    for r in runs:
        if r.outcome == "completed":
            groups.setdefault(config_of(r), []).append(r)
    out = []
    for key, rs in groups.items():
        if len(rs) < 2:
            continue
        dt = [max(1, r.downtime_ms) for r in rs]
        tt = [r.total_time_ms for r in rs]
        out.append({"runs": [r.run_id for r in rs], "config": dict(zip(
            ("ram_mib", "wset_mib", "pattern", "rate_pages_s", "tlb_flush", "max_bandwidth_mib_s",
             "downtime_limit_ms", "auto_converge"), key)), "downtime_ms": [r.downtime_ms for r in rs],
            "downtime_spread": max(dt) / min(dt), "total_time_ms": tt, "time_spread": max(tt) / min(tt) - 1})
    return out


def write_report(root: Path, c: dict, ev: dict, prov: dict, repeats: list[dict] = (),
                 noise: dict | None = None) -> None:
    summ = {k: ev[k] for k in ("held_out", "train", "fresh")}
    rows = [{f: getattr(r, f) for f in r.__slots__} for r in ev["rows"]]
    fresh_rows = [{f: getattr(r, f) for f in r.__slots__} for r in ev["fresh_rows"]]
    data = {"qemu_version": prov.get("qemu_version"), "accelerator": prov.get("accelerator"),
            "split": "held out iff sha256(run_id)[0] % 3 == 0", "constants": c, **summ, "repeats": list(repeats),
            "repeat_noise": noise or {},
            "runs": rows, "fresh_runs": fresh_rows}
    (root / REPORT_JSON).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    head = ("| split | runs | convergence calls right | median time err | max time err | bytes err median / max "
            "| downtime ratio median / max | sync error median / max | throttle error max (pp) |\n"
            "|---|---|---|---|---|---|---|---|---|")
    md = ["# vmlab vs real QEMU: calibration report", "",
          f"Written by `tools/calibrate_migration.py` from datasets/measurements/qemu_migration "
          f"({prov.get('qemu_version')}, {prov.get('accelerator')}). Inputs per run: only what a student gives "
          "`predict_migration` (RAM, working set, dirty rate and pattern, max-bandwidth, downtime-limit, "
          "auto-converge); the rest are the defaults below. Split: held out iff sha256(run_id)[0] % 3 == 0.", "",
          "Goals: every convergence call right, median total-time error <= 10%, max <= 30%, bytes <= 5% "
          "(runs both completed), downtime within 2x (1 ms floor).", "",
          "## Errors", "", head, f"| held out {_fmt(ev['held_out'])}", f"| training {_fmt(ev['train'])}"]
    if ev["fresh"]:
        md += [f"| fresh (measured after the fit) {_fmt(ev['fresh'])}", "",
               f"Fresh: datasets/measurements/qemu_migration_fresh, {ev['fresh']['runs']} new combinations of the "
               "same factor levels (grid `fresh`) run after these constants were fitted; no constant was changed "
               "after seeing them (fresh00-15 first; fresh16-31 after the downtime range was added). Since then the "
               "final copy's two constants and the switchover's fixed cost were replaced by measured ones (the "
               "target trace re-ran 8 configurations, fresh01 and fresh08 among them), the target's measured pace "
               "and the backlog it leaves at a stop mid-burst were added, the device state's size was measured "
               f"({c['device_state_kib']:.0f} KiB, not the 256 KiB first assumed), and the layout and sender were refit on "
               "the training runs: the fresh set has been seen, so read it as validation of a model that did not "
               "fit on it."]
    md += ["", "## Constants", "", "| name | value | fit |", "|---|---|---|"]
    md += [f"| {k} | {c[k]} | {PROVENANCE[k][2].replace('|', '/')} |" for k in PROVENANCE]
    tt = c.get("target_trace")
    if tt:
        md += ["", "## The target (measured, not fitted)", "",
               f"datasets/measurements/qemu_target_trace: {tt['runs']} grid runs again with QEMU's trace events "
               "(tools/qemu_groundtruth/trace_target.py). Per record the target needs "
               f"{tt['data_record_us']:.2f} us for a data page and {tt['zero_record_us']:.2f} us for a zero page; "
               "the first data written into each 2 MiB region faults in a transparent huge page, and that cost is "
               f"bimodal from run to run: {tt['fault_ms_backed']:.2f} ms when the measuring VM's own host must back "
               f"the memory, {tt['fault_ms_resident']:.2f} ms when it is resident (median run: "
               f"{tt['hugepage_fault_ms_median']:.2f} ms). When the source finished its final copy the sockets still "
               f"held {tt['socket_backlog_bytes'] / 2**20:.1f} MiB (median) the target had not read. So a final copy "
               "of data the target never had goes at the target's pace once the sockets are full "
               "(final_new_page_us, final_buffer_pages); the report also gives the downtime for a target whose "
               "memory is resident (a note and `downtime_range_ms`). Which mode a real run meets is the largest "
               "part of the run-to-run downtime spread below. The target's pace matters before the stop too: "
               f"in {tt['burst_stops']} of {tt['runs']} runs the guest stopped within 1 ms of the source's last "
               "live write (the pass ended inside a rate-limit window's burst) and the target was still placing "
               f"{tt['backlog_ms_min']:.1f}-{tt['backlog_ms_max']:.0f} ms of live data (median "
               f"{tt['backlog_ms_median']:.1f} ms), which the final copy waits for (target_page_us, target_zero_us, "
               "target_region_fault_ms: the model's queue, capped by what the sockets hold); after a rate-limit "
               "sleep the target was idle. The rest of the downtime is fixed: on the source, "
               f"stopping the guest took {tt['vm_stop_ms']:.2f} ms and saving the device state (the sections after "
               f"ram) {tt['device_state_ms']:.2f} ms (medians): stop_overhead_ms."]
    md += ["", "## Repeats: the real run-to-run spread", "",
           "Configurations run more than once (same inputs; a deterministic model gives one answer for each). "
           "Downtime spread = max/min (1 ms floor); time spread = max/min - 1.", "",
           "| runs | real downtime ms | downtime spread | real total ms | time spread |", "|---|---|---|---|---|"]
    md += [f"| {' '.join(g['runs'])} | {' / '.join(str(d) for d in g['downtime_ms'])} | {g['downtime_spread']:.1f}x | "
           f"{' / '.join(str(t) for t in g['total_time_ms'])} | {g['time_spread']:.0%} |" for g in repeats]
    if noise:
        q, a = noise["unloaded_host"], noise["with_loaded_host"]
        md += ["", "## Can any model be within 2x of every real run?", "",
               "Every configuration measured more than once in the four datasets (the grid, fresh, the target "
               "trace's re-runs and the grid on a loaded host). For each of those real runs: is the median of the "
               "*other* runs of its configuration within 2x of its downtime, is the model, and how many could the "
               "best single number per configuration reach, picked with hindsight (the ceiling of any "
               "deterministic model on these runs). The model predicts a quiet host; the loaded runs show what a "
               "busy one adds.", "",
               "| host | configurations | runs | a repeat within 2x | the model within 2x | best possible |",
               "|---|---|---|---|---|---|",
               f"| unloaded | {q['configs']} | {q['runs']} | {q['repeat_within_2x']} | {q['model_within_2x']} | "
               f"{q['best_constant_within_2x']} |",
               f"| unloaded and loaded | {a['configs']} | {a['runs']} | {a['repeat_within_2x']} | "
               f"{a['model_within_2x']} | {a['best_constant_within_2x']} |", "",
               "| runs | real downtime ms | model ms |", "|---|---|---|"]
        md += [f"| {' '.join(g['runs'])} | {' / '.join(f'{d:g}' for d in g['downtime_ms'])} | "
               f"{g['model_downtime_ms']:.1f} |" for g in a["groups"]]
    md += ["", "## Per run", "", "| run | split | real | model | real ms | model ms | real MB | model MB | "
           "real dt ms | model dt ms | syncs real/model | throttle real/model |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ev["rows"] + list(ev["fresh_rows"]):
        split = "fresh" if r.run_id.startswith("fresh") else "test" if r.held_out else "train"
        md.append(f"| {r.run_id} | {split} | {'conv' if r.real_converged else 'never'} | "
                  f"{'conv' if r.model_converged else 'never'} | {r.real_total_ms:.0f} | {r.model_total_ms:.0f} | "
                  f"{r.real_bytes / 1e6:.1f} | {r.model_bytes / 1e6:.1f} | {r.real_downtime_ms} | "
                  f"{'' if r.model_downtime_ms is None else f'{r.model_downtime_ms:.1f}'} | {r.real_syncs}/{r.model_syncs} | "
                  f"{r.real_throttle_pct}/{r.model_throttle_pct} |")
    (root / REPORT_MD).write_text("\n".join(md) + "\n", encoding="utf-8")


def register(root: Path, rels) -> None:
    path = root / "registry.json"
    reg = json.loads(path.read_text())
    for rel in rels:
        reg["files"][rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    reg["files"] = dict(sorted(reg["files"].items()))
    path.write_text(json.dumps(reg, indent=2) + "\n")


def _noise(ev: dict, runs, fresh, root) -> dict:
    """groundtruth.repeat_summary of evaluation `ev` (every real run of a repeated configuration)."""
    return repeat_summary(real_downtimes(runs, fresh, root=root), list(ev["rows"]) + list(ev["fresh_rows"]),
                          list(runs) + list(fresh))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="datasets directory to read the runs from (default: datasets/)")
    ap.add_argument("--out", default=str(ROOT / "datasets"), help="datasets directory to write to")
    ap.add_argument("--check", action="store_true", help="evaluate the code's constants; write nothing")
    a = ap.parse_args(argv)
    runs = ms.load_qemu_runs(root=a.root)
    prov = dict(ms.qemu_provenance(root=a.root))
    try:
        fresh = ms.load_qemu_runs(root=a.root, dataset="qemu_migration_fresh")
    except ms.DatasetError:
        fresh = []
    if a.check:
        ev = evaluate(runs, code_constants(), fresh)
    else:
        c = fit(runs, a.root)
        ev = evaluate(runs, c, fresh)
        out = Path(a.out)
        write_table(out, c, prov)
        write_report(out, c, ev, prov, repeat_spread(runs), _noise(ev, runs, fresh, a.root))
        register(out, [TABLE, REPORT_JSON, REPORT_MD])
        print(json.dumps({k: v for k, v in c.items() if k != "train_runs"}, indent=1))
    for split in ("held_out", "train", "fresh"):
        print(split, json.dumps(ev[split]))
    noise = _noise(ev, runs, fresh, a.root)
    print("repeats", json.dumps({k: {x: y for x, y in v.items() if x != "groups"} for k, v in noise.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
