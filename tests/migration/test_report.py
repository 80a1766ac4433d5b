from vmlab.migration import MemoryImage, QemuPolicy, TargetImage, UniformWrites, run_migration
from vmlab.migration.link import Link


def _report():
    src = MemoryImage.from_mib(64, used_fraction=0.5)
    return run_migration(src, TargetImage(src.n_pages), policy=QemuPolicy(), link=Link(),
                         workload=UniformWrites(rate_pages_s=10_000, wws_pages=2_000), seed=3)


def test_query_migrate_uses_qemu_field_names():
    q = _report().query_migrate()
    assert q["status"] == "completed"
    for key in ("total-time", "downtime", "setup-time"):
        assert isinstance(q[key], int)
    for key in ("transferred", "total", "duplicate", "normal", "normal-bytes",
                "mbps", "dirty-sync-count", "page-size", "pages-per-second", "precopy-bytes", "downtime-bytes",
                "postcopy-bytes"):
        assert key in q["ram"]
    # fill_source_migration_info: remaining and dirty-pages-rate only while not completed
    assert "remaining" not in q["ram"] and "dirty-pages-rate" not in q["ram"]
    assert q["ram"]["total"] == 64 * 2**20
    assert q["ram"]["page-size"] == 4096


def test_info_migrate_prints_hmp_lines():
    text = _report().info_migrate()
    lines = text.splitlines()
    assert lines[0] == "Migration status: completed"
    assert lines[1].startswith("total time: ") and lines[1].endswith(" ms")
    assert any(l.startswith("downtime: ") for l in lines)
    assert any(l.startswith("transferred ram: ") and l.endswith(" kbytes") for l in lines)
    assert any(l.startswith("throughput: ") and l.endswith(" mbps") for l in lines)
    assert any(l.startswith("dirty sync count: ") for l in lines)


def test_a_failed_or_cancelled_migration_reports_only_its_status():
    from vmlab.migration import Fault
    src = MemoryImage.from_mib(64)
    rep = run_migration(src, TargetImage(src.n_pages), policy=QemuPolicy(), link=Link(),
                        fault=Fault(kind="cancel", phase="precopy", round=1), seed=1)
    assert rep.query_migrate() == {"status": "cancelled"}
    assert rep.info_migrate() == "Migration status: cancelled"


def test_columns_have_one_entry_per_round():
    rep = _report()
    cols = rep.to_columns()
    assert all(len(v) == len(rep.rounds) for v in cols.values())
    assert cols["cum_bytes"][-1] == sum(r.bytes_sent for r in rep.rounds)
    assert cols["phase"][-1] == "stop-and-copy"
