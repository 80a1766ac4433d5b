"""`xm migrate` (vmlab.toolstack.migrate): xend's stages around the engine, and what it prints.

Golden outputs, checked to the byte: a QEMU policy prints HMP's `info migrate`
(monitor/hmp-cmds.c hmp_info_migrate), the Xen policies print the rounds that
xc_domain_save logs to xend.log (xen3: tools/libxc/xc_domain_save.c; xen:
xg_sr_save.c simple_precopy_policy), stop-and-copy is one round with the guest paused.
Every run is seeded (seed=0), so these texts change only when the model does.
"""

import pytest

from vmlab.errors import MigrationError
from vmlab.hardware.host import Disk, HostSpec, StorageKind
from vmlab.hypervisor.domain import DiskSpec, DomainConfig, VifSpec
from vmlab.migration import QemuPolicy, StopAndCopy, Xen3Policy
from vmlab.toolstack.commands import VERBS, run_xm
from vmlab.toolstack.migrate import default_policy, migrate
from vmlab.toolstack.pool import ServerPool


def _pool_with_busy_guest() -> ServerPool:
    pool = ServerPool()
    for n in ("ovs1", "ovs2"):
        pool.add_server(HostSpec(name=n, memory_mib=2048,
                                 disks=(Disk(name="sda", storage=StorageKind.LOCAL, mount="/"),
                                        Disk(name="repo0", storage=StorageKind.NFS, mount="/OVS"))))
    cfg = DomainConfig(name="vm1", memory_mib=128, disks=(DiskSpec(path="/OVS/running_pool/vm1/System.img"),),
                       vifs=(VifSpec(),))
    dom = pool.xm("ovs1").create(cfg)
    pool.server("ovs1").set_load(dom.domid, 1.0)
    return pool


INFO_MIGRATE_QEMU = """\
Migration status: completed
total time: 117 ms
downtime: 6 ms
setup: 1 ms
transferred ram: 11498 kbytes
throughput: 818.11 mbps
remaining ram: 0 kbytes
total ram: 131072 kbytes
duplicate: 30529 pages
skipped: 0 pages
normal: 2802 pages
normal bytes: 11208 kbytes
dirty sync count: 4
page size: 4 kbytes
multifd bytes: 0 kbytes
pages-per-second: 286716
precopy ram: 11097 kbytes
downtime ram: 400 kbytes"""
# (issue 13: the QEMU numbers follow the calibrated mechanisms -- setup 1 ms, sender ceiling, the
# windowed rate limiter, a 1 ms bitmap sync, the unthrottled final copy whose first pages the sockets
# take, at the measured target's pace past them, behind what the target has not placed of the live
# phase; the ram counters count page records only, as ram.c ram_transferred_add does: 2802 x 4104 + 30529 x 9
# bytes = 11498 kbytes, the measured 111.4 KiB of device state is in the throughput; the Xen goldens are unchanged)

# Xen 3 scans each pass in xc_domain_save's permute() order (not pfn order), so the working set's
# re-dirtied pages are met all through round 1 and more of them are skipped than in pfn order.
XEND_LOG_XEN3 = """\
xend.log (rounds):
round phase          start ms       ms     sent skipped  dirtied     left  Mbit/s thr%
    1 precopy            50.4   1077.5    30891    1877     3102     3102   941.3    0
    2 precopy          1127.8    105.1     3008      94      476      476   939.4    0
    3 precopy          1233.0     16.8      476       0       72       72   928.5    0
    4 precopy          1249.8      2.7       72       0        8        8   862.1    0
    5 precopy          1252.5      0.5        8       0        4        4   514.8    0
    6 stop-and-copy    1253.0      5.4        4       0        0        0    48.8    0
xen3: completed in 1.26 s, downtime 5.4 ms, 6 rounds, 134.9 MiB sent (1.05 x RAM)"""

XEND_LOG_XEN = """\
xend.log (rounds):
round phase          start ms       ms     sent skipped  dirtied     left  Mbit/s thr%
    1 precopy            50.4   1142.9    32768       0     3140     3140   941.3    0
    2 precopy          1193.3    109.7     3140       0      536      536   939.5    0
    3 precopy          1303.0     18.9      536       0       83       83   930.0    0
    4 precopy          1321.9      3.1       83       0       16       16   871.8    0
    5 precopy          1325.1      0.8       16       0        4        4   665.6    0
    6 stop-and-copy    1325.9      5.4        4       0        0        0    48.8    0
xen: completed in 1.33 s, downtime 5.4 ms, 6 rounds, 143.1 MiB sent (1.12 x RAM)"""

XEND_LOG_STOP_AND_COPY = """\
xend.log (rounds):
round phase          start ms       ms     sent skipped  dirtied     left  Mbit/s thr%
    1 stop-and-copy      50.4   1147.9    32768       0        0        0   937.3    0
stop-and-copy: completed in 1.20 s, downtime 1147.9 ms, 1 rounds, 128.3 MiB sent (1.00 x RAM)"""


def test_qemu_policy_prints_hmp_info_migrate_exactly():
    assert run_xm(_pool_with_busy_guest(), "migrate -l vm1 ovs2 --policy qemu") == INFO_MIGRATE_QEMU


def test_xen3_live_migration_prints_xc_domain_save_rounds_to_xend_log_exactly():
    # -l without --policy: xend's default, Xen 3's pre-copy (5 live rounds, then < 50 pages left)
    assert run_xm(_pool_with_busy_guest(), "migrate -l vm1 ovs2") == XEND_LOG_XEN3


def test_modern_xen_policy_prints_its_rounds_exactly():
    assert run_xm(_pool_with_busy_guest(), "migrate -l vm1 ovs2 --policy xen") == XEND_LOG_XEN


def test_migration_without_l_is_one_stop_and_copy_round_exactly():
    assert run_xm(_pool_with_busy_guest(), "migrate vm1 ovs2") == XEND_LOG_STOP_AND_COPY


def test_migrate_is_an_ordinary_row_of_the_command_table():
    run, help_, _ = VERBS["migrate"]
    assert callable(run) and "Migrate" in help_


def test_xend_chooses_the_policy_once_xen3_with_l_and_stop_and_copy_without():
    assert isinstance(default_policy(None, live=True), Xen3Policy)
    assert isinstance(default_policy(None, live=False), StopAndCopy)
    assert isinstance(default_policy(QemuPolicy(), live=False), StopAndCopy)  # a live policy needs -l
    assert default_policy("qemu", live=True).name == "qemu"


def test_round_observer_attached_to_the_pool_sees_every_round_while_it_runs():
    pool = _pool_with_busy_guest()
    seen = []
    pool.round_observer = seen.append
    rep = migrate(pool, "vm1", "ovs2")
    assert seen == list(rep.rounds) and len(seen) == 6


def test_run_xm_progress_is_attached_for_one_command_only():
    pool = _pool_with_busy_guest()
    seen = []
    run_xm(pool, "migrate -l vm1 ovs2", progress=seen.append)
    assert [r.round for r in seen] == [1, 2, 3, 4, 5, 6] and pool.round_observer is None


def test_a_domid_is_refused_because_domids_are_per_server():
    with pytest.raises(MigrationError, match="name the guest"):
        migrate(_pool_with_busy_guest(), "1", "ovs2")
