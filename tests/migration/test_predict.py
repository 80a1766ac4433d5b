import numpy as np
import pytest

from vmlab.errors import ConfigError
from vmlab.migration import SequentialScan, UniformWrites, dirtying_workload, predict_migration

from vmlab.migration import defaults
from vmlab.migration.defaults import default_used_mib as _default_used

_USED_1024 = _default_used(1024, 64)   # the calibrated minimal guest + a 64 MiB working set


def test_idle_guest_on_a_fast_link_has_a_short_downtime_and_sends_zero_pages_as_duplicates():
    rep = predict_migration(memory_mib=1024, used_mib=256, bandwidth_mbps=10_000)
    assert rep.status == "completed"
    assert rep.duplicate_pages == 3 * 65_536
    # every data page once, and the guest OS's hot pages that it re-dirtied once more
    assert 65_536 < rep.normal_pages <= 65_536 + defaults.GUEST_HOT_PAGES
    assert rep.downtime_ms < 100


def test_the_guest_os_hot_pages_are_assumed_by_default_and_dropped_for_a_given_workload():
    # real QEMU's dirty-pages-rate (ram.c migration_update_rates: pages newly dirty per sync over a
    # >= 1 s period) in dlhot00 is 8,196/s while the dirtier stores 8,000/s: the guest OS re-dirties
    # pages of its own. The default prediction adds them; a caller's own workload= is taken as all.
    plain = predict_migration(memory_mib=256, dirty_rate_mib_s=0, max_bandwidth_mib_s=8)
    assert any("the guest OS re-dirties 50 hot pages" in a for a in plain.assumptions)
    assert "hot pages" in plain.summary()
    assert plain.normal_pages > 0 and plain.rounds[0].pages_dirtied > 0      # an idle guest still dirties
    own = predict_migration(memory_mib=256, workload=UniformWrites(rate_pages_s=0, wws_pages=1),
                            max_bandwidth_mib_s=8)
    assert not any("hot pages" in a for a in own.assumptions)
    assert own.rounds[0].pages_dirtied == 0


def test_rate_limit_sets_the_live_throughput():
    # every page data (used_mib=512): ~8 s at the limit, so the one window QEMU runs ahead adds ~1%
    rep = predict_migration(memory_mib=512, used_mib=512, bandwidth_mbps=10_000, max_bandwidth_mib_s=64)
    live = rep.rounds[0]
    assert live.bandwidth_mbps == pytest.approx(64 * 2**20 * 8 / 1e6, rel=0.05)


def test_a_larger_downtime_limit_switches_over_sooner():
    kw = dict(memory_mib=1024, dirty_rate_mib_s=60, wws_mib=256, bandwidth_mbps=1000, pattern="uniform")
    tight = predict_migration(downtime_limit_ms=100, **kw)
    loose = predict_migration(downtime_limit_ms=2000, **kw)
    assert loose.total_time_ms <= tight.total_time_ms or tight.status != "completed"
    assert loose.dirty_sync_count <= tight.dirty_sync_count or tight.status != "completed"


def test_dirtying_workload_patterns():
    assert isinstance(dirtying_workload(10, 64), SequentialScan)
    assert isinstance(dirtying_workload(10, 64, pattern="uniform"), UniformWrites)
    with pytest.raises(ConfigError, match="pattern"):
        dirtying_workload(10, 64, pattern="zigzag")


def test_what_predict_migration_assumes_is_stated_in_the_report_with_its_source():
    rep = predict_migration(memory_mib=1024, wws_mib=64, dirty_rate_mib_s=20)
    text = rep.summary()
    assert f"assumed: {_USED_1024:.0f} of 1024 MiB non-zero" in text   # GUEST_BASE_MIB + GUEST_PER_RAM x 1024 + 64
    assert "datasets/tables/qemu_migration_calibrated.csv" in text
    assert "assumed: a 10 Gbit/s link" in text
    assert rep.duplicate_pages >= 1024 * 256 - round(_USED_1024) * 256 - 256


def test_a_limit_above_10_gbe_gets_a_faster_default_link_not_a_silent_cap():
    rep = predict_migration(memory_mib=1024, max_bandwidth_mib_s=2000)
    assert rep.link_mbps == 25_000 and "assumed: a 25 Gbit/s link" in rep.summary()


def test_a_named_link_slower_than_the_limit_is_used_but_says_so_in_one_line():
    rep = predict_migration(memory_mib=1024, max_bandwidth_mib_s=512, bandwidth_mbps=1000)
    notes = [a for a in rep.assumptions if a.startswith("capped:")]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "512 MiB/s" in notes[0] and "112 MiB/s" in notes[0] and "bandwidth_mbps >= 4562" in notes[0]
    fine = predict_migration(memory_mib=1024, max_bandwidth_mib_s=64, bandwidth_mbps=1000)
    assert not any(a.startswith("capped:") for a in fine.assumptions)


def test_given_used_mib_and_link_leave_only_the_calibrated_costs_layout_and_guest_os_assumed():
    rep = predict_migration(memory_mib=1024, used_mib=512, bandwidth_mbps=10_000)
    assert [a.split(" ")[1] for a in rep.assumptions] == ["sender", "19.4", "the"]
    assert "dense block at the top of RAM" in rep.assumptions[1]      # 1024/64 + 3.4 MiB


def test_the_default_guest_keeps_a_dense_block_at_the_top_of_ram_and_scatters_the_rest():
    # measured in the first pass of the slow idle runs (tools/calibrate_migration.py fit_top_extra):
    # memblock allocates top-down, so struct pages (RAM/64) and the initrd end the first pass
    from vmlab.migration import MemoryImage
    from vmlab.migration.defaults import default_top_mib
    img = MemoryImage.from_mib(512, used_fraction=0.25, layout="linux", top_mib=default_top_mib(512))
    top = int(round(default_top_mib(512) * 256))
    assert top == int(round((512 / 64 + 3.4) * 256))
    assert (img.content[-top:] != 0).all()
    below = img.content[:-top] != 0
    assert below.sum() + top == 512 * 256 // 4
    assert 0.2 < below[: below.size // 2].mean() / max(below[below.size // 2:].mean(), 1e-9) < 5   # scattered


def test_the_engine_notes_a_link_cap_for_any_caller():
    from vmlab.migration import MemoryImage, QemuPolicy, TargetImage, run_migration
    from vmlab.migration.link import Link
    src = MemoryImage(4096, used_pages=1024)
    rep = run_migration(src, TargetImage(4096), policy=QemuPolicy(), link=Link(bandwidth_mbps=1000))
    assert [n for n in rep.notes if n.startswith("capped: max-bandwidth 128 MiB/s")]


def test_memory_image_refuses_an_unknown_layout_or_a_negative_top_block():
    import pytest as _pytest
    from vmlab.errors import ConfigError
    from vmlab.migration import MemoryImage
    with _pytest.raises(ConfigError, match="'linux'"):
        MemoryImage(1024, used_pages=10, layout="top")
    with _pytest.raises(ConfigError, match="top_pages=-1"):
        MemoryImage(1024, used_pages=10, layout="linux", top_pages=-1)
    img = MemoryImage(1024, used_pages=10, layout="linux", top_pages=64)   # a block larger than the data
    assert (img.content[-10:] != 0).all() and int((img.content != 0).sum()) == 10


def test_the_linux_layout_fills_the_low_part_of_ram_at_the_measured_density():
    # fit_low_density: the data below the top block fills the low part of RAM; the top half of a
    # 512 MiB guest's RAM below the top block is zero pages (idle06: 90% of it by 41% of RAM)
    from vmlab.migration import MemoryImage
    from vmlab.migration.defaults import GUEST_LOW_DENSITY, default_top_mib
    used = int(round(_default_used(512, 16) * 256))
    top = int(round(default_top_mib(512) * 256))
    img = MemoryImage(512 * 256, used_pages=used, layout="linux", top_pages=top, low_density=GUEST_LOW_DENSITY)
    data = img.content != 0
    span = int(np.ceil((used - top) / GUEST_LOW_DENSITY))
    assert data.sum() == used and data[-top:].all()
    assert data[span:-top].sum() == 0
    assert data[:span].mean() == pytest.approx(GUEST_LOW_DENSITY, abs=0.01)
    packed = MemoryImage(100, used_pages=90, layout="linux", top_pages=10, low_density=0.5)   # no room: all below
    assert int((packed.content != 0).sum()) == 90


def test_the_linux_layout_keeps_the_low_data_in_whole_2_mib_regions():
    # the target's trace (datasets/measurements/qemu_target_trace): of the 2 MiB regions of a booted guest
    # that hold any data, the median is full -- the data is spread at region, not page, granularity, which
    # is what decides how many huge pages the target faults in
    from vmlab.migration import MemoryImage
    from vmlab.migration.image import REGION_PAGES
    from vmlab import measurements as ms
    rows = [r for r in ms.load_target_trace() if r["outcome"] == "completed"]
    assert REGION_PAGES == 512 and all(r["hugepage_first_writes"] < r["ram_mib"] / 2 for r in rows)
    used, top = 20_000, 2_000
    img = MemoryImage(256 * 256, used_pages=used, layout="linux", top_pages=top, low_density=0.51)
    per_region = np.add.reduceat((img.content[:-top] != 0).astype(int), np.arange(0, 256 * 256 - top, REGION_PAGES))
    touched = per_region[per_region > 0]
    assert touched.size == -(-(used - top) // REGION_PAGES)           # as few regions as the data needs
    assert (touched == REGION_PAGES).sum() == touched.size - 1          # all full but the last one
    assert int((img.content != 0).sum()) == used and (img.content[-top:] != 0).all()


def test_memory_image_refuses_a_low_density_outside_0_1():
    from vmlab.errors import ConfigError
    from vmlab.migration import MemoryImage
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ConfigError, match=f"low_density={bad}"):
            MemoryImage(1024, used_pages=10, layout="linux", top_pages=4, low_density=bad)
