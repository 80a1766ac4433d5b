"""DomainDashboard: `xm list` and a live memory map of every machine frame.

Controls call plain methods (`create`, `pause`, `unpause`, `destroy`, `mem_set`,
`refresh`), so tests drive the dashboard without a browser. All data comes from
the core: `Toolstack.list_text()` and `Hypervisor.memory_columns()`.
"""

from __future__ import annotations

import html

import ipywidgets as W
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from vmlab.errors import VmlabError
from vmlab.hypervisor import constants as C
from vmlab.hardware.memory import FREE
from vmlab.toolstack.config import virt_install
from vmlab.toolstack.xm import Toolstack
from vmlab.widgets._base import Explorer, error_html, ok_html

# Fixed colours for Xen, dom0 and free frames; guests cycle through a palette by domid.
FIXED = {C.DOMID_XEN: "#4d4d4d", 0: "#1f3a93", FREE: "#f2f2f2"}
GUEST_PALETTE = ("#e6550d", "#31a354", "#756bb1", "#d62728", "#17becf", "#bcbd22", "#e377c2", "#8c564b",
                 "#fd8d3c", "#74c476", "#9e9ac8", "#ff9896", "#9edae5", "#dbdb8d", "#f7b6d2", "#c49c94")


def owner_colour(owner: int) -> str:
    return FIXED.get(owner, GUEST_PALETTE[owner % len(GUEST_PALETTE)])


class DomainDashboard(Explorer):
    """The xm list table, a memory map coloured by owner, and buttons for common verbs."""

    def __init__(self, xm: Toolstack, *, rows: int = 64) -> None:
        self.xm = xm
        self.rows = rows
        self.source = ColumnDataSource(self._columns())
        fig = figure(height=300, width=820, x_range=(0, 1), y_range=(rows, 0), toolbar_location=None,
                     title=f"Machine memory of {xm.hv.host.name}: one row = {self._mib_per_row()} MiB")
        fig.quad(left="x0", right="x1", bottom="y", top="y_top", fill_color="colour", line_color=None,
                 source=self.source, legend_field="label")
        fig.add_tools(HoverTool(tooltips=[("owner", "@label"), ("mfn", "@start_mfn"), ("frames", "@frames")]))
        fig.axis.visible = False
        fig.grid.visible = False
        fig.legend.label_text_font_size = "8pt"
        fig.add_layout(fig.legend[0], "right")  # beside the map, never over it
        self.figure = fig
        self.table = W.HTML()
        self.message = W.HTML()
        self.name = W.Text(value="vm1", description="name")
        self.memory = W.IntSlider(value=512, min=64, max=8192, step=64, description="MiB")
        # The label stands beside the buttons (a ToggleButtons' own description wraps above them).
        self.kind = W.ToggleButtons(options=["pv", "hvm"], value="pv", style={"button_width": "56px"},
                                    layout=W.Layout(width="auto"))
        self.kind_label = W.Label("kind")
        self.target = W.Dropdown(description="domain")
        self.mem_target = W.IntSlider(value=256, min=16, max=8192, step=16, description="mem-set")
        self.buttons = {v: W.Button(description=v)
                        for v in ("create", "pause", "unpause", "destroy", "mem-set", "refresh")}
        self.buttons["create"].on_click(lambda _: self.create())
        self.buttons["pause"].on_click(lambda _: self.pause())
        self.buttons["unpause"].on_click(lambda _: self.unpause())
        self.buttons["destroy"].on_click(lambda _: self.destroy())
        self.buttons["mem-set"].on_click(lambda _: self.mem_set())
        self.buttons["refresh"].on_click(lambda _: self.refresh())
        self.refresh()
        # Follow the hypervisor: verbs run from code or %xm redraw the dashboard too.
        xm.hv.trace.subscribe(self._on_event, kinds=self.FOLLOW)

    # The events after which the table or the map can have changed.
    FOLLOW = frozenset({"create", "destroy", "state", "balloon"})

    def _on_event(self, event) -> None:
        self.refresh()

    # --- data ---------------------------------------------------------------
    def _mib_per_row(self) -> int:
        return -(-self.xm.hv.host.spec.memory_mib // self.rows)

    def _columns(self) -> dict[str, list]:
        cols = self.xm.hv.memory_columns(self.rows)
        cols["y_top"] = [y + 0.9 for y in cols["y"]]
        cols["colour"] = [owner_colour(o) for o in cols["owner"]]
        return cols

    def refresh(self) -> None:
        """Re-read the hypervisor: table, memory map and the domain list."""
        self.table.value = f"<pre style='font-size:11px'>{html.escape(self.xm.list_text())}</pre>"
        self.source.data = self._columns()
        guests = [d.name for d in self.xm.hv.domains.values() if not d.privileged]
        chosen = self.target.value
        self.target.options = guests
        # Never silently retarget: a destroyed guest leaves no selection behind.
        self.target.value = chosen if chosen in guests else None

    def _do(self, what: str, fn) -> bool:
        try:
            fn()
        except VmlabError as e:
            self.message.value = error_html(e, what)
            return False
        self.message.value = ok_html(what)
        self.refresh()
        return True

    # --- callbacks (plain methods) ---------------------------------------------
    def create(self) -> bool:
        cfg = lambda: virt_install(name=self.name.value, ram=self.memory.value, hvm=self.kind.value == "hvm")
        return self._do(f"xm create {self.name.value}", lambda: self.xm.create(cfg()))

    def _chosen(self) -> str:
        if self.target.value is None:
            raise VmlabError("no domain chosen; pick one in the 'domain' list first")
        return self.target.value

    def pause(self) -> bool:
        return self._do(f"xm pause {self.target.value}", lambda: self.xm.pause(self._chosen()))

    def unpause(self) -> bool:
        return self._do(f"xm unpause {self.target.value}", lambda: self.xm.unpause(self._chosen()))

    def destroy(self) -> bool:
        return self._do(f"xm destroy {self.target.value}", lambda: self.xm.destroy(self._chosen()))

    def mem_set(self) -> bool:
        return self._do(f"xm mem-set {self.target.value} {self.mem_target.value}",
                        lambda: self.xm.mem_set(self._chosen(), self.mem_target.value))

    # --- display --------------------------------------------------------------
    def _controls(self) -> list[W.Widget]:
        b = self.buttons
        return [
            W.HBox([self.name, self.memory, self.kind_label, self.kind, b["create"]]),
            W.HBox([self.target, b["pause"], b["unpause"], b["destroy"], self.mem_target, b["mem-set"], b["refresh"]]),
            self.message, self.table,
        ]
