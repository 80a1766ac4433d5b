"""PathComparer: what one workload costs natively, under PV, HVM and binary translation.

Stacked bars of cycles by mechanism (native work, page walks, VM exits,
hypercalls, traps, callouts, translation, shadow paging, emulation, device I/O)
for the four paths; a workload picker, the cost preset, HVM's paging mode, PV's
batch size and sliders for the headline costs. Every control calls `update()`,
which makes ONE core call (`vmlab.execution.explore.path_comparison`); the
generated stream and its analysis are cached there per (workload, size, seed),
so moving a cost slider only re-costs.
"""

from __future__ import annotations

import html

import ipywidgets as W
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from vmlab.costs import PRESETS, preset
from vmlab.errors import VmlabError
from vmlab.execution import MECHANISMS, WORKLOADS
from vmlab.execution.explore import analysed_workload, costs_with, path_comparison
from vmlab.widgets._base import Explorer, error_html, legend_outside, scaled_ticks

# The costs a student most often wants to move, with slider ranges (cycles).
SLIDERS = {
    "vmexit_roundtrip_cycles": (100, 10_000),
    "hypercall_roundtrip_cycles": (100, 10_000),
    "shadow_pte_write_trap_cycles": (100, 20_000),
    "bt_pte_write_cycles": (10, 5_000),
    "bt_syscall_cycles": (50, 5_000),
    "nested_walk_ref_cycles": (1, 200),
}
DEFAULT_SIZES = {"forkwait": 60, "kernel_compile": 2, "web": 200, "database": 200, "compute": 50}


class PathComparer(Explorer):
    """Stacked bars of cycles by mechanism for native / PV / HVM / BT on one workload."""

    def __init__(self, workload_name: str = "forkwait", preset_name: str = "p4_vtx_2006", *, seed: int = 0) -> None:
        self.seed = seed
        self.workload = W.Dropdown(options=list(WORKLOADS), value=workload_name, description="workload")
        self.preset = W.Dropdown(options=list(PRESETS), value=preset_name, description="preset")
        self.paging = W.ToggleButtons(options=["shadow", "nested"], value="shadow", description="HVM paging")
        self.batch = W.IntSlider(value=32, min=1, max=256, description="PV batch")
        self.sliders = {f: W.IntSlider(value=0, min=lo, max=hi, description=f.removesuffix("_cycles") + " (cycles)",
                                       style={"description_width": "250px"}, layout=W.Layout(width="540px"),
                                       continuous_update=False)
                        for f, (lo, hi) in SLIDERS.items()}
        self.reset = W.Button(description="reset costs to preset", layout=W.Layout(width="220px"))
        self.summary = W.HTML()
        self._setting = False
        self._load_preset()
        self.source = ColumnDataSource(self.columns())
        fig = figure(x_range=list(self.source.data["path"]), height=340, width=720, toolbar_location=None,
                     title="Cycles by mechanism", y_axis_label="M cycles (millions)", x_axis_label="path")
        fig.vbar_stack(list(MECHANISMS), x="path", width=0.7, source=self.source,
                       color=list(Category10_10), legend_label=list(MECHANISMS))
        fig.add_tools(HoverTool(tooltips=[("path", "@path"), ("total", "@total_cycles{0,0}"),
                                          ("slowdown", "@slowdown{0.00}x"), ("entries", "@hypervisor_entries")]))
        legend_outside(fig)      # beside the bars, never over them; click an entry to hide it
        scaled_ticks(fig.yaxis, 1e6)
        fig.y_range.start = 0
        self.figure = fig
        for w in (self.workload, self.paging, self.batch, *self.sliders.values()):
            w.observe(lambda _: self.update(), names="value")
        self.preset.observe(lambda _: self.change_preset(), names="value")
        self.reset.on_click(lambda _: self.change_preset())
        self.update()

    # --- data -------------------------------------------------------------------------
    def costs(self):
        return costs_with(self.preset.value, {f: s.value for f, s in self.sliders.items()})

    def columns(self) -> dict[str, list]:
        name = self.workload.value
        return path_comparison(name, self.costs(), size=DEFAULT_SIZES.get(name), seed=self.seed,
                               batch=self.batch.value, paging=self.paging.value)

    # --- callbacks ----------------------------------------------------------------------
    def _load_preset(self) -> None:
        self._setting = True
        try:
            p = preset(self.preset.value)
            for f, s in self.sliders.items():
                v = int(round(getattr(p, f)))
                s.max = max(s.max, v)
                s.value = v
        finally:
            self._setting = False

    def change_preset(self) -> None:
        self._load_preset()
        self.update()

    def update(self) -> None:
        if self._setting:
            return
        try:
            cols = self.columns()
        except VmlabError as e:
            self.summary.value = error_html(e)
            return
        if hasattr(self, "source"):
            self.figure.x_range.factors = list(cols["path"])
            self.source.data = cols
        td = "<td style='padding:2px 14px; text-align:right'>"
        th = "<th style='padding:2px 14px; text-align:right; border-bottom:1px solid #999'>"
        rows = "".join(f"<tr><td style='padding:2px 14px'>{p}</td>{td}{t / 1e6:,.1f}</td>{td}{x:.2f}x</td>"
                       f"{td}{e:,}</td></tr>"
                       for p, t, x, e in zip(cols["path"], cols["total_cycles"], cols["slowdown"],
                                             cols["hypervisor_entries"]))
        name = self.workload.value
        stream = analysed_workload(name, DEFAULT_SIZES.get(name), self.seed)[0]
        self.summary.value = (f"<b>{name}</b>: {len(stream):,} operations ({html.escape(stream.description or name)})"
                              "<table style='border-collapse:collapse'><tr><th style='padding:2px 14px; "
                              f"text-align:left; border-bottom:1px solid #999'>path</th>{th}M cycles</th>"
                              f"{th}vs native</th>{th}hypervisor entries</th></tr>{rows}</table>")

    # --- display --------------------------------------------------------------------------
    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.workload, self.preset]), W.HBox([self.paging, self.batch]),
                W.VBox(list(self.sliders.values()) + [self.reset]), self.summary]
