"""The instructor's copy of a lab: its exercises, and a copy of it carrying one student's answers.

Everything but the answer literals comes from the instructor's copy: check cells,
expected values, set-up, seed cell. The student's notebook contributes only the
values read by `answers.read_answer`.
"""

from __future__ import annotations

import copy
import json
import pathlib
from dataclasses import dataclass

from vmlab.errors import ConfigError
from vmlab.grading.answers import Answer, answer_names, cell_source, check_keys, points_of

STUDENT_VAR = "STUDENT"


@dataclass(frozen=True, kw_only=True, slots=True)
class Exercise:
    key: str
    variable: str
    points: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Lab:
    path: pathlib.Path
    notebook: dict
    exercises: tuple[Exercise, ...]
    answer_cells: tuple[int, ...]   # indices of the instructor's answer cells

    @property
    def max_points(self) -> float:
        return sum(e.points for e in self.exercises)


class NotANotebook(ValueError):
    """The file is not a readable Jupyter notebook; the message says why."""


def read_notebook(path: pathlib.Path) -> dict:
    """A notebook as JSON, or NotANotebook naming what is wrong with the file."""
    try:
        raw = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise NotANotebook(f"cannot read {path}: {e.strerror}") from None
    try:
        nb = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotANotebook("the file is not text (a Jupyter notebook is JSON): was the right file uploaded?") from None
    except json.JSONDecodeError as e:
        where = "truncated (it ends before the JSON does)" if e.pos >= len(raw.rstrip()) - 1 else \
            f"not valid JSON ({e.msg}, line {e.lineno} column {e.colno})"
        raise NotANotebook(f"the file is {where}: re-save the notebook in Jupyter and upload it again") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotANotebook("the file is JSON but not a Jupyter notebook (no list of cells)")
    return nb


def load_lab(path) -> Lab:
    """The instructor's lab notebook (labs/NN-slug.ipynb) and its exercises in check order."""
    path = pathlib.Path(path)
    try:
        nb = read_notebook(path)
    except NotANotebook as e:
        raise ConfigError(f"lab {path}: {e}") from None
    answer_cells, variables, points, checks = [], set(), {}, []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        src = cell_source(cell)
        names = answer_names(src)
        if names:
            answer_cells.append(i)
            variables.update(names)
            continue
        points.update(points_of(src))
        checks.extend(check_keys(src))
    exercises = tuple(Exercise(key=k, variable=v, points=points.get(k, 1.0)) for k, v in checks if v in variables)
    if not exercises:
        raise ConfigError(f"lab {path} has no exercises (no `ex.check(\"key\", answer_x)` with an "
                          "`answer_x = ...` cell); give the instructor's lab notebook")
    return Lab(path=path, notebook=nb, exercises=exercises, answer_cells=tuple(answer_cells))


def splice(lab: Lab, answers: dict[str, Answer]) -> dict:
    """The instructor's notebook with each answer cell replaced by the student's answer literals."""
    nb = copy.deepcopy(lab.notebook)
    by_var = {e.variable: answers.get(e.key) for e in lab.exercises}
    for i in lab.answer_cells:
        names = answer_names(cell_source(nb["cells"][i])) or []
        lines = []
        for name in names:
            ans = by_var.get(name)
            literal = ans.literal if ans is not None and ans.kind in ("value", "revealed") else "..."
            lines.append(f"{name} = {literal}")
        nb["cells"][i]["source"] = "\n".join(lines)
        nb["cells"][i]["outputs"] = []
    for cell in nb["cells"]:
        cell["source"] = cell_source(cell)
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def student_literal(cells: list[dict], name: str = STUDENT_VAR) -> str | None:
    """The string a submission's seed cell gives to STUDENT (None when absent or not a plain string)."""
    import ast

    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(cell_source(cell))
        except SyntaxError:
            continue
        for stmt in tree.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == name and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)):
                return stmt.value.value
    return None
