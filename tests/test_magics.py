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


def test_xm_magic_prints_a_usage_error_with_one_prefix_and_help_once(capsys):
    magic = xm_magic_function(make_xm())
    magic("mem-set")
    out = capsys.readouterr().out
    assert out.startswith("xm mem-set: ") and "error: xm" not in out and out.count("\n") == 1
    magic("frobnicate")
    out = capsys.readouterr().out
    assert out.startswith("xm: ") and out.count("xm:") == 1
    magic("--help")
    out = capsys.readouterr().out
    assert "usage" in out.lower() and out.lower().count("usage:") == 1
