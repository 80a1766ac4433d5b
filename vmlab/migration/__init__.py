"""Live migration: log-dirty, workloads, Xen / QEMU pre-copy policies, post-copy, reports.

    from vmlab.migration import MemoryImage, TargetImage, UniformWrites, QemuPolicy, run_migration
    from vmlab.migration.link import Link
    src = MemoryImage.from_mib(1024)
    rep = run_migration(src, TargetImage(src.n_pages), policy=QemuPolicy(), link=Link(),
                        workload=UniformWrites(rate_pages_s=20_000, wws_pages=16_384), seed=1)
    print(rep.info_migrate())
"""

from vmlab.migration.dirty_log import DirtyLog, install_shadow_op
from vmlab.migration.engine import link_goodput_Bps, run_migration
from vmlab.migration.faults import Fault
from vmlab.migration.image import DomainSource, DomainTarget, MemoryImage, TargetImage
from vmlab.migration.policies import (Decision, ModernXenPolicy, Policy, PostCopy, QemuPolicy, StopAndCopy,
                                      SyncStats, Xen3Policy, policy_by_name)
from vmlab.migration.report import MigrationReport, RoundRecord
from vmlab.migration.dirtying import (HotCold, Idle, SequentialScan, TraceWorkload, UniformWrites, WithGuestOS,
                                     Workload, Zipf, distinct_dirtied)
from vmlab.migration.dirty_rate import DirtyRate, calc_dirty_rate, wws_curve, wws_over_time
from vmlab.migration.baselines import cloudsim_migration, simgrid_precopy
from vmlab.migration.explore import compare_models
from vmlab.errors import MigrationFailed, MigrationRefused  # re-exported for labs
from vmlab.migration.link import Link
from vmlab.migration.predict import dirtying_workload, predict_migration

__all__ = [
    "DirtyLog", "install_shadow_op", "run_migration", "link_goodput_Bps", "Fault",
    "MemoryImage", "TargetImage", "DomainSource", "DomainTarget",
    "Decision", "Policy", "SyncStats", "Xen3Policy", "ModernXenPolicy", "QemuPolicy", "StopAndCopy", "PostCopy",
    "policy_by_name", "MigrationReport", "RoundRecord",
    "Workload", "Idle", "UniformWrites", "HotCold", "Zipf", "SequentialScan", "TraceWorkload", "WithGuestOS",
    "distinct_dirtied",
    "DirtyRate", "calc_dirty_rate", "wws_curve", "wws_over_time",
    "cloudsim_migration", "simgrid_precopy", "compare_models",
    "MigrationFailed", "MigrationRefused", "Link",
    "dirtying_workload", "predict_migration",
]
