"""PageWalkExplorer: the 2D page walk as a grid of guest steps x nested levels.

Rows are the guest's steps (its L4, L3, L2, L1 tables, then the data page); columns
are the nested table's levels (nL4..nL1) plus the guest entry read. Each cell shows
when that memory reference happens (1..24). Toggles: 2 MiB nested pages (the nL1
column disappears: 19), a nested TLB and a page-walk cache (with "warm": a neighbouring
page was walked first, so cached cells are skipped). A step slider replays the walk.
Data: ONE core call, `vmlab.guest.explore.walk_grid`.
"""

from __future__ import annotations

import ipywidgets as W
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

from vmlab.guest.explore import walk_grid
from vmlab.widgets._base import Explorer

ROWS = ["data", "gL1", "gL2", "gL3", "gL4"]   # bottom to top
COLS = ["nL4", "nL3", "nL2", "nL1", "guest"]
COLORS = {"nested": "#9ecae1", "guest": "#fdae6b", "cached": "#e5f5e0", "n/a": "#f0f0f0"}


class PageWalkExplorer(Explorer):
    """Toggles for large nested pages and walk caches; a slider that replays the references."""

    def __init__(self) -> None:
        box = dict(value=False, indent=False, layout=W.Layout(width="auto"))   # whole labels, never cut
        self.large = W.Checkbox(description="2 MiB nested pages", **box)
        self.nested_tlb = W.Checkbox(description="nested TLB", **box)
        self.pwc = W.Checkbox(description="page-walk cache", **box)
        self.warm = W.Checkbox(description="warm (neighbour walked first)", **box)
        self.step = W.IntSlider(value=24, min=0, max=24, description="step")
        self.summary = W.HTML()
        self.source = ColumnDataSource(self.columns())
        self._build_figure()
        for w in (self.large, self.nested_tlb, self.pwc, self.warm):
            w.observe(lambda _: self.update(), names="value")
        self.step.observe(lambda _: self.replay(), names="value")
        self._summarize()

    def columns(self) -> dict[str, list]:
        d = walk_grid(large_nested_pages=self.large.value, nested_tlb=self.nested_tlb.value,
                      pwc=self.pwc.value, warm=self.warm.value)
        step = self.step.value
        d["color"] = [COLORS[k] for k in d["kind"]]
        d["alpha"] = [1.0 if (o and o <= step) or not o else 0.25 for o in d["order"]]
        d["text"] = [lab if (not o or o <= step) else "" for lab, o in zip(d["label"], d["order"])]
        return d

    def update(self) -> None:
        d = self.columns()
        self.step.max = max(d["total"][0], 1)
        self.step.value = self.step.max       # show the whole walk after a toggle
        self.source.data = self.columns()
        self._summarize()

    def replay(self) -> None:
        self.source.data = self.columns()
        self._summarize()

    def _summarize(self) -> None:
        d = self.source.data
        total, cold = d["total"][0], d["cold_total"][0]
        self.summary.value = (f"<b>{total}</b> memory references for this walk "
                              f"(cold walk with these nested pages: {cold}; native: 4). "
                              f"Showing references 1..{min(self.step.value, total)}.")

    def _build_figure(self) -> None:
        f = figure(x_range=COLS, y_range=ROWS, height=320, width=460, toolbar_location=None,
                   title="2D page walk: guest step (rows) x nested level (columns)")
        f.rect("col", "row", 0.95, 0.95, source=self.source, fill_color="color", fill_alpha="alpha",
               line_color="#999")
        f.text("col", "row", text="text", source=self.source, text_align="center", text_baseline="middle",
               text_font_size="12pt")
        f.xaxis.axis_label = "nested level (guest = the guest's own entry read)"
        f.yaxis.axis_label = "guest step"
        self.figure = f

    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.large, self.nested_tlb]), W.HBox([self.pwc, self.warm]), self.step, self.summary]
