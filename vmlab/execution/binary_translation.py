"""Binary translation (VMware's software VMM, Adams & Agesen 2006).

User code runs directly. Guest *kernel* code runs from a translation cache (TC):
each basic block is translated the first time it runs (`bt_translate_block`),
and a full cache is flushed whole, so blocks are retranslated afterwards.
Translated code emulates simple privileged instructions in place (cli/sti, cr8:
a store to virtual CPU state), calls out to the VMM for others (CR3 loads,
invlpg, I/O, cpuid, hlt), and pays lookups for indirect control flow (kernel
call/ret). System calls cross between direct execution and the TC and cost
`bt_syscall` in all.

Memory uses shadow page tables, as HVM-shadow does (hidden faults, new shadow
roots), but page-table writes are different: a write from a block first *traps*
(the guest table is traced); after `bt_adapt_threshold` traps, *adaptive
translation* retranslates the block so the write becomes a cheap callout
(`bt_pte_write`). A TC flush forgets the adaptation with the translations.

Hypervisor entries under BT are the *traps* (system calls, faults, interrupts,
trapping PTE writes): translated kernel code already runs inside the VMM, so
callouts and translations are counted but are not entries.
"""

from __future__ import annotations

import numpy as np

from vmlab.costs import CostModel, as_costs
from vmlab.execution.analysis import StreamAnalysis
from vmlab.execution.native import native_parts, walk_refs
from vmlab.execution.ops import Op, OpStream, architectural_state
from vmlab.execution.result import Ledger, RunResult

__all__ = ["run_bt"]


def _bt_parts(op: Op, c: CostModel) -> tuple[list, str | None]:
    n = native_parts(op, c)
    co = c.bt_callout_cycles
    if op == Op.SYSCALL:
        return [("native work", "syscall", c.syscall_native_cycles),
                ("emulation", "syscall transition", max(0.0, c.bt_syscall_cycles - c.syscall_native_cycles))], \
            "trap:syscall"
    if op == Op.PTE_WRITE:  # the adaptive part is added per position
        return [("callouts", "pte write callout", c.bt_pte_write_cycles)], None
    if op == Op.CR3_LOAD:
        return n + [("callouts", "cr3 callout", co), ("shadow paging", "switch shadow root", c.shadow_cr3_switch_cycles)], \
            None
    if op == Op.TLB_FLUSH:
        return n + [("callouts", "invlpg callout", co)], None
    if op == Op.PAGE_FAULT:
        return n + [("traps", "#PF into the VMM", c.native_page_fault_cycles),
                    ("shadow paging", "check guest walk", c.shadow_fill_cycles),
                    ("emulation", "deliver #PF", c.bt_exception_cycles)], "trap:page_fault"
    if op in (Op.PORT_IO, Op.MMIO):
        return [("callouts", "i/o callout", co), ("device I/O", "VMM device emulation", c.bt_device_emulation_cycles)], \
            None
    if op in (Op.IRQ_DISABLE, Op.IRQ_ENABLE, Op.CR8_WRITE):
        return [("emulation", "in-TC store", c.bt_inline_emulation_cycles)], None
    if op == Op.TIMER_IRQ:
        return n + [("traps", "interrupt into the VMM", c.native_timer_irq_cycles),
                    ("emulation", "deliver interrupt", c.bt_exception_cycles)], "trap:interrupt"
    if op == Op.HLT:
        return n + [("callouts", "hlt callout", co)], None
    if op == Op.CPUID:
        return [("callouts", "cpuid callout", co), ("emulation", "cpuid", c.native_cpuid_cycles)], None
    if op == Op.DIVZERO:
        return n + [("emulation", "deliver #DE", c.bt_exception_cycles)], "trap:divide_error"
    if op == Op.TLB_MISS:
        return [("page walks", "1D walk (shadow)", walk_refs("shadow") * c.tlb_miss_native_walk_ref_cycles)], None
    return n, None


def run_bt(stream: OpStream, costs: CostModel | str, *, timeline: bool = True, state: bool = False,
           analysis: StreamAnalysis | None = None) -> RunResult:
    """Cost a stream under binary translation with a translation cache and adaptive translation."""
    costs = as_costs(costs)
    a = analysis or StreamAnalysis(stream)
    led = Ledger(stream, a)
    for op in Op:
        parts, entry = _bt_parts(op, costs)
        led.row(op, parts, entry=entry)
    # kernel call/ret: the return target is looked up (user call/ret runs directly)
    kcr = (stream.op == Op.CALL_RET) & (stream.block >= 0)
    kcr_pos = np.flatnonzero(kcr)
    led.extra(kcr_pos, [("emulation", "indirect branch lookup", costs.bt_indirect_branch_cycles)])
    # translation cache
    trans, flushes = a.translations(int(costs.bt_tc_capacity_blocks))
    led.extra(trans, [("translation", "translate block", costs.bt_translate_block_cycles)])
    led.count("translations", int(trans.size))
    led.count("tc_flushes", int(flushes.size))
    # adaptive translation of PTE writes: traps until the block is retranslated
    traps = a.adaptive_traps(int(costs.bt_adapt_threshold), flushes)
    led.extra(traps, [("traps", "pte write trap", costs.bt_pte_write_trap_cycles),
                      ("callouts", "pte write callout", -costs.bt_pte_write_cycles)], entry="trap:pte_write")
    n_pte = int(a.counts[Op.PTE_WRITE])
    led.count("pte_write_traps", int(traps.size))
    led.count("pte_write_callouts", n_pte - int(traps.size))
    # shadow paging, shared with HVM-shadow
    hidden = a.hidden_faults
    led.extra(hidden, [("traps", "hidden #PF into the VMM", costs.native_page_fault_cycles),
                       ("shadow paging", "hidden fault: fill shadow", costs.shadow_fill_cycles)], entry="trap:hidden_fault")
    led.count("hidden_faults", int(hidden.size))
    roots = a.new_roots
    led.extra(roots, [("shadow paging", "build shadow for new root", costs.shadow_resync_cycles)])
    led.count("shadow_builds", int(roots.size))
    callouts = sum(int(a.counts[o]) for o in (Op.CR3_LOAD, Op.TLB_FLUSH, Op.PORT_IO, Op.MMIO, Op.HLT, Op.CPUID))
    led.count("callouts", callouts + n_pte - int(traps.size))
    led.count("walk_refs", int(a.counts[Op.TLB_MISS]) * walk_refs("shadow"))
    return led.finish(path="BT", preset=costs.name, clock_ghz=costs.clock_ghz, config="adaptive", timeline=timeline,
                      state=architectural_state(stream) if state else None)
