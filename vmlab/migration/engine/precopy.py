"""The migration engine: one vectorized round loop, parametrised by a Policy.

The sender walks its pending set (an int64 array of pfns in send order) in
chunks. For each chunk it (Xen 3) drops pages already re-dirtied this round,
copies the stamps to the target, charges the wire time, and lets the guest run
for that long (the workload's stores set log-dirty bits). A *sync* reads and
clears the log (SHADOW_OP_CLEAN / KVM_GET_DIRTY_LOG); the policy then decides:
continue, stop-and-copy, or switch to post-copy.

- Xen passes sync only when the pass ends.
- QEMU sweeps continuously: a sync also happens as soon as the pages left in
  the current sweep (x 4 KiB) drop below the threshold (bandwidth x
  downtime-limit), to get an exact figure; the unsent rest is merged with the
  new dirty pages and the sweep continues from its cursor (ram.c
  migration_iteration_run / ram_state_pending_exact).
- At switchover the rate limit is lifted: downtime = remaining bytes / link
  goodput + device state + a fixed stop/resume overhead.

Stages follow Clark et al. 2005: 0 pre-migration and 1 reservation happen in
the caller (vmlab.toolstack.migrate, as xend), 2 iterative pre-copy and 3 stop-and-copy
here, 4 commitment and 5 activation again in the caller when status is
"completed". Time is simulated; nothing here sleeps.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from vmlab.migration.engine.state import Migration
from vmlab.migration.faults import Fault
from vmlab.migration.policies import Decision, PAGE_SIZE, Policy, SyncStats
from vmlab.migration.report import MigrationReport, RoundRecord
from vmlab.migration.workloads import Workload

__all__ = ["run_migration"]

CHUNKS_PER_PASS = 16     # granularity of the vectorized sweep (Xen peeks per 1024-page batch)
MIN_CHUNK_PAGES = 1024   # Xen's MAX_BATCH_SIZE


def run_migration(source, target, *, policy: Policy, link, workload: Workload | None = None, seed: int = 0,
                  rng: np.random.Generator | None = None, fault: Fault | None = None,
                  progress: Callable[[RoundRecord], None] | None = None, max_time_s: float = 600.0,
                  verify: bool = True) -> MigrationReport:
    """Migrate `source` memory to `target` under `policy` over `link`; returns the report.

    Never raises for a failed or cancelled migration: the report's status says
    so and the source is left running. Raises ConfigError for a workload that
    does not fit the guest.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    m = Migration(source, target, workload=workload, policy=policy, link=link, rng=rng, fault=fault,
                  progress=progress, max_time_s=max_time_s, verify=verify)
    p = policy
    # Stage 2 begins: setup (log-dirty on, bitmaps), the guest still running.
    m.setup_s = (p.setup_ms + p.setup_ms_per_gib * m.gib) / 1000.0 + m.rtt
    if p.live:
        source.enable_log()
    m.t = m.setup_s
    m.guest_runs(m.setup_s)
    if m.fault_due():
        return m.abort(m.fault_message(), status="cancelled" if fault.kind == "cancel" else "failed")
    if not p.live:
        return _stop_and_copy(m, m.pfns, reason="non-live migration: the guest is paused for the whole copy")
    if p.postcopy and not p.early_sync:  # pure post-copy: no pre-copy pass at all
        from vmlab.migration.engine.postcopy import run_postcopy
        return run_postcopy(m, m.pfns)
    return _precopy(m)


def _precopy(m: Migration) -> MigrationReport:
    p, src = m.policy, m.src
    log = src.log
    pending = m.pfns  # never modified in place: slices and concatenations only
    ptr = 0
    m.sync_count = 1          # QEMU counts the initial sync (all pages dirty) as the first
    m.phase = "precopy"
    m.round_no = 1
    last_live = False
    total_sent = 0
    r_t0, r_sent, r_norm, r_zero, r_bytes, r_skip = m.t, 0, 0, 0, 0, 0
    chunk_pages = max(MIN_CHUNK_PAGES, -(-pending.size // CHUNKS_PER_PASS))
    iter_s = p.min_iteration_ms / 1000
    if m.live_rate < m.goodput:  # rate-limited: an iteration spends one BUFFER_DELAY budget
        iter_s = max(iter_s, m.policy_bandwidth_period_s)
    min_iter_pages = int(iter_s * m.live_rate / (PAGE_SIZE + p.page_header_bytes))
    m._rate_t0, m._rate_bytes0 = m.t, m.transferred
    while True:
        left = pending.size - ptr
        k = min(left, chunk_pages)
        early = False
        if p.early_sync and m.threshold > 0:
            below = max(0, math.ceil(m.threshold / PAGE_SIZE) - 1)  # pages that count as "< threshold"
            if left - k < below + 1:
                # the check runs between ram_save_iterate calls, each sending up to MAX_WAIT (50 ms)
                k = min(left, max(left - below, min_iter_pages))
                early = True
        if k > 0:
            if pending is m.pfns and m.pfns_are_range:  # first pass over a fully populated guest
                chunk = slice(ptr, ptr + k)
            else:
                chunk = pending[ptr:ptr + k]
            ptr += k
            if p.skip_redirtied:
                again = log.peek(chunk)
                n_again = int(np.count_nonzero(again))
                if n_again:
                    chunk = (pending[chunk] if isinstance(chunk, slice) else chunk)[~again]
                    r_skip += n_again
            nz, z, nbytes, secs = m.send(chunk, m.live_rate)
            m.precopy_bytes += nbytes
            r_sent += nz + z
            r_norm += nz
            r_zero += z
            r_bytes += nbytes
            total_sent += nz + z
            m.t += secs
            m.guest_runs(secs)
            if p.early_sync:
                m.measure(nbytes, secs)
            if m.fault_due():
                return m.abort(m.fault_message(), status="cancelled" if m.fault.kind == "cancel" else "failed",
                               remaining_pages=pending.size - ptr)
        if ptr < pending.size and not (early and p.early_sync):
            continue
        # --- a bitmap sync -------------------------------------------------------------
        m.t += m.sync_s
        m.guest_runs(m.sync_s)
        unsent = pending[ptr:]
        merged, newly = log.clean_merge(unsent)
        m.sync_count += 1
        m._rate_dirty += newly
        if m.t - m._rate_t0 > 1.0:   # ram.c migration_bitmap_sync: rates and throttle once a second
            xfer = m.transferred - m._rate_bytes0
            m.dirty_pages_rate = int(m._rate_dirty / (m.t - m._rate_t0))
            if p.auto_converge and m._rate_dirty * PAGE_SIZE > xfer * p.throttle_trigger_threshold / 100:
                m.high_cnt += 1
                if m.high_cnt >= 2:
                    m.high_cnt = 0
                    m.throttle = (p.cpu_throttle_initial if m.throttle == 0
                                  else min(m.throttle + p.cpu_throttle_increment, p.max_cpu_throttle))
                    m.max_throttle = max(m.max_throttle, m.throttle)
            m._rate_t0, m._rate_bytes0, m._rate_dirty = m.t, m.transferred, 0
        dur = m.t - r_t0
        stats = SyncStats(iteration=m.round_no, pass_complete=ptr >= pending.size, sent_this_round=r_sent,
                          skipped_this_round=r_skip, new_dirty=newly, pending_pages=int(merged.size),
                          total_sent_pages=total_sent, n_pages=int(m.pfns.size), threshold_bytes=m.threshold,
                          elapsed_s=m.t)
        m.add_round(RoundRecord(
            round=m.round_no, phase="precopy", start_ms=r_t0 * 1000, duration_ms=dur * 1000, pages_sent=r_sent,
            normal_pages=r_norm, zero_pages=r_zero, bytes_sent=r_bytes, pages_skipped=r_skip, pages_dirtied=newly,
            remaining_pages=int(merged.size), dirty_rate_pages_s=newly / dur if dur > 0 else 0.0,
            bandwidth_mbps=r_bytes * 8 / dur / 1e6 if dur > 0 else 0.0, threshold_bytes=m.threshold,
            throttle_pct=m.throttle))
        decision = Decision.STOP_AND_COPY if last_live else p.decide(stats)
        if decision is Decision.LAST_LIVE_PASS and merged.size == 0:
            decision = Decision.STOP_AND_COPY
        if decision is Decision.STOP_AND_COPY:
            reason = p.stop_reason(stats) if hasattr(p, "stop_reason") and not last_live else \
                "the last live pass is done (policy asked to stop)"
            return _stop_and_copy(m, merged, reason=reason)
        if decision is Decision.START_POSTCOPY:
            from vmlab.migration.engine.postcopy import run_postcopy
            m.stop_reason = f"switched to post-copy after {m.round_no} round(s) with {merged.size} pages pending"
            return run_postcopy(m, merged)
        if decision is Decision.LAST_LIVE_PASS:
            last_live = True
            m.stop_reason = p.stop_reason(stats) if hasattr(p, "stop_reason") else ""
        if m.t >= m.max_time_s:
            m.notes.append(f"pre-copy had not converged after {m.t:.1f} s ({m.round_no} rounds, "
                           f"{merged.size} pages still dirty); cancelled")
            return m.abort(f"not converging after {m.t:.1f} s: the guest re-dirties pages faster than the link "
                           "sends them; cancelled, the guest keeps running on the source",
                           status="cancelled", remaining_pages=int(merged.size), converged=False)
        # the sweep continues from its cursor (QEMU) or restarts at pfn 0 (a new Xen pass)
        if unsent.size and merged.size:
            cut = int(np.searchsorted(merged, unsent[0]))
            pending = np.concatenate([merged[cut:], merged[:cut]])
        else:
            pending = merged
        ptr = 0
        m.round_no += 1
        r_t0, r_sent, r_norm, r_zero, r_bytes, r_skip = m.t, 0, 0, 0, 0, 0
        if m.fault_due():
            return m.abort(m.fault_message(), status="cancelled" if m.fault.kind == "cancel" else "failed",
                           remaining_pages=int(pending.size))


def _stop_and_copy(m: Migration, final: np.ndarray, *, reason: str) -> MigrationReport:
    """Stage 3: pause, send what is left at full link speed, device state, resume on the target."""
    p = m.policy
    if not m.stop_reason:
        m.stop_reason = reason
    m.src.pause()
    m.phase = "stop-and-copy"
    t0 = m.t
    if m.fault_due():
        return m.abort(m.fault_message(), status="cancelled" if m.fault.kind == "cancel" else "failed",
                       remaining_pages=int(final.size))
    final_sync_s = 0.0
    if p.live and p.early_sync:
        # ram.c ram_save_complete: one more bitmap sync with the guest stopped (it finds
        # nothing new here: the decision and the stop happen at the same instant)
        m.sync_count += 1
        final_sync_s = m.sync_s
    nz, z, nbytes, secs = m.send(final, m.goodput)
    dev = int(p.device_state_kib * 1024)
    m.transferred += dev
    m.downtime_bytes += nbytes + dev
    m.downtime_s = p.stop_overhead_ms / 1000 + final_sync_s + secs + dev / m.goodput + m.rtt
    m.t += m.downtime_s
    if m.fault is not None and m.fault.at_s is not None and m.fault.due(m.t, m.phase):
        m.t = max(t0, m.fault.at_s)
        return m.abort(m.fault_message(), status="cancelled" if m.fault.kind == "cancel" else "failed",
                       remaining_pages=int(final.size))
    dur = m.t - t0
    m.add_round(RoundRecord(
        round=m.round_no + (1 if m.rounds else 0), phase="stop-and-copy", start_ms=t0 * 1000, duration_ms=dur * 1000,
        pages_sent=nz + z, normal_pages=nz, zero_pages=z, bytes_sent=nbytes + dev, pages_skipped=0, pages_dirtied=0,
        remaining_pages=0, dirty_rate_pages_s=0.0, bandwidth_mbps=(nbytes + dev) * 8 / dur / 1e6 if dur > 0 else 0.0,
        threshold_bytes=m.threshold, throttle_pct=m.throttle))
    if not p.live:
        m.downtime_s = m.t - m.setup_s
    ok = m.verify_all()
    if m.src.log is not None:
        m.src.disable_log()
    return m.report("completed", verified=ok, where="target")
