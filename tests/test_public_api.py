import subprocess
import sys

import vmlab


def test_every_public_name_resolves():
    for name in vmlab.__all__:
        assert getattr(vmlab, name) is not None, name


def test_the_core_never_imports_jupyter_or_plotting():
    code = ("import sys, vmlab\n"
            "for n in vmlab.__all__: getattr(vmlab, n)\n"
            "bad = [m for m in ('ipywidgets', 'bokeh', 'jupyter_bokeh', 'IPython', 'vmlab.widgets') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
