import dataclasses

import pytest

from vmlab.costs import PRESETS, CostModel, missing_rows, preset
from vmlab.datasets import cost_preset_entries
from vmlab.errors import ConfigError


@pytest.mark.parametrize("name", PRESETS)
def test_every_dataset_row_of_a_preset_sets_the_matching_field(name):
    model = preset(name)
    fields = {f.name for f in dataclasses.fields(CostModel)}
    for op, entry in cost_preset_entries(name).items():
        field = op if op in fields else f"{op}_cycles"
        if field not in fields:   # a row the execution model does not use (yet)
            continue
        assert getattr(model, field) == entry.cycles
        prov = model.source_of(op)
        assert prov.source == entry.source and prov.confidence == entry.confidence


@pytest.mark.parametrize("name", PRESETS)
def test_every_cost_field_has_a_provenance_and_fallbacks_are_marked_illustrative(name):
    model = preset(name)
    fields = [f.name for f in dataclasses.fields(CostModel) if f.name.endswith("_cycles")
              or f.name in ("cr8_write_exits", "bt_adapt_threshold", "bt_tc_capacity_blocks")]
    ops = {p.operation for p in model.provenance}
    for f in fields:
        assert f.removesuffix("_cycles") in ops, f
    for op, cycles, why, conf in missing_rows(name):
        assert conf == "illustrative" and why
        assert model.source_of(op).note.startswith("ILLUSTRATIVE")


def test_presets_differ_where_the_hardware_differs():
    p4, kvm = preset("p4_vtx_2006"), preset("modern_kvm")
    assert p4.vmexit_roundtrip_cycles > kvm.vmexit_roundtrip_cycles
    assert p4.cr8_write_exits == 1 and kvm.cr8_write_exits == 0
    assert p4.clock_ghz == 3.8


def test_replace_overrides_a_value_and_marks_it():
    m = preset("p4_vtx_2006").replace(vmexit_roundtrip_cycles=500)
    assert m.vmexit_roundtrip_cycles == 500
    assert m.source_of("vmexit_roundtrip").confidence == "override"
    assert preset("p4_vtx_2006").vmexit_roundtrip_cycles == 2400  # the preset is untouched


def test_replace_with_unknown_field_names_it():
    with pytest.raises(ConfigError, match="vmexit_cycles"):
        preset("modern_kvm").replace(vmexit_cycles=1)


def test_negative_cost_is_refused():
    with pytest.raises(ConfigError, match="must be a number >= 0"):
        CostModel(vmexit_roundtrip_cycles=-1)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ConfigError, match="p4_vtx_2006"):
        preset("p3_2001")


def test_seconds_uses_the_clock():
    assert preset("p4_vtx_2006").seconds(3.8e9) == pytest.approx(1.0)


def test_all_sixteen_operations_of_the_shipped_dataset_are_read():
    from vmlab.costs import DATASET_OPERATIONS
    for name in PRESETS:
        assert set(DATASET_OPERATIONS) <= set(cost_preset_entries(name))
