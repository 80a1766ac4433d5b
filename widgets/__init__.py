"""Interactive explorers for vmlab (ipywidgets + bokeh through jupyter_bokeh).

Widgets import vmlab; vmlab never imports widgets.
"""


def setup_notebook() -> None:
    """Load BokehJS from the installed bokeh package (INLINE), never from a CDN, and store none of it.

    Lab machines have no internet, so BokehJS (~8 MB of JavaScript) comes from the kernel. It is
    displayed under a display_id and that display is replaced by one text line right away: the
    browser has run the script when it rendered the first message, and a saved notebook keeps
    only the line, so a student's saved lab stays small. Does nothing when VMLAB_NO_BOKEHJS is
    set (the grader runs labs with no browser attached).
    """
    import os
    import uuid

    if os.environ.get("VMLAB_NO_BOKEHJS"):
        return
    from bokeh.io import notebook as bokeh_notebook
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE
    from IPython.display import update_display

    display_id = f"vmlab-bokehjs-{uuid.uuid4().hex}"
    publish = bokeh_notebook.publish_display_data

    def publish_with_id(data, metadata=None, *, transient=None, **kwargs):
        publish(data, metadata, transient={**(transient or {}), "display_id": display_id}, **kwargs)

    bokeh_notebook.publish_display_data = publish_with_id
    try:
        output_notebook(INLINE, hide_banner=True)
    finally:
        bokeh_notebook.publish_display_data = publish
    update_display({"text/plain": "BokehJS loaded from the installed bokeh package (not stored in this notebook)"},
                   raw=True, display_id=display_id)


def __getattr__(name: str):
    """The plot helpers labs use on their own bokeh figures (loaded on first use: they need bokeh)."""
    if name in ("legend_outside", "plain_ticks", "scaled_ticks"):
        from vmlab.widgets import _base
        return getattr(_base, name)
    raise AttributeError(f"module 'vmlab.widgets' has no attribute {name!r}")
