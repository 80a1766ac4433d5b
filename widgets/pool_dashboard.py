"""PoolDashboard: an Oracle VM server pool at a glance.

Servers (with their roles and state) as bars of machine memory split into Xen + dom0,
each guest, and what is free; the repositories; and the event timeline (heartbeats
missed, deaths, fencing, master elections, HA restarts, migrations). Buttons inject
the faults of `vmlab sim` and let simulated time pass. Callbacks are plain methods
(`fail`, `isolate`, `heal`, `maintenance`, `advance`, `refresh`) so tests drive the
dashboard without a browser. All data comes from the Manager and the hypervisors.
"""

from __future__ import annotations

import functools
import html

import ipywidgets as W
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure
from jupyter_bokeh import BokehModel

from vmlab.errors import VmlabError
from vmlab.hardware.memory import mib_from_frames
from vmlab.ovm.events import KINDS
from vmlab.ovm.views import repos_text

PALETTE = ("#e6550d", "#31a354", "#756bb1", "#d62728", "#17becf", "#bcbd22", "#e377c2", "#8c564b",
           "#fd8d3c", "#74c476", "#9e9ac8", "#ff9896", "#9edae5", "#dbdb8d", "#f7b6d2", "#c49c94")
FIXED = {"Xen + dom0": "#4d4d4d", "free": "#eeeeee"}
STATE_MARK = {"up": "", "down": " DOWN", "fenced": " FENCED", "maintenance": " MAINT"}
KIND_COLOUR = {"fault": "#d62728", "heartbeat-missed": "#ff7f0e", "dead": "#8c564b", "fence": "#9467bd",
               "master": "#1f77b4", "restart": "#2ca02c", "lost": "#7f7f7f", "migrate": "#17becf",
               "refused": "#bcbd22", "copy": "#aec7e8", "create": "#98df8a", "maintenance": "#c5b0d5",
               "heal": "#2ca02c", "split-brain": "#000000"}


@functools.lru_cache(maxsize=4096)
def _colour(name: str) -> str:
    return FIXED.get(name) or PALETTE[sum(map(ord, name)) % len(PALETTE)]


@functools.lru_cache(maxsize=64)
def _ink(fill: str) -> str:
    """Black or white text, whichever reads on `fill` (relative luminance)."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 else "#ffffff"


class PoolDashboard:
    def __init__(self, manager, *, max_events: int = 400) -> None:
        self.m = manager
        self.max_events = max_events
        self.bars = ColumnDataSource(self._bar_columns())
        self.dots = ColumnDataSource(self._event_columns())
        self.figure = self._figures()
        self.servers = W.Dropdown(description="server")
        self.message = W.HTML()
        self.tables = W.HTML()
        self.buttons = {v: W.Button(description=v) for v in ("fail", "isolate", "heal", "maintenance", "advance 30 s")}
        self.buttons["fail"].on_click(lambda _: self.fail())
        self.buttons["isolate"].on_click(lambda _: self.isolate())
        self.buttons["heal"].on_click(lambda _: self.heal())
        self.buttons["maintenance"].on_click(lambda _: self.maintenance())
        self.buttons["advance 30 s"].on_click(lambda _: self.advance(30))
        self._model = None
        self.refresh()

    # --- data -----------------------------------------------------------------------------
    def _server_label(self, s) -> str:
        cut = "" if self.m.master is None or self.m.same_side(self.m.master, s.name) else " CUT OFF"
        disk = " NO STORAGE" if s.name in self.m.storage_cut else ""
        return f"{s.name} [{s.roles_text}]{STATE_MARK[s.state.value]}{cut}{disk}"

    def _bar_columns(self) -> dict[str, list]:
        cols = {k: [] for k in ("server", "left", "right", "name", "label", "colour", "ink", "mib", "line")}
        for s in self.m.servers.values():
            hv = self.m.pool.servers[s.name]
            total = hv.host.spec.memory_mib
            free = mib_from_frames(hv.memory.free_frames)
            owned = hv.memory.counts_by_owner()   # frames per domid, cached by the core between changes
            guests = [(d.name, mib_from_frames(owned.get(d.domid, 0))) for d in hv.domains.values() if not d.privileged]
            parts = [("Xen + dom0", total - free - sum(m for _, m in guests))] + sorted(guests) + [("free", free)]
            x = 0
            for name, mib in parts:
                stale = (s.name, name) in self.m.orphans
                label = f"free {mib} MiB" if name == "free" else name
                for k, v in (("server", self._server_label(s)), ("left", x), ("right", x + mib), ("name", name),
                             ("label", label),
                             ("colour", _colour(name)), ("ink", _ink(_colour(name))), ("mib", mib),
                             ("line", "#000000" if stale else "#ffffff")):
                    cols[k].append(v)
                x += mib
        return cols

    def _event_columns(self) -> dict[str, list]:
        evs = self.m.events[-self.max_events:]
        return {"t": [e.time_s for e in evs], "kind": [e.kind for e in evs],
                "colour": [KIND_COLOUR.get(e.kind, "#333333") for e in evs],
                "who": ["/".join(x for x in (e.server, e.guest) if x) or "pool" for e in evs],
                "detail": [e.detail for e in evs]}

    def _figures(self):
        labels = list(dict.fromkeys(self.bars.data["server"]))
        mem = figure(height=60 + 34 * max(1, len(labels)), width=820, y_range=labels[::-1], toolbar_location=None,
                     title="Servers: machine memory by owner (black outline: a stale copy that still runs)", x_axis_label="memory (MiB)")
        mem.hbar(y="server", left="left", right="right", height=0.7, fill_color="colour", line_color="line",
                 line_width=1.5, source=self.bars)
        mem.text(x="left", y="server", text="label", x_offset=3, text_font_size="8pt", text_baseline="middle",
                 text_color="ink",
                 source=ColumnDataSource({k: self.bars.data[k] for k in ("left", "server", "label", "ink")}))
        mem.add_tools(HoverTool(tooltips=[("owner", "@name"), ("MiB", "@mib"), ("server", "@server")]))
        mem.ygrid.visible = False
        self._labels_source = mem.renderers[-1].data_source
        tl = figure(height=300, width=820, y_range=list(KINDS[::-1]), toolbar_location=None,
                    title="Event timeline (what the Server Pool Master saw)", x_axis_label="simulated time (s)",
                    y_axis_label="event")
        tl.scatter(x="t", y="kind", color="colour", size=8, source=self.dots)
        tl.add_tools(HoverTool(tooltips=[("t (s)", "@t{0.0}"), ("event", "@kind"), ("where", "@who"),
                                         ("detail", "@detail")]))
        self.memory_figure, self.timeline_figure = mem, tl
        return column(mem, tl)

    def refresh(self) -> None:
        """Re-read the Manager and the hypervisors: bars, timeline, tables, server list."""
        self.bars.data = self._bar_columns()
        self._labels_source.data = {k: self.bars.data[k] for k in ("left", "server", "label", "ink")}
        self.memory_figure.y_range.factors = list(dict.fromkeys(self.bars.data["server"]))[::-1]
        self.dots.data = self._event_columns()
        self.tables.value = f"<pre style='font-size:11px'>{html.escape(repos_text(self.m))}</pre>"
        chosen = self.servers.value
        self.servers.options = list(self.m.servers)
        self.servers.value = chosen if chosen in self.m.servers else None

    # --- callbacks ----------------------------------------------------------------------------
    def _do(self, what: str, fn) -> bool:
        try:
            out = fn()
        except VmlabError as e:
            self.message.value = f"<span style='color:#b00'>{html.escape(what)}: {html.escape(str(e))}</span>"
            return False
        note = html.escape(str(out).splitlines()[0]) if out else "ok"
        self.message.value = f"<span style='color:#070'>{html.escape(what)}: {note}</span>"
        self.refresh()
        return True

    def _chosen(self) -> str:
        if self.servers.value is None:
            raise VmlabError("no server chosen; pick one in the 'server' list first")
        return self.servers.value

    def fail(self) -> bool:
        return self._do(f"fail {self.servers.value}", lambda: self.m.fail_server(self._chosen()))

    def isolate(self) -> bool:
        return self._do(f"isolate {self.servers.value}", lambda: self.m.isolate(self._chosen()))

    def heal(self) -> bool:
        return self._do("heal", self.m.heal)

    def maintenance(self) -> bool:
        return self._do(f"maintenance {self.servers.value}", lambda: self.m.maintenance(self._chosen()))

    def advance(self, seconds: float) -> bool:
        return self._do(f"advance {seconds:g} s", lambda: self.m.advance(seconds))

    # --- display --------------------------------------------------------------------------------
    @property
    def widget(self) -> W.Widget:
        if self._model is None:
            self._model = BokehModel(self.figure)
        b = self.buttons
        return W.VBox([W.HBox([self.servers, b["fail"], b["isolate"], b["maintenance"], b["heal"], b["advance 30 s"]]),
                       self.message, self._model, self.tables])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
