"""Interactive explorers for vmlab (ipywidgets + bokeh)."""
