from helpers import make_xm
from vmlab.magics import xm_magic_function


def test_xm_magic_runs_verbs_on_the_notebooks_host(capsys):
    xm = make_xm()
    magic = xm_magic_function(xm)
    magic("list")
    assert capsys.readouterr().out.startswith("Name ")
    magic("pause nosuch")
    out = capsys.readouterr().out
    assert out.startswith("xm: error: domain 'nosuch' does not exist") and out.count("\n") == 1
