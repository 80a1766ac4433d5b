"""Migration policies: when to stop iterating, how to send, what to throttle.

Every policy drives the same engine (vmlab.migration.engine); what differs is
a handful of switches and one `decide` at each bitmap sync.

Facts (REFERENCE.md §6, each read in the source named):
- Xen 3, tools/libxc/xc_domain_save.c: DEF_MAX_ITERS 29 (30 passes counting the
  last), DEF_MAX_FACTOR 3; last pass when iter >= max_iters, or
  sent_this_iter + skip_this_iter < 50, or total_sent > 3 x p2m_size. Pages
  re-dirtied during the current pass are skipped (SHADOW_OP_PEEK per batch of
  MAX_BATCH_SIZE 1024). RATE_IS_MAX() is 0 without ADAPTIVE_SAVE, so the
  rate-limit clause never fires and pages go at link speed.
- Modern Xen, tools/libs/guest/xg_sr_save.c simple_precopy_policy:
  SPP_MAX_ITERATIONS 5, SPP_TARGET_DIRTY_COUNT 50. The policy is asked before
  each pass; on STOP_AND_COPY the current dirty set is still sent live, then
  the guest is suspended and the final dirty set sent (suspend_and_send_dirty).
- QEMU, migration/migration.c, ram.c, options.c: downtime-limit 300 ms,
  max-bandwidth 128 MiB/s (MAX_THROTTLE), bandwidth re-measured every
  BUFFER_DELAY = 100 ms, threshold = bandwidth x downtime-limit, switch over
  when pending < threshold; auto-converge: throttle-trigger-threshold 50 %,
  two hits, cpu-throttle-initial 20, cpu-throttle-increment 10,
  max-cpu-throttle 99; zero pages are sent as RAM_SAVE_FLAG_ZERO records
  (8-byte header + 1 byte), normal pages as 8-byte header + 4096 bytes.

Numbers marked ILLUSTRATIVE are round teaching figures, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from vmlab.errors import ConfigError

__all__ = ["Decision", "SyncStats", "Policy", "Xen3Policy", "ModernXenPolicy", "QemuPolicy", "StopAndCopy",
           "PostCopy", "POLICIES", "policy_by_name"]

PAGE_SIZE = 4096


class Decision(str, Enum):
    CONTINUE = "continue"
    LAST_LIVE_PASS = "last-live-pass"     # modern Xen: send this set live, then stop-and-copy
    STOP_AND_COPY = "stop-and-copy"
    START_POSTCOPY = "postcopy"


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncStats:
    """What a policy sees at a bitmap sync (end of a Xen pass, or any QEMU sync)."""

    iteration: int              # completed passes / syncs so far (QEMU: dirty-sync-count - 1)
    pass_complete: bool         # the sweep reached the end of its set
    sent_this_round: int        # pages sent since the previous sync
    skipped_this_round: int
    new_dirty: int              # pages found newly dirty at this sync
    pending_pages: int          # pages to send after this sync
    total_sent_pages: int
    n_pages: int
    threshold_bytes: float      # QEMU's bandwidth x downtime-limit (0 before the first measurement)
    elapsed_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """Switches shared by every engine policy."""

    name: str = "policy"
    live: bool = True
    skip_redirtied: bool = False          # Xen 3's PEEK-and-skip
    early_sync: bool = False              # QEMU: sync as soon as the estimate drops below the threshold
    zero_page_detection: bool = False     # QEMU: zero pages as "duplicate" records
    max_bandwidth_mib_s: float | None = None   # live-phase rate limit; None = link speed
    auto_converge: bool = False
    postcopy: bool = False
    page_header_bytes: int = 8            # Xen: pfn_type entry; QEMU: be64 offset|flags
    zero_page_bytes: int = 9              # QEMU: header + 1 fill byte
    batch_pages: int = 1024               # Xen MAX_BATCH_SIZE; one 4-byte count per batch
    setup_ms: float = 50.0                # ILLUSTRATIVE: reservation + enabling log-dirty
    setup_ms_per_gib: float = 2.0         # ILLUSTRATIVE: bitmap allocation / first sync
    sync_ms: float = 0.2                  # ILLUSTRATIVE: one CLEAN / KVM_GET_DIRTY_LOG
    sync_ms_per_gib: float = 0.25         # ILLUSTRATIVE
    zero_page_scan_us: float = 0.5        # ILLUSTRATIVE: the sender checks one 4 KiB page is zero (~8 GB/s)
    normal_page_cpu_us: float = 0.4       # ILLUSTRATIVE: the sender copies one page into its buffer (~10 GB/s)
    final_page_cpu_us: float | None = None  # per data page in stop-and-copy (None: as normal_page_cpu_us)
    # stop-and-copy, per data page the target had never received (the rest of an unfinished first pass):
    # past the first `final_buffer_pages` (what the sockets hold) the source goes at the target's pace, and
    # the target faults in a 2 MiB huge page for each 512 such pages (engine/switchover.py gives the downtime
    # of a target whose memory is resident too); 0 = as final_page_cpu_us.
    final_new_page_us: float = 0.0
    final_buffer_pages: int = 0
    # The target's own pace in the live phase, per record and per 2 MiB huge page it faults in for the
    # first data written there (0 = the target keeps up): what it has not placed when the guest stops,
    # up to what the sockets hold (final_buffer_pages), delays the final copy (engine/target.py).
    target_page_us: float = 0.0
    target_zero_us: float = 0.0
    target_region_fault_ms: float = 0.0
    final_sync_ms: float | None = None      # the last bitmap sync, guest stopped (None: as a live sync)
    rate_limit_windows: bool = False      # QEMU's rate limiter: a budget per BUFFER_DELAY window
    sync_waits_for_vcpu: bool = False     # TCG: a bitmap sync waits for the vCPU (run_on_cpu), throttle sleeps too
    device_state_kib: float = 16.0        # ILLUSTRATIVE: vCPU context + shared info
    stop_overhead_ms: float = 5.0         # ILLUSTRATIVE: suspend on source, resume on target
    min_iteration_ms: float = 0.0         # QEMU: the switchover check runs once per ram_save_iterate
    prepaging_pages: int = 0              # post-copy: neighbours pushed after each demand fault

    def decide(self, s: SyncStats) -> Decision:
        return Decision.STOP_AND_COPY

    def with_(self, **changes) -> "Policy":
        return replace(self, **changes)

    @property
    def label(self) -> str:
        extra = ("+auto-converge" if self.auto_converge else "") + ("+postcopy" if self.postcopy and self.early_sync else "")
        return self.name + extra


@dataclass(frozen=True, kw_only=True, slots=True)
class Xen3Policy(Policy):
    """Xen 3.x xc_domain_save: up to 30 passes, stop when < 50 sent or > 3x memory sent."""

    name: str = "xen3"
    skip_redirtied: bool = True
    permuted_scan: bool = True  # each pass in xc_domain_save's permute() order (vmlab.migration.xen3_order)
    max_iters: int = 29        # DEF_MAX_ITERS
    max_factor: float = 3.0    # DEF_MAX_FACTOR
    min_sent: int = 50

    def __post_init__(self) -> None:
        if self.max_iters < 1 or self.max_factor <= 0:
            raise ConfigError(f"max_iters={self.max_iters} must be >= 1 and max_factor={self.max_factor} > 0")

    def decide(self, s: SyncStats) -> Decision:
        if (s.iteration >= self.max_iters or s.sent_this_round + s.skipped_this_round < self.min_sent
                or s.total_sent_pages > s.n_pages * self.max_factor):
            return Decision.STOP_AND_COPY
        return Decision.CONTINUE

    def stop_reason(self, s: SyncStats) -> str:
        if s.iteration >= self.max_iters:
            return f"iter {s.iteration} >= max_iters {self.max_iters}"
        if s.sent_this_round + s.skipped_this_round < self.min_sent:
            return f"sent+skipped {s.sent_this_round + s.skipped_this_round} < {self.min_sent}"
        return f"total sent {s.total_sent_pages} > {self.max_factor:g} x {s.n_pages} pages"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModernXenPolicy(Policy):
    """Xen 4.x xg_sr_save simple_precopy_policy: 5 iterations or < 50 dirty pages."""

    name: str = "xen"
    max_iterations: int = 5        # SPP_MAX_ITERATIONS
    target_dirty_count: int = 50   # SPP_TARGET_DIRTY_COUNT

    def decide(self, s: SyncStats) -> Decision:
        if s.new_dirty < self.target_dirty_count or s.iteration >= self.max_iterations:
            return Decision.LAST_LIVE_PASS
        return Decision.CONTINUE

    def stop_reason(self, s: SyncStats) -> str:
        if s.new_dirty < self.target_dirty_count:
            return f"dirty_count {s.new_dirty} < {self.target_dirty_count}"
        return f"iteration {s.iteration} >= {self.max_iterations}"


@dataclass(frozen=True, kw_only=True, slots=True)
class QemuPolicy(Policy):
    """QEMU pre-copy: continuous sweep, switch over when pending < bandwidth x downtime-limit."""

    name: str = "qemu"
    early_sync: bool = True
    zero_page_detection: bool = True
    downtime_limit_ms: float = 300.0
    max_bandwidth_mib_s: float | None = 128.0
    throttle_trigger_threshold: int = 50
    cpu_throttle_initial: int = 20
    cpu_throttle_increment: int = 10
    max_cpu_throttle: int = 99
    postcopy_after_syncs: int = 1      # migrate-start-postcopy after this many syncs (libvirt: after pass 1)
    bandwidth_period_ms: float = 100.0   # BUFFER_DELAY
    min_iteration_ms: float = 50.0       # ram.c MAX_WAIT: one ram_save_iterate sends for up to 50 ms
    # (when the rate limit binds, an iteration ends when the 100 ms budget is spent instead)
    # migration.c migration_rate_limit: a window's budget is sent at the sender's full speed, then
    # the thread sleeps to the window's end, so bytes sent by time t are (t // 100 ms + 1) budgets:
    # one window ahead of max-bandwidth x t ("the first window at full speed"), and a bitmap sync
    # runs inside a window rather than after it (engine/state.py Migration.paced).
    rate_limit_windows: bool = True
    # softmmu/physmem.c tcg_log_global_after_sync (TCG, the accelerator of the calibration runs):
    # migration_bitmap_sync ends with run_on_cpu(cpu, do_nothing), which waits until the vCPU
    # thread takes its work queue -- after the auto-converge sleep in progress (cpu-throttle.c
    # cpu_throttle_thread: pct/(1-pct) x 10 ms per tick of 10 ms/(1-pct)). At 99 % a sync waits
    # for up to 990 ms. KVM has no such wait (KVM_GET_DIRTY_LOG runs beside the vCPUs), hence the
    # default; predict_migration(accelerator="tcg") and the TCG ground-truth runs set it.
    sync_waits_for_vcpu: bool = False
    # Calibrated on real QEMU 7.2 runs (tools/calibrate_migration.py; values and provenance in
    # datasets/tables/qemu_migration_calibrated.csv; tests/migration/test_calibration.py locks them):
    setup_ms: float = 1.0                # setup-time: log-dirty on, ram_init_bitmaps' first sync, thread start
    setup_ms_per_gib: float = 0.0
    normal_page_cpu_us: float = 3.0      # live sender, per data page: find dirty, copy, frame (vCPU running)
    zero_page_scan_us: float = 0.5       # live sender, per zero page: buffer_is_zero + 9-byte record
    final_page_cpu_us: float = 2.36      # stop-and-copy, per data page sent before (no rate limit)
    # Measured on the target with QEMU's trace events (datasets/measurements/qemu_target_trace): a data page
    # the target never had costs it 0.95 us + a 2 MiB huge-page fault (4.46 ms, the median run) per 512 ...
    final_new_page_us: float = 9.7
    final_buffer_pages: int = 1061       # ... past the 4.2 MiB the loopback sockets held at the stop
    target_page_us: float = 0.95         # the target, per data record (same traces, median run)
    target_zero_us: float = 0.24         # ... per zero record
    target_region_fault_ms: float = 4.46  # ... per 2 MiB huge page it faults in (the median run)
    # Measured on the source (same traces): vm_stop_force_state 0.11 ms + the device-state sections 0.88 ms
    stop_overhead_ms: float = 0.99
    final_sync_ms: float | None = 0.0    # the final bitmap sync is inside the ram section: final_page_cpu_us
    sync_ms: float = 1.0                  # = setup_ms: setup-time spans the first migration_bitmap_sync
    sync_ms_per_gib: float = 0.0
    # Measured in every run: mbps x (total-time - setup-time) / 8 - ram.transferred, the stream's bytes that are
    # not page records (the vCPU and device VMState at the stop: savevm.c qemu_savevm_state_complete_precopy)
    device_state_kib: float = 111.4

    def __post_init__(self) -> None:
        if self.downtime_limit_ms <= 0:
            raise ConfigError(f"downtime_limit_ms={self.downtime_limit_ms} must be > 0; QEMU's default is 300")
        if self.max_bandwidth_mib_s is not None and self.max_bandwidth_mib_s <= 0:
            raise ConfigError(f"max_bandwidth_mib_s={self.max_bandwidth_mib_s} must be > 0 (or None for the link speed)")
        if not 1 <= self.max_cpu_throttle <= 99:
            raise ConfigError(f"max_cpu_throttle={self.max_cpu_throttle} is outside 1..99")

    def decide(self, s: SyncStats) -> Decision:
        pending_bytes = s.pending_pages * PAGE_SIZE
        if pending_bytes == 0 or pending_bytes < s.threshold_bytes:
            return Decision.STOP_AND_COPY
        if self.postcopy and s.iteration >= self.postcopy_after_syncs:
            return Decision.START_POSTCOPY
        return Decision.CONTINUE

    def stop_reason(self, s: SyncStats) -> str:
        # In pages, exactly: at two decimals of a MiB the two sides can print the same.
        return (f"pending {s.pending_pages:,} pages ({s.pending_pages * PAGE_SIZE / 2**20:.3f} MiB) < threshold "
                f"{s.threshold_bytes / PAGE_SIZE:,.1f} pages ({s.threshold_bytes / 2**20:.3f} MiB = bandwidth x "
                f"{self.downtime_limit_ms:g} ms)")


@dataclass(frozen=True, kw_only=True, slots=True)
class StopAndCopy(Policy):
    """Non-live migration (xm migrate without -l): pause, send everything, resume."""

    name: str = "stop-and-copy"
    live: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class PostCopy(Policy):
    """Pure post-copy (Hines & Gopalan, VEE 2009): CPU state first, then pages on demand + push.

    `prepaging_pages`: after a demand fault the sender pushes this many following
    pages next (adaptive pre-paging, simplified to a fixed window; ILLUSTRATIVE).
    """

    name: str = "postcopy"
    postcopy: bool = True
    zero_page_detection: bool = True
    prepaging_pages: int = 16
    device_state_kib: float = 111.4   # QemuPolicy's, measured (postcopy sends the same VMState)
    stop_overhead_ms: float = 8.0


POLICIES = {"xen3": Xen3Policy, "xen": ModernXenPolicy, "qemu": QemuPolicy,
            "stop-and-copy": StopAndCopy, "postcopy": PostCopy}


def policy_by_name(name: str | Policy, **kwargs) -> Policy:
    """'xen3', 'xen', 'qemu', 'qemu+postcopy', 'stop-and-copy', 'postcopy' -> a Policy."""
    if isinstance(name, Policy):
        return name.with_(**kwargs) if kwargs else name
    if name == "qemu+postcopy":
        return QemuPolicy(postcopy=True, **kwargs)
    if name == "qemu+auto-converge":
        return QemuPolicy(auto_converge=True, **kwargs)
    try:
        return POLICIES[name](**kwargs)
    except KeyError:
        raise ConfigError(f"policy {name!r} is not one of {', '.join([*POLICIES, 'qemu+postcopy', 'qemu+auto-converge'])}") from None
