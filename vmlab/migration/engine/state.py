"""The state of one migration in progress, shared by the pre-copy and post-copy phases.

`Migration` holds the clocks, the byte and page counters, QEMU's bandwidth and
threshold bookkeeping, the auto-converge throttle, and the helpers every phase
uses: let the guest run, put pages on the wire, abort before commitment,
verify the target, and assemble the MigrationReport.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from vmlab.errors import ConfigError
from vmlab.migration.faults import Fault
from vmlab.migration.link import link_goodput_Bps, rtt_s
from vmlab.migration.policies import PAGE_SIZE, Policy
from vmlab.migration.report import MigrationReport, RoundRecord
from vmlab.migration.dirtying import Idle, Workload
from vmlab.migration.engine.target import TargetQueue

__all__ = ["Migration"]

THROTTLE_SLICE_S = 0.010   # cpu-throttle.c CPU_THROTTLE_TIMESLICE_NS (10 ms)


def _extent(workload: Workload) -> int:
    for attr in ("extent_pages",):
        if hasattr(workload, attr):
            return int(getattr(workload, attr))
    off = int(getattr(workload, "offset", 0))
    return off + int(getattr(workload, "wws_pages", 0))


class Migration:
    """One migration in progress (state shared by the pre-copy and post-copy phases)."""

    def __init__(self, source, target, *, workload: Workload | None, policy: Policy, link, rng: np.random.Generator,
                 fault: Fault | None = None, progress: Callable[[RoundRecord], None] | None = None,
                 max_time_s: float = 600.0, verify: bool = True, vcpus: int = 1) -> None:
        self.src, self.dst = source, target
        self.workload = workload if workload is not None else Idle()
        self.policy = policy
        self.link = link
        self.rng = rng
        self.fault = fault
        self.progress = progress
        self.max_time_s = float(max_time_s)
        self.verify = verify
        self.vcpus = vcpus
        self.pfns = np.asarray(source.pfns, dtype=np.int64)
        self.n = int(source.n_pages)
        # every pfn populated: the first pass can address memory by slices (sequential copies)
        self.pfns_are_range = bool(self.pfns.size == self.n and (self.n == 0 or int(self.pfns[-1]) == self.n - 1))
        ext = _extent(self.workload)
        if ext > self.n:
            raise ConfigError(f"the workload writes up to pfn {ext - 1} but the guest has {self.n} pages; "
                              "shrink the working set or grow the guest")
        self.gib = self.pfns.size * PAGE_SIZE / 2**30
        self.goodput = link_goodput_Bps(link)
        self._set_live_rate(policy.max_bandwidth_mib_s)
        self.rtt = rtt_s(link)
        self.lazy_guest = not verify and policy.early_sync and not policy.skip_redirtied
        self._guest_due_s = 0.0
        self.store_target = verify or policy.postcopy   # the target's copy matters only to check it
        self._init_received(policy)
        self.sync_s = (policy.sync_ms + policy.sync_ms_per_gib * self.gib) / 1000.0
        # running totals
        self.t = 0.0
        self.transferred = 0
        # RAM counters (ram.c ram_transferred_add: page records) and the vCPU/device state beside them
        self.precopy_bytes = self.downtime_bytes = self.postcopy_bytes = self.device_bytes = 0
        self.normal = self.zero = 0
        self.rounds: list[RoundRecord] = []
        self.sync_count = 0
        self.throttle = self.max_throttle = self.high_cnt = 0   # auto-converge
        self.dirty_pages_rate = 0
        self.threshold = 0.0
        self.bandwidth = 0.0  # bytes/s as QEMU last measured it
        self._per_bytes = 0
        self._per_t = 0.0
        self._rate_t0 = 0.0
        self._rate_bytes0 = 0
        self._rate_dirty = 0
        self.downtime_s = 0.0
        self.setup_s = 0.0
        self.faults = 0
        self.stop_reason = ""
        self.notes: list[str] = []
        self.near_miss, self.near_alt = None, 0   # see engine/switchover.py
        self.downtime_alts: list[float] = []      # other outcomes' downtimes (engine/switchover.py)
        if policy.max_bandwidth_mib_s and self.goodput < policy.max_bandwidth_mib_s * 2**20:
            from vmlab.migration.defaults import link_cap_note   # never a silent cap
            self.notes.append(link_cap_note(policy.max_bandwidth_mib_s, float(link.bandwidth_mbps)))
        self.phase = "setup"
        self.round_no = 1

    # --- the guest ---------------------------------------------------------------
    @property
    def cpu_fraction(self) -> float:
        return 1.0 - self.throttle / 100.0

    def guest_runs(self, seconds: float) -> None:
        """The guest executes for `seconds` on the source: its stores hit memory and the log.

        A QEMU-style sweep that does not verify reads the log only at syncs, and the throttle
        changes only there, so its stores are drawn once per sync interval (`flush_guest`),
        not once per chunk: the same dirty set at a fraction of the cost.
        """
        if seconds <= 0 or self.src.paused:
            return
        if self.lazy_guest:
            self._guest_due_s += seconds
            return
        self._store_burst(seconds)

    def flush_guest(self) -> None:
        """Apply the stores of the guest time accrued since the last flush (before a sync or a pause)."""
        if self._guest_due_s > 0:
            due, self._guest_due_s = self._guest_due_s, 0.0
            self._store_burst(due)

    def _store_burst(self, seconds: float) -> None:
        wl = self.workload
        parts = wl.write_parts if hasattr(wl, "write_parts") else lambda *a: (wl.writes(*a),)
        for w in parts(self.rng, seconds, self.cpu_fraction):
            if w.size:
                self.src.write(w)

    # --- the wire ------------------------------------------------------------------
    def wire(self, stamps: np.ndarray, rate_Bps: float, *, final: bool = False,
             first_touch: int = 0) -> tuple[int, int, int, float]:
        """(normal, zero, bytes, seconds) for sending pages with these stamps at `rate_Bps`.

        The sender's CPU work (checking for zero pages, copying and framing pages)
        overlaps with the wire: a chunk takes the longer of the two, so the CPU cost
        is the sender's ceiling (QEMU's windowed limiter: `paced`). `final` charges the stop-and-copy cost
        per data page (vCPUs stopped) instead of the live one, and `final_new_page_us` for the
        `first_touch` data pages among them that the target never received before (past the sockets'
        `final_buffer_pages`).
        """
        p = self.policy
        k = int(stamps.size)
        page_us = p.final_page_cpu_us if final and p.final_page_cpu_us is not None else p.normal_page_cpu_us
        if p.zero_page_detection:
            z = int(np.count_nonzero(stamps == 0))
            nz = k - z
            nbytes = nz * (PAGE_SIZE + p.page_header_bytes) + z * p.zero_page_bytes
            cpu_s = (z * p.zero_page_scan_us + nz * page_us) * 1e-6
        else:
            z, nz = 0, k
            nbytes = k * (PAGE_SIZE + p.page_header_bytes) + 4 * math.ceil(k / p.batch_pages)
            cpu_s = k * page_us * 1e-6
        if final and first_touch:
            cpu_s += self.first_touch_extra_s(first_touch, page_us)
        self.last_busy_s = max(nbytes / self.goodput, cpu_s)   # the sender's time, without rate-limit sleeps
        return nz, z, nbytes, max(nbytes / rate_Bps, cpu_s)

    def first_touch_extra_s(self, first_touch: int, page_us: float) -> float:
        """What `first_touch` never-sent pages add to a final copy beyond `page_us` each: those past the
        sockets' `final_buffer_pages` wait for the target (final_new_page_us each)."""
        p = self.policy
        slow = max(0, first_touch - p.final_buffer_pages)
        return slow * max(0.0, p.final_new_page_us - page_us) * 1e-6

    def send(self, pfns, rate_Bps: float, *, final: bool = False) -> tuple[int, int, int, float]:
        """Copy these pages' stamps to the target; `pfns` is an index array or a slice."""
        stamps = self.src.read(pfns)
        if self.store_target:
            self.dst.store(pfns, stamps)
        first = self._first_received(pfns, stamps) if self._first_touch and self._n_received < self.n else 0
        self.last_first_touch = first
        nz, z, nbytes, secs = self.wire(stamps, rate_Bps, final=final, first_touch=first)
        self.normal += nz
        self.zero += z
        self.transferred += nbytes
        return nz, z, nbytes, secs

    def _init_received(self, policy: Policy) -> None:
        """Pages the target has received at least once (kept only when the final copy prices them apart)."""
        self._first_touch = policy.final_new_page_us > 0 or policy.target_region_fault_ms > 0
        self._received = np.zeros(self.n, dtype=bool) if self._first_touch else None
        # the target's own pace in the live phase (engine/target.py), when the policy prices it
        live_target = policy.target_region_fault_ms > 0 and policy.final_buffer_pages > 0
        self.target = TargetQueue(policy, self.n) if live_target else None
        self.backlog_wait_s = self.backlog_fault_s = 0.0   # of the downtime: the target's live backlog, its faults
        self._n_received = 0
        self.last_busy_s = 0.0
        self.last_first_touch = 0   # data pages new to the target in the last send
        self._tick: float | None = None      # the auto-converge timer's last tick (see `vcpu_wait_s`)
        self._tick_pct = 0
        self._win_end: float | None = None   # QEMU's rate-limit window (see `paced`)
        self._win_bytes = 0.0

    def _first_received(self, pfns, stamps: np.ndarray) -> int:
        """Data pages among `pfns` the target had never received; marks all of `pfns` received."""
        seen = self._received[pfns]
        fresh = ~seen & (stamps != 0)
        first = int(np.count_nonzero(fresh))
        new = int(seen.size - np.count_nonzero(seen))
        if first and self.target is not None:
            self.target.note_data(pfns, fresh)
        if new:
            self._received[pfns] = True
            self._n_received += new
        return first

    def paced(self, nbytes: int, busy_s: float) -> float:
        """Seconds a live chunk takes under QEMU's windowed rate limiter (`windowed`).

        migration.c: a window (BUFFER_DELAY, 100 ms) starts at migration_update_counters; the
        sender works at full speed (`busy_s`, its ceiling) until the window's budget is exceeded
        (qemu_file_rate_limit), then migration_rate_limit sleeps to the window's end and a new
        window starts. A window whose budget is not spent by its end is renewed at the next loop.
        So a pass that ends mid-window is followed at once by its bitmap sync, inside the window:
        the limit bounds bytes per window, not the time between syncs. The window is renewed only
        there (migration_update_counters runs after an iteration), so after a stall (a sync waiting
        for a throttled vCPU) the budget of the window renewed just before it goes first, then a new
        window's. Each
        window's close is where QEMU measures the bandwidth and sets the threshold (`_close_window`):
        a stalled window measures a low bandwidth, hence a low threshold.
        """
        period = self.policy_bandwidth_period_s
        budget = self.live_rate * period
        if self._win_end is None:              # the first window starts with the first page
            self._win_end, self._win_bytes = self.t + period, 0.0
        if nbytes <= 0:
            return busy_s
        per_byte = busy_s / nbytes
        left = budget - self._win_bytes
        if nbytes < left:                      # the budget is not exceeded: full speed
            self._win_bytes += nbytes
            t = self.t + busy_s
            if t >= self._win_end:             # the window ran out on time, not bytes
                self._close_window(t)
                self._win_end, self._win_bytes = t + period, 0.0
            return busy_s
        # this window's budget is spent: sleep to its end; whole windows; the rest in a new one
        self._win_bytes = budget
        t = max(self._win_end, self.t + left * per_byte)
        self._close_window(t)
        rest = nbytes - left
        full = int(rest // budget)
        if full:
            t += full * max(period, budget * per_byte)
            self.bandwidth = budget / max(period, budget * per_byte)
            self.threshold = self.bandwidth * self.downtime_limit_s
        self._win_end, self._win_bytes = t + period, rest - full * budget
        return t + self._win_bytes * per_byte - self.t

    def _close_window(self, t: float) -> None:
        """migration_update_counters at a window's end: bandwidth = its bytes / its time, threshold =
        bandwidth x downtime-limit."""
        if self._win_end is None:
            return
        spent = t - (self._win_end - self.policy_bandwidth_period_s)
        if spent > 0 and self._win_bytes > 0:
            self.bandwidth = self._win_bytes / spent
            self.threshold = self.bandwidth * self.downtime_limit_s

    def set_throttle(self, pct: int) -> None:
        """cpu_throttle_set: the first call ticks at once (cpu-throttle.c cpu_throttle_timer_tick), and the
        ticks then come every 10 ms/(1-pct); a new pct applies from the next tick."""
        if pct and not self.throttle:
            self._tick, self._tick_pct = self.t, pct
        self.throttle = pct

    def vcpu_wait_s(self) -> float:
        """How long a run_on_cpu issued now waits for the throttled vCPU (`sync_waits_for_vcpu`): the
        vCPU sleeps pct/(1-pct) x 10 ms from each tick (cpu_throttle_thread) and takes work after."""
        if not (self.policy.sync_waits_for_vcpu and self.throttle and self._tick is not None):
            return 0.0
        while True:   # ticks up to now, each at the percentage of the tick before
            nxt = self._tick + THROTTLE_SLICE_S / (1 - self._tick_pct / 100)
            if nxt > self.t:
                break
            self._tick, self._tick_pct = nxt, self.throttle
        pct = self._tick_pct / 100
        wake = self._tick + THROTTLE_SLICE_S * pct / (1 - pct)
        return max(0.0, wake - self.t)

    def window_used(self) -> float:
        """Bytes already sent in QEMU's current rate-limit window (renewed only after an iteration)."""
        return 0.0 if self._win_end is None else self._win_bytes

    def measure(self, nbytes: int, secs: float) -> None:
        """QEMU's migration_update_counters every BUFFER_DELAY: bandwidth and threshold (a fluid
        sender's; a `windowed` one measures at its windows' ends)."""
        if self.windowed:
            return
        self._per_bytes += nbytes
        self._per_t += secs
        if self._per_t >= self.policy_bandwidth_period_s:
            self.bandwidth = self._per_bytes / self._per_t
            self.threshold = self.bandwidth * self.downtime_limit_s
            self._per_bytes, self._per_t = 0, 0.0

    def _set_live_rate(self, cap_mib_s: float | None) -> None:
        """The live phase's rate (max-bandwidth as QEMU's windows send it, or the link), and whether
        the live sends go by QEMU's windows (`paced`) rather than as a fluid at that rate."""
        self.live_rate = min(self.goodput, self._window_rate(cap_mib_s * 2**20)) if cap_mib_s else self.goodput
        self.windowed = bool(self.policy.rate_limit_windows and self.live_rate < self.goodput)

    def _window_rate(self, cap_Bps: float) -> float:
        """QEMU's rate limit as sent: qemu_file_rate_limit stops a window only once its budget
        (max-bandwidth / XFER_LIMIT_RATIO) is exceeded, so each window ends one record past it."""
        p = self.policy
        if not p.rate_limit_windows:
            return cap_Bps
        period = self.policy_bandwidth_period_s
        rec = PAGE_SIZE + p.page_header_bytes
        return (math.floor(cap_Bps * period / rec) + 1) * rec / period

    @property
    def policy_bandwidth_period_s(self) -> float:
        return getattr(self.policy, "bandwidth_period_ms", 100.0) / 1000.0

    @property
    def downtime_limit_s(self) -> float:
        return getattr(self.policy, "downtime_limit_ms", 0.0) / 1000.0

    def fault_due(self) -> bool:
        return self.fault is not None and self.fault.due(self.t, self.phase, self.round_no)

    # --- reporting --------------------------------------------------------------------
    def add_round(self, rec: RoundRecord) -> None:
        self.rounds.append(rec)
        if self.progress is not None:
            self.progress(rec)

    def report(self, status: str, *, remaining_pages: int = 0, verified: bool = False, error: str = "",
               where: str = "target", guest_lost: bool = False, converged: bool = True) -> MigrationReport:
        total_ms = self.t * 1000
        transfer_s = max(1e-9, self.t - self.setup_s)
        mbps = (self.transferred + self.device_bytes) * 8 / transfer_s / 1e6   # migration_total_bytes
        pages = self.normal + self.zero
        exp_dt = (remaining_pages * PAGE_SIZE / self.bandwidth * 1000) if self.bandwidth > 0 else 0.0
        return MigrationReport(
            status=status, policy=self.policy.label, live=self.policy.live, memory_pages=int(self.pfns.size),
            rounds=tuple(self.rounds), total_time_ms=total_ms, downtime_ms=self.downtime_s * 1000,
            setup_time_ms=self.setup_s * 1000, expected_downtime_ms=exp_dt, transferred_bytes=int(self.transferred),
            precopy_bytes=int(self.precopy_bytes), downtime_bytes=int(self.downtime_bytes),
            postcopy_bytes=int(self.postcopy_bytes), device_state_bytes=int(self.device_bytes),
            remaining_bytes=int(remaining_pages * PAGE_SIZE),
            normal_pages=int(self.normal), duplicate_pages=int(self.zero), pages_sent=int(pages),
            dirty_sync_count=self.sync_count, dirty_pages_rate=int(self.dirty_pages_rate), mbps=mbps,
            pages_per_second=int(pages / transfer_s), cpu_throttle_pct=self.max_throttle, converged=converged,
            stop_reason=self.stop_reason, postcopy_faults=self.faults, guest_lost=guest_lost, verified=verified,
            error=error, where=where, link_mbps=float(self.link.bandwidth_mbps), notes=tuple(self.notes),
            downtime_range_ms=self._downtime_range_ms(status))

    def _downtime_range_ms(self, status: str) -> tuple[float, float] | None:
        if status != "completed" or not self.downtime_alts:
            return None
        every = [self.downtime_s * 1000, *(s * 1000 for s in self.downtime_alts)]
        return (min(every), max(every))

    def abort(self, why: str, *, status: str = "failed", remaining_pages: int = 0, converged: bool = True) -> MigrationReport:
        """Before commitment: the guest stays (or resumes) on the source; the target keeps nothing."""
        self.src.resume()
        if self.src.log is not None:
            self.src.disable_log()
        if self.store_target:
            self.dst.discard()
        return self.report(status, remaining_pages=remaining_pages, error=why, where="source", converged=converged)

    def abort_fault(self, remaining_pages: int = 0) -> MigrationReport:
        """The injected fault happened: abort, "cancelled" for a cancel, else "failed"."""
        status = "cancelled" if self.fault.kind == "cancel" else "failed"
        return self.abort(self.fault_message(), status=status, remaining_pages=remaining_pages)

    def fault_message(self) -> str:
        where = self.phase if self.phase != "precopy" else f"pre-copy round {self.round_no}"
        tail = ("the guest keeps running on the source, nothing lost; the target holds nothing"
                if self.phase != "postcopy" else "the guest's memory was split between hosts: the guest is lost")
        return f"{self.fault.describe()} at {self.t:.3f} s during {where}; {tail}"

    # --- verification --------------------------------------------------------------------
    def verify_all(self) -> bool:
        if not self.verify:
            return False
        same = self.dst.read(self.pfns) == getattr(self.src, "stamps", self.src.read)(self.pfns)   # checker's view
        if not bool(np.all(same)):
            bad = int(self.pfns[np.argmin(same)])
            raise AssertionError(f"pfn {bad} differs on the target after migration: the engine lost a write")
        return True
