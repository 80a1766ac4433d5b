"""The 2-level event-channel layout (Xen's xen/common/event_2l.c): where a port's bits live.

A port is one bit in the shared-info page's `evtchn_pending` array, with a
matching bit in `evtchn_mask`. Raising an event (evtchn_2l_set_pending):

    if test_and_set(pending[port]):  return          # already pending: edges merge
    if mask[port]:                   return          # masked: no upcall (the edge is "lost"
                                                     #   unless the guest re-checks on unmask)
    if !test_and_set(vcpu.pending_sel, port / 64):   # the first level: one bit per 64-bit word
        vcpu.evtchn_upcall_pending = 1               # and kick the vCPU

The guest's upcall (evtchn_do_upcall) runs only while `evtchn_upcall_mask` is
clear; that per-vCPU byte is the PV guest's interrupt flag, so `cli`/`sti` are
plain stores, not hypercalls. 64-bit guests get 64 x 64 = 4096 ports.

`Event2L` is one domain's layout behind the small port-ops interface that
event_channel.py's binding code uses (`PortOps` there); a FIFO layout
(event_fifo.c) would be one more file providing the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Event2L", "VcpuEvents", "BITS_PER_WORD", "NR_EVENT_CHANNELS"]

BITS_PER_WORD = 64
NR_EVENT_CHANNELS = BITS_PER_WORD * BITS_PER_WORD  # 4096 for a 64-bit guest (2-level ABI)


@dataclass(slots=True)
class VcpuEvents:
    """The per-vCPU part of shared info (vcpu_info)."""

    upcall_pending: bool = False
    upcall_mask: bool = False
    pending_sel: int = 0


@dataclass(slots=True)
class Event2L:
    """One domain's shared-info bitmaps (pending, mask) and per-vCPU selectors."""

    nr_vcpus: int = 1
    nr_ports: int = NR_EVENT_CHANNELS
    # Linux masks every port at boot and unmasks a port when a driver binds it.
    pending: bytearray = field(default_factory=lambda: bytearray(NR_EVENT_CHANNELS))
    mask: bytearray = field(default_factory=lambda: bytearray(b"\x01" * NR_EVENT_CHANNELS))
    vcpus: list[VcpuEvents] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"raised": 0, "merged": 0, "masked": 0, "upcalls": 0,
                                                            "delivered": 0, "deferred": 0})

    def __post_init__(self) -> None:
        if not self.vcpus:
            self.vcpus = [VcpuEvents() for _ in range(max(1, self.nr_vcpus))]

    # --- port ops (Xen's struct evtchn_port_ops) ------------------------------------
    def set_pending(self, port: int, vcpu: int) -> None:
        """evtchn_2l_set_pending."""
        self.counts["raised"] += 1
        if self.pending[port]:
            self.counts["merged"] += 1
            return
        self.pending[port] = 1
        if self.mask[port]:
            self.counts["masked"] += 1
            return
        self._kick(port, vcpu)

    def unmask(self, port: int, vcpu: int) -> None:
        """evtchn_2l_unmask: clear the mask and re-check pending (no lost edge)."""
        if self.mask[port]:
            self.mask[port] = 0
            if self.pending[port]:
                v = self.vcpus[vcpu % len(self.vcpus)]
                v.pending_sel |= 1 << (port // BITS_PER_WORD)
                v.upcall_pending = True

    def reset_port(self, port: int) -> None:
        """A closed port: not pending, masked again (as Linux leaves it)."""
        self.pending[port] = 0
        self.mask[port] = 1

    def _kick(self, port: int, vcpu: int) -> None:
        v = self.vcpus[vcpu % len(self.vcpus)]
        bit = 1 << (port // BITS_PER_WORD)
        if not v.pending_sel & bit:
            v.pending_sel |= bit
            v.upcall_pending = True

    # --- the guest's side (plain stores into shared info) --------------------------
    def local_irq_disable(self, vcpu: int = 0) -> None:
        """PV `cli`: set evtchn_upcall_mask. A store, no hypercall."""
        self.vcpus[vcpu].upcall_mask = True

    def local_irq_enable(self, vcpu: int = 0) -> bool:
        """PV `sti`: clear the mask; if an upcall waited, the guest forces it (Linux xen_restore_fl).

        Returns True when that forced callback happened (it costs one hypercall in Linux).
        """
        v = self.vcpus[vcpu]
        v.upcall_mask = False
        return v.upcall_pending

    def clear_mask_bit(self, port: int) -> None:
        """Clear the mask bit with a bare store and do NOT re-check pending: the lost-edge bug.

        An event raised while the port was masked stays pending with no upcall;
        `unmask` (the hypercall, or Linux's unmask_evtchn) re-checks and delivers it.
        """
        self.mask[port] = 0

    def upcall(self, vcpu: int, handlers: dict[int, Callable[[int], None]]) -> list[int]:
        """evtchn_do_upcall: scan pending & ~mask through pending_sel, clear and run handlers.

        Returns the ports handled. Does nothing while the vCPU's upcall mask is set.
        """
        v = self.vcpus[vcpu]
        if v.upcall_mask:
            if v.upcall_pending:
                self.counts["deferred"] += 1
            return []
        if not v.upcall_pending:
            return []
        v.upcall_pending = False
        self.counts["upcalls"] += 1
        handled: list[int] = []
        while True:
            sel, v.pending_sel = v.pending_sel, 0
            if not sel:
                break
            while sel:
                word = (sel & -sel).bit_length() - 1
                sel &= sel - 1
                self._scan_word(word, handled, handlers)
        return handled

    def _scan_word(self, word: int, handled: list[int], handlers: dict) -> None:
        base = word * BITS_PER_WORD
        pending, mask = self.pending, self.mask
        port = pending.find(1, base, base + BITS_PER_WORD)
        while port >= 0:
            if not mask[port]:
                pending[port] = 0  # clear before the handler so a new event is a new edge
                handled.append(port)
                self.counts["delivered"] += 1
                h = handlers.get(port)
                if h is not None:
                    h(port)
            port = pending.find(1, port + 1, base + BITS_PER_WORD)
