"""The otter-grader export grades a right and a wrong Lab 1 submission correctly, in otter itself.

Uses otter-grader from the `test` extra (nothing is installed at test time); skipped, with the
reason, where it is absent. `otter assign` builds the student and autograder versions from the
exported master notebook; `otter run` grades each submission locally (no container).
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RIGHT = {"answer_free_mib": "8192 - (16 + 8192 // 64) - 512", "answer_vm1_frames": "131072",
         "answer_state": '"r-----"', "answer_balloon": "168", "answer_errno": "-1"}


def _otter(*args, cwd):
    return subprocess.run([sys.executable, "-m", "otter", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_otter_export_grades_a_right_and_a_wrong_submission(tmp_path, monkeypatch):
    pytest.importorskip("otter", reason="otter-grader is not installed (pip install -e '.[otter]' or '.[test]')")
    from vmlab.grading.export_otter import export_labs

    monkeypatch.delenv("VMLAB_SEED", raising=False)
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "01-meet-the-hypervisor.ipynb").write_text((ROOT / "labs" / "01-meet-the-hypervisor.ipynb").read_text())
    [master] = export_labs(tmp_path / "export", labs_dir=labs)
    done = _otter("assign", master.name, "dist", cwd=master.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    dist = master.parent / "dist"
    [autograder] = (dist / "autograder").glob("*.zip")
    student = json.loads((dist / "student" / master.name).read_text())
    blanks = [c for c in student["cells"] if c["cell_type"] == "code" and re.match(r"answer_\w+ = \.\.\.", "".join(c["source"]))]
    assert len(blanks) == 5                          # otter's student version: answers removed
    assert "7536" not in json.dumps(student)          # and the hidden tests are not in it
    scores = {}
    for name, answers in (("right", RIGHT), ("wrong", dict(RIGHT, answer_errno="-22",
                                                             answer_free_mib='ex.reveal("free after boot")'))):
        sub = json.loads(json.dumps(student))
        for c in sub["cells"]:
            m = re.match(r"(answer_\w+) = \.\.\.", "".join(c["source"])) if c["cell_type"] == "code" else None
            if m:
                c["source"] = f"{m.group(1)} = {answers[m.group(1)]}"
        (tmp_path / f"{name}.ipynb").write_text(json.dumps(sub))
        out = tmp_path / f"out-{name}"
        out.mkdir()
        run = _otter("run", "-a", str(autograder), "-o", str(out), str(tmp_path / f"{name}.ipynb"), cwd=tmp_path)
        results = json.loads((out / "results.json").read_text())
        assert "Autograder Failed" not in {t["name"] for t in results["tests"]}, run.stdout[-2000:]
        scores[name] = {t["name"]: t.get("score") for t in results["tests"] if t["name"].startswith("q_")}
    assert set(scores["right"]) == {"q_free_after_boot", "q_vm1_frames", "q_state_after_unpause",
                                    "q_vm1_after_mem_set_64", "q_domu_domctl"}
    assert set(scores["right"].values()) == {1}       # one point per exercise, all earned
    assert scores["wrong"] == dict(scores["right"], q_domu_domctl=0, q_free_after_boot=0)
