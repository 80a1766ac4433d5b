"""The HVM run loop written literally, one exit at a time: Xen's (default) and kvmtool's.

Xen (`hypervisor="xen"`): the vCPU runs until VT-x exits; `vmx_vmexit_handler`
dispatches on the exit reason; an emulated port or MMIO access goes through
`handle_mmio` as an ioreq to qemu-dm in dom0 -- this loop really fills the vCPU's
slot of the shared ioreq page, lets "qemu-dm" take and answer it and completes it
with `hvm_io_assist` (`vmlab.io.ioreq.round_trip`), so every emulated access is one
visible round trip guest -> Xen -> event channel -> qemu-dm -> Xen -> guest.

kvmtool (`hypervisor="kvm"`, the comparison): `while running: exit = KVM_RUN;
handle[exit.reason]()`, emulated I/O returned to the user-space loop as KVM_EXIT_IO /
KVM_EXIT_MMIO.

Slow (one Python step per operation): for small streams, and as the specification
`hvm.run_hvm` is tested against. Under shadow paging the handlers really keep two
tables: the guest's (each trapped PTE write is emulated into it) and the shadow the
hardware walks (an entry goes stale on a guest write and is refilled by the hidden
fault of the next TLB miss).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vmlab.costs import CostModel, as_costs
from vmlab.execution.exits import NO_EXIT, ExitReason, exit_reason_table, handling_cycles
from vmlab.execution.hvm import check_paging, tlb_miss_parts
from vmlab.execution.native import native_parts
from vmlab.execution.ops import ArchState, Op, OpStream, state_with_ptes
from vmlab.io.ioreq import IOREQ_TYPE_COPY, IOREQ_TYPE_PIO, IOREQ_WRITE, Ioreq, IoreqSlot, round_trip

__all__ = ["run_loop", "LoopResult"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LoopResult:
    """What the loop found: cycles, exits by reason, the guest's state, the shadow's, and the ioreqs."""

    total_cycles: float
    exits: dict[str, int]
    state: ArchState
    shadow_consistent: bool   # every shadow entry equals its guest entry, except those not yet refilled
    ioreqs: int = 0           # Xen: round trips to qemu-dm
    ioreq_hops: tuple[str, ...] = field(default=())   # Xen: every hop of every round trip, in order


class _Vcpu:
    """One vCPU's state as the handlers see it."""

    def __init__(self, paging: str) -> None:
        self.paging = paging
        self.guest: dict[int, int] = {}          # the guest's page-table entries
        self.shadow: dict[int, int] = {}         # what the hardware walks under shadow paging
        self.stale: set[int] = set()             # entries the guest rewrote since the shadow last saw them
        self.roots: set[int] = set()
        self.cycles = 0.0
        self.exits: dict[str, int] = {}
        self.iopage = IoreqSlot()                # Xen: this vCPU's slot of the shared ioreq page
        self.hops: list[str] = []
        self.ioreqs = 0

    def exit(self, reason: str, parts) -> None:
        self.exits[reason] = self.exits.get(reason, 0) + 1
        self.cycles += sum(p[2] for p in parts)


def _handle_mmio(v: _Vcpu, op: Op, value: int) -> None:
    """Xen's handle_mmio for a device qemu-dm emulates: one ioreq round trip."""
    req = Ioreq(addr=0, data=int(value), dir=IOREQ_WRITE, type=IOREQ_TYPE_PIO if op == Op.PORT_IO else IOREQ_TYPE_COPY)
    _, hops = round_trip(v.iopage, req, device=lambda r: r.data)
    v.hops += hops
    v.ioreqs += 1


def _step(v: _Vcpu, op: Op, arg: int, value: int, reasons, c: CostModel, tlb, hypervisor: str) -> None:
    if op == Op.COMPUTE:                          # the guest runs at native speed
        v.cycles += arg
        return
    if op == Op.TLB_MISS:
        v.cycles += sum(p[2] for p in tlb)
        if v.paging == "shadow" and arg in v.stale:   # hidden fault: refill from the guest table
            v.stale.discard(arg)
            v.shadow[arg] = v.guest[arg]
            v.exit("EXCEPTION_NMI", [("", "", c.vmexit_roundtrip_cycles), ("", "", c.shadow_fill_cycles)])
        return
    if op == Op.PTE_WRITE:
        v.guest[arg] = value                      # emulated by the handler (shadow) or a plain store (nested)
        if v.paging == "shadow":
            v.stale.add(arg)
    if v.paging == "shadow" and op == Op.CR3_LOAD and arg not in v.roots:
        v.roots.add(arg)
        v.cycles += c.shadow_resync_cycles
    r = int(reasons[op])
    if r == NO_EXIT:
        v.cycles += sum(p[2] for p in native_parts(op, c))
        return
    if hypervisor == "xen" and op in (Op.PORT_IO, Op.MMIO):
        _handle_mmio(v, op, value)                # vmx_vmexit_handler -> handle_mmio -> ioreq
    v.exit(ExitReason(r).name, handling_cycles(op, v.paging, c, hypervisor))   # handle[exit.reason](vcpu)


def run_loop(stream: OpStream, costs: CostModel | str, *, paging: str = "shadow", large_nested_pages: bool = False,
             hypervisor: str = "xen") -> LoopResult:
    """Run the guest until it exits, handle the exit, repeat: Xen's loop (default) or kvmtool's."""
    costs = as_costs(costs)
    check_paging(paging)
    reasons = exit_reason_table(paging, bool(costs.cr8_write_exits), hypervisor)
    tlb = tlb_miss_parts(paging, costs, large_nested_pages)
    v = _Vcpu(paging)
    for op_code, arg, value in zip(stream.op.tolist(), stream.arg.tolist(), stream.value.tolist()):
        _step(v, Op(op_code), arg, value, reasons, costs, tlb, hypervisor)
    slots = np.array(sorted(v.guest), np.int64)
    values = np.array([v.guest[k] for k in slots.tolist()], np.int64)
    consistent = all(v.shadow.get(k) == x or k in v.stale for k, x in v.guest.items()) if paging == "shadow" else True
    return LoopResult(total_cycles=v.cycles, exits=v.exits, state=state_with_ptes(stream, slots, values),
                      shadow_consistent=consistent and not v.iopage.crashed, ioreqs=v.ioreqs,
                      ioreq_hops=tuple(v.hops))
