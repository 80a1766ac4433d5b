"""The grader on a planted class of Lab 1 submissions: exactly the points each one earned.

Answers are read, never run; they go into the instructor's copy, which runs in a fresh kernel with
each student's seed. Edited check cells, pasted ✓ lines, saved outputs and code in answer cells
earn nothing; a file that is not a notebook is graded, with a reason, without stopping the batch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import pathlib

import pytest

from vmlab.exercises import lab_seed, variant
from vmlab.grading import Options, grade, load_lab
from vmlab.grading.student import student_notebook

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAB1 = ROOT / "labs" / "01-meet-the-hypervisor.ipynb"
KEYS = ["free after boot", "vm1 frames", "state after unpause", "vm1 after mem-set 64", "domU domctl"]
VARS = ["answer_free_mib", "answer_vm1_frames", "answer_state", "answer_balloon", "answer_errno"]


def scenario(student: str, monkeypatch) -> dict:
    """Lab 1's scenario for a student id, by running the lab's own scenario cell."""
    monkeypatch.delenv("VMLAB_SEED", raising=False)
    nb = json.loads(LAB1.read_text())
    src = next("".join(c["source"]) for c in nb["cells"] if "variant(lab_seed(STUDENT))" in "".join(c["source"]))
    ns = {"STUDENT": student, "lab_seed": lab_seed, "variant": variant}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(src, ns)
    return ns


def right_answers(sc: dict) -> dict[str, str]:
    host, dom0, vm1 = sc["HOST_MIB"], sc["DOM0_MIB"], sc["VM1_MIB"]
    return {"answer_free_mib": f"{host} - (16 + {host} // 64) - {dom0}", "answer_vm1_frames": f"{vm1} * 256",
            "answer_state": '"r-----"', "answer_balloon": f"104 + {vm1} // 8", "answer_errno": "-1"}


def submission(answers: dict[str, str], *, edit=None) -> dict:
    nb = student_notebook(json.loads(LAB1.read_text()), lab=LAB1.stem)
    for cell in nb["cells"]:
        for var, text in answers.items():
            if cell["cell_type"] == "code" and cell["source"].startswith(f"{var} = ..."):
                cell["source"] = text if "\n" in text or text.startswith(("import", "while")) else f"{var} = {text}"
        if edit:
            edit(cell)
    return nb


def _edit_checks(cell):
    """A student who rewrote every check to accept anything and print a ✓."""
    src = cell["source"]
    if cell["cell_type"] == "code" and "ex.check(" in src:
        key = src.split('ex.check("', 1)[1].split('"', 1)[0]
        cell["source"] = f'print("✓ {key}: correct")\nex.add("{key}", expected=None)\n'
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"✓ {key}: correct\n"}]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    subs = tmp_path_factory.mktemp("subs")
    expected: dict[str, list[int]] = {}
    try:
        sc = {sid: scenario(sid, mp) for sid in ("right", "right2", "other_seed", "wrong_saved", "revealed",
                                                 "edited_check", "error", "loops", "grader_import")}
    finally:
        mp.undo()
    assert (sc["right"]["HOST_MIB"], sc["right"]["VM1_MIB"]) != (sc["right2"]["HOST_MIB"], sc["right2"]["VM1_MIB"])

    def put(sid, nb, points):
        (subs / f"{sid}.ipynb").write_text(json.dumps(nb))
        expected[sid] = points

    put("right", submission(right_answers(sc["right"])), [1, 1, 1, 1, 1])
    put("right2", submission(right_answers(sc["right2"])), [1, 1, 1, 1, 1])
    book = right_answers({"HOST_MIB": 8192, "DOM0_MIB": 512, "VM1_MIB": 512})   # the default seed's numbers
    own = right_answers(sc["other_seed"])
    put("other_seed", submission(book), [int(eval(book[v]) == eval(own[v])) for v in VARS])
    wrong = dict(right_answers(sc["wrong_saved"]), answer_free_mib="7000", answer_errno="-22")
    saved = submission(wrong)
    for cell in saved["cells"]:   # saved after running, with ✓ lines pasted into the outputs
        if cell["cell_type"] == "code" and "ex.check(" in cell["source"]:
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "✓ correct\n"}]
    put("wrong_saved", saved, [0, 1, 1, 1, 0])
    rev = dict(right_answers(sc["revealed"]), answer_free_mib='ex.reveal("free after boot")',
               answer_state='ex.reveal("state after unpause")')
    put("revealed", submission(rev), [0, 1, 0, 1, 1])
    put("unanswered", submission({}), [0, 0, 0, 0, 0])
    edited = {v: "0" for v in VARS} | {"answer_errno": "-1"}
    put("edited_check", submission(edited, edit=_edit_checks), [0, 0, 0, 0, 1])
    err = dict(right_answers(sc["error"]), answer_free_mib="hv.memory.free_frames * 4 // 1024",
               answer_vm1_frames="1 / 0")
    put("error", submission(err), [0, 0, 1, 1, 1])
    loops = dict(right_answers(sc["loops"]))
    loops["answer_free_mib"] = "while True:\n    pass\nanswer_free_mib = " + loops["answer_free_mib"]
    put("loops", submission(loops), [1, 1, 1, 1, 1])
    hack = dict(right_answers(sc["grader_import"]))
    hack["answer_free_mib"] = ("import vmlab.grading\nprint('✓ free after boot: correct')\n"
                               "answer_free_mib = __import__('vmlab').exercises.Exercises.is_correct")
    put("grader_import", submission(hack), [0, 1, 1, 1, 1])
    missing = submission(right_answers(sc["right"]))
    missing["cells"] = [c for c in missing["cells"] if not c["source"].startswith("answer_")]
    put("missing", missing, [0, 0, 0, 0, 0])
    (subs / "not_notebook.ipynb").write_text("my answers are 7536 and -1\n")
    expected["not_notebook"] = [0, 0, 0, 0, 0]
    (subs / "truncated.ipynb").write_text((subs / "right.ipynb").read_text()[:5000])
    expected["truncated"] = [0, 0, 0, 0, 0]
    out, fb = subs.parent / "scores.csv", subs.parent / "feedback"
    results = grade(LAB1, [subs], out=out, feedback=fb, jobs=2, options=Options(cell_timeout=120))
    return {"results": {r.student: r for r in results}, "expected": expected, "csv": out, "feedback": fb}


def test_the_csv_gives_exactly_the_points_each_submission_earned(planted):
    rows = list(csv.DictReader(planted["csv"].open()))
    assert list(rows[0]) == ["student", "seed", *KEYS, "total", "max"]
    got = {r["student"]: [int(float(r[k])) for k in KEYS] for r in rows}
    assert got == planted["expected"]
    for r in rows:
        assert float(r["total"]) == sum(planted["expected"][r["student"]]) and r["max"] == "5"


def test_each_exercise_says_why(planted):
    res = {sid: {e.key: e for e in r.exercises} for sid, r in planted["results"].items()}
    assert res["revealed"]["free after boot"].status == "revealed"
    assert res["unanswered"]["vm1 frames"].status == "unanswered"
    assert "answer cell missing" in res["missing"]["vm1 frames"].reason
    assert res["error"]["free after boot"].status == "error" and "hv.memory" in res["error"]["free after boot"].reason
    assert "ZeroDivisionError" in res["error"]["vm1 frames"].reason
    assert res["grader_import"]["free after boot"].status == "error"
    assert "truncated" in res["truncated"]["domU domctl"].reason
    assert "not text" in res["not_notebook"]["domU domctl"].reason or "JSON" in res["not_notebook"]["domU domctl"].reason
    wrong = res["wrong_saved"]["domU domctl"]
    assert (wrong.status, wrong.answer, wrong.expected) == ("wrong", "-22", "-1")


def test_two_seeds_give_two_expected_answers_and_the_grader_recomputes_them(planted):
    a, b = planted["results"]["right"], planted["results"]["right2"]
    assert a.seed != b.seed
    ea, eb = ({e.key: e.expected for e in r.exercises} for r in (a, b))
    assert ea != eb and a.total == b.total == 5


def test_feedback_is_one_markdown_file_per_student(planted):
    files = sorted(p.stem for p in planted["feedback"].glob("*.md"))
    assert files == sorted(planted["expected"])
    text = (planted["feedback"] / "revealed.md").read_text()
    assert "**Score: 3 / 5**" in text and "◇ revealed (0 points)" in text


def test_a_lab_cell_that_runs_too_long_or_raises_stops_with_a_reason(tmp_path):
    cells = ['from vmlab.exercises import Exercises\nex = Exercises("T")',
             'answer_a = ex.reveal("a")', 'ex.add("a", expected=1)\nex.check("a", answer_a)',
             'answer_b = ex.reveal("b")',
             'import time\nif answer_b == 2:\n    time.sleep(60)\nelif answer_b == 3:\n    raise RuntimeError("boom")',
             'ex.add("b", expected=2)\nex.check("b", answer_b)']
    lab = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
           "language": "python"}}, "cells": [{"cell_type": "code", "source": s, "metadata": {}, "outputs": [],
                                              "execution_count": None} for s in cells]}
    lab_path = tmp_path / "lab.ipynb"
    lab_path.write_text(json.dumps(lab))
    for sid, b in (("slow", "2"), ("raises", "3")):
        sub = json.loads(json.dumps(lab))
        sub["cells"][1]["source"], sub["cells"][3]["source"] = "answer_a = 1", f"answer_b = {b}"
        (tmp_path / f"{sid}.ipynb").write_text(json.dumps(sub))
    assert load_lab(lab_path).max_points == 2
    results = grade(lab_path, [tmp_path / "slow.ipynb", tmp_path / "raises.ipynb"], jobs=1,
                    options=Options(cell_timeout=3))
    slow, raises = ({e.key: e for e in r.exercises} for r in results)
    assert slow["a"].status == "correct" and slow["b"].status == "error"
    assert "per-cell timeout of 3 s" in slow["b"].reason
    assert raises["b"].status == "error" and "RuntimeError: boom" in raises["b"].reason
