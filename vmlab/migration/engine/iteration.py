"""Where QEMU's switchover check can run: between ram_save_iterate calls.

migration.c migration_thread loops over migration_iteration_run -- the check: pending (dirty pages
x 4 KiB) against threshold (bandwidth x downtime-limit), with a bitmap sync first when pending is
below it, then qemu_savevm_state_iterate -- and migration_rate_limit, which sleeps to the end of the
BUFFER_DELAY (100 ms) window once the window's budget (max-bandwidth / XFER_LIMIT_RATIO) is spent.
ram.c ram_save_iterate sends pages until qemu_file_rate_limit says the budget is spent, the pass has
no dirty page left, or MAX_WAIT (50 ms) has passed. So the check does not run the moment pending
drops below the threshold: the iteration under way first ends, and it counts bytes, in which a zero
page is a 9-byte record -- an idle guest whose rest of the first pass fits in the window's budget
finishes the pass inside the iteration and switches over with only the pages dirtied since.

`Iteration` keeps the current ram_save_iterate's bytes and busy time; `pages_to_end` finds the
page after which it ends, so the engine can stop exactly there when the check might fire.
"""

from __future__ import annotations

import math

import numpy as np

from vmlab.migration.policies import PAGE_SIZE

__all__ = ["Iteration"]


class Iteration:
    """One ram_save_iterate call: bytes against the window budget, busy time against MAX_WAIT."""

    __slots__ = ("budget", "max_s", "bytes", "busy_s", "at_end")

    def __init__(self, m) -> None:
        limited = m.live_rate < m.goodput
        self.budget = m.live_rate * m.policy_bandwidth_period_s if limited else math.inf
        self.max_s = max(1e-6, m.policy.min_iteration_ms / 1000)
        self.bytes = 0.0
        self.busy_s = 0.0
        self.at_end = False

    def restart(self) -> None:
        """A new pass (after a sync): a fresh iteration."""
        self.bytes, self.busy_s, self.at_end = 0.0, 0.0, False

    def next(self) -> None:
        """The check ran and did not switch over: the next iteration. It keeps the window's unspent
        budget when the last one ended on MAX_WAIT, and starts a new window when it ended on the budget."""
        if self.bytes >= self.budget:
            self.bytes = 0.0
        self.busy_s, self.at_end = 0.0, False

    def advance(self, nbytes: int, busy_s: float, *, exact_end: bool = False) -> None:
        """Account a sent chunk; `exact_end`: it was cut by `pages_to_end`, so the iteration ends here."""
        self.bytes += nbytes
        self.busy_s += busy_s
        if exact_end:
            self.at_end = True
            return
        # a chunk that crossed boundaries far from the threshold: keep the phase inside the current one
        if self.budget < math.inf and self.bytes >= self.budget:
            self.bytes %= self.budget
        if self.busy_s >= self.max_s:
            self.busy_s %= self.max_s

    def pages_to_end(self, m, pfns, stamps: np.ndarray) -> int:
        """How many of these pages (in send order) the iteration sends before it ends; len+1 if it
        does not end among them. The page that crosses the budget is sent (qemu_file_rate_limit is
        asked before a page, not during it)."""
        p = m.policy
        # two kinds of page, so both running sums follow from one count of zero pages: the first i+1
        # pages hold zc[i] zero pages and cost (i+1) x a data page's less zc[i] x the difference
        nb, zb = PAGE_SIZE + p.page_header_bytes, p.zero_page_bytes
        zc = np.cumsum(stamps == 0, dtype=np.int64)
        idx = np.arange(1, zc.size + 1, dtype=np.int64)
        ends = []
        if self.budget < math.inf:
            used = m.window_used() if m.windowed else self.bytes
            ends.append(int(np.searchsorted(idx * nb - zc * (nb - zb), self.budget - used, side="left")) + 1)
        # a page's busy time (wire or CPU, the longer), in whole ns so that the sums are exact
        bn = round(max(nb / m.goodput, p.normal_page_cpu_us * 1e-6) * 1e9)
        bz = round(max(zb / m.goodput, p.zero_page_scan_us * 1e-6) * 1e9)
        left_ns = (self.max_s - self.busy_s) * 1e9
        ends.append(int(np.searchsorted(idx * bn - zc * (bn - bz), left_ns - 1e-6, side="left")) + 1)
        return min(ends)
