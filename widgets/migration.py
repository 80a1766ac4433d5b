"""MigrationExplorer: watch pre-copy converge (or not) as you change the guest and the link.

Every control change calls `update()`, which calls one core function,
`vmlab.migration.explore.explore`, and pushes its plain columns into three
ColumnDataSources: per-round bars (pages sent / dirtied), the dirty set
remaining over time (pages leave at the link's rate within a round, so the line falls
through each round, and a dot marks each round's end), and the read-outs. Tests set `.value` on the controls and
read the sources.
"""

from __future__ import annotations

import html

import ipywidgets as W
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from vmlab.errors import VmlabError
from vmlab.migration.explore import EXPLORER_POLICIES, explore
from vmlab.widgets._base import Explorer, error_html, legend_outside, plain_ticks

PHASE_COLOURS = {"precopy": "#1f77b4", "stop-and-copy": "#d62728", "postcopy": "#2ca02c"}


class MigrationExplorer(Explorer):
    """Sliders for memory, working set, dirty rate, bandwidth, downtime limit; policy and switches."""

    def __init__(self, *, memory_mib: int = 1024, seed: int = 0) -> None:
        self.seed = seed
        self.memory = W.IntSlider(value=memory_mib, min=64, max=16384, step=64, description="RAM MiB")
        self.wws = W.IntSlider(value=64, min=1, max=4096, step=1, description="WWS MiB")
        self.dirty = W.FloatSlider(value=64.0, min=0.0, max=1024.0, step=8.0, description="dirty MiB/s",
                                   readout_format=".0f")
        # 10 GbE: carries QEMU's default max-bandwidth (128 MiB/s); a slower link says "capped:" below
        self.bandwidth = W.FloatLogSlider(value=10_000.0, base=10, min=1, max=5, step=0.05, description="link Mbit/s",
                                        readout_format=",.0f")
        self.downtime = W.IntSlider(value=300, min=10, max=5000, step=10, description="limit ms")
        self.policy = W.Dropdown(options=list(EXPLORER_POLICIES), value="qemu", description="policy")
        box = dict(value=False, indent=False, layout=W.Layout(width="auto"))   # whole labels, never cut
        self.auto_converge = W.Checkbox(description="auto-converge", **box)
        self.postcopy = W.Checkbox(description="post-copy after pass 1", **box)
        self.readout = W.HTML()
        self.rounds = ColumnDataSource(self._empty_rounds())
        self.timeline = ColumnDataSource({"time_s": [], "remaining_mib": []})
        self.round_ends = ColumnDataSource({"time_s": [], "remaining_mib": []})
        self.totals: dict = {}
        self.figure = self._figures()
        for c in (self.memory, self.wws, self.dirty, self.bandwidth, self.downtime, self.policy,
                  self.auto_converge, self.postcopy):
            c.observe(lambda _change: self.update(), names="value")
        self.update()

    @staticmethod
    def _empty_rounds() -> dict[str, list]:
        return {"x": [], "label": [], "sent_mib": [], "dirtied_mib": [], "duration_ms": [], "colour": [],
                "phase": [], "throttle_pct": []}

    def _figures(self):
        bars = figure(height=260, width=470, title="pages sent per round (MiB)", toolbar_location=None,
                      x_axis_label="round", y_axis_label="MiB")
        bars.vbar(x="x", top="sent_mib", width=0.8, fill_color="colour", line_color=None, source=self.rounds,
                  legend_field="phase")
        bars.scatter(x="x", y="dirtied_mib", size=6, color="#ff7f0e", source=self.rounds, legend_label="dirtied")
        bars.add_tools(HoverTool(tooltips=[("round", "@label"), ("sent MiB", "@sent_mib{0.0}"),
                                           ("dirtied MiB", "@dirtied_mib{0.0}"), ("ms", "@duration_ms{0}"),
                                           ("throttle %", "@throttle_pct")]))
        legend_outside(bars)
        plain_ticks(bars.yaxis)
        line = figure(height=260, width=470, title="dirty memory still to send", toolbar_location=None,
                      x_axis_label="time (s)", y_axis_label="MiB")
        # Within a round the link sends pages at a steady rate while the guest dirties more: the
        # amount still to send moves in a straight line from one round's end to the next.
        line.line(x="time_s", y="remaining_mib", source=self.timeline, line_width=2,
                  legend_label="still to send")
        line.scatter(x="time_s", y="remaining_mib", source=self.round_ends, size=5, color="#d62728",
                     legend_label="end of a round")
        legend_outside(line)
        plain_ticks(line.yaxis)
        return row(bars, line)

    # --- the one callback ----------------------------------------------------------
    def update(self) -> bool:
        """Re-run the migration with the current controls; False (and a message) if refused."""
        try:
            out = explore(memory_mib=self.memory.value, wws_mib=min(self.wws.value, self.memory.value),
                          dirty_rate_mib_s=self.dirty.value, bandwidth_mbps=self.bandwidth.value,
                          downtime_limit_ms=self.downtime.value, policy=self.policy.value,
                          auto_converge=self.auto_converge.value, postcopy=self.postcopy.value, seed=self.seed)
        except VmlabError as e:
            self.readout.value = error_html(e)
            return False
        self.rounds.data = {**out["bars"], "colour": [PHASE_COLOURS[p] for p in out["bars"]["phase"]]}
        self.timeline.data = {"time_s": out["timeline"]["time_s"], "remaining_mib": out["timeline"]["remaining_mib"]}
        # The timeline starts with all of RAM at 0 s and at the end of set-up; then one point per round.
        self.round_ends.data = {k: v[2:] for k, v in self.timeline.data.items()}
        self.totals = out["totals"]
        t = self.totals
        colour = "#070" if t["status"] == "completed" else "#b00"
        self.readout.value = (
            f"<b style='color:{colour}'>{html.escape(t['status'])}</b> ({html.escape(t['policy'])}): "
            f"total {t['total_time_s']:.2f} s, downtime {t['downtime_ms']:.1f} ms"
            + ("" if not t.get("downtime_range_ms") else
               " (could be {:.1f}-{:.1f} ms: a few pages or the target's host decide it)"
               .format(*t["downtime_range_ms"])) + ", "
            f"{t['transferred_mib']:.0f} MiB sent, {t['rounds']} rounds"
            + (f", throttle {t['throttle_pct']}%" if t["throttle_pct"] else "")
            + (f", {t['postcopy_faults']} post-copy faults" if t["postcopy_faults"] else "")
            + f"<br><small>{html.escape(t['stop_reason'] or '')}</small>"
            + "".join(f"<br><small>{html.escape(a)}</small>" for a in t.get("assumed", ())))
        return True

    # --- display ---------------------------------------------------------------------
    def _controls(self) -> list[W.Widget]:
        return [W.HBox([self.memory, self.wws, self.dirty]), W.HBox([self.bandwidth, self.downtime, self.policy]),
                W.HBox([self.auto_converge, self.postcopy]), self.readout]
