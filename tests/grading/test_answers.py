"""Reading answers without running them: what the grader accepts, and the reason when it does not."""

import subprocess
import sys

import pytest

from vmlab.grading.answers import answer_names, check_keys, read_answer, submitted_answers


def _cells(*sources):
    return [{"cell_type": "code", "source": s, "outputs": []} for s in sources]


def _answer(src, name="answer_x", key="x"):
    return read_answer(name, key, submitted_answers(_cells(src)))


@pytest.mark.parametrize("src, literal", [
    ("answer_x = 7536", "7536"),
    ("answer_x = 8192 - (16 + 8192 // 64) - 512   # my reasoning", "7536"),
    ("answer_x = 1000e6 / 8 * 0.3 / 2**20", repr(1000e6 / 8 * 0.3 / 2**20)),
    ("answer_x = 'r-----'", "'r-----'"),
    ("answer_x = round(2 / 8, 2)", "0.25"),
    ("answer_x = -1", "-1"),
])
def test_values_and_arithmetic_are_taken_as_literals(src, literal):
    a = _answer(src)
    assert (a.kind, a.literal) == ("value", literal)


@pytest.mark.parametrize("src, reason", [
    ("answer_x = hv.memory.free_frames", "`hv.memory.free_frames`"),
    ("answer_x = __import__('os').system('true')", "the grader does not run notebook code"),
    ("answer_x = 1 / 0", "ZeroDivisionError"),
    ("answer_x = 9 ** 9 ** 9", "too large"),
    ("answer_x = 'a' * 10**9", "too long"),
    ("answer_x = [i for i in range(10)]", "listcomp"),
])
def test_code_in_an_answer_is_an_error_with_a_reason(src, reason):
    a = _answer(src)
    assert a.kind == "invalid" and reason in a.reason


def test_placeholder_reveal_and_missing_cells():
    assert _answer("answer_x = ...").kind == "unanswered"
    assert _answer('answer_x = ex.reveal("x")').kind == "revealed"
    assert _answer('answer_x = ex.reveal("y")').kind == "invalid"      # another exercise's answer
    missing = read_answer("answer_x", "x", submitted_answers(_cells("print(1)")))
    assert missing.kind == "unanswered" and "answer cell missing" in missing.reason


def test_a_loop_or_a_broken_cell_around_the_answer_is_never_run():
    a = _answer("while True:\n    pass\nanswer_x = 42")
    assert (a.kind, a.literal) == ("value", "42")
    broken = _answer("answer_x = 42\nthis is not python(")   # the line is read on its own
    assert (broken.kind, broken.literal) == ("value", "42")


def test_the_last_assignment_wins_as_when_run_top_to_bottom():
    found = submitted_answers(_cells("answer_x = 1", "answer_x = 2"))
    assert read_answer("answer_x", "x", found).literal == "2"


def test_answer_cells_and_checks_are_found_by_their_names():
    assert answer_names('answer_a = ex.reveal("a")   # ← a number\nanswer_b = ...') == ["answer_a", "answer_b"]
    assert answer_names("answer_a = 1\nprint(answer_a)") is None
    assert answer_names("x = 1") is None
    assert check_keys('ex.add("k", expected=1)\nex.check("k", answer_a)\nex.check("j", answer_b)') == \
        [("k", "answer_a"), ("j", "answer_b")]


def test_importing_the_grader_needs_no_jupyter():
    code = ("import sys, vmlab, vmlab.grading, vmlab.grading.cli\n"
            "print(','.join(m for m in ('nbformat', 'nbclient', 'otter', 'jupyter_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
