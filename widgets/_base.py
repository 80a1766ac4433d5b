"""What every widget shares: the error read-out, and showing itself in a notebook.

A widget subclasses `Explorer`, keeps its bokeh layout in `self.figure` (or
overrides `_bokeh()`), and lists the ipywidgets above the plot in `_controls()`;
`.widget` is then the VBox of those rows with the plot (one BokehModel, built on
first use) underneath, and a notebook cell that ends with the widget shows it.
"""

from __future__ import annotations

import html

import ipywidgets as W

__all__ = ["Explorer", "error_html", "ok_html", "ERROR_COLOUR", "OK_COLOUR", "legend_outside", "plain_ticks",
           "scaled_ticks"]

ERROR_COLOUR = "#b00"
OK_COLOUR = "#070"


def error_html(error: Exception | str, what: str = "") -> str:
    """A VmlabError's one line in red (`what: message` when the action is named)."""
    text = html.escape(str(error))
    return f"<span style='color:{ERROR_COLOUR}'>{html.escape(what) + ': ' if what else ''}{text}</span>"


def ok_html(what: str) -> str:
    """`what: ok` in green."""
    return f"<span style='color:{OK_COLOUR}'>{html.escape(what)}: ok</span>"


def legend_outside(fig, where: str = "right", *, font: str = "8pt"):
    """Move `fig`'s legend beside the plot area (never over the data); a click on an entry hides it."""
    leg = fig.legend[0]
    fig.center = [r for r in fig.center if r is not leg]
    fig.add_layout(leg, where)
    leg.click_policy = "hide"
    leg.label_text_font_size = font
    leg.location = "top_left" if where in ("right", "left") else "center"
    if where in ("above", "below"):
        leg.orientation = "horizontal"
    return leg


def plain_ticks(axis, fmt: str = "0,0"):
    """Tick labels as plain numbers with thousands separators (never 1.000e+3).

    A whole-number format also keeps ticks on whole numbers, so a count of 3 does not read
    "0, 1, 1, 2, 2, 3" (ticks at 0.5 rounded).
    """
    from bokeh.models import NumeralTickFormatter
    for a in (axis if isinstance(axis, list) else [axis]):
        a.formatter = NumeralTickFormatter(format=fmt)
        if "." not in fmt and hasattr(a.ticker, "min_interval"):
            a.ticker.min_interval = 1


def scaled_ticks(axis, scale: float):
    """Tick labels divided by `scale` (1e6 for M cycles), as plain numbers: the axis label names the unit."""
    from bokeh.models import CustomJSTickFormatter
    code = f"return (tick / {scale!r}).toLocaleString('en-US', {{maximumFractionDigits: 3}});"
    for a in (axis if isinstance(axis, list) else [axis]):
        a.formatter = CustomJSTickFormatter(code=code)


class Explorer:
    """Base of every widget: `.widget` (controls above one BokehModel) and notebook display."""

    _model = None

    def _bokeh(self):
        """The bokeh layout under the controls."""
        return self.figure

    def _controls(self) -> list[W.Widget]:
        raise NotImplementedError

    @property
    def widget(self) -> W.Widget:
        if self._model is None:
            from jupyter_bokeh import BokehModel
            self._model = BokehModel(self._bokeh())
        return W.VBox([*self._controls(), self._model])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
