"""`vmlab grade` and `vmlab labs student|export` from the command line: results, and one-line errors."""

from __future__ import annotations

import csv
import json
import pathlib

from vmlab.cli import main  # the vmlab command: grade and labs are plugged in there (layers)

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAB1 = ROOT / "labs" / "01-meet-the-hypervisor.ipynb"


def test_grade_writes_scores_and_feedback(tmp_path, capsys):
    assert main(["labs", "student", str(tmp_path / "handout"), "--labs", str(ROOT / "labs")]) == 0
    nb = json.loads((tmp_path / "handout" / LAB1.name).read_text())
    for c in nb["cells"]:
        if c["source"].startswith("answer_errno = ..."):
            c["source"] = "answer_errno = -1"
    (tmp_path / "s1.ipynb").write_text(json.dumps(nb))
    (tmp_path / "s2.ipynb").write_text("{not json")
    out = tmp_path / "scores.csv"
    rc = main(["grade", str(LAB1), str(tmp_path / "s1.ipynb"), str(tmp_path / "s2.ipynb"), "--out", str(out),
               "--feedback", str(tmp_path / "fb"), "--jobs", "1", "--seed", "0"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "s1                   1/5" in printed and "2 submission(s) graded" in printed
    rows = {r["student"]: r for r in csv.DictReader(out.open())}
    assert rows["s1"]["domU domctl"] == "1" and rows["s1"]["total"] == "1" and rows["s2"]["total"] == "0"
    assert (tmp_path / "fb" / "s2.md").read_text().count("⚠ error") == 5


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nolab.ipynb"), str(tmp_path)]) == 1
    assert "no lab notebook" in capsys.readouterr().err
    assert main(["grade", str(LAB1), str(tmp_path / "missing.ipynb")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["grade", str(LAB1), str(tmp_path)]) == 1          # an empty folder
    assert "no .ipynb submissions" in capsys.readouterr().err
    assert main(["grade", str(LAB1), str(tmp_path), "--jobs", "0"]) == 1
    assert "--jobs 0" in capsys.readouterr().err
    roster = tmp_path / "r.txt"
    roster.write_text("ok_id\nbad/id\n")
    assert main(["labs", "student", str(tmp_path / "o"), "--labs", str(ROOT / "labs"), "--roster", str(roster)]) == 1
    assert "'bad/id'" in capsys.readouterr().err


def test_two_files_with_one_student_id_are_both_graded_and_flagged(tmp_path):
    from vmlab.grading import grade

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "s7.ipynb").write_text("not a notebook")
    results = grade(LAB1, [tmp_path / "a", tmp_path / "b"], jobs=1)
    assert [r.student for r in results] == ["s7", "s7"]
    assert all("the same student id also comes from" in r.note for r in results)
