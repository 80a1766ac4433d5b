"""RingVisualizer: an io/ring.h shared ring, one step at a time.

Controls: step slider, batch size, suppression on/off, seed. Data from ONE core
call (`vmlab.io.explore.ring_walkthrough`): the stage of every slot at the
chosen step (drawn as a ring of wedges), and the producer/consumer indices and
event thresholds over all steps, with the notifications marked.
"""

from __future__ import annotations

import html
import math

import ipywidgets as W
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

from vmlab.errors import VmlabError
from vmlab.io.explore import ring_walkthrough
from vmlab.widgets._base import Explorer, error_html, legend_outside

STAGE_COLORS = {"free": "#eeeeee", "request (private)": "#c6dbef", "request": "#6baed6", "in flight": "#fd8d3c",
                "response (private)": "#c7e9c0", "response": "#41ab5d"}


def _slot_geometry(slots: dict[str, list]) -> dict[str, list]:
    n = len(slots["slot"])
    d = dict(slots)
    # Slot 0 at the top, going clockwise, as ring diagrams are usually drawn.
    d["start"] = [math.pi / 2 - 2 * math.pi * (i + 1) / n for i in range(n)]
    d["end"] = [math.pi / 2 - 2 * math.pi * i / n for i in range(n)]
    d["color"] = [STAGE_COLORS[s] for s in slots["stage"]]
    mid = [math.pi / 2 - 2 * math.pi * (i + 0.5) / n for i in range(n)]
    d["lx"] = [1.6 * math.cos(a) for a in mid]
    d["ly"] = [1.6 * math.sin(a) for a in mid]
    d["nx"] = [0.8 * math.cos(a) for a in mid]
    d["ny"] = [0.8 * math.sin(a) for a in mid]
    d["label"] = [str(i) for i in slots["slot"]]
    # One pointer name per line, so a slot that holds all six stays inside the plot.
    d["pointer_lines"] = [p.replace(", ", "\n") for p in slots["pointers"]]
    return d


class RingVisualizer(Explorer):
    """Step through a frontend/backend conversation over an 8-slot ring."""

    def __init__(self, *, batch: int = 2, suppression: bool = True, n_requests: int = 24, seed: int = 0) -> None:
        self.n_requests = n_requests
        self.batch = W.IntSlider(value=batch, min=1, max=8, description="batch")
        self.suppression = W.Checkbox(value=suppression, description="notification suppression", indent=False,
                                      layout=W.Layout(width="auto"))
        self.seed = W.IntSlider(value=seed, min=0, max=20, description="seed")
        self.step = W.IntSlider(value=1, min=1, max=1, description="step")
        self.summary = W.HTML()
        d = self.columns()
        self.step.max = max(1, d["summary"]["steps"][0])
        self.step.value = self.step.max
        d = self.columns()
        self.slots = ColumnDataSource(_slot_geometry(d["slots"]))
        self.steps = ColumnDataSource(d["steps"])
        self.notes = ColumnDataSource(self._notifications(d["steps"]))
        self._build()
        for w in (self.batch, self.suppression, self.seed):
            w.observe(lambda _: self.update(reset=True), names="value")
        self.step.observe(lambda _: self.update(), names="value")
        self._show(d["summary"])

    def columns(self) -> dict[str, dict[str, list]]:
        return ring_walkthrough(batch=self.batch.value, suppression=self.suppression.value,
                                n_requests=self.n_requests, step=self.step.value, seed=self.seed.value)

    @staticmethod
    def _notifications(steps: dict[str, list]) -> dict[str, list]:
        idx = [i for i, n in enumerate(steps["notify"]) if n]
        sup = [i for i, n in enumerate(steps["suppressed"]) if n]
        return {"step": [steps["step"][i] for i in idx] + [steps["step"][i] for i in sup],
                "y": [steps["req_prod"][i] for i in idx] + [steps["req_prod"][i] for i in sup],
                "kind": ["notified"] * len(idx) + ["suppressed"] * len(sup),
                "color": ["#d62728"] * len(idx) + ["#999999"] * len(sup)}

    def update(self, reset: bool = False) -> None:
        try:
            if reset:
                self.step.unobserve_all("value")
                self.step.max = 10_000
                self.step.value = 10_000
                d = self.columns()
                self.step.max = max(1, d["summary"]["steps"][0])
                self.step.value = self.step.max
                self.step.observe(lambda _: self.update(), names="value")
            d = self.columns()
        except VmlabError as e:
            self.summary.value = error_html(e)
            return
        self.slots.data = _slot_geometry(d["slots"])
        self.steps.data = d["steps"]
        self.notes.data = self._notifications(d["steps"])
        self.marker.location = self.step.value
        self._show(d["summary"])

    def _show(self, s: dict) -> None:
        self.summary.value = (
            f"step {s['current_step'][0]} of {s['steps'][0]}: <b>{html.escape(s['current_action'][0])}</b>. "
            f"{s['requests'][0]} requests in {s['pushes'][0]} pushes; the frontend notified "
            f"{s['frontend_notifications'][0]} times and stayed quiet {s['suppressed'][0]} times; "
            f"{s['notifications'][0]} notifications in all.")

    def _build(self) -> None:
        r = figure(width=380, height=430, x_range=(-2.4, 2.4), y_range=(-2.4, 2.4),
                   title="ring slots (and the indices pointing at them)", toolbar_location=None)
        r.annular_wedge(x=0, y=0, inner_radius=0.55, outer_radius=1.15, start_angle="start", end_angle="end",
                        color="color", line_color="white", source=self.slots)
        for stage, colour in STAGE_COLORS.items():     # every stage in the legend, present or not
            # one point far outside the ranges: bokeh draws a legend swatch from a glyph's first point
            r.scatter(x=[99], y=[99], marker="square", size=10, color=colour, line_color="#999",
                      legend_label=stage)
        r.text(x="nx", y="ny", text="label", source=self.slots, text_align="center", text_baseline="middle",
               text_font_size="9pt")
        r.text(x="lx", y="ly", text="pointer_lines", source=self.slots, text_align="center",
               text_baseline="middle", text_font_size="7pt", text_line_height=1.0)
        r.axis.visible = False
        r.grid.visible = False
        legend_outside(r, "below", font="7pt").nrows = 2
        t = figure(width=500, height=380, title="indices over time", x_axis_label="step",
                   y_axis_label="index (free-running count of slots)", toolbar_location=None)
        for name, color, dash in (("req_prod", "#08519c", "solid"), ("req_event", "#6baed6", "dashed"),
                                  ("req_cons", "#fd8d3c", "solid"), ("rsp_prod", "#006d2c", "solid"),
                                  ("rsp_event", "#74c476", "dashed"), ("rsp_cons", "#984ea3", "solid")):
            t.step("step", name, source=self.steps, color=color, line_dash=dash, legend_label=name, mode="after")
        t.scatter("step", "y", source=self.notes, color="color", size=7, legend_field="kind")
        legend_outside(t, font="7pt")
        self.marker = Span(location=self.step.value, dimension="height", line_color="#777", line_dash="dotdash")
        t.add_layout(self.marker)
        self.figures = {"ring": r, "indices": t}
        self.layout = row(r, t)

    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.step, self.batch]), W.HBox([self.suppression, self.seed]), self.summary]

    def _bokeh(self):
        return self.layout
