"""One call to predict a migration from the numbers an operator knows.

    predict_migration(memory_mib=4096, used_mib=1024, dirty_rate_mib_s=100, wws_mib=256,
                      bandwidth_mbps=10_000)            # QEMU defaults: 300 ms, 128 MiB/s

`dirty_rate_mib_s` is how fast the guest stores to pages (page-granular writes
x 4 KiB per second); `wws_mib` is the region it writes in; `pattern` says how:
"sequential" (a loop walking its buffer, like most dirtying benchmarks) or
"uniform" (random pages). The report carries query-migrate's fields.
"""

from __future__ import annotations

from vmlab.errors import ConfigError
from vmlab.migration.engine import run_migration
from vmlab.migration.faults import Fault
from vmlab.migration.image import MemoryImage, TargetImage
from vmlab.migration.link import Link
from vmlab.migration.policies import PAGE_SIZE, Policy, policy_by_name
from vmlab.migration.report import MigrationReport
from vmlab.migration.dirtying import Idle, SequentialScan, UniformWrites, Workload

__all__ = ["predict_migration", "dirtying_workload"]


def dirtying_workload(dirty_rate_mib_s: float, wws_mib: float, *, pattern: str = "sequential",
                      offset_pages: int = 0) -> Workload:
    """A guest storing `dirty_rate_mib_s` (x 4 KiB pages) into a `wws_mib` region."""
    if dirty_rate_mib_s < 0 or wws_mib < 0:
        raise ConfigError(f"dirty_rate_mib_s={dirty_rate_mib_s} and wws_mib={wws_mib} must be >= 0")
    if dirty_rate_mib_s == 0 or wws_mib == 0:
        return Idle()
    rate = dirty_rate_mib_s * 2**20 / PAGE_SIZE
    pages = max(1, int(round(wws_mib * 2**20 / PAGE_SIZE)))
    if pattern == "sequential":
        return SequentialScan(rate_pages_s=rate, region_pages=pages, offset=offset_pages)
    if pattern == "uniform":
        return UniformWrites(rate_pages_s=rate, wws_pages=pages, offset=offset_pages)
    raise ConfigError(f"pattern={pattern!r} is not 'sequential' or 'uniform'")


def predict_migration(*, memory_mib: float, used_mib: float | None = None, policy: str | Policy = "qemu",
                      bandwidth_mbps: float = 1000.0, latency_ms: float = 0.1,
                      max_bandwidth_mib_s: float | None = 128.0, downtime_limit_ms: float = 300.0,
                      auto_converge: bool = False, postcopy: bool = False, dirty_rate_mib_s: float = 0.0,
                      wws_mib: float = 0.0, pattern: str = "sequential", workload: Workload | None = None,
                      seed: int = 0, max_time_s: float = 600.0, fault: Fault | None = None) -> MigrationReport:
    """Predict one migration of a standalone guest; returns the MigrationReport.

    QEMU knobs (max_bandwidth_mib_s, downtime_limit_ms, auto_converge, postcopy)
    apply when policy is "qemu"; `used_mib` (default: all) is the RAM holding
    data, the rest being zero pages.
    """
    if isinstance(policy, str):
        kw = {}
        if policy == "qemu":
            kw = dict(max_bandwidth_mib_s=max_bandwidth_mib_s, downtime_limit_ms=downtime_limit_ms,
                      auto_converge=auto_converge, postcopy=postcopy)
        pol = policy_by_name(policy, **kw)
    else:
        pol = policy
    used_fraction = 1.0 if used_mib is None else min(1.0, max(0.0, used_mib / memory_mib))
    src = MemoryImage.from_mib(memory_mib, used_fraction=used_fraction)
    wl = workload if workload is not None else dirtying_workload(dirty_rate_mib_s, min(wws_mib, memory_mib),
                                                                   pattern=pattern)
    return run_migration(src, TargetImage(src.n_pages), policy=pol,
                         link=Link(bandwidth_mbps=bandwidth_mbps, latency_ms=latency_ms), workload=wl, seed=seed,
                         max_time_s=max_time_s, fault=fault, verify=False)
