"""When a few pages decided QEMU's switchover: the note in the report, and the other downtime.

migration.c migration_iteration_run compares pending with the threshold only between
ram_save_iterate calls, so the downtime can turn on a few pages (real repeats of one configuration
spread up to 107x, datasets/measurements/qemu_migration). Two cases are recognised:

- "knife edge": the check fired before the first pass ended and the pass's unsent tail went in
  the final copy, where one more ram_save_iterate (the tail fits a window's budget) would have sent
  it live; the other downtime leaves those never-sent pages out.
- "near the threshold": the check before the switchover found pending just over the threshold
  (<= NEAR_THRESHOLD), so one more round ran and left a final copy less than half as big; the other
  downtime sends the pages pending at that check.

A third case is the target's backlog: a pass that ends inside a rate-limit window's burst is followed
at once by the check and the stop (no migration_rate_limit sleep between), and the final copy queues
behind the live data the target has not placed yet (`engine/target.py`; 13 of 16 traced real runs
stopped so, with 2.3-65 ms of it). A check that falls after a sleep finds the target idle; that
downtime is given too.

A fourth case is the target's host: data pages the target never had, past what the sockets hold,
wait for it to fault in their 2 MiB huge pages (`QemuPolicy.final_new_page_us`). That costs 4.4 ms
a huge page on the host the ground truth was measured on (a VM whose own host must back the
memory) and 0.18 ms where the memory is resident -- both measured, run to run, with QEMU's trace
events (datasets/measurements/qemu_target_trace) -- so the resident host's downtime is given too.

`other_downtime` records the other outcomes in `Migration.downtime_alts`, so the report gives a
range (`MigrationReport.downtime_range_ms`) besides the simulated downtime.
"""

from __future__ import annotations

from vmlab.migration.engine.state import Migration
from vmlab.migration.policies import PAGE_SIZE, Decision, SyncStats

__all__ = ["near_threshold", "other_downtime", "NEAR_THRESHOLD", "KNIFE_EDGE_S", "HOST_MEMORY_S"]

NEAR_THRESHOLD = 0.05   # a check within 5% of the threshold: a few pages of the guest's writes decide it
KNIFE_EDGE_S = 0.005    # an unfinished first pass worth noting: its tail adds >= 5 ms to the downtime
HOST_MEMORY_S = 0.001   # a wait for the target's huge-page faults worth a range: >= 1 ms
_TRACE = "datasets/measurements/qemu_target_trace"
_REAL_NEAR = ("real QEMU lands on either side: mix02 stopped with 1,631 pages against ~1,638, "
              "datasets/measurements/qemu_migration")


def near_threshold(m: Migration, stats: SyncStats, decision: Decision) -> None:
    """At each check: remember one just over the threshold; at the switchover, keep it (`m.near_alt`)
    if the extra round it caused left a final copy less than half as big."""
    thr = stats.threshold_bytes / PAGE_SIZE
    if thr <= 0:
        return
    if decision is Decision.CONTINUE:
        m.near_miss = (stats.pending_pages, thr) if 0 <= stats.pending_pages / thr - 1 <= NEAR_THRESHOLD else None
    elif decision is Decision.STOP_AND_COPY and m.near_miss is not None and m.near_miss[0] > 2 * stats.pending_pages:
        pend, t = m.near_miss
        m.near_alt = pend
        m.notes.append(f"near the threshold: the check before the switchover found {pend:,} pages pending, "
                       f"{pend / t - 1:.1%} over the threshold of {t:,.0f}, so QEMU ran one more round and stopped "
                       f"with {stats.pending_pages:,}; a few pages fewer and it stops there, with about {pend:,} in "
                       f"the final copy ({_REAL_NEAR})")


def other_downtime(m: Migration, copy_s: float) -> None:
    """After the final copy (`copy_s` of `m.downtime_s`): the downtime of the other outcome, if a few
    pages decided this one (and the knife-edge note)."""
    p = m.policy
    page_us = p.final_page_cpu_us if p.final_page_cpu_us is not None else p.normal_page_cpu_us
    unsent_s = m.last_first_touch * page_us * 1e-6 + m.first_touch_extra_s(m.last_first_touch, page_us)
    # a knife edge only if one more ram_save_iterate could have sent that tail: it fits a window's budget
    tail_fits = m.last_first_touch * (PAGE_SIZE + p.page_header_bytes) <= m.live_rate * m.policy_bandwidth_period_s
    if unsent_s >= KNIFE_EDGE_S and tail_fits:
        m.downtime_alts.append(m.downtime_s - unsent_s)
        m.notes.append(_knife_edge_note(m.last_first_touch, unsent_s))
    elif m.near_alt:
        # pages pending at that check were sent before (re-dirtied): the plain stop-and-copy price
        per_page_s = max((PAGE_SIZE + p.page_header_bytes) / m.goodput, page_us * 1e-6)
        m.downtime_alts.append(m.downtime_s - copy_s + m.near_alt * per_page_s)
    if m.backlog_wait_s >= HOST_MEMORY_S:
        m.downtime_alts.append(m.downtime_s - m.backlog_wait_s)
        m.notes.append(f"target backlog: the guest stopped while the target was still placing the last live burst "
                       f"(~{m.backlog_wait_s * 1000:.0f} ms of work, {m.backlog_fault_s * 1000:.0f} ms of it 2 MiB "
                       f"huge-page faults that a target with resident memory does not take), so the final copy "
                       f"queued behind it; if the check falls after a rate-limit sleep, the target is idle and the "
                       f"downtime is {(m.downtime_s - m.backlog_wait_s) * 1000:.1f} ms ({_TRACE})")
    wait_s = m.first_touch_extra_s(m.last_first_touch, page_us)
    if wait_s + m.backlog_fault_s >= HOST_MEMORY_S:   # a resident target: no huge-page fault to wait for
        m.downtime_alts.append(m.downtime_s - wait_s - m.backlog_fault_s)
    if wait_s >= HOST_MEMORY_S:
        m.notes.append(f"target host: {m.last_first_touch:,} data pages of the final copy were new to the target, "
                       f"and past the {p.final_buffer_pages:,} the sockets hold the source waits while it faults in "
                       f"their 2 MiB huge pages (~{wait_s * 1000:.0f} ms at {p.final_new_page_us:g} us a page, as on "
                       f"the host the runs were measured on); a target whose memory is resident keeps up: "
                       f"{(m.downtime_s - wait_s) * 1000:.1f} ms ({_TRACE})")


def _knife_edge_note(pages: int, seconds: float) -> str:
    return (f"knife edge: the switchover came before the first pass ended, so {pages:,} data pages never sent "
            f"went in the final copy (~{seconds * 1000:.0f} ms of the downtime); a real QEMU whose check "
            "falls one ram_save_iterate later finishes the pass live and stops in a few ms (real repeats of one "
            "idle guest: 1, 5 and 107 ms, datasets/measurements/qemu_migration)")
