"""What I/O costs: cycles per request from counted events, PV split driver vs HVM emulation.

The simulation *counts* (hypercalls, grant maps/unmaps/copies, notifications sent
and suppressed, VM exits); `IoCosts` turns counts into cycles. Where a number
comes from a paper it says so; the rest are ILLUSTRATIVE round figures, named so
nobody takes them for measurements. The lesson is in the counts: batching and
suppression cut notifications per request, emulation pays a dozen exits per
request however many are queued.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vmlab.errors import ConfigError

__all__ = ["IoCosts", "DEFAULT_IO_COSTS", "cycles_breakdown", "io_explore", "io_compare", "EXPLORE_PATHS"]


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
        from dataclasses import replace
        return replace(cls(hypercall_cycles=model.hypercall_roundtrip_cycles, cpu_hz=model.clock_ghz * 1e9), **changes)


DEFAULT_IO_COSTS = IoCosts()


def cycles_breakdown(counts: dict[str, float], costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, float]:
    """Cycles per component from a counts dict (keys: hypercalls, notify_sent, grant_maps, grant_unmaps,
    grant_copies, copy_bytes, requests, exits, dma_copy_bytes). Missing keys count zero."""
    g = counts.get
    return {
        "hypercalls": g("hypercalls", 0) * costs.hypercall_cycles,
        "notifications": g("notify_sent", 0) * costs.notify_delivery_cycles,
        "grant_ops": g("grant_maps", 0) * costs.grant_map_cycles + g("grant_unmaps", 0) * costs.grant_unmap_cycles
                     + g("grant_copies", 0) * costs.grant_copy_cycles,
        "copies": (g("copy_bytes", 0) + g("dma_copy_bytes", 0)) * costs.copy_cycles_per_byte,
        "rings": g("ring_requests", 0) * costs.ring_request_cycles,
        "exits": g("exits", 0) * costs.exit_to_device_model_cycles,
    }


EXPLORE_PATHS = ("pv", "hvm")


def io_explore(*, path: str = "pv", request_kib: int = 4, batch: int = 1, suppression: bool = True,
               n_requests: int = 128, seed: int = 0, costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, list]:
    """Run `n_requests` disk writes through one path and return per-request figures as columns.

    path 'pv': blkfront -> ring -> blkback; requests are pushed `batch` at a time and
    the backend thread, on another CPU, gets a random budget each time it runs
    (seeded), so it is sometimes still busy when the frontend pushes again.
    path 'hvm': the emulated IDE disk; `batch` and `suppression` change nothing.
    Columns: one row per metric (metric, per_request, total) plus the cycle breakdown.
    """
    from vmlab.hypervisor.domain import DiskSpec
    from vmlab.io.blkif import BLKIF_OP_WRITE, BLKIF_MAX_SEGMENTS_PER_REQUEST, SECTORS_PER_PAGE
    from vmlab.io.hotplug import attach_block, attach_emulated_disk
    from vmlab.io.system import io_system, new_io_machine

    if path not in EXPLORE_PATHS:
        raise ConfigError(f"path={path!r} must be one of {EXPLORE_PATHS}")
    pages = max(1, int(request_kib) // 4)
    if not 4 <= request_kib <= 4 * BLKIF_MAX_SEGMENTS_PER_REQUEST or request_kib % 4:
        raise ConfigError(f"request_kib={request_kib} must be a multiple of 4 from 4 to 44 (1..11 pages, "
                          "the segments one blkif request holds)")
    if not 1 <= batch <= 32:
        raise ConfigError(f"batch={batch} must be 1..32 (the blkif ring has 32 slots)")
    if n_requests < 1:
        raise ConfigError(f"n_requests={n_requests} must be at least 1")
    rng = np.random.default_rng(seed)
    hv, domid = new_io_machine(kind="hvm" if path == "hvm" else "pv")
    io = io_system(hv)
    spec = DiskSpec(backend="file", path="/OVS/running_pool/lab6/System.img", vdev="hda" if path == "hvm" else "xvda")
    buf = io.alloc_pages(domid, pages * 32)
    hv.guest_write(domid, buf)
    counts: dict[str, float] = {}
    if path == "hvm":
        dev = attach_emulated_disk(io, domid, spec)
        for i in range(n_requests):
            dev.model.submit(BLKIF_OP_WRITE, i * pages * SECTORS_PER_PAGE, buf[:pages])
        c = dev.model.counts
        # The exit round trip through the device model already includes its two ioreq
        # notifications, so they are counted but not priced again.
        counts = {"exits": c["exits"], "notify_sent": 0, "dma_copy_bytes": c["dma_copy_bytes"],
                  "hypercalls": 0, "requests": c["requests"]}
        notifications = c["notify_sent"]
        suppressed = 0
    else:
        dev = attach_block(io, domid, spec, suppress=suppression)
        front, back = dev.front, dev.back
        base = {k: v for k, v in front.counts.items()}
        bbase = {k: v for k, v in back.counts.items()}
        submitted = 0
        slot = 0
        while submitted < n_requests or front.outstanding:
            if submitted < n_requests and front.ring.free_requests() >= batch:
                k = min(batch, n_requests - submitted)
                for _ in range(k):
                    pfns = buf[(slot % 32) * pages:(slot % 32 + 1) * pages]
                    front.submit(BLKIF_OP_WRITE, submitted * pages * SECTORS_PER_PAGE, pfns, push=False)
                    submitted += 1
                    slot += 1
                front.kick()
            io.deliver_events(0)
            io.run_backends(budget=int(rng.integers(1, 2 * batch + 1)))
            io.deliver_events(domid)
        f = {k: front.counts[k] - base.get(k, 0) for k in front.counts}
        b = {k: back.counts[k] - bbase.get(k, 0) for k in back.counts}
        counts = {"hypercalls": f["hypercalls"] + b["hypercalls"], "notify_sent": f["notify_sent"] + b["notify_sent"],
                  "grant_maps": b["grant_maps"], "grant_unmaps": b["grant_unmaps"], "ring_requests": f["requests"],
                  "requests": f["requests"]}
        notifications = counts["notify_sent"]
        suppressed = f["notify_suppressed"] + b["notify_suppressed"]
    n = float(n_requests)
    br = cycles_breakdown(counts, costs)
    total_cycles = sum(br.values())
    cyc_per_req = total_cycles / n
    bytes_per_req = pages * 4096
    mb_s = bytes_per_req / (cyc_per_req / costs.cpu_hz) / 1e6 if cyc_per_req else float("inf")
    metrics = [
        ("notifications", notifications / n, notifications),
        ("notifications suppressed", suppressed / n, suppressed),
        ("hypercalls", counts.get("hypercalls", 0) / n, counts.get("hypercalls", 0)),
        ("VM exits", counts.get("exits", 0) / n, counts.get("exits", 0)),
        ("grant maps+unmaps", (counts.get("grant_maps", 0) + counts.get("grant_unmaps", 0)) / n,
         counts.get("grant_maps", 0) + counts.get("grant_unmaps", 0)),
        ("cycles", cyc_per_req, total_cycles),
        ("MB/s per CPU (overhead only)", mb_s, mb_s),
    ]
    hv_io = io_system(hv)
    hv_io.release_domain(domid)
    return {
        "metric": [m[0] for m in metrics], "per_request": [float(m[1]) for m in metrics],
        "total": [float(m[2]) for m in metrics],
        "component": list(br), "cycles_per_request": [v / n for v in br.values()],
    }


def io_compare(*, request_kib: int = 4, batch: int = 1, suppression: bool = True, n_requests: int = 128,
               seed: int = 0, costs: IoCosts = DEFAULT_IO_COSTS) -> dict[str, dict[str, list]]:
    """The same writes through the PV split driver and the emulated disk, side by side.

    Returns {'metrics': metric, pv, hvm} and {'cycles': component, pv, hvm} (cycles per request).
    """
    pv = io_explore(path="pv", request_kib=request_kib, batch=batch, suppression=suppression,
                    n_requests=n_requests, seed=seed, costs=costs)
    hvm = io_explore(path="hvm", request_kib=request_kib, batch=batch, suppression=suppression,
                     n_requests=n_requests, seed=seed, costs=costs)
    return {"metrics": {"metric": pv["metric"], "pv": pv["per_request"], "hvm": hvm["per_request"]},
            "cycles": {"component": pv["component"], "pv": pv["cycles_per_request"], "hvm": hvm["cycles_per_request"]}}
