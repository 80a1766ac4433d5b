"""The VM-exit reason table: kvmtool's run loop as data.

Hardware virtualization in one line (kvmtool, kvm-cpu.c):

    while running:  exit = run(vcpu);  handle[exit.reason](vcpu)

`ExitReason` carries the basic exit-reason numbers of Intel VT-x (Intel SDM
Vol. 3 Appendix C; Linux arch/x86/include/uapi/asm/vmx.h). `EXIT_TABLE` says,
for each reason the model produces, who handles it (KVM's handler in
arch/x86/kvm/vmx/vmx.c `kvm_vmx_exit_handlers`, or the user-space device model)
and what it costs in terms of a `CostModel`. `exit_reason_of` is the hardware's
side: which guest operations exit at all, and with which reason, under shadow
or nested paging.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from vmlab.costs import CostModel
from vmlab.execution.ops import N_OPS, Op

__all__ = ["ExitReason", "ExitHandler", "EXIT_TABLE", "exit_reason_table", "NO_EXIT"]


class ExitReason(IntEnum):
    """VT-x basic exit reasons (the numbers the VMCS reports)."""

    EXCEPTION_NMI = 0
    EXTERNAL_INTERRUPT = 1
    INTERRUPT_WINDOW = 7
    CPUID = 10
    HLT = 12
    INVLPG = 14
    VMCALL = 18
    CR_ACCESS = 28
    IO_INSTRUCTION = 30
    MSR_READ = 31
    MSR_WRITE = 32
    TPR_BELOW_THRESHOLD = 43
    APIC_ACCESS = 44
    EPT_VIOLATION = 48
    EPT_MISCONFIG = 49


NO_EXIT = -1


@dataclass(frozen=True, kw_only=True, slots=True)
class ExitHandler:
    """Who handles an exit, and what the handling costs beyond the exit itself (by guest op)."""

    reason: ExitReason
    handler: str        # KVM's handler function, or the device model
    where: str          # "hypervisor" (in kernel) or "device model" (user space in dom0 / QEMU)
    what: str


EXIT_TABLE: dict[ExitReason, ExitHandler] = {
    ExitReason.EXCEPTION_NMI: ExitHandler(reason=ExitReason.EXCEPTION_NMI, handler="handle_exception_nmi",
                                          where="hypervisor",
                                          what="#PF intercepted for shadow paging: a write to a write-protected "
                                               "guest page table, a hidden fault, or a true guest fault to reflect"),
    ExitReason.EXTERNAL_INTERRUPT: ExitHandler(reason=ExitReason.EXTERNAL_INTERRUPT,
                                               handler="handle_external_interrupt", where="hypervisor",
                                               what="a physical interrupt arrived; the virtual one is injected"),
    ExitReason.CPUID: ExitHandler(reason=ExitReason.CPUID, handler="kvm_emulate_cpuid", where="hypervisor",
                                  what="cpuid always exits under VT-x"),
    ExitReason.HLT: ExitHandler(reason=ExitReason.HLT, handler="kvm_emulate_halt", where="hypervisor",
                                what="the vCPU idles; the hypervisor deschedules it"),
    ExitReason.INVLPG: ExitHandler(reason=ExitReason.INVLPG, handler="handle_invlpg", where="hypervisor",
                                   what="shadow paging must drop the shadow entry too"),
    ExitReason.CR_ACCESS: ExitHandler(reason=ExitReason.CR_ACCESS, handler="handle_cr", where="hypervisor",
                                      what="mov to CR3 (shadow: switch shadow root) or CR8 (no TPR shadow)"),
    ExitReason.IO_INSTRUCTION: ExitHandler(reason=ExitReason.IO_INSTRUCTION, handler="handle_io -> device model",
                                           where="device model",
                                           what="in/out forwarded to the device model (KVM_EXIT_IO)"),
    ExitReason.EPT_MISCONFIG: ExitHandler(reason=ExitReason.EPT_MISCONFIG, handler="handle_ept_misconfig -> device model",
                                          where="device model",
                                          what="MMIO under EPT: forwarded to the device model (KVM_EXIT_MMIO)"),
    ExitReason.EPT_VIOLATION: ExitHandler(reason=ExitReason.EPT_VIOLATION, handler="handle_ept_violation",
                                          where="hypervisor", what="a guest-physical page not (yet) mapped"),
}


def exit_reason_table(paging: str, cr8_write_exits: bool) -> np.ndarray:
    """Exit reason (or NO_EXIT) for each Op, under `paging` 'shadow' or 'nested'.

    Page faults and TLB misses that turn out to be *hidden* faults under shadow
    paging are stateful and handled in hvm.py; this is the per-type table.
    """
    t = np.full(N_OPS, NO_EXIT, np.int16)
    shadow = paging == "shadow"
    if shadow:
        t[Op.PTE_WRITE] = ExitReason.EXCEPTION_NMI     # guest page tables are write-protected
        t[Op.CR3_LOAD] = ExitReason.CR_ACCESS
        t[Op.TLB_FLUSH] = ExitReason.INVLPG
        t[Op.PAGE_FAULT] = ExitReason.EXCEPTION_NMI    # #PF is intercepted to tell hidden from true faults
        t[Op.MMIO] = ExitReason.EXCEPTION_NMI          # device pages are not present in the shadow
    else:
        t[Op.MMIO] = ExitReason.EPT_MISCONFIG
    t[Op.PORT_IO] = ExitReason.IO_INSTRUCTION
    t[Op.TIMER_IRQ] = ExitReason.EXTERNAL_INTERRUPT
    t[Op.HLT] = ExitReason.HLT
    t[Op.CPUID] = ExitReason.CPUID
    if cr8_write_exits:
        t[Op.CR8_WRITE] = ExitReason.CR_ACCESS
    return t


def handling_cycles(op: Op, paging: str, c: CostModel) -> list[tuple[str, str, float]]:
    """What one exiting op costs, split by mechanism: the exit itself plus the handler's work."""
    x = c.vmexit_roundtrip_cycles
    if op == Op.PTE_WRITE:
        return [("VM exits", "EXCEPTION_NMI", x),
                ("shadow paging", "propagate PTE write", max(0.0, c.shadow_pte_write_trap_cycles - x))]
    if op == Op.CR3_LOAD:
        return [("VM exits", "CR_ACCESS", x), ("shadow paging", "switch shadow root", c.shadow_cr3_switch_cycles),
                ("native work", "cr3 load", c.native_cr3_load_cycles)]
    if op == Op.TLB_FLUSH:
        return [("VM exits", "INVLPG", x), ("emulation", "invlpg", c.hvm_emulate_cycles),
                ("native work", "tlb flush", c.native_tlb_flush_cycles)]
    if op == Op.PAGE_FAULT:
        return [("VM exits", "EXCEPTION_NMI", x), ("shadow paging", "check guest walk", c.shadow_fill_cycles),
                ("emulation", "inject #PF", c.hvm_inject_cycles), ("native work", "page fault", c.native_page_fault_cycles)]
    if op in (Op.PORT_IO, Op.MMIO):
        reason = "IO_INSTRUCTION" if op == Op.PORT_IO else ("EXCEPTION_NMI" if paging == "shadow" else "EPT_MISCONFIG")
        return [("VM exits", reason, x), ("device I/O", "device model", max(0.0, c.io_exit_to_device_model_cycles - x))]
    if op == Op.TIMER_IRQ:
        return [("VM exits", "EXTERNAL_INTERRUPT", x), ("emulation", "inject interrupt", c.hvm_inject_cycles),
                ("native work", "timer interrupt", c.native_timer_irq_cycles)]
    if op == Op.HLT:
        return [("VM exits", "HLT", x), ("native work", "hlt", c.native_hlt_cycles)]
    if op == Op.CPUID:
        return [("VM exits", "CPUID", x), ("emulation", "cpuid", c.hvm_emulate_cycles)]
    if op == Op.CR8_WRITE:
        return [("VM exits", "CR_ACCESS", x), ("emulation", "cr8 write", c.hvm_emulate_cycles)]
    raise ValueError(f"{op!r} does not exit")
