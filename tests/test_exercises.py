import json

import pytest

from vmlab.errors import ConfigError
from vmlab.exercises import DEFAULT_SEED, Exercises, lab_seed, seed_for_student, variant


def test_checks_print_one_deterministic_verdict(capsys):
    ex = Exercises("Lab X")
    ex.add("n", expected=7536, unit="MiB", explain="8192 - 144 - 512")
    ex.check("n", 7536.0)
    ex.check("n", 7535)
    ex.check("n", ...)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ n: correct — 7536 MiB (8192 - 144 - 512)"
    assert out[1].startswith("✗ n:") and "7535" not in out[1]
    assert not ex.passed("n")


def test_not_answered_names_the_placeholder_the_cell_holds(capsys):
    ex = Exercises("Lab X")
    ex.add("n", expected=1)
    ex.check("n", ...)
    out = capsys.readouterr().out
    assert out.startswith("… n: not answered yet — replace the ... after the = ")


def test_a_revealed_answer_is_reported_as_revealed_never_correct(capsys):
    ex = Exercises("Lab X")
    r = ex.reveal("s")
    ex.add("s", expected="r-----")
    ex.check("s", r)
    ex.add("t", expected=3, tolerance=0.5)
    ex.check("t", 3.4)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "◇ s: revealed, not answered — the model gives 'r-----'"
    assert "correct" not in out[0] and not ex.passed("s")
    assert ex.summary() == "Lab X: 1/2 exercises correct by your own answer, 1 revealed"
    with pytest.raises(ConfigError, match="no exercise 'u'"):
        ex.check("u", 1)


def test_grading_record_is_written_when_the_grader_asks(tmp_path, monkeypatch, capsys):
    rec = tmp_path / "rec.jsonl"
    monkeypatch.setenv("VMLAB_GRADING", str(rec))
    ex = Exercises("Lab X")
    ex.add("a", expected=4, points=2)
    ex.check("a", 4)
    ex.check("a", 5)
    ex.check("a", ex.reveal("a"))
    ex.check("a", ...)
    rows = [json.loads(line) for line in rec.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["correct", "wrong", "revealed", "unanswered"]
    assert rows[1]["answer"] == "5" and rows[1]["expected"] == "4" and rows[0]["points"] == 2


def test_default_seed_gives_the_committed_scenario_and_others_vary():
    v0 = variant(DEFAULT_SEED)
    assert v0.choice("mem", [8192, 4096, 16384]) == 8192
    assert v0.integer("batch", 1, 64, default=32) == 32
    picks = {variant(s).choice("mem", [8192, 4096, 16384]) for s in range(1, 40)}
    assert picks == {8192, 4096, 16384}
    assert variant(7).integer("b", 1, 64, default=32) == variant(7).integer("b", 1, 64, default=32)


def test_seed_comes_from_the_environment_then_the_student_id(monkeypatch):
    monkeypatch.delenv("VMLAB_SEED", raising=False)
    assert lab_seed() == DEFAULT_SEED
    assert lab_seed("s123") == seed_for_student("s123") != DEFAULT_SEED
    monkeypatch.setenv("VMLAB_SEED", "42")
    assert lab_seed("s123") == 42
    monkeypatch.setenv("VMLAB_SEED", "forty")
    with pytest.raises(ConfigError, match="VMLAB_SEED='forty'"):
        lab_seed()
