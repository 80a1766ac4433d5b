"""Interactive explorers for vmlab (ipywidgets + bokeh through jupyter_bokeh).

Widgets import vmlab; vmlab never imports widgets.
"""


def setup_notebook() -> None:
    """Load BokehJS from the installed bokeh package (INLINE), never from a CDN.

    Lab machines have no internet; call this once at the top of a lab, in a cell
    marked `# NBVAL_IGNORE_OUTPUT` (its output is BokehJS itself, ~1 MB, and is
    never committed).
    """
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    output_notebook(INLINE, hide_banner=True)


def __getattr__(name: str):
    """The plot helpers labs use on their own bokeh figures (loaded on first use: they need bokeh)."""
    if name in ("legend_outside", "plain_ticks", "scaled_ticks"):
        from vmlab.widgets import _base
        return getattr(_base, name)
    raise AttributeError(f"module 'vmlab.widgets' has no attribute {name!r}")
