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

    def run(self, vpns: np.ndarray, present: np.ndarray | None = None, frames: np.ndarray | None = None,
            *, page_ids: np.ndarray | None = None) -> np.ndarray:
        """Look up a whole stream of page numbers; returns a bool array, True where it missed.

        Exactly what `lookup` + `insert`-on-miss would do access by access, computed with
        numpy: an access hits iff fewer than `ways` distinct other pages of its set were
        used since that page's previous access (LRU stack distance). `present[i]` False
        means the page is unmapped: the access misses and nothing is inserted.
        `frames` fills the entries left in the TLB afterwards. `page_ids` (optional) are dense
        ids of the pages, e.g. the inverse of np.unique(vpns): they let the sort run in radix time.
        """
        vpns = np.asarray(vpns, dtype=np.int64)
        n = vpns.size
        miss = np.ones(n, dtype=bool)
        if n == 0:
            return np.zeros(0, dtype=bool)
        keep = np.ones(n, bool) if present is None else np.asarray(present, bool).copy()
        fr = np.zeros(n, np.int64) if frames is None else np.asarray(frames, np.int64)
        # the entries already in the TLB act as earlier accesses, in LRU -> MRU order per set
        pre_v = [v for st in self._sets for v in st]
        pre_f = [e[0] for st in self._sets for e in st.values()]
        idx = np.flatnonzero(keep)
        v = np.concatenate((np.asarray(pre_v, np.int64), vpns[idx]))
        f = np.concatenate((np.asarray(pre_f, np.int64), fr[idx]))
        m = len(pre_v)
        old = {k: e for st in self._sets for k, e in st.items()}
        ids = None
        if page_ids is not None:
            uniq = np.unique(vpns)
            pv = np.asarray(pre_v, np.int64)
            at = np.searchsorted(uniq, pv)
            found = (at < uniq.size) & (uniq[np.minimum(at, uniq.size - 1)] == pv) if pv.size else np.zeros(0, bool)
            pre_ids = np.where(found, at, uniq.size + np.arange(pv.size))
            ids = np.concatenate((pre_ids, np.asarray(page_ids, np.int64)[idx]))
        hit, last = self._lru_hits(v, ids)
        miss[idx] = ~hit[m:]
        self._rebuild(v, f, old, last)
        nmiss = int(miss.sum())
        self.misses += nmiss
        self.hits += n - nmiss
        return miss

    def _lru_hits(self, v: np.ndarray, ids: np.ndarray | None = None):
        N = v.size
        hit = np.zeros(N, bool)
        if N == 0:
            return hit, np.zeros(0, np.int64)
        ways, mask = self.ways, self.sets - 1
        set_of = v & mask
        if self.sets <= 1 << 16:
            set_of = set_of.astype(np.uint16)                # radix sort
        order = np.argsort(set_of, kind="stable")            # each set's accesses, in time order
        sv = v[order]
        pos = np.arange(N)
        key = sv
        if ids is not None and ids.size and int(ids.max()) < 1 << 16:
            key = ids[order].astype(np.uint16)
        by_page = np.argsort(key, kind="stable")             # each page's accesses, in time order
        same = sv[by_page[1:]] == sv[by_page[:-1]]
        prev = np.full(N, -1, np.int64)
        nxt = np.full(N, N + 1, np.int64)
        prev[by_page[1:][same]] = by_page[:-1][same]
        nxt[by_page[:-1][same]] = by_page[1:][same]
        gap = pos - prev - 1
        seen = prev >= 0
        h = seen & (gap < ways)                              # at most ways-1 accesses between: a hit
        act = np.flatnonzero(seen & (gap >= ways))
        q = act - 1
        cnt = np.zeros(act.size, np.int64)
        for _ in range(64):                                  # count distinct pages in the window, newest first
            if act.size == 0:
                break
            lim = prev[act]
            inside = q > lim
            cnt += inside & (nxt[q] > act)                   # q is the last use of its page before act
            resolved_hit = ~inside & (cnt < ways)
            resolved_miss = cnt >= ways
            h[act[resolved_hit]] = True
            left = ~(resolved_hit | resolved_miss)
            act, q, cnt = act[left], q[left] - 1, cnt[left]
        for i, q0, c in zip(act.tolist(), q.tolist(), cnt.tolist()):   # rare long windows: finish exactly
            lim = int(prev[i])
            while q0 > lim and c < ways:
                c += int(nxt[q0] > i)
                q0 -= 1
            h[i] = c < ways
        hit[order] = h
        last = np.sort(order[nxt == N + 1])                  # each page's last access, in time order
        return hit, last

    def _rebuild(self, v: np.ndarray, f: np.ndarray, old: dict, last_pos: np.ndarray) -> None:
        """Each set keeps its `ways` most recently used pages, oldest first."""
        if v.size == 0:
            return
        pages, frames = v[last_pos], f[last_pos]
        sets = pages & (self.sets - 1)
        for st in self._sets:
            st.clear()
        for s_idx in np.unique(sets).tolist():
            sel = np.flatnonzero(sets == s_idx)[-self.ways:]
            st = self._sets[s_idx]
            for pg, fr in zip(pages[sel].tolist(), frames[sel].tolist()):
                e = old.get(pg)
                st[pg] = (fr, e[1], e[2]) if e is not None else (fr, 0, False)

    def run_reference(self, vpns, present=None, frames=None) -> np.ndarray:
        """`run` one access at a time (the definition `run` must match; used by the tests)."""
        vpns = np.asarray(vpns, np.int64)
        out = np.zeros(vpns.size, bool)
        for i, v in enumerate(vpns.tolist()):
            ok = True if present is None else bool(present[i])
            if ok and self.lookup(v << 12) is not None:
                continue
            if not ok:
                self.misses += 1
            out[i] = True
            if ok:
                self.insert(v << 12, 0 if frames is None else int(frames[i]))
        return out


def simulate_lru(vpns: np.ndarray, *, sets: int = 16, ways: int = 4) -> np.ndarray:
    """Misses of a fresh TLB of this shape over a stream of page numbers (True = miss)."""
    return TLB(sets, ways).run(vpns)
