"""What I/O costs: cycles per request from counted events, PV split driver vs HVM emulation.

The simulation *counts* (hypercalls, grant maps/unmaps/copies, notifications sent
and suppressed, VM exits); `IoCosts` turns counts into cycles. Where a number
comes from a paper it says so; the rest are ILLUSTRATIVE round figures, named so
nobody takes them for measurements. The lesson is in the counts: batching and
suppression cut notifications per request, emulation pays a dozen exits per
request however many are queued.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from vmlab.errors import ConfigError

__all__ = ["IoCosts", "DEFAULT_IO_COSTS", "cycles_breakdown", "ioreq_round_trip"]


@dataclass(frozen=True, kw_only=True, slots=True)
class IoCosts:
    """Cycle costs of the events the I/O model counts."""

    # Xen x86 null hypercall round trip: Dall et al., ISCA 2016 (recalled, REFERENCE.md §5 V2/M).
    hypercall_cycles: float = 1228
    # Waking the other side of an event channel on another pCPU is an IPI; KVM virtual IPI
    # 3,102 cycles (Dall et al., ISCA 2016, recalled) stands in for Xen's.
    notify_delivery_cycles: float = 3102
    # Xen's work inside a grant map / unmap beyond the hypercall entry: a PTE write; unmap
    # adds a TLB flush. ILLUSTRATIVE.
    grant_map_cycles: float = 1500
    grant_unmap_cycles: float = 3000
    # A grant copy: fixed setup plus memcpy at 4 bytes/cycle. ILLUSTRATIVE.
    grant_copy_cycles: float = 500
    copy_cycles_per_byte: float = 0.25
    # Ring bookkeeping per request, both sides together. ILLUSTRATIVE.
    ring_request_cycles: float = 300
    # An exit forwarded to a user-space device model and back: KVM 6,732 cycles (Dall et al.,
    # ISCA 2016, recalled); Xen's qemu-dm path also crosses into dom0, so this is a floor.
    exit_to_device_model_cycles: float = 6732
    # The hardware part of one VM exit + entry: 1,100 cycles, the top of kvm-unit-tests' cpuid exit range
    # (datasets/tables/exit_costs.csv, verified). Used to split an ioreq round trip into its hops.
    vmexit_cycles: float = 1100
    # A hypercall from an HVM guest is a VMCALL exit (vmx_vmexit_handler -> hvm_do_hypercall): 1,545 cycles,
    # kvm-unit-tests vmcall 1,530-1,559 on Skylake-SP (exit_costs.csv, verified). Prices PV-on-HVM frontends.
    hvm_hypercall_cycles: float = 1545
    # A 2.4 GHz core, the Xeon of Barham et al. SOSP 2003. ILLUSTRATIVE choice.
    cpu_hz: float = 2.4e9

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not v >= 0:
                raise ConfigError(f"{k}={v} must be a non-negative number of cycles (or Hz)")

    @classmethod
    def from_cost_model(cls, model, **changes) -> "IoCosts":
        """Take the hypercall cost and clock from a `vmlab.costs.CostModel` preset (other fields as here).

        e.g. ``IoCosts.from_cost_model(preset("xen_pv"))`` so Lab 6 and Lab 4 price a hypercall alike.
        """
        return replace(cls(hypercall_cycles=model.hypercall_roundtrip_cycles, cpu_hz=model.clock_ghz * 1e9), **changes)


DEFAULT_IO_COSTS = IoCosts()


def cycles_breakdown(counts: dict[str, float], costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, float]:
    """Cycles per component from a counts dict (keys: hypercalls, notify_sent, grant_maps, grant_unmaps,
    grant_copies, copy_bytes, requests, exits, dma_copy_bytes, hvm_hypercalls). Missing keys count zero.
    "exits" are whole ioreq round trips to qemu-dm (see `ioreq_round_trip` for the hops)."""
    g = counts.get
    return {
        "hypercalls": g("hypercalls", 0) * costs.hypercall_cycles + g("hvm_hypercalls", 0) * costs.hvm_hypercall_cycles,
        "notifications": g("notify_sent", 0) * costs.notify_delivery_cycles,
        "grant_ops": g("grant_maps", 0) * costs.grant_map_cycles + g("grant_unmaps", 0) * costs.grant_unmap_cycles
                     + g("grant_copies", 0) * costs.grant_copy_cycles,
        "copies": (g("copy_bytes", 0) + g("dma_copy_bytes", 0)) * costs.copy_cycles_per_byte,
        "rings": g("ring_requests", 0) * costs.ring_request_cycles,
        "exits": g("exits", 0) * costs.exit_to_device_model_cycles,
    }


def ioreq_round_trip(costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, list]:
    """One emulated register access, hop by hop (vmlab.io.ioreq.ROUND_TRIP), as columns (hop, where, what, cycles).

    The hops add up to `exit_to_device_model_cycles` (Dall et al.'s 6,732, a floor for Xen):
    the VM exit and entry (`vmexit_cycles`), the event to qemu-dm's CPU in dom0
    (`notify_delivery_cycles`, as for a PV notification), qemu-dm's EVTCHNOP_send back
    (`hypercall_cycles`), and qemu-dm waking and emulating the register: the remainder.
    """
    from vmlab.io.ioreq import ROUND_TRIP
    x, to_dm, back = costs.vmexit_cycles, costs.notify_delivery_cycles, costs.hypercall_cycles
    rest = max(0.0, costs.exit_to_device_model_cycles - x - to_dm - back)
    cycles = [x, to_dm, rest, back, 0.0]
    return {"hop": [h.hop for h in ROUND_TRIP], "where": [h.where for h in ROUND_TRIP],
            "what": [h.what for h in ROUND_TRIP], "cycles": cycles}
