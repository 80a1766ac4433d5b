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

`hypervisor="xen"` (the default) is Xen's exit path: `vmx_vmexit_handler`, and
every emulated port or MMIO access an ioreq round trip to qemu-dm in dom0
(`exits.ioreq_round_trip`); `hypervisor="kvm"` is KVM with kvmtool/QEMU in user
space, for comparison. `hvm_loop.run_loop` is the same model written as the
literal loop, one exit at a time: slow, for small streams, and the specification
the vectorized `run_hvm` is tested against.
"""

from __future__ import annotations

from vmlab.costs import CostModel, as_costs
from vmlab.errors import ConfigError
from vmlab.execution.analysis import StreamAnalysis
from vmlab.execution.exits import NO_EXIT, ExitReason, exit_reason_table, handling_cycles
from vmlab.execution.native import native_parts, walk_refs
from vmlab.execution.ops import Op, OpStream, architectural_state
from vmlab.execution.result import Ledger, RunResult

__all__ = ["run_hvm", "PAGING_MODES", "tlb_miss_walk"]

PAGING_MODES = ("shadow", "nested")


def check_paging(paging: str) -> None:
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


def tlb_miss_parts(paging: str, c: CostModel, large_nested_pages: bool, refs_override: float | None = None) -> list:
    refs, cycles = tlb_miss_walk(paging, c, large_nested_pages)
    if refs_override is not None:
        per_ref = c.nested_walk_ref_cycles if paging == "nested" else c.tlb_miss_native_walk_ref_cycles
        refs, cycles = refs_override, refs_override * per_ref
    return [("page walks", "2D walk" if paging == "nested" else "1D walk (shadow)", cycles)]


def run_hvm(stream: OpStream, costs: CostModel | str, *, paging: str = "shadow", large_nested_pages: bool = False,
            walk_refs_per_miss: float | None = None, timeline: bool = True, state: bool = False,
            analysis: StreamAnalysis | None = None, hypervisor: str = "xen") -> RunResult:
    """Cost a stream on hardware virtualization with shadow or nested paging.

    `walk_refs_per_miss` replaces the cold-walk reference count (e.g. an average
    measured with page-walk caches or a nested TLB in the memory model).
    """
    costs = as_costs(costs)
    check_paging(paging)
    a = analysis or StreamAnalysis(stream)
    led = Ledger(stream, a)
    reasons = exit_reason_table(paging, bool(costs.cr8_write_exits), hypervisor)
    for op in Op:
        r = int(reasons[op])
        if op == Op.TLB_MISS:
            led.row(op, tlb_miss_parts(paging, costs, large_nested_pages, walk_refs_per_miss))
        elif r == NO_EXIT:
            led.row(op, native_parts(op, costs))
        else:
            name = ExitReason(r).name
            led.row(op, handling_cycles(op, paging, costs, hypervisor), entry=f"exit:{name}", exit_reason=name)
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
    if hypervisor == "xen":   # each emulated port/MMIO access is one ioreq to qemu-dm
        led.count("ioreqs", int(a.counts[Op.PORT_IO]) + int(a.counts[Op.MMIO]))
    led.count("exits_total", sum(led.exits.values()))
    cfg = paging + (" 2M" if paging == "nested" and large_nested_pages else "") + ("" if hypervisor == "xen" else " (KVM)")
    return led.finish(path="HVM", preset=costs.name, clock_ghz=costs.clock_ghz, config=cfg, timeline=timeline,
                      state=architectural_state(stream) if state else None)
