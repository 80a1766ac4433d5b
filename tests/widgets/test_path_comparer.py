import pytest

from vmlab.execution import MECHANISMS, run_path, workload
from vmlab.widgets.path_comparer import PathComparer


def total(data, i):
    return sum(data[m][i] for m in MECHANISMS)


def test_bars_have_one_row_per_path_and_stack_to_the_total():
    w = PathComparer()
    d = w.source.data
    assert [p.split()[0] for p in d["path"]] == ["native", "PV", "HVM", "BT"]
    for i in range(4):
        assert total(d, i) == pytest.approx(d["total_cycles"][i])


def test_picking_a_workload_recosts_it():
    w = PathComparer()
    w.workload.value = "ptemod"
    d = w.source.data
    hvm, bt = d["total_cycles"][2], d["total_cycles"][3]
    assert bt < hvm
    w.workload.value = "syscall"
    d = w.source.data
    assert d["total_cycles"][2] < d["total_cycles"][3]


def test_nested_paging_toggle_removes_shadow_costs():
    w = PathComparer()
    before = w.source.data["shadow paging"][2]
    w.paging.value = "nested"
    assert before > 0 and w.source.data["shadow paging"][2] == 0
    assert w.source.data["path"][2] == "HVM (nested)"


def test_exit_cost_slider_moves_only_the_hvm_bar():
    w = PathComparer()
    d0 = dict(w.source.data)
    w.sliders["vmexit_roundtrip_cycles"].value = 200
    d1 = w.source.data
    assert d1["total_cycles"][2] < d0["total_cycles"][2]
    assert d1["total_cycles"][0] == d0["total_cycles"][0]
    assert w.costs().source_of("vmexit_roundtrip").confidence == "override"


def test_changing_preset_reloads_the_sliders_and_reset_restores_them():
    w = PathComparer()
    w.preset.value = "modern_kvm"
    assert w.sliders["vmexit_roundtrip_cycles"].value == 1100
    w.sliders["vmexit_roundtrip_cycles"].value = 300
    w.reset.click()
    assert w.sliders["vmexit_roundtrip_cycles"].value == 1100
    hvm = run_path(workload("forkwait", 60), "HVM", "modern_kvm", timeline=False)
    assert w.source.data["total_cycles"][2] == pytest.approx(hvm.total_cycles)


def test_widget_tree_builds_without_a_browser():
    assert len(PathComparer().widget.children) == 5
