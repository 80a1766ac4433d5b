"""The VM-exit reason table: Xen's `vmx_vmexit_handler` as data (KVM's kept for comparison).

Hardware virtualization in one line:

    while running:  exit = vmresume(vcpu);  handle[exit.reason](vcpu)

`ExitReason` carries the basic exit-reason numbers of Intel VT-x (Intel SDM Vol. 3
Appendix C; Xen's asm-x86/hvm/vmx/vmx.h EXIT_REASON_*). `EXIT_TABLE` is Xen 3.4's
`vmx_vmexit_handler` switch (xen/arch/x86/hvm/vmx/vmx.c): who handles each reason the
model produces. Emulated devices live in qemu-dm, a process in dom0: `handle_mmio`
sends it an ioreq over the shared ioreq page and an event channel and the vCPU waits
for the answer (`vmlab.io.ioreq`). MMIO under EPT reaches Xen as an EPT violation on
a `p2m_mmio_dm` entry (`ept_handle_violation` -> `handle_mmio`); under shadow paging
as a #PF on one (`sh_page_fault` -> `handle_mmio`).

`KVM_EXIT_TABLE` is the comparison: KVM's handlers (arch/x86/kvm/vmx/vmx.c
`kvm_vmx_exit_handlers`) with kvmtool's user-space loop, MMIO under EPT as an EPT
*misconfiguration* (KVM's trick) and KVM_EXIT_IO / KVM_EXIT_MMIO to user space.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from vmlab.costs import CostModel
from vmlab.errors import ConfigError
from vmlab.execution.ops import N_OPS, Op
from vmlab.io.ioreq import ROUND_TRIP

__all__ = ["ExitReason", "ExitHandler", "EXIT_TABLE", "KVM_EXIT_TABLE", "exit_reason_table", "handling_cycles",
           "ioreq_round_trip", "NO_EXIT", "HYPERVISORS"]

HYPERVISORS = ("xen", "kvm")


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
QEMU_DM = "qemu-dm in dom0 (ioreq)"


@dataclass(frozen=True, kw_only=True, slots=True)
class ExitHandler:
    """Who handles an exit, and what the handling does."""

    reason: ExitReason
    handler: str        # the hypervisor's handler function (Xen's, or KVM's in KVM_EXIT_TABLE)
    where: str          # "Xen", "qemu-dm in dom0 (ioreq)"; "KVM" or "user space (kvmtool/QEMU)"
    what: str


def _table(where_default: str, rows) -> dict[ExitReason, ExitHandler]:
    return {r: ExitHandler(reason=r, handler=h, where=w or where_default, what=what) for r, h, w, what in rows}


E = ExitReason
EXIT_TABLE: dict[ExitReason, ExitHandler] = _table("Xen", [
    (E.EXCEPTION_NMI, "paging_fault (sh_page_fault)", "",
     "#PF intercepted for shadow paging: a write to a write-protected guest page table, a hidden fault, a true "
     "guest fault to reflect (vmx_inject_hw_exception), or a p2m_mmio_dm page -> handle_mmio -> ioreq"),
    (E.EXTERNAL_INTERRUPT, "vmx_do_extint", "", "a physical interrupt arrived; the virtual one is injected"),
    (E.CPUID, "vmx_do_cpuid", "", "cpuid always exits under VT-x"),
    (E.HLT, "hvm_hlt", "", "the vCPU idles; Xen deschedules it"),
    (E.INVLPG, "vmx_invlpg_intercept", "", "shadow paging must drop the shadow entry too"),
    (E.VMCALL, "hvm_do_hypercall", "", "a hypercall from an HVM guest (PV-on-HVM drivers)"),
    (E.CR_ACCESS, "vmx_cr_access", "", "mov to CR3 (shadow: switch shadow root) or CR8 (no TPR shadow)"),
    (E.IO_INSTRUCTION, "handle_mmio -> hvm_send_assist_req", QEMU_DM,
     "in/out decoded by Xen and sent to qemu-dm as an ioreq (IOREQ_TYPE_PIO) over the shared page + event channel"),
    (E.EPT_VIOLATION, "ept_handle_violation -> handle_mmio", QEMU_DM,
     "MMIO under EPT: the guest touched a p2m_mmio_dm page; the access goes to qemu-dm as an ioreq (IOREQ_TYPE_COPY)"),
])

KVM_EXIT_TABLE: dict[ExitReason, ExitHandler] = _table("KVM", [
    (E.EXCEPTION_NMI, "handle_exception_nmi", "", "#PF intercepted for shadow paging"),
    (E.EXTERNAL_INTERRUPT, "handle_external_interrupt", "", "a physical interrupt arrived"),
    (E.CPUID, "kvm_emulate_cpuid", "", "cpuid always exits under VT-x"),
    (E.HLT, "kvm_emulate_halt", "", "the vCPU idles"),
    (E.INVLPG, "handle_invlpg", "", "shadow paging must drop the shadow entry too"),
    (E.CR_ACCESS, "handle_cr", "", "mov to CR3 or CR8"),
    (E.IO_INSTRUCTION, "handle_io -> user space", "user space (kvmtool/QEMU)",
     "in/out returned to the VMM process (KVM_EXIT_IO)"),
    (E.EPT_MISCONFIG, "handle_ept_misconfig -> user space", "user space (kvmtool/QEMU)",
     "MMIO under EPT: KVM maps MMIO with a deliberately misconfigured EPT entry (KVM_EXIT_MMIO)"),
    (E.EPT_VIOLATION, "handle_ept_violation", "", "a guest-physical page not (yet) mapped"),
])


def _check_hv(hypervisor: str) -> None:
    if hypervisor not in HYPERVISORS:
        raise ConfigError(f"hypervisor={hypervisor!r} is not a modelled exit path; choose 'xen' (default: "
                          "vmx_vmexit_handler + qemu-dm ioreqs) or 'kvm' (the comparison)")


def exit_reason_table(paging: str, cr8_write_exits: bool, hypervisor: str = "xen") -> np.ndarray:
    """Exit reason (or NO_EXIT) for each Op, under `paging` 'shadow' or 'nested', on Xen or KVM.

    Page faults and TLB misses that turn out to be *hidden* faults under shadow
    paging are stateful and handled in hvm.py; this is the per-type table.
    """
    _check_hv(hypervisor)
    t = np.full(N_OPS, NO_EXIT, np.int16)
    if paging == "shadow":
        t[Op.PTE_WRITE] = ExitReason.EXCEPTION_NMI     # guest page tables are write-protected
        t[Op.CR3_LOAD] = ExitReason.CR_ACCESS
        t[Op.TLB_FLUSH] = ExitReason.INVLPG
        t[Op.PAGE_FAULT] = ExitReason.EXCEPTION_NMI    # #PF is intercepted to tell hidden from true faults
        t[Op.MMIO] = ExitReason.EXCEPTION_NMI          # device pages are not present in the shadow
    else:   # Xen: the p2m says p2m_mmio_dm (not present in EPT); KVM: a misconfigured EPT entry
        t[Op.MMIO] = ExitReason.EPT_VIOLATION if hypervisor == "xen" else ExitReason.EPT_MISCONFIG
    t[Op.PORT_IO] = ExitReason.IO_INSTRUCTION
    t[Op.TIMER_IRQ] = ExitReason.EXTERNAL_INTERRUPT
    t[Op.HLT] = ExitReason.HLT
    t[Op.CPUID] = ExitReason.CPUID
    if cr8_write_exits:
        t[Op.CR8_WRITE] = ExitReason.CR_ACCESS
    return t


def ioreq_round_trip(reason: str, c: CostModel) -> list[tuple[str, str, float]]:
    """One ioreq, hop by hop (vmlab.io.ioreq.ROUND_TRIP), with where each cost comes from.

    VM exit + entry: `vmexit_roundtrip` (exit_costs.csv). Xen's decode and ioreq fill:
    `hvm_emulate`. qemu-dm's EVTCHNOP_send: `hypercall_roundtrip`. The event channel into
    dom0, qemu-dm's wake-up and its emulation take the rest of the preset's whole
    `io_exit_to_device_model` figure (each preset's row names its source; where it is
    ILLUSTRATIVE, so is this split). The VM entry is inside the exit round trip.
    """
    x, emu, hcall = c.vmexit_roundtrip_cycles, c.hvm_emulate_cycles, c.hypercall_roundtrip_cycles
    rest = max(0.0, c.io_exit_to_device_model_cycles - x - emu - hcall)
    hops = [h.hop for h in ROUND_TRIP]
    return [("VM exits", f"{hops[0]}: {reason}", x), ("emulation", f"{hops[1]}: handle_mmio, ioreq, evtchn", emu),
            ("device I/O", f"{hops[2]}: wake + emulate", rest), ("device I/O", f"{hops[3]}: EVTCHNOP_send", hcall),
            ("device I/O", f"{hops[4]}: hvm_io_assist, VM entry", 0.0)]


def _io_parts(op: Op, paging: str, c: CostModel, hypervisor: str) -> list[tuple[str, str, float]]:
    x = c.vmexit_roundtrip_cycles
    if op == Op.PORT_IO:
        reason = "IO_INSTRUCTION"
    elif paging == "shadow":
        reason = "EXCEPTION_NMI"
    else:
        reason = "EPT_VIOLATION" if hypervisor == "xen" else "EPT_MISCONFIG"
    if hypervisor == "xen":
        return ioreq_round_trip(reason, c)
    return [("VM exits", reason, x), ("device I/O", "user-space device model (KVM_EXIT_IO/MMIO)",
                                      max(0.0, c.io_exit_to_device_model_cycles - x))]


def handling_cycles(op: Op, paging: str, c: CostModel, hypervisor: str = "xen") -> list[tuple[str, str, float]]:
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
        return _io_parts(op, paging, c, hypervisor)
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
