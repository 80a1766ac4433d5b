"""Hardware virtualization (VT-x/AMD-V): the guest is unmodified; sensitive operations exit.

Each exiting operation costs a VM exit round trip plus its handler's work
(`exits.EXIT_TABLE`); everything else runs at native speed -- system calls
included. Memory is virtualized one of two ways:

- paging="shadow": guest page tables are write-protected, so every guest PTE
  write exits; #PF is intercepted; CR3 loads and invlpg exit; a TLB miss on an
  entry the guest rewrote is a hidden fault (an exit to refill the shadow); a
  never-seen CR3 root needs a new shadow (`shadow_resync`).
- paging="nested" (EPT/NPT): the guest owns its page tables -- no exits for
  PTE writes, CR3 loads, invlpg or guest page faults -- but every TLB miss is a
  2D walk: 24 memory references instead of 4 (19 with 2 MiB nested pages).

`run_loop` is the same model written as kvmtool's loop, one exit at a time: slow,
for small streams, and for checking the vectorized `run_hvm` against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmlab.costs import CostModel, as_costs
from vmlab.errors import ConfigError
from vmlab.execution.analysis import StreamAnalysis
from vmlab.execution.exits import NO_EXIT, ExitReason, exit_reason_table, handling_cycles
from vmlab.execution.native import native_parts, walk_refs
from vmlab.execution.ops import ArchState, Op, OpStream, architectural_state, state_with_ptes
from vmlab.execution.result import Ledger, RunResult

__all__ = ["run_hvm", "run_loop", "LoopResult", "PAGING_MODES", "tlb_miss_walk"]

PAGING_MODES = ("shadow", "nested")


def _check(paging: str) -> None:
    if paging not in PAGING_MODES:
        raise ConfigError(f"paging={paging!r} is not a paging mode; choose 'shadow' or 'nested' (EPT/NPT)")


def tlb_miss_walk(paging: str, c: CostModel, large_nested_pages: bool = False) -> tuple[float, float]:
    """(memory references, cycles) of one TLB miss under `paging`, from the memory model.

    Uses vmlab.guest.traffic.tlb_miss_cost (cold walk, no walk caches): shadow walks
    the shadow table like a native one (4 refs); nested walks two dimensions (24, or
    19 with 2 MiB nested pages). Falls back to datasets/tables/page_walk_refs.csv.
    """
    try:
        from vmlab.guest.traffic import tlb_miss_cost
        r = tlb_miss_cost(paging, large_nested_pages=large_nested_pages, costs=c)
        return float(r["refs"]), float(r["cycles"])
    except ImportError:  # pragma: no cover - the memory model ships with vmlab
        if paging == "nested":
            refs = walk_refs("nested_2mib" if large_nested_pages else "nested")
            return float(refs), refs * c.nested_walk_ref_cycles
        return float(walk_refs("shadow")), walk_refs("shadow") * c.tlb_miss_native_walk_ref_cycles


def _tlb_miss_parts(paging: str, c: CostModel, large_nested_pages: bool, refs_override: float | None = None) -> list:
    refs, cycles = tlb_miss_walk(paging, c, large_nested_pages)
    if refs_override is not None:
        per_ref = c.nested_walk_ref_cycles if paging == "nested" else c.tlb_miss_native_walk_ref_cycles
        refs, cycles = refs_override, refs_override * per_ref
    return [("page walks", "2D walk" if paging == "nested" else "1D walk (shadow)", cycles)]


def run_hvm(stream: OpStream, costs: CostModel | str, *, paging: str = "shadow", large_nested_pages: bool = False,
            walk_refs_per_miss: float | None = None, timeline: bool = True, state: bool = False,
            analysis: StreamAnalysis | None = None) -> RunResult:
    """Cost a stream on hardware virtualization with shadow or nested paging.

    `walk_refs_per_miss` replaces the cold-walk reference count (e.g. an average
    measured with page-walk caches or a nested TLB in the memory model).
    """
    costs = as_costs(costs)
    _check(paging)
    a = analysis or StreamAnalysis(stream)
    led = Ledger(stream, a)
    reasons = exit_reason_table(paging, bool(costs.cr8_write_exits))
    for op in Op:
        r = int(reasons[op])
        if op == Op.TLB_MISS:
            led.row(op, _tlb_miss_parts(paging, costs, large_nested_pages, walk_refs_per_miss))
        elif r == NO_EXIT:
            led.row(op, native_parts(op, costs))
        else:
            name = ExitReason(r).name
            led.row(op, handling_cycles(op, paging, costs), entry=f"exit:{name}", exit_reason=name)
    refs = walk_refs_per_miss if walk_refs_per_miss is not None else tlb_miss_walk(paging, costs, large_nested_pages)[0]
    led.count("walk_refs", int(round(int(a.counts[Op.TLB_MISS]) * refs)))
    if paging == "shadow":
        hidden = a.hidden_faults
        led.extra(hidden, [("VM exits", "EXCEPTION_NMI", costs.vmexit_roundtrip_cycles),
                           ("shadow paging", "hidden fault: fill shadow", costs.shadow_fill_cycles)],
                  entry="exit:EXCEPTION_NMI (hidden fault)")
        led.count("EXCEPTION_NMI", int(hidden.size), led.exits)
        led.count("hidden_faults", int(hidden.size))
        roots = a.new_roots
        led.extra(roots, [("shadow paging", "build shadow for new root", costs.shadow_resync_cycles)])
        led.count("shadow_builds", int(roots.size))
        led.count("pte_write_exits", int(a.counts[Op.PTE_WRITE]))
    else:
        led.counts["pte_write_exits"] = 0
    led.count("exits_total", sum(led.exits.values()))
    cfg = paging + (" 2M" if paging == "nested" and large_nested_pages else "")
    return led.finish(path="HVM", preset=costs.name, clock_ghz=costs.clock_ghz, config=cfg, timeline=timeline,
                      state=architectural_state(stream) if state else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class LoopResult:
    """What kvmtool's loop found: cycles, exits by reason, the guest's state, and the shadow's."""

    total_cycles: float
    exits: dict[str, int]
    state: ArchState
    shadow_consistent: bool   # every shadow entry equals its guest entry, except those not yet refilled


def run_loop(stream: OpStream, costs: CostModel | str, *, paging: str = "shadow",
             large_nested_pages: bool = False) -> LoopResult:
    """kvmtool's loop, literally: run the guest until it exits, handle the exit, repeat.

    One Python step per operation: use on small streams (it is the specification
    `run_hvm` is checked against). Under shadow paging the handlers really keep two
    tables: the guest's (each trapped PTE write is emulated into it) and the shadow
    the hardware walks (an entry goes stale on a guest write and is refilled by
    the hidden fault of the next TLB miss).
    """
    costs = as_costs(costs)
    _check(paging)
    reasons = exit_reason_table(paging, bool(costs.cr8_write_exits))
    tlb = _tlb_miss_parts(paging, costs, large_nested_pages)
    guest: dict[int, int] = {}          # the guest's page-table entries
    shadow: dict[int, int] = {}         # what the hardware walks under shadow paging
    shadow_stale: set[int] = set()      # entries the guest rewrote since the shadow last saw them
    seen_roots: set[int] = set()
    cycles = 0.0
    exits: dict[str, int] = {}

    def handle(reason: str, parts) -> float:
        exits[reason] = exits.get(reason, 0) + 1
        return sum(p[2] for p in parts)

    for op_code, arg, value in zip(stream.op.tolist(), stream.arg.tolist(), stream.value.tolist()):
        op = Op(op_code)
        if op == Op.COMPUTE:                         # vm_run(): guest instructions at native speed
            cycles += arg
            continue
        if op == Op.TLB_MISS:
            cycles += sum(p[2] for p in tlb)
            if paging == "shadow" and arg in shadow_stale:   # hidden fault: refill from the guest table
                shadow_stale.discard(arg)
                shadow[arg] = guest[arg]
                cycles += handle("EXCEPTION_NMI", [("", "", costs.vmexit_roundtrip_cycles),
                                                   ("", "", costs.shadow_fill_cycles)])
            continue
        if op == Op.PTE_WRITE:
            guest[arg] = value                       # emulated by the handler (shadow) or a plain store (nested)
            if paging == "shadow":
                shadow_stale.add(arg)
        if paging == "shadow" and op == Op.CR3_LOAD and arg not in seen_roots:
            seen_roots.add(arg)
            cycles += costs.shadow_resync_cycles
        r = int(reasons[op])
        if r == NO_EXIT:
            cycles += sum(p[2] for p in native_parts(op, costs))
        else:                                        # handle[exit.reason](vcpu)
            cycles += handle(ExitReason(r).name, handling_cycles(op, paging, costs))
    slots = np.array(sorted(guest), np.int64)
    values = np.array([guest[k] for k in slots.tolist()], np.int64)
    consistent = all(shadow.get(k) == v or k in shadow_stale for k, v in guest.items()) if paging == "shadow" else True
    return LoopResult(total_cycles=cycles, exits=exits, state=state_with_ptes(stream, slots, values),
                      shadow_consistent=consistent)
