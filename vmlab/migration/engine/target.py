"""The target's own pace in the live phase, and the backlog it leaves when the guest stops.

On the target, ram.c ram_load_precopy places each record: a data page costs `target_page_us`, a zero
page `target_zero_us`, and the first data written into a 2 MiB region of its RAM faults in a huge page
(`target_region_fault_ms`; QEMU madvises guest RAM MADV_HUGEPAGE). The sender runs ahead of it by at
most what the sockets hold (`final_buffer_pages` records; then the source's qemu_fflush blocks). A
pass that ends inside a rate-limit window's burst is followed at once by the switchover check and the
stop (migration.c: no migration_rate_limit sleep between), so ram_save_complete's records queue behind
the live data the target has not placed yet: in 13 of 16 traced real runs, 2.3-65 ms of it
(datasets/measurements/qemu_target_trace, `target_backlog_ms`). All three costs are measured there.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vmlab.migration.policies import PAGE_SIZE, Policy

__all__ = ["TargetQueue", "HUGEPAGE_PAGES"]

HUGEPAGE_PAGES = 512   # a 2 MiB transparent huge page on the target, in 4 KiB pages (HPAGE_PMD_NR)
HISTORY_CHUNKS = 8     # live chunks kept for the queue: each >= 1,024 pages, more than the sockets hold


class TargetQueue:
    """The target's regions that hold data and the last live chunks it was sent (`Migration.target`)."""

    __slots__ = ("policy", "regions", "last_new_regions", "tail")

    def __init__(self, policy: Policy, n_pages: int) -> None:
        self.policy = policy
        self.regions = np.zeros(n_pages // HUGEPAGE_PAGES + 1, dtype=bool)
        self.last_new_regions = 0   # regions the last send opened (each a huge-page fault)
        self.tail: deque = deque(maxlen=HISTORY_CHUNKS)

    def note_data(self, pfns, fresh: np.ndarray) -> None:
        """`fresh`: data pages among `pfns` received for the first time. Counts the 2 MiB regions they give
        their first data (a page sent as zero and written later opens none: the guest's writes land where
        it has data, so that is rare and kept out of the hot path)."""
        self.last_new_regions = self._open(pfns, fresh)

    def _open(self, pfns, fresh: np.ndarray) -> int:
        if isinstance(pfns, slice) and not (pfns.start % HUGEPAGE_PAGES or fresh.size % HUGEPAGE_PAGES):
            has = fresh.reshape(-1, HUGEPAGE_PAGES).any(axis=1)       # whole regions: the first pass's chunks
            regions = self.regions[pfns.start // HUGEPAGE_PAGES:][:has.size]
            new = int(np.count_nonzero(has & ~regions))
            regions |= has
            return new
        data = np.flatnonzero(fresh)
        r = (data + pfns.start if isinstance(pfns, slice) else np.asarray(pfns)[data]) // HUGEPAGE_PAGES
        r = r[~self.regions[r]]
        if not r.size:
            return 0
        if r.size > 1 and not bool(np.all(r[1:] >= r[:-1])):
            r = np.sort(r)
        self.regions[r] = True
        return 1 + int(np.count_nonzero(r[1:] != r[:-1]))

    def after(self, t0: float, t1: float, nz: int, z: int, nbytes: int, busy_s: float, late: float) -> None:
        """A live chunk sent over [t0, t1], `busy_s` of it the sender's work; `late`: the share of its bytes
        sent after a rate-limit sleep inside it (`Migration.paced`), in the chunk's last moments."""
        p = self.policy
        fault = self.last_new_regions * p.target_region_fault_ms / 1000
        cost = (nz * p.target_page_us + z * p.target_zero_us) * 1e-6 + fault
        self.tail.append((t0, t1, busy_s, late, cost, fault, nbytes))
        self.last_new_regions = 0

    def backlog_s(self, t: float) -> tuple[float, float]:
        """(seconds, of which huge-page faults) the target still needs for live data if the guest stops at
        `t`: its queue replayed over the last chunks (it places a chunk once done with the earlier ones,
        never before the chunk arrives), capped by what the last `final_buffer_pages` records cost it."""
        if not self.tail:
            return 0.0, 0.0
        free = 0.0
        for t0, t1, busy, late, c, _, _ in self.tail:
            free = max(max(free, t0) + c * (1.0 - late), t1 - busy * late) + c * late
            free = max(free, t1)
        cap = self.policy.final_buffer_pages * (PAGE_SIZE + self.policy.page_header_bytes)
        got = cost = fault = 0.0
        for *_, c, f, nbytes in reversed(self.tail):
            share = min(1.0, (cap - got) / nbytes) if nbytes else 1.0
            got, cost, fault = got + nbytes * share, cost + c * share, fault + f * share
            if got >= cap:
                break
        lag = max(0.0, min(free - t, cost))
        return lag, fault * lag / cost if cost > 0 else 0.0
