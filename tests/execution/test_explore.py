import pytest

from vmlab.costs import preset
from vmlab.execution import MECHANISMS, compare_paths, workload
from vmlab.execution.explore import (analysed_workload, batching_explore, comparison_columns, costs_with,
                                     path_comparison, per_update_cycles)


def test_path_comparison_is_compare_paths_as_columns():
    cols = path_comparison("forkwait", "p4_vtx_2006", size=5)
    direct = comparison_columns(compare_paths(workload("forkwait", 5), "p4_vtx_2006", timeline=False))
    assert cols == direct
    for i in range(len(cols["path"])):
        assert sum(cols[m][i] for m in MECHANISMS) == pytest.approx(cols["total_cycles"][i])


def test_the_workload_and_its_analysis_are_generated_once():
    assert analysed_workload("forkwait", 5, 0) is analysed_workload("forkwait", 5, 0)


def test_costs_with_keeps_only_the_fields_that_moved():
    base = preset("p4_vtx_2006")
    same = costs_with("p4_vtx_2006", {"vmexit_roundtrip_cycles": base.vmexit_roundtrip_cycles})
    assert same.source_of("vmexit_roundtrip").confidence != "override"
    moved = costs_with("p4_vtx_2006", {"vmexit_roundtrip_cycles": 200})
    assert moved.vmexit_roundtrip_cycles == 200 and moved.source_of("vmexit_roundtrip").confidence == "override"


def test_batching_explore_sweeps_batch_sizes_and_the_formula_amortizes_the_trap():
    d = batching_explore("ptemod", "p4_vtx_2006", 16, size=2_000)
    assert 16 in d["sweep"]["batch"] and d["summary"]["batch"] == [16]
    c = preset("p4_vtx_2006")
    assert per_update_cycles(c, 1) - per_update_cycles(c, 2) == pytest.approx(c.hypercall_roundtrip_cycles / 2)
