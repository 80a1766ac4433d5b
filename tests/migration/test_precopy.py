import numpy as np
import pytest

from vmlab.errors import ConfigError
from vmlab.migration import (Fault, HotCold, Idle, MemoryImage, ModernXenPolicy, PostCopy, QemuPolicy, SequentialScan,
                             StopAndCopy, TargetImage, UniformWrites, Xen3Policy, Zipf, run_migration)
from vmlab.migration.link import Link

GIGABIT = Link(bandwidth_mbps=1000, latency_ms=0.1)


def migrate(policy, workload=None, *, mib=64, used=1.0, link=GIGABIT, seed=1, **kw):
    src = MemoryImage.from_mib(mib, used_fraction=used)
    dst = TargetImage(src.n_pages)
    rep = run_migration(src, dst, policy=policy, link=link, workload=workload, seed=seed, **kw)
    return src, dst, rep


def test_idle_guest_xen3_sends_every_page_once_then_an_empty_round_and_empty_stop_and_copy():
    src, dst, rep = migrate(Xen3Policy(), Idle())
    assert rep.status == "completed" and rep.verified
    assert rep.pages_sent == src.n_pages
    assert [r.pages_sent for r in rep.rounds] == [src.n_pages, 0, 0]
    assert rep.rounds[-1].phase == "stop-and-copy"
    assert "sent+skipped 0 < 50" in rep.stop_reason


def test_idle_guest_qemu_switches_over_during_the_first_sweep_sending_each_page_once():
    # ram.c: once the unsent rest of the sweep is below the threshold, an exact sync finds
    # nothing new and QEMU completes; that rest goes in the downtime at link speed.
    src, dst, rep = migrate(QemuPolicy(), Idle())
    assert [r.phase for r in rep.rounds] == ["precopy", "stop-and-copy"]
    assert rep.pages_sent == src.n_pages
    assert rep.rounds[-1].pages_sent * 4096 < rep.rounds[0].threshold_bytes
    assert rep.dirty_sync_count == 3  # setup, the exact sync below the threshold, ram_save_complete


def test_modern_xen_stops_after_five_iterations_plus_one_last_live_pass():
    _, _, rep = migrate(ModernXenPolicy(), UniformWrites(rate_pages_s=50_000, wws_pages=8_000))
    phases = [r.phase for r in rep.rounds]
    assert phases.count("precopy") == 6 and phases[-1] == "stop-and-copy"
    assert "iteration 5 >= 5" in rep.stop_reason


def test_xen3_caps_at_thirty_passes_or_three_times_memory():
    _, _, rep = migrate(Xen3Policy(), UniformWrites(rate_pages_s=200_000, wws_pages=12_000), mib=64)
    assert rep.status == "completed" and rep.verified
    assert rep.precopy_rounds <= 29
    assert "max_iters" in rep.stop_reason or "3 x" in rep.stop_reason


def test_xen3_skips_pages_redirtied_during_the_round():
    _, _, rep = migrate(Xen3Policy(), UniformWrites(rate_pages_s=100_000, wws_pages=4_000), mib=64)
    assert sum(r.pages_skipped for r in rep.rounds) > 0


def test_precopy_switches_over_when_pending_fits_in_downtime_limit():
    _, _, rep = migrate(QemuPolicy(), UniformWrites(rate_pages_s=20_000, wws_pages=4_000), mib=256)
    last = rep.rounds[-2]
    assert last.remaining_pages * 4096 < last.threshold_bytes
    assert rep.status == "completed"


def test_qemu_downtime_uses_raw_link_speed_not_the_rate_limit():
    link = Link(bandwidth_mbps=10_000, latency_ms=0.1)
    _, _, rep = migrate(QemuPolicy(), UniformWrites(rate_pages_s=20_000, wws_pages=8_000), mib=256, link=link)
    final = rep.rounds[-1]
    rate_limited_ms = final.bytes_sent / (128 * 2**20) * 1000
    assert rep.downtime_ms < rate_limited_ms


def test_qemu_sends_zero_pages_as_duplicates():
    src, _, rep = migrate(QemuPolicy(), Idle(), mib=64, used=0.25)
    assert rep.duplicate_pages == src.n_pages * 3 // 4
    assert rep.normal_pages == src.n_pages // 4
    assert rep.transferred_bytes < src.n_pages * 4096


def test_dirtying_faster_than_the_link_never_converges_without_auto_converge():
    link = Link(bandwidth_mbps=100, latency_ms=0.1)
    _, _, rep = migrate(QemuPolicy(), UniformWrites(rate_pages_s=50_000, wws_pages=12_000), mib=64, link=link,
                        max_time_s=60)
    assert rep.status == "cancelled" and not rep.converged and rep.where == "source"


def test_auto_converge_throttles_in_steps_and_converges():
    # on KVM (the default); under TCG each sync waits out the 990 ms throttle sleep
    # (tcg_log_global_after_sync) and this link-bound sender never catches up at 99 %
    link = Link(bandwidth_mbps=100, latency_ms=0.1)
    _, _, rep = migrate(QemuPolicy(auto_converge=True), UniformWrites(rate_pages_s=50_000, wws_pages=12_000),
                        mib=64, link=link, max_time_s=600)
    assert rep.status == "completed" and rep.verified
    assert rep.cpu_throttle_pct >= 20
    steps = sorted({r.throttle_pct for r in rep.rounds if r.throttle_pct})
    assert steps[0] == 20 and all(b - a == 10 or b == 99 for a, b in zip(steps, steps[1:]))


def test_stop_and_copy_downtime_is_the_whole_transfer():
    src, _, rep = migrate(StopAndCopy(), UniformWrites(wws_pages=8_000))
    assert len(rep.rounds) == 1 and rep.pages_sent == src.n_pages
    assert rep.downtime_ms == pytest.approx(rep.total_time_ms - rep.setup_time_ms)


def test_pure_postcopy_sends_every_page_exactly_once_and_downtime_is_device_state_only():
    src, dst, rep = migrate(PostCopy(), HotCold(rate_pages_s=30_000, hot_pages=1000, cold_pages=4000))
    assert rep.status == "completed" and rep.verified
    assert rep.pages_sent == src.n_pages
    assert rep.postcopy_faults > 0
    assert rep.downtime_ms < 20


def test_precopy_then_postcopy_pulls_only_the_pages_still_dirty():
    src, dst, rep = migrate(QemuPolicy(postcopy=True), UniformWrites(rate_pages_s=80_000, wws_pages=10_000),
                            mib=64, link=Link(bandwidth_mbps=200))
    assert rep.status == "completed"
    assert rep.postcopy_bytes > 0 and rep.precopy_bytes > 0
    assert rep.rounds[-1].phase == "postcopy"


@pytest.mark.parametrize("phase", ["setup", "precopy", "stop-and-copy"])
@pytest.mark.parametrize("kind", ["link", "target", "cancel"])
def test_failure_before_commitment_leaves_the_guest_running_on_the_source(phase, kind):
    src, dst, rep = migrate(Xen3Policy(), UniformWrites(rate_pages_s=20_000, wws_pages=2_000),
                            fault=Fault(kind=kind, phase=phase, round=2))
    assert rep.status == ("cancelled" if kind == "cancel" else "failed")
    assert rep.where == "source" and not rep.guest_lost
    assert not src.paused and src.log is None
    assert not dst.received.any() and not dst.content.any()


def test_failure_during_postcopy_loses_the_guest():
    src, dst, rep = migrate(PostCopy(), UniformWrites(wws_pages=8_000), fault=Fault(kind="link", phase="postcopy"))
    assert rep.status == "failed" and rep.guest_lost and rep.where == "lost"
    assert "lost" in rep.error


def test_timed_fault_in_precopy_reports_the_round():
    _, _, rep = migrate(Xen3Policy(), UniformWrites(wws_pages=8_000), fault=Fault(kind="link", at_s=0.3))
    assert rep.status == "failed" and "pre-copy round" in rep.error


def test_workload_larger_than_the_guest_is_refused():
    with pytest.raises(ConfigError, match="working set"):
        migrate(QemuPolicy(), UniformWrites(wws_pages=10**9))


def test_same_seed_same_report():
    a = migrate(QemuPolicy(), Zipf(pages=8_000), seed=7)[2]
    b = migrate(QemuPolicy(), Zipf(pages=8_000), seed=7)[2]
    assert a == b


def test_sequential_scan_workload_runs_through_every_policy():
    for pol in (Xen3Policy(), ModernXenPolicy(), QemuPolicy()):
        _, _, rep = migrate(pol, SequentialScan(rate_pages_s=30_000, region_pages=8_000))
        assert rep.status == "completed" and rep.verified


def test_progress_callback_sees_every_round():
    seen = []
    _, _, rep = migrate(Xen3Policy(), UniformWrites(wws_pages=8_000), progress=seen.append)
    assert seen == list(rep.rounds)


def test_fault_needs_a_time_or_a_phase_and_a_known_kind():
    with pytest.raises(ConfigError):
        Fault(kind="link")
    with pytest.raises(ConfigError, match="kind"):
        Fault(kind="meteor", at_s=1.0)
    with pytest.raises(ConfigError, match="phase"):
        Fault(kind="link", phase="teleport")


def test_policy_names_map_to_policies():
    from vmlab.migration import policy_by_name
    assert policy_by_name("qemu+postcopy").label == "qemu+postcopy"
    assert policy_by_name("qemu+auto-converge").auto_converge
    assert policy_by_name("xen3").max_iters == 29
    with pytest.raises(ConfigError, match="xen3"):
        policy_by_name("vmware")


def test_qemu_refuses_a_nonpositive_downtime_limit():
    with pytest.raises(ConfigError, match="downtime_limit_ms"):
        QemuPolicy(downtime_limit_ms=0)
