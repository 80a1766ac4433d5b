"""tools/qemu_groundtruth/trace_target.py: the target's costs read from QEMU's trace-event logs.

The tool boots QEMU (not in the test suite); `summarise` is checked here on small logs written in the
format of QEMU's "log" trace backend with -msg timestamp=on (``pid@seconds.micros:event args``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "qemu_groundtruth"))
trace_target = pytest.importorskip("trace_target")


def _log(path: Path, lines: list[tuple[float, str]]) -> Path:
    path.write_text("".join(f"42@{1000 + t:.6f}:{ev}\n" for t, ev in lines))
    return path


def test_summarise_prices_records_huge_page_faults_and_the_socket_backlog(tmp_path):
    # target: 4 zero records 1 us apart, then data into region 0 (a 4 ms fault), two more data records in
    # region 0 (2 us each), a data record into region 1 (another 4 ms fault), and one last data record
    us = 1e-6
    recs, t = [], 0.0
    for i in range(4):
        recs.append((t, f"ram_load_loop pc.ram: addr: 0x{(100 + i) * 4096:x} flags: 0x22 host: 0x0"))
        t += 1 * us
    for addr, cost in ((0, 4000), (1, 2), (2, 2), (512, 4000), (513, 2)):
        recs.append((t, f"ram_load_loop pc.ram: addr: 0x{addr * 4096:x} flags: 0x28 host: 0x0"))
        t += cost * us
    dst = _log(tmp_path / "dst.log", recs)
    # source: stop at 1 ms; its final ram section ends at 4.007 ms, before the target reads the last two records
    src = _log(tmp_path / "src.log", [(0.001, "migration_completion_vm_stop ret 0"),
                                      (0.004007, "savevm_section_end ram, section_id 2 -> 0")])
    got = trace_target.summarise(src, dst)
    assert (got["data_records"], got["zero_records"], got["hugepage_first_writes"]) == (5, 4, 2)
    assert got["hugepage_fault_ms_median"] == pytest.approx(4.0, abs=0.01)
    # zero records: 1 us, less the logging (the 5th percentile of zero gaps, 1 us here) = 0; data 2 us - 1 us
    assert got["zero_record_us"] == pytest.approx(0.0, abs=0.01)
    assert got["data_record_us"] == pytest.approx(1.0, abs=0.01)
    # records logged after the source's section end: the last two data records (the fault at 512 and 513)
    assert got["socket_backlog_bytes"] == 2 * (4096 + 8)


def test_summarise_times_the_guest_stop_and_the_device_state_on_the_source(tmp_path):
    # the last live sync ends 0.1 ms before migration_completion_vm_stop; the final ram section ends at
    # +2 ms and the device sections after it end at +2.9 ms
    dst = _log(tmp_path / "dst.log", [(0.0, "ram_load_loop pc.ram: addr: 0x1000 flags: 0x28 host: 0x0"),
                                      (0.000002, "ram_load_loop pc.ram: addr: 0x2000 flags: 0x28 host: 0x0"),
                                      (0.000003, "ram_load_loop pc.ram: addr: 0x3000 flags: 0x22 host: 0x0")])
    src = _log(tmp_path / "src.log", [(0.0009, "migration_bitmap_sync_end dirty_pages 78"),
                                      (0.001, "migration_completion_vm_stop ret 0"),
                                      (0.003, "savevm_section_end ram, section_id 2 -> 0"),
                                      (0.0031, "savevm_section_start timer, section_id 0"),
                                      (0.0035, "savevm_section_end timer, section_id 0 -> 0"),
                                      (0.0039, "savevm_section_end apic, section_id 7 -> 0"),
                                      (0.0040, "migrate_set_state new state completed")])
    got = trace_target.summarise(src, dst)
    assert got["vm_stop_ms"] == pytest.approx(0.1, abs=1e-3)
    assert got["final_ram_end_ms"] == pytest.approx(2.0, abs=1e-3)
    assert got["device_state_ms"] == pytest.approx(0.9, abs=1e-3)


def test_from_logs_recomputes_the_summary_and_keeps_the_measured_columns(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    _log(work / "r-r0-dst.log", [(0.0, "ram_load_loop pc.ram: addr: 0x1000 flags: 0x28 host: 0x0"),
                                 (0.000002, "ram_load_loop pc.ram: addr: 0x2000 flags: 0x28 host: 0x0"),
                                      (0.000003, "ram_load_loop pc.ram: addr: 0x3000 flags: 0x22 host: 0x0")])
    _log(work / "r-r0-src.log", [(0.0009, "migration_bitmap_sync_end dirty_pages 1"),
                                 (0.001, "migration_completion_vm_stop ret 0"),
                                 (0.003, "savevm_section_end ram, section_id 2 -> 0"),
                                 (0.0035, "savevm_section_end timer, section_id 0 -> 0")])
    trace_target._write_rows(out, [{"run_id": "r", "rep": 0, "outcome": "completed", "downtime_ms": 7},
                                   {"run_id": "s", "rep": 0, "outcome": "failed"}])
    (out / "provenance.json").write_text('{"qemu": "QEMU emulator version 7.2"}')
    assert trace_target.main(["--from-logs", "--work", str(work), "--out", str(out)]) == 0
    lines = (out / "runs.csv").read_text().splitlines()
    assert lines[1].split(",") == list(trace_target.COLUMNS)
    import csv
    rows = list(csv.DictReader(lines[1:]))
    assert rows[0]["downtime_ms"] == "7" and rows[0]["device_state_ms"] == "0.5"
    assert rows[1]["device_state_ms"] == ""
    assert "summarised_from_logs_utc" in (out / "provenance.json").read_text()


def test_summarise_measures_the_targets_backlog_when_the_guest_stops(tmp_path):
    # the source's last live ram section ends 0.2 ms before migration_completion_vm_stop (no rate-limit
    # sleep between); the target is still placing that section's data -- a first write into region 1 (a
    # 4 ms fault) -- and reads its last live record 4.1 ms after the stop, then the final section
    us = 1e-6
    dst = _log(tmp_path / "dst.log", [(0.0, "ram_load_loop pc.ram: addr: 0x1000 flags: 0x28 host: 0x0"),
                                      (0.0009, "ram_load_complete"),
                                      (0.00095, "ram_load_loop pc.ram: addr: 0x2000 flags: 0x28 host: 0x0"),
                                      (0.0011, f"ram_load_loop pc.ram: addr: 0x{512 * 4096:x} flags: 0x28 host: 0x0"),
                                      (0.0051, f"ram_load_loop pc.ram: addr: 0x{513 * 4096:x} flags: 0x28 host: 0x0"),
                                      (0.0051 + 2 * us, "ram_load_complete"),
                                      (0.0052, "ram_load_loop pc.ram: addr: 0x3000 flags: 0x28 host: 0x0"),
                                      (0.0053, "ram_load_complete")])
    src = _log(tmp_path / "src.log", [(0.0008, "savevm_section_end ram, section_id 2 -> 0"),
                                      (0.0009, "migration_bitmap_sync_end dirty_pages 1"),
                                      (0.001, "migration_completion_vm_stop ret 0"),
                                      (0.0054, "savevm_section_end ram, section_id 2 -> 0")])
    got = trace_target.summarise(src, dst)
    assert got["target_backlog_ms"] == pytest.approx(4.1, abs=1e-3)
    assert got["backlog_first_writes"] == 1          # region 1; region 0 had its first write before the stop
    assert got["last_live_write_ms"] == pytest.approx(0.2, abs=1e-3)
