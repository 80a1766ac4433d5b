"""What every widget shares: the error read-out, and showing itself in a notebook.

A widget subclasses `Explorer`, keeps its bokeh layout in `self.figure` (or
overrides `_bokeh()`), and lists the ipywidgets above the plot in `_controls()`;
`.widget` is then the VBox of those rows with the plot (one BokehModel, built on
first use) underneath, and a notebook cell that ends with the widget shows it.
"""

from __future__ import annotations

import html

import ipywidgets as W

__all__ = ["Explorer", "error_html", "ok_html", "ERROR_COLOUR", "OK_COLOUR"]

ERROR_COLOUR = "#b00"
OK_COLOUR = "#070"


def error_html(error: Exception | str, what: str = "") -> str:
    """A VmlabError's one line in red (`what: message` when the action is named)."""
    text = html.escape(str(error))
    return f"<span style='color:{ERROR_COLOUR}'>{html.escape(what) + ': ' if what else ''}{text}</span>"


def ok_html(what: str) -> str:
    """`what: ok` in green."""
    return f"<span style='color:{OK_COLOUR}'>{html.escape(what)}: ok</span>"


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
