"""What widgets (and Lab 5's plots) call: one function per view, plain column dicts.

`explore(...)` runs one migration of a standalone guest and returns plain
columns: per-round bars, the dirty set remaining over time, and the read-outs.
`compare_models(...)` puts CloudSim's and SimGrid's naive models next to vmlab's.
"""

from __future__ import annotations

from vmlab.errors import ConfigError
from vmlab.migration.baselines import BaselineResult, cloudsim_migration, simgrid_precopy
from vmlab.migration.dirtying import UniformWrites
from vmlab.migration.engine import run_migration
from vmlab.migration.image import MemoryImage, TargetImage
from vmlab.migration.link import Link
from vmlab.migration.policies import PAGE_SIZE, QemuPolicy, policy_by_name
from vmlab.migration.report import MigrationReport

__all__ = ["explore", "compare_models", "timeline", "totals", "bars", "EXPLORER_POLICIES"]

EXPLORER_POLICIES = ("xen3", "xen", "qemu", "stop-and-copy", "postcopy")


def explore(*, memory_mib: int = 1024, wws_mib: float = 64, dirty_rate_mib_s: float = 64.0,
            bandwidth_mbps: float | None = None, downtime_limit_ms: float = 300.0, policy: str = "qemu",
            auto_converge: bool = False, postcopy: bool = False, max_bandwidth_mib_s: float | None = 128.0,
            used_fraction: float | None = None, seed: int = 0, max_time_s: float = 120.0) -> dict:
    """Migrate a `memory_mib` guest that stores `dirty_rate_mib_s` over a `wws_mib` working set.

    Returns {"rounds": per-round columns, "bars": the per-round bars in MiB, "timeline":
    remaining dirty pages over time, "totals": read-outs (with "assumed": what was not given,
    each line with its source), "report": the MigrationReport}. `dirty_rate_mib_s` counts stores
    (x 4 KiB), not distinct pages: re-dirtying a page counts again. `used_fraction` and
    `bandwidth_mbps` left as None take predict_migration's stated defaults.
    """
    from vmlab.migration.predict import predict_migration
    if policy not in EXPLORER_POLICIES:
        raise ConfigError(f"policy {policy!r} is not one of {', '.join(EXPLORER_POLICIES)}")
    if not 0 < wws_mib <= memory_mib:
        raise ConfigError(f"wws_mib={wws_mib} must be > 0 and at most memory_mib={memory_mib}")
    rep = predict_migration(memory_mib=memory_mib, used_mib=None if used_fraction is None else used_fraction * memory_mib,
                            policy=policy, bandwidth_mbps=bandwidth_mbps, max_bandwidth_mib_s=max_bandwidth_mib_s,
                            downtime_limit_ms=downtime_limit_ms, auto_converge=auto_converge, postcopy=postcopy,
                            dirty_rate_mib_s=dirty_rate_mib_s, wws_mib=wws_mib, pattern="uniform", seed=seed,
                            max_time_s=max_time_s)
    return {"rounds": rep.to_columns(), "bars": bars(rep), "timeline": timeline(rep), "totals": totals(rep),
            "report": rep}


def bars(rep: MigrationReport) -> dict[str, list]:
    """One bar per round: MiB sent and MiB newly dirtied, with its label, phase, length and throttle."""
    return {"x": list(range(1, len(rep.rounds) + 1)),
            "label": [f"{r.phase[0].upper()}{r.round}" for r in rep.rounds],
            "sent_mib": [r.bytes_sent / 2**20 for r in rep.rounds],
            "dirtied_mib": [r.pages_dirtied * PAGE_SIZE / 2**20 for r in rep.rounds],
            "duration_ms": [r.duration_ms for r in rep.rounds], "phase": [r.phase for r in rep.rounds],
            "throttle_pct": [r.throttle_pct for r in rep.rounds]}


def timeline(rep: MigrationReport) -> dict[str, list]:
    """Pages still to send at each round boundary (a step line starting at all of RAM)."""
    t, left = [0.0, rep.setup_time_ms / 1000], [rep.memory_pages, rep.memory_pages]
    for r in rep.rounds:
        t.append((r.start_ms + r.duration_ms) / 1000)
        left.append(r.remaining_pages)
    return {"time_s": t, "remaining_pages": left, "remaining_mib": [p * PAGE_SIZE / 2**20 for p in left]}


def totals(rep: MigrationReport) -> dict:
    return {"status": rep.status, "policy": rep.policy, "total_time_s": rep.total_time_ms / 1000,
            "downtime_ms": rep.downtime_ms, "downtime_range_ms": rep.downtime_range_ms,
            "transferred_mib": rep.transferred_bytes / 2**20,
            "rounds": len(rep.rounds), "throttle_pct": rep.cpu_throttle_pct, "converged": rep.converged,
            "postcopy_faults": rep.postcopy_faults, "stop_reason": rep.stop_reason,
            "assumed": list(rep.assumptions) + [n for n in rep.notes if n not in rep.assumptions]}


def compare_models(memory_mib: float, bandwidth_mbps: float, *, rate_pages_s: float, wws_pages: int,
                   policy=None, seed: int = 0, used_fraction: float = 1.0) -> dict[str, list]:
    """CloudSim, SimGrid and vmlab side by side for one guest: plain columns.

    vmlab runs its engine with a uniform writer (`rate_pages_s` stores/s over
    `wws_pages`); SimGrid gets the same store rate as bytes/s (rate x 4 KiB), which
    is exactly the over-count the distinct-page model avoids.
    """
    policy = policy or QemuPolicy()
    src = MemoryImage.from_mib(memory_mib, used_fraction=used_fraction)
    rep = run_migration(src, TargetImage(src.n_pages), policy=policy, link=Link(bandwidth_mbps=bandwidth_mbps),
                        workload=UniformWrites(rate_pages_s=rate_pages_s, wws_pages=min(wws_pages, src.n_pages)),
                        seed=seed, verify=False)
    rows = [cloudsim_migration(memory_mib, bandwidth_mbps),
            simgrid_precopy(memory_mib, bandwidth_mbps, rate_pages_s * 4096 / 2**20),
            BaselineResult(model=f"vmlab ({rep.policy})", total_time_s=rep.total_time_ms / 1000,
                           downtime_ms=rep.downtime_ms, transferred_bytes=rep.transferred_bytes,
                           rounds=len(rep.rounds), converged=rep.status == "completed")]
    return {"model": [r.model for r in rows], "total_time_s": [r.total_time_s for r in rows],
            "downtime_ms": [r.downtime_ms for r in rows], "transferred_mib": [r.transferred_bytes / 2**20 for r in rows],
            "rounds": [r.rounds for r in rows], "converged": [r.converged for r in rows]}
