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

from vmlab.costs import CostModel, as_costs
from vmlab.errors import ConfigError
from vmlab.execution.analysis import StreamAnalysis
from vmlab.execution.exits import NO_EXIT, ExitReason, exit_reason_table, handling_cycles
from vmlab.execution.native import native_parts, walk_refs
from vmlab.execution.ops import Op, OpStream, architectural_state
from vmlab.execution.result import Ledger, RunResult

__all__ = ["run_hvm", "run_loop", "PAGING_MODES"]

PAGING_MODES = ("shadow", "nested")


def _check(paging: str) -> None:
    if paging not in PAGING_MODES:
        raise ConfigError(f"paging={paging!r} is not a paging mode; choose 'shadow' or 'nested' (EPT/NPT)")


def _tlb_miss_parts(paging: str, c: CostModel, large_nested_pages: bool) -> list:
    if paging == "nested":
        refs = walk_refs("nested_2mib" if large_nested_pages else "nested")
        return [("page walks", "2D walk", refs * c.nested_walk_ref_cycles)]
    return [("page walks", "1D walk (shadow)", walk_refs("shadow") * c.tlb_miss_native_walk_ref_cycles)]


def run_hvm(stream: OpStream, costs: CostModel | str, *, paging: str = "shadow", large_nested_pages: bool = False,
            timeline: bool = True, state: bool = False, analysis: StreamAnalysis | None = None) -> RunResult:
    """Cost a stream on hardware virtualization with shadow or nested paging."""
    costs = as_costs(costs)
    _check(paging)
    a = analysis or StreamAnalysis(stream)
    led = Ledger(stream, a.counts)
    reasons = exit_reason_table(paging, bool(costs.cr8_write_exits))
    for op in Op:
        r = int(reasons[op])
        if op == Op.TLB_MISS:
            led.row(op, _tlb_miss_parts(paging, costs, large_nested_pages))
        elif r == NO_EXIT:
            led.row(op, native_parts(op, costs))
        else:
            name = ExitReason(r).name
            led.row(op, handling_cycles(op, paging, costs), entry=f"exit:{name}", exit_reason=name)
    refs = walk_refs("nested_2mib" if large_nested_pages else "nested") if paging == "nested" else walk_refs("shadow")
    led.count("walk_refs", int(a.counts[Op.TLB_MISS]) * refs)
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


def run_loop(stream: OpStream, costs: CostModel, *, paging: str = "shadow",
             large_nested_pages: bool = False) -> tuple[float, dict[str, int]]:
    """kvmtool's loop, literally: run the guest until it exits, handle the exit, repeat.

    Returns (total cycles, exits by reason). One Python step per operation: use on
    small streams (it is the specification `run_hvm` is checked against).
    """
    _check(paging)
    reasons = exit_reason_table(paging, bool(costs.cr8_write_exits))
    tlb = _tlb_miss_parts(paging, costs, large_nested_pages)
    shadow_stale: set[int] = set()     # entries the guest rewrote since the shadow last saw them
    seen_roots: set[int] = set()
    cycles = 0.0
    exits: dict[str, int] = {}

    def handle(reason: str, parts) -> float:
        exits[reason] = exits.get(reason, 0) + 1
        return sum(p[2] for p in parts)

    for op_code, arg in zip(stream.op.tolist(), stream.arg.tolist()):
        op = Op(op_code)
        if op == Op.COMPUTE:                         # vm_run(): guest instructions at native speed
            cycles += arg
            continue
        if op == Op.TLB_MISS:
            cycles += sum(p[2] for p in tlb)
            if paging == "shadow" and arg in shadow_stale:
                shadow_stale.discard(arg)
                cycles += handle("EXCEPTION_NMI", [("", "", costs.vmexit_roundtrip_cycles),
                                                   ("", "", costs.shadow_fill_cycles)])
            continue
        if paging == "shadow":
            if op == Op.PTE_WRITE:
                shadow_stale.add(arg)
            if op == Op.CR3_LOAD and arg not in seen_roots:
                seen_roots.add(arg)
                cycles += costs.shadow_resync_cycles
        r = int(reasons[op])
        if r == NO_EXIT:
            cycles += sum(p[2] for p in native_parts(op, costs))
        else:                                        # handle[exit.reason](vcpu)
            cycles += handle(ExitReason(r).name, handling_cycles(op, paging, costs))
    return cycles, exits
