"""BatchingExplorer: what the multicall batch size does to a PV guest's page-table traffic.

A batch-size slider drives four plots, all from ONE core call
(`vmlab.execution.explore.batching_explore`): cycles per PTE update against
batch size (the amortization curve, the measured points on the workload, and the
per-write cost of HVM shadow paging and of a BT callout for comparison);
hypervisor entries against batch size; what batching can remove (the entries at
each batch size, split into batched mmu_update/multicall hypercalls and the rest);
and Linux's batch_histo and flush reasons. The summary names the workload's size:
forkwait runs the same 200 units as `workload("forkwait")` in the labs' cells.
"""

from __future__ import annotations

import html

import ipywidgets as W
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

from vmlab.costs import PRESETS
from vmlab.errors import VmlabError
from vmlab.execution.explore import analysed_workload, batching_explore
from vmlab.widgets._base import Explorer, error_html, legend_outside, plain_ticks

WORKLOADS = ("forkwait", "kernel_compile", "ptemod")
# None: the workload's default size, the stream `workload(name)` gives a lab's cells (so the
# explorer and the cells count the same hypervisor entries).
SIZES = {"forkwait": None, "kernel_compile": 2, "ptemod": 20_000}


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
        self.sources["split"] = ColumnDataSource(self._split(d["sweep"]))
        self._build_figures()
        for w in (self.batch, self.workload, self.preset):
            w.observe(lambda _: self.update(), names="value")
        self._show_summary(d["summary"])

    # --- data ----------------------------------------------------------------------------
    def columns(self) -> dict[str, dict[str, list]]:
        name = self.workload.value
        return batching_explore(name, self.preset.value, self.batch.value, size=SIZES[name], seed=self.seed)

    # --- callbacks -------------------------------------------------------------------------
    @staticmethod
    def _split(sweep: dict) -> dict:
        """Entries per batch size: the batched PTE hypercalls and everything batching cannot remove."""
        calls, entries = sweep["hypercalls"], sweep["hypervisor_entries"]
        return {"batch": [str(b) for b in sweep["batch"]], "pte_calls": list(calls),
                "other": [e - c for e, c in zip(entries, calls)]}

    def update(self) -> None:
        try:
            d = self.columns()
        except VmlabError as e:
            self.summary.value = error_html(e)
            return
        for k, src in self.sources.items():
            src.data = d[k] if k != "split" else self._split(d["sweep"])
        self.figures["split"].x_range.factors = list(self.sources["split"].data["batch"])
        self.marker.location = self.batch.value
        self.entries_marker.location = self.batch.value
        self._show_summary(d["summary"])

    def _show_summary(self, s: dict) -> None:
        be = s["break_even_vs_hvm_shadow"][0]
        bt = s["break_even_vs_bt_callout"][0]
        name = self.workload.value
        stream = analysed_workload(name, SIZES[name], self.seed)[0]
        self.summary.value = (
            f"<b>{name}</b>, {len(stream):,} operations ({html.escape(stream.description or name)}); "
            f"batch {s['batch'][0]}: {s['pte_updates'][0]:,} PTE updates in {s['pte_hypercalls'][0]:,} hypercalls; "
            f"{s['hypervisor_entries'][0]:,} hypervisor entries in all; {s['total_cycles'][0]:,.0f} cycles. "
            f"Break-even batch vs an HVM shadow PTE exit: {be}; vs a BT callout: {bt if bt else 'never'}.")

    # --- display ---------------------------------------------------------------------------
    def _build_figures(self) -> None:
        c = figure(height=260, width=470, x_axis_type="log", title="cycles per PTE update",
                   x_axis_label="batch size (entries per hypercall)", y_axis_label="cycles", toolbar_location=None)
        c.line("batch", "cycles_per_update", source=self.sources["curve"], legend_label="full batches (formula)")
        c.line("batch", "hvm_shadow", source=self.sources["curve"], color="#d62728", line_dash="dashed",
               legend_label="HVM shadow exit")
        c.line("batch", "bt_callout", source=self.sources["curve"], color="#2ca02c", line_dash="dotted",
               legend_label="BT callout")
        c.scatter("batch", "cycles_per_update", source=self.sources["sweep"], size=7, color="#ff7f0e",
                  legend_label="on this workload")
        legend_outside(c, font="7pt")
        plain_ticks(c.xaxis)
        plain_ticks(c.yaxis)
        self.marker = Span(location=self.batch.value, dimension="height", line_color="#777", line_dash="dotdash")
        c.add_layout(self.marker)
        e = figure(height=260, width=360, x_axis_type="log", title="hypervisor entries",
                   x_axis_label="batch size (entries per hypercall)", y_axis_label="entries", toolbar_location=None)
        e.line("batch", "hypervisor_entries", source=self.sources["sweep"])
        e.scatter("batch", "hypervisor_entries", source=self.sources["sweep"], size=6)
        plain_ticks(e.xaxis)
        plain_ticks(e.yaxis)
        self.entries_marker = Span(location=self.batch.value, dimension="height", line_color="#777",
                                   line_dash="dotdash")
        e.add_layout(self.entries_marker)
        split = self.sources["split"]
        t = figure(height=260, width=470, x_range=list(split.data["batch"]), toolbar_location=None,
                   title="what batching can remove", x_axis_label="batch size (entries per hypercall)",
                   y_axis_label="hypervisor entries")
        t.vbar_stack(["other", "pte_calls"], x="batch", width=0.8, source=split, color=["#bbbbbb", "#1f77b4"],
                     legend_label=["other entries (faults, flushes, ...)", "mmu_update/multicall hypercalls"])
        legend_outside(t, font="7pt")
        plain_ticks(t.yaxis)
        h = figure(height=260, width=360, title="batch_histo (entries per hypercall)", toolbar_location=None,
                   x_axis_label="entries in the hypercall", y_axis_label="hypercalls")
        h.vbar(x="size", top="batches", width=0.8, source=self.sources["histogram"])
        plain_ticks(h.yaxis)
        r = figure(height=200, width=470, y_range=list(self.sources["reasons"].data["reason"]),
                   title="flush reasons", x_axis_label="flushes", toolbar_location=None)
        r.hbar(y="reason", right="count", height=0.7, source=self.sources["reasons"])
        plain_ticks(r.xaxis)
        r.xaxis.ticker.desired_num_ticks = 4      # "12,000" labels need room
        self.figures = {"curve": c, "entries": e, "split": t, "histogram": h, "reasons": r}
        self.layout = gridplot([[c, e], [t, h], [r, None]], toolbar_location=None)

    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.batch, self.workload, self.preset]), self.summary]

    def _bokeh(self):
        return self.layout
