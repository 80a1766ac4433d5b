"""Xen's ioreq: how an HVM guest's emulated I/O reaches qemu-dm in dom0 and comes back.

Xen 3.4: `vmx_vmexit_handler` (xen/arch/x86/hvm/vmx/vmx.c) sends EXIT_REASON_IO_INSTRUCTION,
and an EPT violation on a `p2m_mmio_dm` page (`ept_handle_violation`; under shadow
paging a #PF on one, `sh_page_fault`), to `handle_mmio` (hvm/io.c), which decodes the
instruction (`hvm_emulate_one`) and, for a device qemu-dm emulates, fills this vCPU's
slot of the shared ioreq page (HVM_PARAM_IOREQ_PFN) and calls `hvm_send_assist_req`:
state STATE_IOREQ_READY, then `notify_via_xen_event_channel`; the vCPU waits. In dom0
qemu-dm's main loop sees the event channel (`xc_evtchn_pending`), takes the request
(`cpu_get_ioreq`: STATE_IOREQ_INPROCESS), emulates it (`__handle_ioreq`: port I/O
`cpu_ioreq_pio`, MMIO `cpu_ioreq_move`), sets STATE_IORESP_READY and notifies back
(`xc_evtchn_notify`, an event_channel_op hypercall). Xen wakes the vCPU;
`hvm_do_resume` -> `hvm_io_assist` copies the result, sets STATE_IOREQ_NONE and the
guest re-enters. A slot in the wrong state is a device-model bug: Xen crashes the domain.

Numbers from xen/include/public/hvm/ioreq.h (Xen 3.x).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IOREQ_READ", "IOREQ_WRITE", "IOREQ_TYPE_PIO", "IOREQ_TYPE_COPY", "STATE_IOREQ_NONE",
           "STATE_IOREQ_READY", "STATE_IOREQ_INPROCESS", "STATE_IORESP_READY", "Ioreq", "IoreqSlot",
           "ROUND_TRIP", "RoundTripStep", "round_trip"]

IOREQ_READ, IOREQ_WRITE = 1, 0
IOREQ_TYPE_PIO, IOREQ_TYPE_COPY = 0, 1           # port I/O; MMIO ("copy")
STATE_IOREQ_NONE, STATE_IOREQ_READY, STATE_IOREQ_INPROCESS, STATE_IORESP_READY = 0, 1, 2, 3


@dataclass(frozen=True, kw_only=True, slots=True)
class Ioreq:
    """struct ioreq: one emulated access (count > 1 for rep ins/outs)."""

    addr: int
    size: int = 1
    count: int = 1
    data: int = 0
    dir: int = IOREQ_WRITE
    type: int = IOREQ_TYPE_PIO


class IoreqSlot:
    """One vCPU's `vcpu_iodata` in the shared ioreq page, with its state machine."""

    def __init__(self) -> None:
        self.state = STATE_IOREQ_NONE
        self.req: Ioreq | None = None
        self.crashed = False          # Xen called domain_crash on a bad state

    def _bad(self) -> bool:
        self.crashed = True
        return False

    def send(self, req: Ioreq) -> bool:
        """Xen, hvm_send_assist_req: NONE -> READY (else the device model broke the protocol: crash)."""
        if self.state != STATE_IOREQ_NONE:
            return self._bad()
        self.req, self.state = req, STATE_IOREQ_READY
        return True

    def take(self) -> Ioreq | None:
        """qemu-dm, cpu_get_ioreq: READY -> INPROCESS."""
        if self.state != STATE_IOREQ_READY:
            return None
        self.state = STATE_IOREQ_INPROCESS
        return self.req

    def respond(self, data: int) -> bool:
        """qemu-dm after __handle_ioreq: INPROCESS -> IORESP_READY (a read's result in data)."""
        if self.state != STATE_IOREQ_INPROCESS or self.req is None:
            return self._bad()
        self.req = Ioreq(addr=self.req.addr, size=self.req.size, count=self.req.count, data=data,
                         dir=self.req.dir, type=self.req.type)
        self.state = STATE_IORESP_READY
        return True

    def complete(self) -> int | None:
        """Xen, hvm_io_assist: IORESP_READY -> NONE, returning the data (else domain_crash)."""
        if self.state != STATE_IORESP_READY or self.req is None:
            self._bad()
            return None
        data, self.req, self.state = self.req.data, None, STATE_IOREQ_NONE
        return data


@dataclass(frozen=True, kw_only=True, slots=True)
class RoundTripStep:
    hop: str        # "guest -> Xen", ...
    where: str      # who runs it
    what: str       # the functions, in order


ROUND_TRIP: tuple[RoundTripStep, ...] = (
    RoundTripStep(hop="guest -> Xen", where="Xen", what="VM exit; vmx_vmexit_handler -> handle_mmio decodes the access"),
    RoundTripStep(hop="Xen -> qemu-dm", where="Xen", what="ioreq into the shared page (STATE_IOREQ_READY); "
                  "hvm_send_assist_req -> notify_via_xen_event_channel; the vCPU waits"),
    RoundTripStep(hop="qemu-dm", where="dom0", what="xc_evtchn_pending wakes qemu-dm; cpu_get_ioreq; __handle_ioreq "
                  "emulates the device register; STATE_IORESP_READY"),
    RoundTripStep(hop="qemu-dm -> Xen", where="dom0", what="xc_evtchn_notify: event_channel_op(EVTCHNOP_send)"),
    RoundTripStep(hop="Xen -> guest", where="Xen", what="vCPU woken; hvm_do_resume -> hvm_io_assist "
                  "(STATE_IOREQ_NONE); VM entry"),
)


def round_trip(slot: IoreqSlot, req: Ioreq, device=lambda r: r.data) -> tuple[int | None, list[str]]:
    """Run one ioreq through the five hops literally. Returns (data, the hops taken).

    `device(req)` is qemu-dm's emulation of the register (returns the value a read gets).
    """
    hops = [ROUND_TRIP[0].hop]
    if not slot.send(req):
        return None, hops
    hops.append(ROUND_TRIP[1].hop)
    taken = slot.take()
    hops.append(ROUND_TRIP[2].hop)
    slot.respond(device(taken))
    hops.append(ROUND_TRIP[3].hop)
    data = slot.complete()
    hops.append(ROUND_TRIP[4].hop)
    return data, hops
