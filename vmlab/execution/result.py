"""What running a stream on a path returns: `RunResult`, and the `Ledger` paths fill it with.

Costing is vectorized: a path describes, per operation type, which mechanisms it
pays for and how much (a row of a lookup table); totals are counts x costs. Only
stateful effects (PV batches, BT translations and adaptation, shadow fills of
freshly written entries, new shadow roots) are computed separately, with
cumulative numpy tricks, and added at the positions where they happen, so the
timeline of hypervisor entries carries real times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.execution.ops import N_OPS, ArchState, Op, OpStream

__all__ = ["MECHANISMS", "RunResult", "Timeline", "Ledger"]

# The stacked-bar order. "native work" is what native execution also pays.
MECHANISMS = ("native work", "page walks", "VM exits", "hypercalls", "traps", "callouts", "translation",
              "shadow paging", "emulation", "device I/O")


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeline:
    """Every hypervisor entry: the op index that caused it, when (cycles from start), and its kind."""

    index: np.ndarray
    time_cycles: np.ndarray
    kind: np.ndarray          # int16 codes into `kinds`
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.index.size)

    def to_columns(self, limit: int | None = None) -> dict[str, list]:
        """Plain columns (bokeh-ready); `limit` keeps an evenly spaced sample of that many entries."""
        idx = np.arange(self.index.size)
        if limit is not None and idx.size > limit:
            idx = np.linspace(0, idx.size - 1, limit).astype(np.int64)
        return {"index": self.index[idx].tolist(), "time_cycles": self.time_cycles[idx].tolist(),
                "kind": [self.kinds[k] for k in self.kind[idx]]}

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.kind, minlength=len(self.kinds)) if self.kind.size else np.zeros(len(self.kinds), int)
        return {k: int(n) for k, n in zip(self.kinds, c) if n}


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """What a stream cost on one path, and why.

    breakdown: cycles by mechanism (keys of MECHANISMS); detail: cycles by
    "mechanism: what"; exits: VM exits by reason name (HVM); hypercalls: by name
    (PV); counts: everything else that was counted (translations, callouts,
    hidden_faults, walk_refs, hypervisor_entries, ...).
    """

    path: str
    workload: str
    preset: str
    config: str
    total_cycles: float
    seconds: float
    breakdown: dict[str, float]
    detail: dict[str, float]
    exits: dict[str, int]
    hypercalls: dict[str, int]
    counts: dict[str, int]
    state: ArchState | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict, repr=False)
    timeline_source: object = field(default=None, repr=False, compare=False)  # a Timeline or a builder
    _built: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def timeline(self) -> Timeline | None:
        """Every hypervisor entry with its time. Built on first access (a cumulative sum over the stream)."""
        src = self.timeline_source
        if src is None or isinstance(src, Timeline):
            return src
        if "timeline" not in self._built:
            self._built["timeline"] = src()
        return self._built["timeline"]

    @property
    def label(self) -> str:
        return f"{self.path} ({self.config})" if self.config else self.path

    @property
    def hypervisor_entries(self) -> int:
        return int(self.counts.get("hypervisor_entries", 0))

    def slowdown(self, baseline: "RunResult") -> float:
        return self.total_cycles / baseline.total_cycles if baseline.total_cycles else float("inf")


class Ledger:
    """Collects a path's costs: per-op-type rows, stateful extras at positions, hypervisor entries."""

    def __init__(self, stream: OpStream, analysis=None) -> None:
        from vmlab.execution.analysis import StreamAnalysis
        self.stream = stream
        self.analysis = analysis if analysis is not None else StreamAnalysis(stream)
        self.op_counts = self.analysis.counts
        self.lut = np.zeros(N_OPS, np.float64)
        self.entry_kind_lut = np.full(N_OPS, -1, np.int16)
        self.detail: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.exits: dict[str, int] = {}
        self.hypercalls: dict[str, int] = {}
        self.kinds: list[str] = []
        self._extra_pos: list[np.ndarray] = []
        self._extra_cost: list[np.ndarray] = []
        self._entry_pos: list[np.ndarray] = []
        self._entry_kind: list[np.ndarray] = []
        work = self.analysis.compute_cycles
        self.add_detail("native work", "computation", work)

    # --- bookkeeping ---------------------------------------------------------------
    def kind_code(self, kind: str) -> int:
        if kind not in self.kinds:
            self.kinds.append(kind)
        return self.kinds.index(kind)

    def add_detail(self, mechanism: str, what: str, cycles: float) -> None:
        if cycles:
            key = f"{mechanism}: {what}"
            self.detail[key] = self.detail.get(key, 0.0) + float(cycles)

    def count(self, name: str, n: int, table: dict | None = None) -> None:
        if n:
            t = self.counts if table is None else table
            t[name] = t.get(name, 0) + int(n)

    # --- per-op-type rows ------------------------------------------------------------
    def row(self, op: Op, parts: list[tuple[str, str, float]], *, entry: str | None = None,
            exit_reason: str | None = None, hypercall: str | None = None) -> None:
        """Every `op` costs the sum of `parts` (mechanism, what, cycles); optionally enters the hypervisor."""
        n = int(self.op_counts[op])
        for mech, what, cyc in parts:
            self.lut[op] += cyc
            self.add_detail(mech, what, n * cyc)
        if entry is not None:
            self.entry_kind_lut[op] = self.kind_code(entry)
        if exit_reason is not None:
            self.count(exit_reason, n, self.exits)
        if hypercall is not None:
            self.count(hypercall, n, self.hypercalls)

    # --- stateful extras ----------------------------------------------------------------
    def extra(self, positions: np.ndarray, parts: list[tuple[str, str, float]] | None = None, *,
              cycles: np.ndarray | None = None, mechanism: str = "", what: str = "",
              entry: str | None = None) -> None:
        """Costs that happen at specific op positions (each position once per call)."""
        positions = np.asarray(positions, np.int64)
        if positions.size == 0:
            return
        if cycles is None:
            each = sum(c for _, _, c in parts)
            cycles = np.full(positions.size, each, np.float64)
            for mech, w, c in parts:
                self.add_detail(mech, w, c * positions.size)
        else:
            self.add_detail(mechanism, what, float(cycles.sum()))
        self._extra_pos.append(positions)
        self._extra_cost.append(np.asarray(cycles, np.float64))
        if entry is not None:
            self._entry_pos.append(positions)
            self._entry_kind.append(np.full(positions.size, self.kind_code(entry), np.int16))

    # --- result ---------------------------------------------------------------------------
    def finish(self, *, path: str, preset: str, clock_ghz: float, config: str = "", timeline: bool = True,
               state: ArchState | None = None, extra: dict | None = None) -> RunResult:
        s = self.stream
        breakdown = {m: 0.0 for m in MECHANISMS}
        for key, cyc in self.detail.items():
            breakdown[key.split(": ", 1)[0]] += cyc
        total = float(sum(breakdown.values()))
        entry_ops = np.flatnonzero(self.entry_kind_lut >= 0)
        n_entries = int(self.op_counts[entry_ops].sum()) + int(sum(p.size for p in self._entry_pos))
        self.counts["hypervisor_entries"] = n_entries
        tl = (lambda: self._timeline(entry_ops)) if timeline else None
        return RunResult(path=path, workload=s.name, preset=preset, config=config, total_cycles=total,
                         seconds=total / (clock_ghz * 1e9), breakdown=breakdown, detail=dict(self.detail),
                         exits=dict(self.exits), hypercalls=dict(self.hypercalls), counts=dict(self.counts),
                         timeline_source=tl, state=state, extra=extra or {})

    def _timeline(self, entry_ops: np.ndarray) -> Timeline:
        s = self.stream
        kinds = tuple(self.kinds)
        if not entry_ops.size and not self._entry_pos:  # nothing enters the hypervisor (native)
            return Timeline(index=np.zeros(0, np.int64), time_cycles=np.zeros(0), kind=np.zeros(0, np.int16),
                            kinds=kinds)
        cost = self.lut[s.op]
        cost += self.analysis.work
        if self._extra_pos:  # stateful extras, summed per position in one pass
            cost += np.bincount(np.concatenate(self._extra_pos), weights=np.concatenate(self._extra_cost),
                                minlength=cost.size)
        # an entry's time is when it starts: the cycles of every op before it
        np.cumsum(cost, out=cost)
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        if entry_ops.size:
            pos0 = np.flatnonzero((self.entry_kind_lut >= 0)[s.op])
            pieces.append((pos0, self.entry_kind_lut[s.op[pos0]]))
        pieces += zip(self._entry_pos, self._entry_kind)
        pos, kind = _merge_entries(pieces)
        before = cost[np.maximum(pos - 1, 0)] if pos.size else np.zeros(0)
        if pos.size and pos[0] == 0:
            before[pos == 0] = 0.0
        return Timeline(index=pos, time_cycles=before, kind=kind, kinds=kinds)


def _merge_entries(pieces: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(positions, kinds) of every piece in (position, kind) order.

    Each piece is sorted already (op positions found in order; one kind per extra piece),
    so the pieces are merged, largest first, each by two searchsorted passes, never sorted whole.
    """
    keys = []
    for pos, kind in pieces:
        k = np.asarray(pos, np.int64) << 16          # a fresh array: shifted and or-ed in place below
        k |= np.asarray(kind, np.int16).astype(np.uint16)
        if k.size > 1 and not bool(np.all(k[1:] >= k[:-1])):
            k.sort()
        keys.append(k)
    keys.sort(key=lambda k: -k.size)
    merged = keys[0] if keys else np.zeros(0, np.int64)
    for k in keys[1:]:
        if not k.size:
            continue
        at_k = np.searchsorted(merged, k, side="right")
        at_k += np.arange(k.size)
        keep = np.ones(merged.size + k.size, np.bool_)
        keep[at_k] = False
        out = np.empty(keep.size, np.int64)
        out[at_k] = k
        out[keep] = merged
        merged = out
    kind = merged.astype(np.int16)                  # the low 16 bits (kind codes are < 2**15)
    np.right_shift(merged, 16, out=merged)          # merged is never a caller's array
    return merged, kind
