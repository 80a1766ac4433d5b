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

from vmlab.migration.engine.iteration import Iteration
from vmlab.migration.engine.state import Migration
from vmlab.migration.engine.switchover import near_threshold, other_downtime
from vmlab.migration.faults import Fault
from vmlab.migration.policies import Decision, PAGE_SIZE, Policy, SyncStats
from vmlab.migration.report import MigrationReport, RoundRecord
from vmlab.migration.dirtying import Workload
from vmlab.migration.xen3_order import ColumnChunk

__all__ = ["run_migration"]

CHUNKS_PER_PASS = 16     # granularity of the vectorized sweep (Xen peeks per 1024-page batch)
MIN_CHUNK_PAGES = 1024   # Xen's MAX_BATCH_SIZE
LOOKAHEAD_PAGES = 65536  # pages read ahead to find where a ram_save_iterate ends (bounds the work per chunk)
# A full permuted pass over a standalone image reads its chunks through strided views
# (xen3_order.ColumnChunk) instead of a 16 M-entry pfn array and gathers; False forces the plain
# path (tests compare the two).
COLUMN_VIEWS = True


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
        return m.abort_fault()
    if not p.live:
        return _stop_and_copy(m, m.pfns, reason="non-live migration: the guest is paused for the whole copy")
    if p.postcopy and not p.early_sync:  # pure post-copy: no pre-copy pass at all
        from vmlab.migration.engine.postcopy import run_postcopy
        return run_postcopy(m, m.pfns)
    return _precopy(m)


class _Round:
    """What one round has done so far; `record()` turns it into its RoundRecord at the sync."""

    __slots__ = ("t0", "sent", "normal", "zero", "bytes", "skipped")

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.sent = self.normal = self.zero = self.bytes = self.skipped = 0

    def add(self, nz: int, z: int, nbytes: int) -> None:
        self.sent += nz + z
        self.normal += nz
        self.zero += z
        self.bytes += nbytes

    def record(self, m: Migration, *, newly: int, remaining: int) -> RoundRecord:
        dur = m.t - self.t0
        return RoundRecord(
            round=m.round_no, phase="precopy", start_ms=self.t0 * 1000, duration_ms=dur * 1000, pages_sent=self.sent,
            normal_pages=self.normal, zero_pages=self.zero, bytes_sent=self.bytes, pages_skipped=self.skipped,
            pages_dirtied=newly, remaining_pages=remaining, dirty_rate_pages_s=newly / dur if dur > 0 else 0.0,
            bandwidth_mbps=self.bytes * 8 / dur / 1e6 if dur > 0 else 0.0, threshold_bytes=m.threshold,
            throttle_pct=m.throttle)


class _Sweep:
    """The pre-copy sweep: the pending pfns in send order, the cursor, and the round under way."""

    __slots__ = ("pending", "ptr", "last_live", "total_sent", "round", "chunk_pages", "iteration", "cut",
                 "columns")

    def __init__(self, m: Migration) -> None:
        p = m.policy
        self.pending = m.pfns  # never modified in place: slices and concatenations only
        self.ptr = 0
        self.last_live = False
        self.total_sent = 0
        self.round = _Round(m.t)
        self.chunk_pages = max(MIN_CHUNK_PAGES, -(-self.pending.size // CHUNKS_PER_PASS))
        self.columns = _column_views(m, self.chunk_pages)   # then `pending` stands for the permuted pass
        self.pending = m.pfns if self.columns else _pass_order(m, m.pfns, self.chunk_pages)
        self.iteration = Iteration(m) if p.early_sync else None
        self.cut = False   # the chunk under way ends the current ram_save_iterate

    def next_chunk(self, m: Migration) -> tuple[int, bool]:
        """(pages to send next, whether QEMU's early sync follows them).

        QEMU checks pending against the threshold only between ram_save_iterate calls
        (`Iteration`): far from the threshold chunks run freely; near it, a chunk ends where the
        iteration under way ends, and the check then runs on what is left of the pass."""
        left = self.pending.size - self.ptr
        k = min(left, self.chunk_pages)
        self.cut = False
        it = self.iteration
        if it is None or m.threshold <= 0:
            return k, False
        below = max(0, math.ceil(m.threshold / PAGE_SIZE) - 1)  # pages that count as "< threshold"
        if it.at_end:
            if left <= below:
                return 0, True
            it.next()
        if left - k <= below:   # the check could fire at an iteration end inside this chunk
            self.materialize(m)
            k = min(k, LOOKAHEAD_PAGES)   # an iteration ends within this many pages at QEMU's costs
            j = self._iteration_end(m, k)
            if j <= k:
                k, self.cut = j, True
        return k, False

    def _iteration_end(self, m: Migration, k: int) -> int:
        """`Iteration.pages_to_end` over the next `k` pending pages, read in growing windows (an
        iteration at a low rate limit ends within a few hundred pages: no need to read all `k`)."""
        w = min(k, 1024)
        while True:
            chunk = self.pending[self.ptr:self.ptr + w]
            j = self.iteration.pages_to_end(m, chunk, m.src.read(chunk))
            if j <= w or w >= k:
                return j if j <= w else k + 1
            w = min(k, w * 8)

    def materialize(self, m: Migration) -> None:
        """Leave the column views: the rest of the pass as a pfn array in the same order."""
        if self.columns:
            self.pending = _pass_order(m, m.pfns, self.chunk_pages)
            self.columns = False


def _precopy(m: Migration) -> MigrationReport:
    """Stage 2: send chunks while the guest runs; at each sync the policy decides what comes next."""
    m.sync_count = 1          # QEMU counts the initial sync (all pages dirty) as the first
    m.phase = "precopy"
    m.round_no = 1
    sw = _Sweep(m)
    m._rate_t0, m._rate_bytes0 = m.t, m.transferred
    while True:
        k, early = sw.next_chunk(m)
        if k > 0:
            _send_chunk(m, sw, k)
            if m.fault_due():
                return m.abort_fault(sw.pending.size - sw.ptr)
        if sw.ptr < sw.pending.size and not early:
            continue
        unsent = sw.pending[sw.ptr:]
        merged, stats = _sync(m, sw, unsent)
        done = _decide(m, sw, merged, stats)
        if done is not None:
            return done
        # the sweep continues from its cursor (QEMU) or restarts at pfn 0 (a new Xen pass)
        if unsent.size and merged.size:
            cut = int(np.searchsorted(merged, unsent[0]))
            sw.pending = np.concatenate([merged[cut:], merged[:cut]])
        else:
            sw.pending = _pass_order(m, merged, sw.chunk_pages)
        sw.ptr, sw.columns = 0, False
        if sw.iteration is not None:
            sw.iteration.restart()
        m.round_no += 1
        sw.round = _Round(m.t)
        if m.fault_due():
            return m.abort_fault(int(sw.pending.size))


def _pass_order(m: Migration, pfns: np.ndarray, chunk: int) -> np.ndarray:
    """A new pass's send order: pfn order, or Xen 3's permute() order (xc_domain_save), chunk-sorted."""
    if getattr(m.policy, "permuted_scan", False):
        from vmlab.migration.xen3_order import chunked_send_order
        return chunked_send_order(pfns, m.n, chunk)
    return pfns


def _column_views(m: Migration, chunk: int) -> bool:
    """Whether the first pass can go chunk by chunk as ColumnChunks (see COLUMN_VIEWS)."""
    if not (COLUMN_VIEWS and getattr(m.policy, "permuted_scan", False) and m.pfns_are_range):
        return False
    from vmlab.migration.image import MemoryImage
    from vmlab.migration.xen3_order import column_chunks
    plain_read = type(m.src).read is MemoryImage.read   # a subclass that reads its own way gets pfn arrays
    return isinstance(m.src, MemoryImage) and plain_read and column_chunks(m.pfns.size, m.n, chunk)


def _send_chunk(m: Migration, sw: _Sweep, k: int) -> None:
    """Send the next `k` pending pages (Xen 3 skips those re-dirtied this round) while the guest runs."""
    p, ptr = m.policy, sw.ptr
    if sw.columns and (ptr % sw.chunk_pages or k != sw.chunk_pages):
        sw.materialize(m)
    if sw.columns:   # a whole column chunk of the permuted first pass
        chunk = ColumnChunk(ptr // sw.chunk_pages, m.n)
    elif sw.pending is m.pfns and m.pfns_are_range:  # first pass over a fully populated guest
        chunk = slice(ptr, ptr + k)
    else:
        chunk = sw.pending[ptr:ptr + k]
    sw.ptr += k
    if p.skip_redirtied:
        again = m.src.log.peek(chunk)
        n_again = int(np.count_nonzero(again))
        if n_again:
            if isinstance(chunk, ColumnChunk):
                chunk = chunk.without(again)
            else:
                chunk = (sw.pending[chunk] if isinstance(chunk, slice) else chunk)[~again]
            sw.round.skipped += n_again
    nz, z, nbytes, secs = m.send(chunk, m.live_rate)
    if m.windowed:
        secs = m.paced(nbytes, m.last_busy_s)
    m.precopy_bytes += nbytes
    sw.round.add(nz, z, nbytes)
    sw.total_sent += nz + z
    if m.target is not None:   # the target's queue (engine/target.py)
        late = min(1.0, m.window_used() / nbytes) if m.windowed and nbytes and secs > m.last_busy_s else 1.0
        m.target.after(m.t, m.t + secs, nz, z, nbytes, m.last_busy_s, late)
    m.t += secs
    m.guest_runs(secs)
    if p.early_sync:
        m.measure(nbytes, secs)
        sw.iteration.advance(nbytes, m.last_busy_s, exact_end=sw.cut)


def _sync(m: Migration, sw: _Sweep, unsent: np.ndarray) -> tuple[np.ndarray, SyncStats]:
    """A bitmap sync: read and clear the log, merge with the unsent rest, record the round."""
    m.t += m.sync_s
    m.guest_runs(m.sync_s)
    m.flush_guest()
    merged, newly = m.src.log.clean_merge(unsent)
    # ram.c migration_bitmap_sync: the snapshot (ramblock_sync_dirty_bitmap), then under TCG
    # memory_global_after_dirty_log_sync -> tcg_log_global_after_sync's run_on_cpu, which waits out a
    # throttle sleep; what the guest writes meanwhile goes to the next sync
    wait = m.vcpu_wait_s()
    m.t += wait
    m.guest_runs(wait)
    m.sync_count += 1
    m._rate_dirty += newly
    if m.t - m._rate_t0 > 1.0:   # ram.c migration_bitmap_sync: rates and throttle once a second
        _rates_and_throttle(m)
    stats = SyncStats(iteration=m.round_no, pass_complete=sw.ptr >= sw.pending.size, sent_this_round=sw.round.sent,
                      skipped_this_round=sw.round.skipped, new_dirty=newly, pending_pages=int(merged.size),
                      total_sent_pages=sw.total_sent, n_pages=int(m.pfns.size), threshold_bytes=m.threshold,
                      elapsed_s=m.t)
    m.add_round(sw.round.record(m, newly=newly, remaining=int(merged.size)))
    return merged, stats


def _rates_and_throttle(m: Migration) -> None:
    """The dirty-page rate, and auto-converge: two syncs dirtying more than the trigger share raise the throttle."""
    p = m.policy
    xfer = m.transferred - m._rate_bytes0
    m.dirty_pages_rate = int(m._rate_dirty / (m.t - m._rate_t0))
    if p.auto_converge and m._rate_dirty * PAGE_SIZE > xfer * p.throttle_trigger_threshold / 100:
        m.high_cnt += 1
        if m.high_cnt >= 2:
            m.high_cnt = 0
            m.set_throttle(p.cpu_throttle_initial if m.throttle == 0
                           else min(m.throttle + p.cpu_throttle_increment, p.max_cpu_throttle))
            m.max_throttle = max(m.max_throttle, m.throttle)
    m._rate_t0, m._rate_bytes0, m._rate_dirty = m.t, m.transferred, 0


def _decide(m: Migration, sw: _Sweep, merged: np.ndarray, stats: SyncStats) -> MigrationReport | None:
    """Ask the policy; returns the finished report, or None to run another round."""
    p = m.policy
    decision = Decision.STOP_AND_COPY if sw.last_live else p.decide(stats)
    if decision is Decision.LAST_LIVE_PASS and merged.size == 0:
        decision = Decision.STOP_AND_COPY
    if p.early_sync and not sw.last_live:
        near_threshold(m, stats, decision)
    if decision is Decision.STOP_AND_COPY:
        reason = p.stop_reason(stats) if hasattr(p, "stop_reason") and not sw.last_live else \
            "the last live pass is done (policy asked to stop)"
        return _stop_and_copy(m, merged, reason=reason)
    if decision is Decision.START_POSTCOPY:
        from vmlab.migration.engine.postcopy import run_postcopy
        m.stop_reason = f"switched to post-copy after {m.round_no} round(s) with {merged.size} pages pending"
        return run_postcopy(m, merged)
    if decision is Decision.LAST_LIVE_PASS:
        sw.last_live = True
        m.stop_reason = p.stop_reason(stats) if hasattr(p, "stop_reason") else ""
    if m.t >= m.max_time_s:
        m.notes.append(f"pre-copy had not converged after {m.t:.1f} s ({m.round_no} rounds, "
                       f"{merged.size} pages still dirty); cancelled")
        return m.abort(f"not converging after {m.t:.1f} s: the guest re-dirties pages faster than the link "
                       "sends them; cancelled, the guest keeps running on the source",
                       status="cancelled", remaining_pages=int(merged.size), converged=False)
    return None


def _stop_and_copy(m: Migration, final: np.ndarray, *, reason: str) -> MigrationReport:
    """Stage 3: pause, send what is left at full link speed, device state, resume on the target."""
    p = m.policy
    if not m.stop_reason:
        m.stop_reason = reason
    m.flush_guest()
    m.src.pause()
    m.phase = "stop-and-copy"
    t0 = m.t
    if m.fault_due():
        return m.abort_fault(int(final.size))
    final_sync_s = 0.0
    if p.live and p.early_sync:
        # ram.c ram_save_complete: one more bitmap sync with the guest stopped (it finds
        # nothing new here: the decision and the stop happen at the same instant)
        m.sync_count += 1
        final_sync_s = m.sync_s if p.final_sync_ms is None else p.final_sync_ms / 1000
    if m.target is not None:   # live data the target has not placed yet
        m.backlog_wait_s, m.backlog_fault_s = m.target.backlog_s(m.t)
    nz, z, nbytes, secs = m.send(final, m.goodput, final=True)  # migration_completion lifts the limit
    secs += m.backlog_wait_s
    dev = int(p.device_state_kib * 1024)
    m.device_bytes += dev
    m.downtime_bytes += nbytes
    m.downtime_s = p.stop_overhead_ms / 1000 + final_sync_s + secs + dev / m.goodput + m.rtt
    if p.early_sync:
        other_downtime(m, secs)
    m.t += m.downtime_s
    if m.fault is not None and m.fault.at_s is not None and m.fault.due(m.t, m.phase):
        m.t = max(t0, m.fault.at_s)
        return m.abort_fault(int(final.size))
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
