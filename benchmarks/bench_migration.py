"""Live-migration benchmarks (issue 6)."""

from vmlab.migration import MemoryImage, QemuPolicy, TargetImage, UniformWrites, Xen3Policy, run_migration
from vmlab.migration.explore import explore
from vmlab.migration.link import Link


def bench_precopy_64gib_30_rounds():
    """target <= 1 s: Xen 3 pre-copy of a 64 GiB guest (16.7 M pages), busy 4 GiB working set, 30 rounds"""
    src = MemoryImage(1 << 24)
    rep = run_migration(src, TargetImage(src.n_pages), policy=Xen3Policy(), link=Link(bandwidth_mbps=10_000),
                        workload=UniformWrites(rate_pages_s=300_000, wws_pages=1 << 20), seed=1, verify=False)
    return f"{len(rep.rounds)} rounds, {rep.transferred_bytes / 2**30:.1f} GiB, simulated {rep.total_time_ms / 1000:.1f} s"


def bench_precopy_64gib_qemu():
    """target <= 1 s: QEMU pre-copy of a 64 GiB guest, half zero pages, 256 MiB working set at 80 MiB/s, 10 GbE"""
    src = MemoryImage(1 << 24, used_pages=1 << 23)
    rep = run_migration(src, TargetImage(src.n_pages), policy=QemuPolicy(), link=Link(bandwidth_mbps=10_000),
                        workload=UniformWrites(rate_pages_s=20_000, wws_pages=1 << 16), seed=1, verify=False)
    return f"{len(rep.rounds)} rounds, simulated {rep.total_time_ms / 1000:.1f} s"


def bench_explorer_update_default():
    """target <= 50 ms: one migration-explorer update at default size (1 GiB, QEMU)"""
    out = explore()
    return f"{out['totals']['rounds']} rounds"
