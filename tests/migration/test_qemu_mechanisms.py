"""The QEMU 7.2 mechanisms the calibrated model follows, each named after the function that does it.

migration/ram.c save_zero_page, migration/qemu-file.c qemu_file_rate_limit, migration/migration.c
migration_rate_limit (BUFFER_DELAY windows) and migration_completion (the limit lifted at the
switchover); the live sender's ceiling; a paced guest writer under cpu-throttle.
"""

from __future__ import annotations

import math

import pytest

from vmlab.migration import MemoryImage, QemuPolicy, TargetImage, UniformWrites, predict_migration, run_migration
from vmlab.migration.dirtying import _speed
from vmlab.migration.link import Link, link_goodput_Bps

REC = 4096 + 8


def _run(pages: int, used: int, **policy):
    src = MemoryImage(pages, used_pages=used)
    return run_migration(src, TargetImage(pages), policy=QemuPolicy(**policy), link=Link(bandwidth_mbps=10_000),
                         verify=True)


def test_save_zero_page_sends_a_9_byte_record_per_zero_page():
    rep = _run(8192, 0)
    assert rep.duplicate_pages == 8192 and rep.normal_pages == 0
    assert rep.transferred_bytes == 8192 * 9 + 256 * 1024       # + the device state (ILLUSTRATIVE size)


def test_qemu_file_rate_limit_lets_each_window_end_one_record_past_its_budget():
    rep = _run(16384, 16384, max_bandwidth_mib_s=8)
    budget = 8 * 2**20 / 10                                     # max-bandwidth / XFER_LIMIT_RATIO
    per_window = (math.floor(budget / REC) + 1) * REC           # 205 records = 841,320 bytes
    live = rep.rounds[0]
    expected_s = (live.bytes_sent - per_window) / (per_window * 10) + QemuPolicy().sync_ms / 1000
    assert live.duration_ms / 1000 == pytest.approx(expected_s, rel=0.01)


def test_migration_rate_limit_runs_one_window_ahead_of_the_limit():
    rep = _run(16384, 16384, max_bandwidth_mib_s=8)
    per_window = (math.floor(8 * 2**20 / 10 / REC) + 1) * REC
    at_the_limit_s = rep.rounds[0].bytes_sent / (per_window * 10)
    busy_ms = rep.rounds[0].duration_ms - QemuPolicy().sync_ms       # the round ends with a bitmap sync
    assert at_the_limit_s * 1000 - busy_ms == pytest.approx(100, abs=1)   # BUFFER_DELAY


def test_migration_completion_lifts_the_rate_limit_for_the_final_copy():
    # (never-sent pages priced as the others here: final_new_page_us=0, see the last test for them)
    p = QemuPolicy(max_bandwidth_mib_s=8, downtime_limit_ms=1000, final_new_page_us=0.0)
    slow = predict_migration(memory_mib=256, used_mib=256, wws_mib=64, dirty_rate_mib_s=2, pattern="uniform",
                             policy=p, bandwidth_mbps=100_000)
    final = slow.rounds[-1]
    assert final.phase == "stop-and-copy" and final.normal_pages > 1000
    # the pages left go at the sender's stop-and-copy cost, not at 8 MiB/s
    assert slow.downtime_ms < final.normal_pages * REC / (8 * 2**20) * 1000 / 10
    assert slow.downtime_ms == pytest.approx(p.stop_overhead_ms + final.normal_pages * p.final_page_cpu_us / 1000
                                             + 256 * 1024 / link_goodput_Bps(Link(bandwidth_mbps=100_000)) * 1000
                                             + 0.1, rel=0.02)


def test_the_live_sender_has_a_ceiling_below_a_fast_limit():
    src = MemoryImage(65536, used_pages=65536)
    rep = run_migration(src, TargetImage(65536), policy=QemuPolicy(max_bandwidth_mib_s=65536),
                        link=Link(bandwidth_mbps=400_000), verify=True)
    p = QemuPolicy()
    ceiling = REC / (p.normal_page_cpu_us * 1e-6)
    live = rep.rounds[0]            # the pass, then one bitmap sync
    assert live.bytes_sent / (live.duration_ms - p.sync_ms) * 1000 == pytest.approx(ceiling, rel=0.02)


def test_a_paced_writer_keeps_its_rate_until_its_cpu_share_runs_out():
    assert _speed(0.8, 0.1) == 1.0 and _speed(0.1, 0.1) == 1.0      # 20..90% throttle: no effect
    assert _speed(0.01, 0.1) == pytest.approx(0.1)                   # 99%: a tenth of the rate
    assert _speed(0.5, 1.0) == 0.5                                   # a CPU-bound writer slows at once
    assert UniformWrites(rate_pages_s=1000, wws_pages=64).cpu_share_needed == 1.0


def test_auto_converge_throttle_starts_at_cpu_throttle_initial_and_steps_by_the_increment():
    rep = predict_migration(memory_mib=256, used_mib=128, wws_mib=64, dirty_rate_mib_s=62.5, pattern="uniform",
                            max_bandwidth_mib_s=32, auto_converge=True, writer_cpu_share=0.1, max_time_s=60)
    steps = sorted({r.throttle_pct for r in rep.rounds if r.throttle_pct})
    assert steps[0] == 20 and all(b - a == 10 for a, b in zip(steps, steps[1:-1]))
    assert steps[-1] == 99                                          # max-cpu-throttle caps the last step


def _image(n: int, data: range) -> MemoryImage:
    """n pages, data pages exactly at `data` (the rest zero): a layout with a known tail."""
    import numpy as np
    img = MemoryImage(n, used_pages=0)
    img.content[np.asarray(data)] = np.arange(1, len(data) + 1, dtype=np.uint64) + (np.uint64(1) << np.uint64(61))
    return img


def _qemu(n: int, data: range, **policy):
    pol = QemuPolicy(max_bandwidth_mib_s=32, downtime_limit_ms=300, first_window_burst=False, **policy)
    src = _image(n, data)
    return run_migration(src, TargetImage(n), policy=pol, link=Link(bandwidth_mbps=10_000), verify=True)


def test_ram_save_iterate_finishes_the_pass_when_the_rest_fits_in_the_window_budget():
    # migration.c migration_iteration_run checks pending < threshold only between ram_save_iterate calls;
    # ram_save_iterate stops on qemu_file_rate_limit (the window's budget, in bytes) or MAX_WAIT (50 ms).
    # An idle guest whose pass ends in zero pages: the remaining pages x 4 KiB fall below the threshold
    # (32 MiB/s x 300 ms = 2,400 pages) early, but they cost 9 bytes each, so the iteration under way
    # sweeps them all and the switchover finds only the (here: no) pages dirtied since.
    rep = _qemu(20_000, range(0, 4_000))
    assert rep.status == "completed" and rep.rounds[-1].pages_sent == 0
    # the same pages at the end of memory: the check runs with data pages left and they go in the
    # final copy (at most one threshold's worth)
    rep = _qemu(20_000, range(16_000, 20_000))
    final = rep.rounds[-1]
    assert 0 < final.normal_pages <= 2_400


def test_ram_save_iterate_ends_on_the_budget_or_after_max_wait_whichever_comes_first():
    # ram.c ram_save_iterate: `while qemu_file_rate_limit(f) == 0` (the 100 ms window's budget, bytes)
    # and `if (t1 > MAX_WAIT) break` (50 ms of sending).
    import numpy as np
    from vmlab.migration.engine.iteration import Iteration
    from vmlab.migration.engine.state import Migration

    def pages_per_iteration(us_per_page: float) -> int:
        pol = QemuPolicy(max_bandwidth_mib_s=32, first_window_burst=False, normal_page_cpu_us=us_per_page)
        src = MemoryImage(8192, used_pages=8192)
        m = Migration(src, TargetImage(8192), workload=None, policy=pol, link=Link(bandwidth_mbps=10_000),
                      rng=np.random.default_rng(0))
        pfns = np.arange(8192)
        return Iteration(m).pages_to_end(m, pfns, src.read(pfns))

    budget_pages = math.ceil(32 * 2**20 / 10 / REC)             # 818: the page that crosses the budget is sent
    assert pages_per_iteration(1.0) == budget_pages
    assert pages_per_iteration(100.0) == 500                      # 50 ms / 100 us: the page that reaches it ends it


def test_the_final_copy_prices_pages_the_target_never_received_apart():
    # The check fires with part of the first pass unsent (data at the end of memory): those pages go
    # in ram_save_complete's copy as pages new to the target, at final_new_page_us each.
    plain = _qemu(20_000, range(16_000, 20_000), final_page_cpu_us=2.0)
    slow = _qemu(20_000, range(16_000, 20_000), final_page_cpu_us=2.0, final_new_page_us=202.0)
    new = plain.rounds[-1].normal_pages
    assert new > 1000 and slow.rounds[-1].normal_pages == new
    # (less at most the plain copy's own time, which the slow one's CPU time now covers)
    assert new * 0.2 - plain.downtime_ms <= slow.downtime_ms - plain.downtime_ms <= new * 0.2 + 1e-6
