"""TrafficExplorer: page-table traffic of PV direct, shadow and nested paging on the same work.

Controls: scenario (fork, build, switch, mmap_churn, tlb_heavy), multicall batch size
(PV only), and which counter the second bar chart shows. Plots: estimated cycles per
scheme stacked by where they go (hypercalls, exits, PTE updates, shadow syncs, walks,
faults, CR3 loads), one counter per scheme, and a timeline of cumulative cycles per event.
Data: ONE core call, `vmlab.guest.explore.compare_schemes`.
"""

from __future__ import annotations

import ipywidgets as W
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource
from bokeh.palettes import Category10
from bokeh.plotting import figure
from bokeh.transform import factor_cmap

from vmlab.guest.kernel import CYCLE_CATEGORIES
from vmlab.guest.explore import compare_schemes
from vmlab.guest.traffic import COUNTERS, SCENARIOS
from vmlab.widgets._base import Explorer, legend_outside, plain_ticks

SCHEMES = ("pv", "shadow", "nested")
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


class TrafficExplorer(Explorer):
    """Scenario + batch size -> stacked cycle bars, a counter per scheme, a cumulative timeline."""

    def __init__(self, scenario: str = "fork", *, pages: int = 256, accesses: int = 4000, seed: int = 0) -> None:
        self.pages, self.accesses, self.seed = pages, accesses, seed
        self.scenario = W.Dropdown(options=list(SCENARIOS), value=scenario, description="scenario")
        self.batch = W.SelectionSlider(options=BATCHES, value=32, description="batch size")
        self.counter = W.Dropdown(options=[c for c in COUNTERS if c != "cycles"], value="exits",
                                  description="counter")
        self.summary = W.HTML()
        d = self.columns()
        self.totals = ColumnDataSource(self._totals(d["totals"]))
        self.timeline = ColumnDataSource(self._timeline(d["timeline"]))
        self._build_figures()
        for w in (self.scenario, self.batch, self.counter):
            w.observe(lambda _: self.update(), names="value")
        self._summarize()

    def columns(self) -> dict[str, dict]:
        return compare_schemes(self.scenario.value, schemes=SCHEMES, pages=self.pages, accesses=self.accesses,
                               batch_size=self.batch.value, seed=self.seed)

    def _totals(self, t: dict) -> dict:
        out = dict(t)
        out["selected"] = list(t[self.counter.value])
        out["kcycles"] = [c / 1000 for c in t["cycles"]]
        for c in CYCLE_CATEGORIES:
            out[f"k_{c}"] = [v / 1000 for v in t[f"cycles_{c}"]]
        return out

    @staticmethod
    def _timeline(t: dict) -> dict:
        """The timeline in µs (seconds read as 3.000e-4 on an axis)."""
        return {**t, "time_us": [x * 1e6 for x in t["time_s"]]}

    def update(self) -> None:
        d = self.columns()
        self.totals.data = self._totals(d["totals"])
        self.timeline.data = self._timeline(d["timeline"])
        self.count_fig.title.text = f"{self.counter.value} per scheme"
        self._summarize()

    def _summarize(self) -> None:
        t = self.totals.data
        parts = [f"{s}: {c / 1000:,.0f} kcycles, {h} hypercalls, {e} exits, {w:,} walk refs"
                 for s, c, h, e, w in zip(t["scheme"], t["cycles"], t["hypercalls"], t["exits"], t["walk_refs"])]
        best = t["scheme"][min(range(len(t["cycles"])), key=t["cycles"].__getitem__)]
        self.summary.value = (f"<b>{self.scenario.value}</b>, batch {self.batch.value}: " + "; ".join(parts)
                              + f". Cheapest: <b>{best}</b> (estimated cycles, ILLUSTRATIVE 3 GHz clock for time).")

    def _build_figures(self) -> None:
        stack = [f"k_{c}" for c in CYCLE_CATEGORIES]
        s = figure(x_range=list(SCHEMES), height=300, width=400, title="estimated kcycles, by where they go",
                   toolbar_location=None, x_axis_label="scheme", y_axis_label="kcycles (thousands of cycles)")
        s.vbar_stack(stack, x="scheme", width=0.7, source=self.totals, color=Category10[10][:len(stack)],
                     legend_label=list(CYCLE_CATEGORIES))
        legend_outside(s, font="7pt")     # beside the bars: it used to hide the short pv bar
        plain_ticks(s.yaxis)
        c = figure(x_range=list(SCHEMES), height=300, width=260, title=f"{self.counter.value} per scheme",
                   toolbar_location=None, x_axis_label="scheme", y_axis_label="count")
        c.vbar(x="scheme", top="selected", width=0.7, source=self.totals,
               color=factor_cmap("scheme", Category10[3], list(SCHEMES)))
        plain_ticks(c.yaxis)
        t = figure(height=260, width=660, title="cumulative estimated time per event", x_axis_label="event #",
                   y_axis_label="µs (3 GHz clock, ILLUSTRATIVE)", toolbar_location=None)
        t.scatter("step", "time_us", source=self.timeline, size=6,
                  color=factor_cmap("scheme", Category10[3], list(SCHEMES)), legend_field="scheme")
        legend_outside(t)
        plain_ticks(t.yaxis, "0,0.[0]")
        self.stack_fig, self.count_fig, self.time_fig = s, c, t
        self.layout = column(row(s, c), t)   # three in a row do not fit a notebook's width

    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.scenario, self.batch, self.counter]), self.summary]

    def _bokeh(self):
        return self.layout
