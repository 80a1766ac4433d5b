"""Post-copy: move the CPU state first, then pull memory on demand while pushing the rest.

Hines & Gopalan (VEE 2009): the source pauses, sends the vCPU and device state,
and the guest resumes on the target at once. A page it touches that has not
arrived yet is a network fault: the target asks for it and the vCPU waits a
round trip plus the page's wire time. Meanwhile the source pushes every other
page in the background ("active push"), starting next to the last fault
("pre-paging", which exploits spatial locality). Every page crosses the wire
exactly once. QEMU's pre-copy-then-post-copy runs pre-copy passes first and
only pulls the pages still dirty at the switch.

If the link or the target fails now, neither host has the whole guest: the
source's copy is stale and the target's is incomplete; the guest is lost.
"""

from __future__ import annotations

import numpy as np

from vmlab.migration.policies import PAGE_SIZE
from vmlab.migration.report import MigrationReport, RoundRecord

__all__ = ["run_postcopy"]

STEPS_PER_PHASE = 64   # granularity of the vectorized post-copy loop


def run_postcopy(m, needed_pfns: np.ndarray) -> MigrationReport:
    """Switch the guest to the target now; transfer `needed_pfns` by demand and push."""
    p, src, dst = m.policy, m.src, m.dst
    src.pause()
    m.phase = "stop-and-copy"
    if m.fault_due():
        return m.abort(m.fault_message(), status="cancelled" if m.fault.kind == "cancel" else "failed",
                       remaining_pages=int(needed_pfns.size))
    if src.log is not None:
        src.disable_log()
    if p.early_sync:  # ram_postcopy_send_discard_bitmap: a last sync with the source paused
        m.sync_count += 1
    t0 = m.t
    dev = int(p.device_state_kib * 1024)
    m.transferred += dev
    m.downtime_bytes += dev
    m.downtime_s = p.stop_overhead_ms / 1000 + dev / m.goodput + m.rtt
    m.t += m.downtime_s
    m.add_round(RoundRecord(
        round=m.round_no + (1 if m.rounds else 0), phase="stop-and-copy", start_ms=t0 * 1000,
        duration_ms=m.downtime_s * 1000, pages_sent=0, normal_pages=0, zero_pages=0, bytes_sent=dev, pages_skipped=0,
        pages_dirtied=0, remaining_pages=int(needed_pfns.size), dirty_rate_pages_s=0.0,
        bandwidth_mbps=dev * 8 / m.downtime_s / 1e6, threshold_bytes=m.threshold, throttle_pct=0))

    # --- the guest now runs on the target --------------------------------------------------
    m.phase = "postcopy"
    needed = np.zeros(m.n, dtype=np.bool_)
    needed[needed_pfns] = True
    left = int(needed_pfns.size)
    written = np.zeros(m.n, dtype=np.bool_)
    cursor = 0
    page_wait_s = m.rtt + (PAGE_SIZE + p.page_header_bytes) / m.goodput  # one demand fault
    total_push_s = left * (PAGE_SIZE + p.page_header_bytes) / m.goodput
    dt = max(0.005, total_push_s / STEPS_PER_PHASE)
    cpu = 1.0
    stamp = 1 << 61
    r_t0 = m.t
    r_pages = r_norm = r_zero = r_bytes = r_faults = 0
    step = 0
    while left > 0:
        step += 1
        touched = m.workload.writes(m.rng, dt, cpu)
        fault_pages = np.unique(touched[needed[touched]]) if touched.size else touched
        send_parts = [fault_pages]
        if fault_pages.size:
            needed[fault_pages] = False
            if p.prepaging_pages > 0:  # push the neighbours of each fault next (spatial locality)
                near = (fault_pages[:, None] + np.arange(1, p.prepaging_pages + 1)[None, :]).ravel()
                near = near[near < m.n]
                near = np.unique(near[needed[near]])
                needed[near] = False
                send_parts.append(near)
        budget_pages = int(dt * m.goodput / (PAGE_SIZE + p.page_header_bytes))
        budget = max(0, budget_pages - sum(int(x.size) for x in send_parts))
        if budget > 0:  # active push from the cursor, in pfn order
            rest = np.flatnonzero(needed[cursor:])[:budget] + cursor
            if rest.size < budget:
                rest = np.concatenate([rest, np.flatnonzero(needed[:cursor])[:budget - rest.size]])
            if rest.size:
                needed[rest] = False
                cursor = int(rest[-1]) + 1 if int(rest[-1]) + 1 < m.n else 0
                send_parts.append(rest)
        batch = np.concatenate(send_parts) if len(send_parts) > 1 else send_parts[0]
        nz, z, nbytes, secs = m.send(batch, m.goodput)
        left -= int(batch.size)
        m.postcopy_bytes += nbytes
        m.faults += int(fault_pages.size)
        r_pages += nz + z
        r_norm += nz
        r_zero += z
        r_bytes += nbytes
        r_faults += int(fault_pages.size)
        step_s = max(dt, secs)
        # every fault stalls a vCPU for a round trip plus the page: the guest gets less CPU next step
        stall = fault_pages.size * page_wait_s / max(1, m.vcpus)
        cpu = max(0.05, 1.0 - stall / step_s)
        if touched.size:  # the guest's stores land on the target, on pages that are now present
            stamp += 1
            dst.write(touched, stamp)
            written[touched] = True
        m.t += step_s
        if m.fault_due():
            m.dst.discard()
            m.add_round(_pc_round(m, r_t0, r_pages, r_norm, r_zero, r_bytes, r_faults, left))
            return m.report("failed", remaining_pages=left, error=m.fault_message(), where="lost", guest_lost=True)
    m.add_round(_pc_round(m, r_t0, r_pages, r_norm, r_zero, r_bytes, r_faults, 0))
    ok = True
    if m.verify:
        keep = m.pfns[~written[m.pfns]]
        received = getattr(dst, "received", None)
        if received is not None and not bool(np.all(received[m.pfns])):
            raise AssertionError("post-copy finished with pages that never arrived")
        if not bool(np.all(dst.read(keep) == src.read(keep))):
            raise AssertionError("post-copy: a page the guest did not write differs from the source's copy at pause")
    m.notes.append(f"post-copy: {m.faults} demand faults, {r_pages} pages pulled after the switch")
    return m.report("completed", verified=ok, where="target")


def _pc_round(m, t0, pages, norm, zero, nbytes, faults, left) -> RoundRecord:
    dur = m.t - t0
    return RoundRecord(round=len(m.rounds) + 1, phase="postcopy", start_ms=t0 * 1000, duration_ms=dur * 1000,
                       pages_sent=pages, normal_pages=norm, zero_pages=zero, bytes_sent=nbytes, pages_skipped=0,
                       pages_dirtied=0, remaining_pages=left, dirty_rate_pages_s=0.0,
                       bandwidth_mbps=nbytes * 8 / dur / 1e6 if dur > 0 else 0.0, threshold_bytes=m.threshold,
                       throttle_pct=0, faults=faults)
