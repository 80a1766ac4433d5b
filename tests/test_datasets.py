"""datasets/: every file registered and unaltered, every row sourced, every trace usable by the models."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from vmlab import datasets as ds
from vmlab.errors import DatasetError, VmlabError

TABLES = list(ds.TABLE_SCHEMAS)
REQUIRED_OPERATIONS = {
    "guest_instruction", "syscall_native", "vmexit_roundtrip", "hypercall_roundtrip", "bt_translate_block",
    "bt_callout", "bt_syscall", "bt_indirect_branch", "shadow_pte_write_trap", "shadow_resync",
    "tlb_miss_native_walk_ref", "nested_walk_ref", "io_exit_to_device_model", "event_channel_notify",
    "multicall_per_entry",
}
TRACES = [d.name for d in ds.list_datasets() if d.kind == "trace"]


@pytest.fixture
def copy_of_datasets(tmp_path):
    root = tmp_path / "datasets"
    shutil.copytree(ds.DATASETS_DIR, root)
    return root


# --------------------------------------------------------------------------- registry


def test_every_registered_file_matches_its_hash():
    reg = ds.verify_registry()
    # besides the schema'd tables and traces: the real-QEMU measurements and the table fitted on them
    extra = {rel for rel in reg if rel.startswith("measurements/")} | {"tables/qemu_migration_calibrated.csv"}
    assert len(reg) == len(TABLES) + 2 * len(TRACES) + len(extra)


def test_every_dataset_file_is_registered_and_described_in_the_readme():
    reg = json.loads((ds.DATASETS_DIR / "registry.json").read_text())["files"]
    on_disk = {p.relative_to(ds.DATASETS_DIR).as_posix() for p in ds.DATASETS_DIR.rglob("*")
               if p.is_file() and p.name not in ("registry.json", "README.md")}
    assert on_disk == set(reg)
    readme = (ds.DATASETS_DIR / "README.md").read_text()
    for rel in reg:
        assert rel in readme, f"datasets/README.md does not describe {rel}"


def test_the_readmes_file_table_gives_each_files_size_and_the_total():
    import re
    readme = (ds.DATASETS_DIR / "README.md").read_text()
    listed = {m[1]: int(m[2].replace(",", "")) for m in re.finditer(r"^\| `([^`]+)` \| ([\d,]+) \|", readme, re.M)}
    assert listed, "datasets/README.md has no Files table"
    real = {rel: (ds.DATASETS_DIR / rel).stat().st_size for rel in listed}
    assert listed == real, "datasets/README.md's Files table is stale; the sizes are in bytes (wc -c)"
    total = re.search(r"^\| \*\*total\*\* \| \*\*([\d,]+)\*\* \|", readme, re.M)
    assert total and int(total[1].replace(",", "")) == sum(real.values())


def test_altered_file_is_refused_with_a_one_line_error_naming_file_rule_and_fix(copy_of_datasets):
    path = copy_of_datasets / "tables" / "exit_costs.csv"
    path.write_text(path.read_text().replace("1300,1300", "1200,1200"))
    with pytest.raises(DatasetError) as err:
        ds.load_table("exit_costs", root=copy_of_datasets)
    msg = str(err.value)
    assert "\n" not in msg
    assert "tables/exit_costs.csv" in msg and "sha256" in msg and "registry" in msg
    assert "capture_trace.py --registry" in msg
    assert isinstance(err.value, VmlabError) and isinstance(err.value, ValueError)


def test_altered_trace_is_refused(copy_of_datasets):
    name = TRACES[0]
    path = copy_of_datasets / "traces" / f"{name}.npz"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=f"traces/{name}.npz has sha256"):
        ds.load_trace(name, root=copy_of_datasets)


def test_missing_file_is_refused_with_how_to_restore_it(copy_of_datasets):
    name = TRACES[0]
    (copy_of_datasets / "traces" / f"{name}.json").unlink()
    with pytest.raises(DatasetError, match=rf"traces/{name}.json is missing.*restore"):
        ds.load_trace(name, root=copy_of_datasets)


def test_unknown_names_list_the_choices():
    with pytest.raises(DatasetError, match="choose from"):
        ds.load_table("nope")
    with pytest.raises(DatasetError, match="choose from"):
        ds.load_trace("nope")
    with pytest.raises(DatasetError, match="choose from"):
        ds.cost_preset("nope")


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("name", TABLES)
def test_table_rows_have_the_schema_types_and_a_source_and_confidence(name):
    rows = ds.load_table(name)
    assert rows
    schema = ds.TABLE_SCHEMAS[name]
    for row in rows:
        assert list(row) == list(schema)
        for col, (typ, nullable) in schema.items():
            v = row[col]
            assert (v is None and nullable) or isinstance(v, typ), (name, col, v)
        assert row["source"].strip()
        assert row["confidence"] in ds.CONFIDENCE_LEVELS


def test_values_only_remembered_are_marked_recalled():
    for row in ds.load_table("barham_2003"):
        assert row["confidence"] == "recalled"
    for row in ds.load_table("adams_agesen_2006"):
        assert row["confidence"] == "recalled"
        if row["kind"] == "nanobenchmark":
            assert row["value"] is None and row["finding"]  # no invented digits


def test_barham_figure_agrees_with_the_papers_text():
    v = {(r["benchmark"], r["system"]): r["value"] for r in ds.load_table("barham_2003")}
    assert v[("Linux build time", "xen")] / v[("Linux build time", "linux")] == pytest.approx(1.03, abs=0.01)
    assert v[("SPEC WEB99", "xen")] / v[("SPEC WEB99", "linux")] > 0.99


def test_adams_agesen_forkwait_orders_native_bt_hvm():
    fw = {r["platform"]: r["value"] for r in ds.load_table("adams_agesen_2006") if r["benchmark"] == "forkwait"}
    assert fw == {"native": 6.0, "bt": 36.9, "hvm": 106.4}


def test_exit_cost_ranges_are_ordered():
    for r in ds.load_table("exit_costs"):
        assert 0 < r["cycles_low"] <= r["cycles_high"]


def test_nested_walks_follow_n_plus_1_times_m_plus_1_minus_1():
    for r in ds.load_table("page_walk_refs"):
        n, m = r["guest_levels"], r["nested_levels"]
        expected = n if m == 0 else (n + 1) * (m + 1) - 1
        assert r["memory_refs"] == expected, r
    refs = {r["mode"]: r["memory_refs"] for r in ds.load_table("page_walk_refs")}
    assert refs == {"native": 4, "shadow": 4, "nested": 24, "nested_2mib": 19}


def test_migration_constants_match_the_source_files():
    c = {(r["system"], r["constant"]): r["value"] for r in ds.load_table("migration_constants")}
    assert c[("xen3", "DEF_MAX_ITERS")] == 29 and c[("xen3", "DEF_MAX_FACTOR")] == 3
    assert c[("xen3", "last_round_pages_threshold")] == 50
    assert c[("xen_modern", "SPP_MAX_ITERATIONS")] == 5 and c[("xen_modern", "SPP_TARGET_DIRTY_COUNT")] == 50
    assert c[("qemu", "DEFAULT_MIGRATE_SET_DOWNTIME")] == 300
    assert c[("qemu", "MAX_THROTTLE")] == 128 * 2**20 and c[("qemu_old", "max_throttle")] == 32 * 2**20
    assert c[("simgrid", "max_downtime")] == 0.03
    for row in ds.load_table("migration_constants"):
        assert row["source_file"].strip()


# --------------------------------------------------------------------------- cost presets


def test_every_cost_preset_defines_every_operation_in_cycles():
    presets = ds.list_cost_presets()
    assert presets == ["p4_vtx_2006", "modern_kvm", "xen_pv"]
    for p in presets:
        costs = ds.cost_preset(p)
        assert REQUIRED_OPERATIONS <= set(costs), (p, REQUIRED_OPERATIONS - set(costs))
        # a few rows are legitimately 0 (no TPR exit on modern VT-x, no separate PV syscall bounce)
        assert all(isinstance(v, float) and v >= 0 for v in costs.values())
        assert sum(v == 0 for v in costs.values()) <= 2
        assert costs["guest_instruction"] == 1


def test_illustrative_costs_say_why():
    for p in ds.list_cost_presets():
        for e in ds.cost_preset_entries(p).values():
            assert e.confidence in ds.CONFIDENCE_LEVELS and e.source
            if e.confidence == "illustrative":
                assert e.note, (p, e.operation)


def test_presets_keep_the_teaching_order():
    p4, kvm, pv = (ds.cost_preset(p) for p in ("p4_vtx_2006", "modern_kvm", "xen_pv"))
    assert kvm["vmexit_roundtrip"] < p4["vmexit_roundtrip"]  # exits got cheaper
    assert p4["bt_pte_write"] < p4["shadow_pte_write_trap"]  # ptemod: BT beats early HVM
    assert pv["multicall_per_entry"] < pv["hypercall_roundtrip"]  # batching amortizes the trap


# --------------------------------------------------------------------------- traces


def test_at_least_four_real_programs_are_traced():
    assert len(TRACES) >= 4


@pytest.mark.parametrize("name", TRACES)
def test_trace_metadata_records_program_input_command_and_reduction(name):
    m = ds.load_trace(name).metadata
    for key in ("program", "program_version", "input", "seed", "command", "valgrind_version", "machine",
                "captured_utc", "instructions", "reduction"):
        assert m[key] not in (None, ""), key
    assert "lackey" in m["command"]
    assert m["reduction"]["page_bytes"] == 4096


@pytest.mark.parametrize("name", TRACES)
def test_trace_loads_as_an_access_stream(name):
    t = ds.load_trace(name)
    pages, writes = ds.trace_access_stream(name)
    assert pages.dtype == np.uint64 and writes.dtype == bool and len(pages) == len(writes) > 10_000
    assert writes.any() and not writes.all()
    assert np.all(np.diff(t.time.astype(np.int64)) >= 0)  # program order
    assert np.all(pages[1:] != pages[:-1])  # consecutive same-page accesses were merged
    assert not t.pages.flags.writeable
    dense, _ = ds.trace_access_stream(name, dense=True, limit=1000)
    index = ds.trace_page_index(name)
    assert len(dense) == 1000 and np.array_equal(index[dense], pages[:1000])


@pytest.mark.parametrize("name", TRACES)
def test_trace_loads_as_a_dirtying_workload(name):
    t = ds.load_trace(name)
    wl = ds.trace_dirtying_workload(name)
    assert wl.window_instructions == 100_000
    assert len(wl.windows) == t.n_windows == math.ceil(t.instructions / wl.window_instructions)
    assert wl.dirty_counts.sum() > 0
    for w in wl.windows:
        assert w.dtype == np.int64 and np.all((w >= 0) & (w < wl.n_pages)) and np.all(np.diff(w) > 0)
    coarse = ds.trace_dirtying_workload(name, window_instructions=1_000_000)
    assert len(coarse.windows) == math.ceil(len(wl.windows) / 10)
    first = np.unique(np.concatenate(wl.windows[:10]))
    assert np.array_equal(coarse.windows[0], first)  # merging windows is a union


@pytest.mark.parametrize("name", TRACES)
def test_dirty_windows_agree_with_the_stream_where_the_stream_reaches(name):
    t = ds.load_trace(name)
    W = t.window_instructions
    covered = int(t.time[-1]) // W  # windows wholly before the stream's last record
    win = (t.time // W).astype(np.int64)
    for i in range(0, covered, max(1, covered // 20)):
        written = np.unique(t.pages[(win == i) & t.is_write])
        assert np.array_equal(written, t.dirty_window(i)), i


def test_window_must_be_a_multiple_of_the_captured_window():
    with pytest.raises(DatasetError, match="multiple of the captured 100000-instruction window"):
        ds.trace_dirtying_workload(TRACES[0], window_instructions=150_000)


def test_list_datasets_names_every_table_and_trace():
    kinds = {(d.kind, d.name) for d in ds.list_datasets()}
    assert {("table", n) for n in TABLES} <= kinds
    assert all(d.description for d in ds.list_datasets())
