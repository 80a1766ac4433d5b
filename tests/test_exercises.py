import pytest

from vmlab.errors import ConfigError
from vmlab.exercises import Exercises


def test_checks_print_one_deterministic_verdict(capsys):
    ex = Exercises("Lab X")
    ex.add("n", expected=7536, unit="MiB", explain="8192 - 144 - 512")
    ex.check("n", 7536.0)
    ex.check("n", 7535)
    ex.check("n", ...)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ n: correct — 7536 MiB (8192 - 144 - 512)"
    assert out[1].startswith("✗ n:") and "7535" not in out[1]
    assert out[2].startswith("… n: not answered")
    assert not ex.passed("n")


def test_reveal_is_accepted_and_counted(capsys):
    ex = Exercises("Lab X")
    r = ex.reveal("s")
    ex.add("s", expected="r-----")
    ex.check("s", r)
    ex.add("t", expected=3, tolerance=0.5)
    ex.check("t", 3.4)
    assert ex.summary() == "Lab X: 2/2 exercises correct (1 by your own answer, 1 revealed)"
    with pytest.raises(ConfigError, match="no exercise 'u'"):
        ex.check("u", 1)
