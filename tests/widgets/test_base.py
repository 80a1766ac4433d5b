import ipywidgets as W

from vmlab.errors import ConfigError
from vmlab.widgets._base import Explorer, error_html, ok_html


def test_error_readout_is_one_escaped_red_line_naming_the_action():
    html = error_html(ConfigError("memory=<0> is bad"), "xm create vm1")
    assert html.startswith("<span style='color:#b00'>xm create vm1: ")
    assert "&lt;0&gt;" in html and "<0>" not in html


def test_ok_readout_is_green():
    assert ok_html("xm pause vm1") == "<span style='color:#070'>xm pause vm1: ok</span>"


def test_every_widget_is_an_explorer_with_controls_above_one_plot():
    from bokeh.plotting import figure

    class Tiny(Explorer):
        def __init__(self):
            self.figure = figure(height=100, width=100)
            self.label = W.HTML("hi")

        def _controls(self):
            return [self.label]

    w = Tiny().widget
    assert len(w.children) == 2 and w.children[0].value == "hi"
