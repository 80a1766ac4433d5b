"""IoExplorer: request size, batching and suppression against PV split drivers and emulation.

Controls: request size (KiB, one segment per 4 KiB page), batch (requests per
push), notification suppression, and which path the cycle breakdown shows. Data
from ONE core call (`vmlab.io.explore.io_compare`): per-request notifications,
hypercalls, VM exits, grant operations, cycles and the throughput one CPU's
overhead would allow, for the PV path and the emulated IDE path side by side.
"""

from __future__ import annotations

import ipywidgets as W
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, FactorRange
from bokeh.plotting import figure

from vmlab.errors import VmlabError
from vmlab.io.explore import io_compare
from vmlab.widgets._base import Explorer, error_html, plain_ticks

COUNT_METRICS = ("notifications", "hypercalls", "VM exits", "grant maps+unmaps")


def _bars(metrics: dict[str, list]) -> dict[str, list]:
    x, value, color = [], [], []
    for m, pv, hvm in zip(metrics["metric"], metrics["pv"], metrics["hvm"]):
        if m in COUNT_METRICS:
            x += [(m, "PV"), (m, "HVM")]
            value += [pv, hvm]
            color += ["#1f77b4", "#d62728"]
    return {"x": x, "value": value, "color": color}


def _cycles(cycles: dict[str, list], path: str) -> dict[str, list]:
    return {"component": list(cycles["component"]), "cycles": list(cycles[path])}


class IoExplorer(Explorer):
    """Throughput and notifications, PV vs emulated."""

    def __init__(self, *, request_kib: int = 4, batch: int = 1, suppression: bool = True, n_requests: int = 64,
                 seed: int = 0) -> None:
        self.n_requests = n_requests
        self.seed = seed
        self.request_kib = W.SelectionSlider(options=[4 * k for k in range(1, 12)], value=request_kib,
                                             description="request KiB")
        self.batch = W.IntSlider(value=batch, min=1, max=32, description="batch")
        self.suppression = W.Checkbox(value=suppression, description="notification suppression", indent=False,
                                      layout=W.Layout(width="auto"))
        self.path = W.ToggleButtons(options=[("PV (blkfront/blkback)", "pv"), ("HVM (emulated IDE)", "hvm")],
                                    value="pv", description="breakdown",
                                    style={"button_width": "auto"})
        self.summary = W.HTML()
        d = self.columns()
        self.counts = ColumnDataSource(_bars(d["metrics"]))
        self.cycles = ColumnDataSource(_cycles(d["cycles"], self.path.value))
        self._last = d
        self._build()
        for w in (self.request_kib, self.batch, self.suppression):
            w.observe(lambda _: self.update(), names="value")
        self.path.observe(lambda _: self.show_path(), names="value")
        self._show(d)

    def columns(self) -> dict[str, dict[str, list]]:
        return io_compare(request_kib=self.request_kib.value, batch=self.batch.value,
                          suppression=self.suppression.value, n_requests=self.n_requests, seed=self.seed)

    def update(self) -> None:
        try:
            d = self.columns()
        except VmlabError as e:
            self.summary.value = error_html(e)
            return
        self._last = d
        self.counts.data = _bars(d["metrics"])
        self.cycles.data = _cycles(d["cycles"], self.path.value)
        self._show(d)

    def show_path(self) -> None:
        self.cycles.data = _cycles(self._last["cycles"], self.path.value)
        self.figures["cycles"].title.text = f"cycles per request by component ({self.path.value.upper()})"

    def metric(self, name: str, path: str = "pv") -> float:
        m = self._last["metrics"]
        return m[path][m["metric"].index(name)]

    def _show(self, d: dict) -> None:
        m = d["metrics"]
        g = {k: (p, h) for k, p, h in zip(m["metric"], m["pv"], m["hvm"])}
        self.summary.value = (
            f"per {self.request_kib.value} KiB request: PV {g['notifications'][0]:.2f} notifications, "
            f"{g['hypercalls'][0]:.2f} hypercalls, {g['cycles'][0]:,.0f} cycles "
            f"(~{g['MB/s per CPU (overhead only)'][0]:,.0f} MB/s of overhead budget per CPU); "
            f"emulated {g['VM exits'][1]:.0f} exits, {g['cycles'][1]:,.0f} cycles "
            f"(~{g['MB/s per CPU (overhead only)'][1]:,.0f} MB/s).")

    def _build(self) -> None:
        c = figure(x_range=FactorRange(*self.counts.data["x"]), width=520, height=300, title="events per request",
                   y_axis_label="events per request", toolbar_location=None)
        c.vbar(x="x", top="value", width=0.8, color="color", source=self.counts)
        c.xaxis.major_label_text_font_size = "8pt"
        c.xaxis.group_text_font_size = "8pt"
        c.xaxis.group_label_orientation = "horizontal"
        c.x_range.group_padding = 0.6
        b = figure(y_range=list(self.cycles.data["component"]), width=360, height=300,
                   title="cycles per request by component (PV)", x_axis_label="cycles per request",
                   toolbar_location=None)
        b.hbar(y="component", right="cycles", height=0.7, source=self.cycles)
        plain_ticks(b.xaxis)
        self.figures = {"counts": c, "cycles": b}
        self.layout = row(c, b)

    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.request_kib, self.batch, self.suppression]), self.path, self.summary]

    def _bokeh(self):
        return self.layout
