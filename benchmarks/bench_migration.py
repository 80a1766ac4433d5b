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


def _live_pool(memory_mib: int):
    from vmlab.hardware.host import Disk, HostSpec, StorageKind
    from vmlab.hypervisor.domain import DiskSpec, DomainConfig
    from vmlab.toolstack.pool import ServerPool
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=4 * memory_mib,
                                 disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                                        Disk(name="repo0", storage=StorageKind.NFS, mount="/OVS"))))
    cfg = DomainConfig(name="vm1", memory_mib=memory_mib, disks=(DiskSpec(path="/OVS/running_pool/vm1/System.img"),))
    dom = pool.xm("ovs1").create(cfg)
    pool.server("ovs1").set_load(dom.domid, 1.0)
    return pool


def bench_live_domain_xen3_1gib():
    """target <= 2 s: `xm migrate --live` of a busy 1 GiB PV domain (Xen 3 policy), dom0 reading guest memory"""
    from vmlab.toolstack.migrate import migrate
    pool = _live_pool(1024)
    rep = migrate(pool, "vm1", "ovs2", live=True, seed=0)
    return f"{len(rep.rounds)} rounds, {rep.transferred_bytes / 2**20:.0f} MiB"


def bench_xm_save_1gib():
    """target <= 1 s: `xm save` of a 1 GiB PV domain (dom0 reads every page)"""
    import os
    import tempfile
    pool = _live_pool(1024)
    with tempfile.TemporaryDirectory() as d:
        pool.xm("ovs1").save("vm1", os.path.join(d, "vm1.save"))
    return "saved"
