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
    m.flush_guest()
    m.src.pause()
    m.phase = "stop-and-copy"
    if m.fault_due():
        return m.abort_fault(int(needed_pfns.size))
    _switch(m, needed_pfns)
    # --- the guest now runs on the target --------------------------------------------------
    m.phase = "postcopy"
    pc = _Pull(m, needed_pfns)
    while pc.left > 0:
        pc.step(m)
        if m.fault_due():
            m.dst.discard()
            m.add_round(pc.record(m))
            return m.report("failed", remaining_pages=pc.left, error=m.fault_message(), where="lost", guest_lost=True)
    m.add_round(pc.record(m))
    ok = True
    if m.verify:
        _verify(m, pc.written)
    m.notes.append(f"post-copy: {m.faults} demand faults, {pc.pages} pages pulled after the switch")
    return m.report("completed", verified=ok, where="target")


def _switch(m, needed_pfns: np.ndarray) -> None:
    """The source is paused; vCPU and device state cross; the guest resumes on the target."""
    p, src = m.policy, m.src
    if src.log is not None:
        src.disable_log()
    if p.early_sync:  # ram_postcopy_send_discard_bitmap: a last sync with the source paused
        m.sync_count += 1
    t0 = m.t
    dev = int(p.device_state_kib * 1024)
    m.device_bytes += dev
    m.downtime_s = p.stop_overhead_ms / 1000 + dev / m.goodput + m.rtt
    m.t += m.downtime_s
    m.add_round(RoundRecord(
        round=m.round_no + (1 if m.rounds else 0), phase="stop-and-copy", start_ms=t0 * 1000,
        duration_ms=m.downtime_s * 1000, pages_sent=0, normal_pages=0, zero_pages=0, bytes_sent=dev, pages_skipped=0,
        pages_dirtied=0, remaining_pages=int(needed_pfns.size), dirty_rate_pages_s=0.0,
        bandwidth_mbps=dev * 8 / m.downtime_s / 1e6, threshold_bytes=m.threshold, throttle_pct=0))


class _Pull:
    """Post-copy in progress: which pages the target still needs, the push cursor, the round's tally."""

    def __init__(self, m, needed_pfns: np.ndarray) -> None:
        p = m.policy
        self.needed = np.zeros(m.n, dtype=np.bool_)
        self.needed[needed_pfns] = True
        self.left = int(needed_pfns.size)
        self.written = np.zeros(m.n, dtype=np.bool_)
        self.cursor = 0
        self.page_wait_s = m.rtt + (PAGE_SIZE + p.page_header_bytes) / m.goodput  # one demand fault
        total_push_s = self.left * (PAGE_SIZE + p.page_header_bytes) / m.goodput
        self.dt = max(0.005, total_push_s / STEPS_PER_PHASE)
        self.cpu = 1.0
        self.stamp = 1 << 61
        self.t0 = m.t
        self.pages = self.normal = self.zero = self.bytes = self.faults = 0

    def step(self, m) -> None:
        """One step: the guest runs `dt`, its misses are pulled, the rest of the link pushes."""
        touched = m.workload.writes(m.rng, self.dt, self.cpu)
        fault_pages = np.unique(touched[self.needed[touched]]) if touched.size else touched
        batch = self._batch(m, fault_pages)
        nz, z, nbytes, secs = m.send(batch, m.goodput)
        self.left -= int(batch.size)
        m.postcopy_bytes += nbytes
        m.faults += int(fault_pages.size)
        self.pages += nz + z
        self.normal += nz
        self.zero += z
        self.bytes += nbytes
        self.faults += int(fault_pages.size)
        step_s = max(self.dt, secs)
        # every fault stalls a vCPU for a round trip plus the page: the guest gets less CPU next step
        stall = fault_pages.size * self.page_wait_s / max(1, m.vcpus)
        self.cpu = max(0.05, 1.0 - stall / step_s)
        if touched.size:  # the guest's stores land on the target, on pages that are now present
            self.stamp += 1
            m.dst.write(touched, self.stamp)
            self.written[touched] = True
        m.t += step_s

    def _batch(self, m, fault_pages: np.ndarray) -> np.ndarray:
        """The faulted pages, their pre-paging neighbours, then an active push from the cursor in pfn order."""
        p, needed = m.policy, self.needed
        send_parts = [fault_pages]
        if fault_pages.size:
            needed[fault_pages] = False
            if p.prepaging_pages > 0:  # push the neighbours of each fault next (spatial locality)
                near = (fault_pages[:, None] + np.arange(1, p.prepaging_pages + 1)[None, :]).ravel()
                near = near[near < m.n]
                near = np.unique(near[needed[near]])
                needed[near] = False
                send_parts.append(near)
        budget_pages = int(self.dt * m.goodput / (PAGE_SIZE + p.page_header_bytes))
        budget = max(0, budget_pages - sum(int(x.size) for x in send_parts))
        if budget > 0:
            cursor = self.cursor
            rest = np.flatnonzero(needed[cursor:])[:budget] + cursor
            if rest.size < budget:
                rest = np.concatenate([rest, np.flatnonzero(needed[:cursor])[:budget - rest.size]])
            if rest.size:
                needed[rest] = False
                self.cursor = int(rest[-1]) + 1 if int(rest[-1]) + 1 < m.n else 0
                send_parts.append(rest)
        return np.concatenate(send_parts) if len(send_parts) > 1 else send_parts[0]

    def record(self, m) -> RoundRecord:
        dur = m.t - self.t0
        return RoundRecord(round=len(m.rounds) + 1, phase="postcopy", start_ms=self.t0 * 1000,
                           duration_ms=dur * 1000, pages_sent=self.pages, normal_pages=self.normal,
                           zero_pages=self.zero, bytes_sent=self.bytes, pages_skipped=0, pages_dirtied=0,
                           remaining_pages=self.left, dirty_rate_pages_s=0.0,
                           bandwidth_mbps=self.bytes * 8 / dur / 1e6 if dur > 0 else 0.0,
                           threshold_bytes=m.threshold, throttle_pct=0, faults=self.faults)


def _verify(m, written: np.ndarray) -> None:
    """Every page arrived, and each one the guest did not write equals the source's copy at pause."""
    keep = m.pfns[~written[m.pfns]]
    received = getattr(m.dst, "received", None)
    if received is not None and not bool(np.all(received[m.pfns])):
        raise AssertionError("post-copy finished with pages that never arrived")
    if not bool(np.all(m.dst.read(keep) == m.src.read(keep))):
        raise AssertionError("post-copy: a page the guest did not write differs from the source's copy at pause")
