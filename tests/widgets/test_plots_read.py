"""Plots that read as a student sees them: units on every axis, plain tick labels, legends beside.

Issue 12 item 6 found these in a browser; they are checked here on the bokeh models, without one.
"""

import pytest
from bokeh.models import CategoricalAxis, CustomJSTickFormatter, Line, NumeralTickFormatter, Step

from helpers import make_xm
from vmlab.execution import workload
from vmlab.widgets._base import legend_outside, plain_ticks, scaled_ticks


def figures_of(w):
    return list(getattr(w, "figures", {}).values()) or [getattr(w, "figure")]


def numeric_axes(fig):
    return [a for a in (*fig.xaxis, *fig.yaxis) if a.visible and not isinstance(a, CategoricalAxis)]


def explorers():
    from vmlab.widgets.batching import BatchingExplorer
    from vmlab.widgets.io_explorer import IoExplorer
    from vmlab.widgets.migration import MigrationExplorer
    from vmlab.widgets.path_comparer import PathComparer
    from vmlab.widgets.pt_traffic import TrafficExplorer
    from vmlab.widgets.ring import RingVisualizer
    t = TrafficExplorer()
    t.figures = {"stack": t.stack_fig, "count": t.count_fig, "time": t.time_fig}
    m = MigrationExplorer(memory_mib=256)
    m.figures = {"bars": m.figure.children[0], "line": m.figure.children[1]}
    return {"batching": BatchingExplorer(), "io": IoExplorer(), "migration": m, "path": PathComparer(),
            "traffic": t, "ring": RingVisualizer()}


@pytest.fixture(scope="module")
def all_explorers():
    return explorers()


def test_helpers_put_the_legend_beside_the_plot_and_format_ticks_plainly():
    from bokeh.plotting import figure
    f = figure()
    f.line([1, 2], [1e6, 2e6], legend_label="a")
    leg = legend_outside(f)
    assert leg in f.right and leg not in f.center and leg.click_policy == "hide"
    plain_ticks(f.yaxis)
    assert isinstance(f.yaxis[0].formatter, NumeralTickFormatter) and f.yaxis[0].formatter.format == "0,0"
    assert f.yaxis[0].ticker.min_interval == 1       # whole numbers: no "1, 1, 2, 2" on a count of 3
    scaled_ticks(f.yaxis, 1e6)
    assert "1000000" in f.yaxis[0].formatter.code


def test_every_numeric_axis_of_every_explorer_names_its_unit(all_explorers):
    for name, w in all_explorers.items():
        for fig in figures_of(w):
            for axis in numeric_axes(fig):
                assert axis.axis_label, f"{name}: '{fig.title.text}' has an unlabelled axis"


def test_no_legend_sits_over_the_data(all_explorers):
    for name, w in all_explorers.items():
        for fig in figures_of(w):
            for leg in fig.legend:
                assert leg not in fig.center, f"{name}: the legend of '{fig.title.text}' is inside the plot"


def test_traffic_timeline_reads_in_microseconds_and_its_legend_does_not_hide_the_pv_bar(all_explorers):
    t = all_explorers["traffic"]
    d = t.timeline.data
    assert d["time_us"] == pytest.approx([s * 1e6 for s in d["time_s"]])
    assert "µs" in t.time_fig.yaxis[0].axis_label
    assert isinstance(t.time_fig.yaxis[0].formatter, NumeralTickFormatter)
    assert t.stack_fig.legend[0] in t.stack_fig.right


def test_path_comparer_counts_millions_of_cycles_with_readable_headers_and_whole_button_labels(all_explorers):
    pc = all_explorers["path"]
    axis = pc.figure.yaxis[0]
    assert isinstance(axis.formatter, CustomJSTickFormatter) and "M cycles" in axis.axis_label
    assert pc.figure.legend[0] in pc.figure.right
    assert "padding" in pc.summary.value and "<th" in pc.summary.value
    assert pc.reset.layout.width == "220px"
    assert "60 units" in pc.summary.value          # the comparer states its workload's size


def test_batching_explorer_runs_the_cells_forkwait_and_says_so(all_explorers):
    from vmlab.costs import preset
    from vmlab.execution.pv import run_pv
    b = all_explorers["batching"]
    cells = run_pv(workload("forkwait"), preset("p4_vtx_2006"), batch=32, timeline=False)
    assert f"{cells.hypervisor_entries:,} hypervisor entries" in b.summary.value
    assert "200 units" in b.summary.value


def test_batching_explorer_plots_what_batching_can_remove_instead_of_a_timeline(all_explorers):
    b = all_explorers["batching"]
    assert "timeline" not in b.figures
    split, sweep = b.sources["split"].data, b.sources["sweep"].data
    assert [o + c for o, c in zip(split["other"], split["pte_calls"])] == sweep["hypervisor_entries"]
    assert len(set(split["other"])) == 1          # batching removes only the batched hypercalls
    b.batch.value = 24                            # a size outside the sweep joins the x axis
    assert "24" in b.figures["split"].x_range.factors
    for fig in (b.figures["curve"], b.figures["entries"]):
        assert isinstance(fig.xaxis[0].formatter, NumeralTickFormatter)   # 1, 10, 100 (not 10^0)


def test_migration_line_falls_within_a_round_and_the_legend_names_stop_and_copy(all_explorers):
    m = all_explorers["migration"]
    line = m.figures["line"]
    glyphs = [r.glyph for r in line.renderers]
    assert any(isinstance(g, Line) for g in glyphs) and not any(isinstance(g, Step) for g in glyphs)
    t = m.timeline.data
    # Round 1 of the default guest: the amount still to send falls during the round (a straight
    # line between its start and its end), it is not flat until the round ends.
    assert t["remaining_mib"][2] < t["remaining_mib"][1]
    assert m.round_ends.data["time_s"] == t["time_s"][2:]
    bars = m.figures["bars"]
    fields = [getattr(item.label, "field", None) for leg in bars.legend for item in leg.items]
    assert "phase" in fields and "stop-and-copy" in m.rounds.data["phase"]
    assert m.bandwidth.readout_format == ",.0f"   # "1,000", never "1.00e+3"


def test_qemu_stop_reason_compares_exact_pages():
    from vmlab.widgets.migration import MigrationExplorer
    m = MigrationExplorer(memory_mib=1024)
    reason = m.totals["stop_reason"]
    pending, threshold = reason.split(" < threshold ")
    p = int(pending.split()[1].replace(",", ""))
    t = float(threshold.split()[0].replace(",", ""))
    assert p < t and "pages" in pending and "pages" in threshold


def test_ring_pointer_labels_are_one_per_line(all_explorers):
    r = all_explorers["ring"]
    d = r.slots.data
    assert all(p.count(", ") == lines.count("\n") for p, lines in zip(d["pointers"], d["pointer_lines"]))
    assert max(abs(y) for y in d["ly"]) < r.figures["ring"].y_range.end - 0.5
    from vmlab.widgets.ring import STAGE_COLORS
    labels = [item.label.value for item in r.figures["ring"].legend[0].items]
    assert labels == list(STAGE_COLORS)           # every colour explained, whatever the step shows


def test_io_breakdown_toggle_labels_are_not_cut(all_explorers):
    io = all_explorers["io"]
    assert io.path.style.button_width == "auto"
    assert io.suppression.layout.width == "auto" and not io.suppression.indent
    io.path.value = "hvm"
    assert io.figures["cycles"].title.text.endswith("(HVM)")


def test_page_walk_explorer_opens_on_the_cold_walk():
    from vmlab.widgets.pagewalk import PageWalkExplorer
    w = PageWalkExplorer()
    assert (w.large.value, w.nested_tlb.value, w.pwc.value, w.warm.value) == (False, False, False, False)
    assert w.source.data["total"][0] == 24 and w.step.value == 24
    assert w.warm.layout.width == "auto" and not w.warm.indent      # "warm (neighbour walked first)" whole


def test_dashboard_legend_is_beside_the_memory_map():
    from vmlab.widgets.dashboard import DomainDashboard
    d = DomainDashboard(make_xm(memory_mib=1024), rows=16)
    assert d.figure.legend[0] in d.figure.right
