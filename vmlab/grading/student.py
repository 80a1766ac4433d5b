"""Student versions of the labs: no answers, no outputs, no BokehJS, the seed cell in place.

    vmlab labs student handout/                      # one generic copy per lab
    vmlab labs student handout/ --roster ids.txt     # handout/<id>/NN-slug.ipynb with STUDENT filled in

The instructor's copy (labs/NN-slug.ipynb, as committed) keeps `ex.reveal(...)` in its answer
cells and the model's values in its outputs; a student copy has `...` there instead (the
placeholder the "not answered" verdict names) and no outputs at all.
"""

from __future__ import annotations

import copy
import json
import pathlib
import re

from vmlab.errors import ConfigError
from vmlab.grading.answers import answer_names, cell_source
from vmlab.grading.lab import STUDENT_VAR, read_notebook

_ANSWER_LINE = re.compile(r"^(?P<name>answer_\w+)\s*=\s*(?P<expr>.*?)(?P<comment>\s*#.*)?$")
_STUDENT_LINE = re.compile(rf"^{STUDENT_VAR}\s*=\s*(\"[^\"]*\"|'[^']*')(?P<rest>.*)$", re.M)
_KEEP_META = ("kernelspec", "language_info", "jupytext")


def _blank_answers(src: str) -> str:
    out = []
    for line in src.splitlines():
        m = _ANSWER_LINE.match(line)
        out.append(f"{m['name']} = ...{m['comment'] or ''}" if m else line)
    return "\n".join(out)


def student_notebook(nb: dict, *, lab: str, student: str | None = None) -> dict:
    """A copy of an instructor notebook as students get it (optionally for one student id)."""
    nb = copy.deepcopy(nb)
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in _KEEP_META}
    nb["metadata"]["vmlab"] = {"lab": lab, **({"student": student} if student else {})}
    seed_cell = False
    for cell in nb["cells"]:
        src = cell_source(cell)
        cell["source"] = src
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        cell["metadata"] = {}
        if answer_names(src):
            cell["source"] = _blank_answers(src)
        elif _STUDENT_LINE.search(src):
            seed_cell = True
            if student:
                cell["source"] = _STUDENT_LINE.sub(lambda m: f"{STUDENT_VAR} = {json.dumps(student)}{m['rest']}", src, count=1)
    if not seed_cell:
        raise ConfigError(f"{lab}: no seed cell (`{STUDENT_VAR} = \"\"`); every lab starts with one "
                          "so a student's numbers follow their id")
    return nb


def read_roster(path) -> list[str]:
    """Student ids, one a line (blank lines and # comments skipped; a CSV's first column)."""
    ids = []
    for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].split(",", 1)[0].strip()
        if line and line.lower() not in ("student", "id", "student_id"):
            ids.append(line)
    bad = [s for s in ids if not re.fullmatch(r"[\w.@-]+", s)]
    if bad:
        raise ConfigError(f"roster {path}: id {bad[0]!r} has characters a file name cannot carry; "
                          "use letters, digits, '.', '@', '-' or '_'")
    return ids


def lab_notebooks(labs_dir) -> list[pathlib.Path]:
    found = sorted(pathlib.Path(labs_dir).glob("[0-9][0-9]-*.ipynb"))
    if not found:
        raise ConfigError(f"no lab notebooks (NN-slug.ipynb) in {labs_dir}; give --labs PATH to the labs/ folder")
    return found


def write_student_versions(folder, *, labs_dir="labs", roster=None) -> list[pathlib.Path]:
    """Write every lab's student version into `folder` (per student id when a roster is given)."""
    folder = pathlib.Path(folder)
    ids = read_roster(roster) if roster else [None]
    written = []
    for path in lab_notebooks(labs_dir):
        nb = read_notebook(path)
        for sid in ids:
            target = folder / sid / path.name if sid else folder / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(student_notebook(nb, lab=path.stem, student=sid), indent=1,
                                         ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(target)
    return written
