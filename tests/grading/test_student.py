"""Student versions: no answers, no outputs, no BokehJS, the seed cell in place; saved, they stay small."""

from __future__ import annotations

import json
import pathlib

from vmlab.grading.answers import answer_names
from vmlab.grading.student import student_notebook, write_student_versions

ROOT = pathlib.Path(__file__).resolve().parents[2]
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]-*.ipynb"))


def test_student_versions_hold_no_answers_and_no_outputs(tmp_path):
    paths = write_student_versions(tmp_path, labs_dir=ROOT / "labs")
    assert [p.name for p in paths] == [p.name for p in LABS]
    for p in paths:
        nb = json.loads(p.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code[0]["source"].startswith('STUDENT = ""'), p.name
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), p.name
        answers = [c["source"] for c in code if answer_names(c["source"])]
        assert answers and all("ex.reveal" not in a for a in answers), p.name
        assert all(" = ..." in line for a in answers for line in a.splitlines()), p.name
        assert "application/javascript" not in p.read_text() and "widgets" not in nb["metadata"]
        assert nb["metadata"]["vmlab"] == {"lab": p.stem}


def test_a_roster_gives_each_student_a_copy_with_their_id(tmp_path):
    roster = tmp_path / "ids.txt"
    roster.write_text("# class of 2026\ns001\ns002\n")
    paths = write_student_versions(tmp_path / "out", labs_dir=ROOT / "labs", roster=roster)
    assert len(paths) == 2 * len(LABS)
    nb = json.loads((tmp_path / "out" / "s002" / LABS[0].name).read_text())
    assert any(c["source"].startswith('STUDENT = "s002"') for c in nb["cells"])
    assert nb["metadata"]["vmlab"]["student"] == "s002"


def test_an_executed_and_saved_student_lab_1_stays_small_and_says_what_to_replace(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("VMLAB_NO_BOKEHJS", raising=False)
    monkeypatch.delenv("VMLAB_SEED", raising=False)
    nb = nbformat.from_dict(student_notebook(json.loads(LABS[0].read_text()), lab=LABS[0].stem))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "labs")}}).execute()
    nb.metadata.pop("widgets", None)   # JupyterLab does not save widget state unless asked to
    saved = tmp_path / "lab1.ipynb"
    nbformat.write(nb, saved)
    text = saved.read_text()
    assert saved.stat().st_size < 200_000, saved.stat().st_size   # BokehJS alone is ~8 MB
    assert "application/javascript" not in text and "bokehjs_load" not in text
    assert "BokehJS loaded from the installed bokeh package" in text
    assert "… free after boot: not answered yet — replace the ... after the =" in text
