"""A set-associative TLB with LRU replacement, global pages and hit/miss counters.

Entries are keyed by virtual page number (va >> 12) and hold (frame, flags, global).
A CR3 load (`flush(keep_global=True)`) drops every non-global entry, as on x86
without PCIDs; `invlpg(va)` drops one page; `flush(keep_global=False)` drops all.
The default shape (64 entries, 4 ways) is the L1 DTLB of many x86 cores
(e.g. Intel Skylake: 64 entries, 4-way for 4 KiB pages — Intel optimization manual);
it is a parameter because the labs vary it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from vmlab.errors import ConfigError

__all__ = ["TLB", "simulate_lru"]


class TLB:
    """`sets` x `ways` entries; LRU within a set; counters `hits`, `misses`, `flushes`."""

    def __init__(self, sets: int = 16, ways: int = 4) -> None:
        if sets < 1 or ways < 1 or sets & (sets - 1):
            raise ConfigError(f"TLB sets={sets}, ways={ways}: sets must be a power of two >= 1 and ways >= 1; e.g. sets=16, ways=4")
        self.sets = int(sets)
        self.ways = int(ways)
        self._sets: list[OrderedDict] = [OrderedDict() for _ in range(self.sets)]
        self.hits = 0
        self.misses = 0
        self.flushes = 0

    @property
    def entries(self) -> int:
        return self.sets * self.ways

    def lookup(self, va: int):
        """(frame, flags) of the page holding va, or None; counts a hit or a miss."""
        vpn = int(va) >> 12
        s = self._sets[vpn & (self.sets - 1)]
        e = s.get(vpn)
        if e is None:
            self.misses += 1
            return None
        s.move_to_end(vpn)
        self.hits += 1
        return e[0], e[1]

    def insert(self, va: int, frame: int, flags: int = 0, global_page: bool = False) -> None:
        vpn = int(va) >> 12
        s = self._sets[vpn & (self.sets - 1)]
        s[vpn] = (int(frame), int(flags), bool(global_page))
        s.move_to_end(vpn)
        while len(s) > self.ways:
            s.popitem(last=False)

    def invlpg(self, va: int) -> None:
        vpn = int(va) >> 12
        self._sets[vpn & (self.sets - 1)].pop(vpn, None)

    def flush(self, *, keep_global: bool = True) -> None:
        """Drop entries: a CR3 load keeps global pages; a full flush (CR4.PGE toggle) does not."""
        self.flushes += 1
        for s in self._sets:
            if keep_global:
                for k in [k for k, e in s.items() if not e[2]]:
                    del s[k]
            else:
                s.clear()

    def __len__(self) -> int:
        return sum(len(s) for s in self._sets)

    def __contains__(self, va: int) -> bool:
        vpn = int(va) >> 12
        return vpn in self._sets[vpn & (self.sets - 1)]

    def reset_counters(self) -> None:
        self.hits = self.misses = self.flushes = 0

    def run(self, vpns: np.ndarray, present: np.ndarray | None = None, frames: np.ndarray | None = None
            ) -> np.ndarray:
        """Look up a whole stream of page numbers; returns a bool array, True where it missed.

        Runs of the same page are collapsed first (after the first access the page is
        the set's most recent entry, so the rest are hits that change nothing), then
        the distinct runs go through the LRU sets. `present[i]` False means the page
        is unmapped: the miss faults and nothing is inserted. `frames` fills entries.
        """
        vpns = np.asarray(vpns, dtype=np.int64)
        n = vpns.size
        miss = np.zeros(n, dtype=bool)
        if n == 0:
            return miss
        starts = np.flatnonzero(np.concatenate(([True], vpns[1:] != vpns[:-1])))
        run_vpns = vpns[starts].tolist()
        run_present = [True] * len(run_vpns) if present is None else np.asarray(present)[starts].tolist()
        run_frames = [0] * len(run_vpns) if frames is None else np.asarray(frames)[starts].tolist()
        mask = self.sets - 1
        ways = self.ways
        sets = self._sets
        missed_runs = []
        for k, vpn in enumerate(run_vpns):
            s = sets[vpn & mask]
            if vpn in s:
                s.move_to_end(vpn)
                continue
            missed_runs.append(k)
            if run_present[k]:
                s[vpn] = (run_frames[k], 0, False)
                if len(s) > ways:
                    s.popitem(last=False)
        run_lengths = np.diff(np.concatenate((starts, [n])))
        missed_runs_arr = np.asarray(missed_runs, dtype=np.int64)
        miss[starts[missed_runs_arr]] = True
        # an unmapped page misses on every access of its run (no entry is ever inserted)
        if present is not None:
            absent_runs = missed_runs_arr[~np.asarray(run_present, dtype=bool)[missed_runs_arr]] if missed_runs else missed_runs_arr
            for k in absent_runs.tolist():
                miss[starts[k]: starts[k] + run_lengths[k]] = True
        self.misses += int(miss.sum())
        self.hits += int(n - miss.sum())
        return miss


def simulate_lru(vpns: np.ndarray, *, sets: int = 16, ways: int = 4) -> np.ndarray:
    """Misses of a fresh TLB of this shape over a stream of page numbers (True = miss)."""
    return TLB(sets, ways).run(vpns)
