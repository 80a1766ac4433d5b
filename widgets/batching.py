"""BatchingExplorer: what the multicall batch size does to a PV guest's page-table traffic.

A batch-size slider drives four plots, all from ONE core call
(`vmlab.execution.explore.batching_explore`): cycles per PTE update against
batch size (the amortization curve, the measured points on the workload, and the
per-write cost of HVM shadow paging and of a BT callout for comparison);
hypervisor entries against batch size; the timeline of entries at the chosen
size; and Linux's batch_histo and flush reasons.
"""

from __future__ import annotations

import ipywidgets as W
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

from vmlab.costs import PRESETS
from vmlab.errors import VmlabError
from vmlab.execution.explore import batching_explore
from vmlab.widgets._base import Explorer, error_html

WORKLOADS = ("forkwait", "kernel_compile", "ptemod")
SIZES = {"forkwait": 100, "kernel_compile": 2, "ptemod": 20_000}


class BatchingExplorer(Explorer):
    """Batch-size slider -> amortization curve, entries, timeline, batch histogram, flush reasons."""

    def __init__(self, workload_name: str = "forkwait", preset_name: str = "p4_vtx_2006", *, seed: int = 0) -> None:
        self.seed = seed
        self.batch = W.IntSlider(value=32, min=1, max=256, description="batch size")
        self.workload = W.Dropdown(options=list(WORKLOADS), value=workload_name, description="workload")
        self.preset = W.Dropdown(options=list(PRESETS), value=preset_name, description="preset")
        self.summary = W.HTML()
        d = self.columns()
        self.sources = {k: ColumnDataSource(v) for k, v in d.items() if k != "summary"}
        self._build_figures()
        for w in (self.batch, self.workload, self.preset):
            w.observe(lambda _: self.update(), names="value")
        self._show_summary(d["summary"])

    # --- data ----------------------------------------------------------------------------
    def columns(self) -> dict[str, dict[str, list]]:
        name = self.workload.value
        return batching_explore(name, self.preset.value, self.batch.value, size=SIZES[name], seed=self.seed)

    # --- callbacks -------------------------------------------------------------------------
    def update(self) -> None:
        try:
            d = self.columns()
        except VmlabError as e:
            self.summary.value = error_html(e)
            return
        for k, src in self.sources.items():
            src.data = d[k]
        self.marker.location = self.batch.value
        self.entries_marker.location = self.batch.value
        self._show_summary(d["summary"])

    def _show_summary(self, s: dict) -> None:
        be = s["break_even_vs_hvm_shadow"][0]
        bt = s["break_even_vs_bt_callout"][0]
        self.summary.value = (
            f"batch {s['batch'][0]}: {s['pte_updates'][0]:,} PTE updates in {s['pte_hypercalls'][0]:,} hypercalls; "
            f"{s['hypervisor_entries'][0]:,} hypervisor entries in all; {s['total_cycles'][0]:,.0f} cycles. "
            f"Break-even batch vs an HVM shadow PTE exit: {be}; vs a BT callout: {bt if bt else 'never'}.")

    # --- display ---------------------------------------------------------------------------
    def _build_figures(self) -> None:
        c = figure(height=260, width=360, x_axis_type="log", title="cycles per PTE update",
                   x_axis_label="batch size", toolbar_location=None)
        c.line("batch", "cycles_per_update", source=self.sources["curve"], legend_label="full batches (formula)")
        c.line("batch", "hvm_shadow", source=self.sources["curve"], color="#d62728", line_dash="dashed",
               legend_label="HVM shadow exit")
        c.line("batch", "bt_callout", source=self.sources["curve"], color="#2ca02c", line_dash="dotted",
               legend_label="BT callout")
        c.scatter("batch", "cycles_per_update", source=self.sources["sweep"], size=7, color="#ff7f0e",
                  legend_label="on this workload")
        c.legend.label_text_font_size = "7pt"
        self.marker = Span(location=self.batch.value, dimension="height", line_color="#777", line_dash="dotdash")
        c.add_layout(self.marker)
        e = figure(height=260, width=360, x_axis_type="log", title="hypervisor entries", x_axis_label="batch size",
                   toolbar_location=None)
        e.line("batch", "hypervisor_entries", source=self.sources["sweep"])
        e.scatter("batch", "hypervisor_entries", source=self.sources["sweep"], size=6)
        self.entries_marker = Span(location=self.batch.value, dimension="height", line_color="#777",
                                   line_dash="dotdash")
        e.add_layout(self.entries_marker)
        t = figure(height=220, width=360, title="timeline of hypervisor entries", x_axis_label="time (ms)",
                   y_axis_label="op index", toolbar_location=None)
        t.scatter("time_ms", "index", source=self.sources["timeline"], size=2, alpha=0.5)
        h = figure(height=220, width=360, title="batch_histo (entries per hypercall)", toolbar_location=None)
        h.vbar(x="size", top="batches", width=0.8, source=self.sources["histogram"])
        r = figure(height=180, width=360, y_range=list(self.sources["reasons"].data["reason"]),
                   title="flush reasons", toolbar_location=None)
        r.hbar(y="reason", right="count", height=0.7, source=self.sources["reasons"])
        self.figures = {"curve": c, "entries": e, "timeline": t, "histogram": h, "reasons": r}
        self.layout = gridplot([[c, e], [t, h], [r, None]])

    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.batch, self.workload, self.preset]), self.summary]

    def _bokeh(self):
        return self.layout
