"""Export the labs as otter-grader assignments (`otter assign` master notebooks).

    vmlab labs export dist/ --engine otter       # dist/NN-slug/NN-slug.ipynb, one master per lab
    otter assign dist/01-meet-the-hypervisor/01-meet-the-hypervisor.ipynb dist/01-out

Each exercise becomes an otter question worth its points: the answer cell is the solution
(`answer_x = <model value>  # SOLUTION`, which otter turns into `answer_x = ...` for
students), followed by a public test (answered, and not with ex.reveal: otter runs a question's
tests right after its answer cell, before the lab's check cell defines the exercise) and a
hidden test against the literal expected value (which a student cannot edit away). Expected values are the model's for one seed (default 0, the
committed scenario): otter has no notion of per-student variants, so the export gives every
student the same numbers — use `vmlab grade` for variants.
"""

from __future__ import annotations

import ast
import copy
import json
import pathlib
import re

from vmlab.errors import ConfigError
from vmlab.grading.answers import Answer, answer_names, cell_source
from vmlab.grading.grader import Options
from vmlab.grading.lab import Lab, load_lab, splice

_CONFIG = """# ASSIGNMENT CONFIG
name: {name}
init_cell: false
check_all_cell: false
export_cell: false
run_tests: false
generate:
  pdf: false
  filtering: false
  zips: false
tests:
  files: false
  ok_format: true
"""


_CHDIR = re.compile(r"^os\.chdir\(.*$", re.M)


def _raw(text: str) -> dict:
    return {"cell_type": "raw", "metadata": {}, "source": text}


def _code(text: str, result: str | None = None) -> dict:
    outputs = [] if result is None else [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                          "data": {"text/plain": result}}]
    return {"cell_type": "code", "metadata": {}, "execution_count": 1 if result else None,
            "outputs": outputs, "source": text}


def expected_values(lab: Lab, seed: int, options: Options = Options()) -> dict[str, dict]:
    """key -> the lab's record for a run with every answer revealed (expected repr, unit, points)."""
    from vmlab.grading.run import run_lab

    revealed = {e.key: Answer(kind="revealed", literal=f"ex.reveal({e.key!r})") for e in lab.exercises}
    outcome = run_lab(splice(lab, revealed), seed=seed, cwd=lab.path.parent, cell_timeout=options.cell_timeout,
                      kernel_name=options.kernel_name)
    if outcome.stopped:
        raise ConfigError(f"{lab.path.name}: {outcome.stopped}; fix the lab before exporting it")
    return {r["key"]: r for r in outcome.records}


def _hidden_test(var: str, expected: str, tolerance: float) -> str:
    value = ast.literal_eval(expected)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        tol = tolerance or 1e-9 * max(1.0, abs(value))
        return (f"# HIDDEN\nisinstance({var}, (int, float)) and not isinstance({var}, bool) "
                f"and abs({var} - ({value!r})) <= {tol!r}")
    if isinstance(value, str):
        return f"# HIDDEN\nisinstance({var}, str) and {var}.strip() == {value!r}"
    return f"# HIDDEN\n{var} == {value!r}"


def _question(name: str, points: float, solution: str, var: str, hidden: str) -> list[dict]:
    # the public test (answered, not revealed) is feedback worth 0; the hidden one carries the points
    config = f"# BEGIN QUESTION\nname: {name}\npoints: [0, {points:g}]\ncheck_cell: false\n"
    public = f"{var} is not ... and type({var}).__name__ != 'Revealed'"
    return [_raw(config), _raw("# BEGIN SOLUTION"), _code(solution), _raw("# END SOLUTION"),
            _raw("# BEGIN TESTS"), _code(public, "True"), _code(hidden, "True"),
            _raw("# END TESTS"), _raw("# END QUESTION")]


def _tolerances(lab: Lab) -> dict[str, float]:
    out = {}
    for cell in lab.notebook["cells"]:
        for m in re.finditer(r"ex\.add\(\s*(['\"])(.+?)\1.*?tolerance\s*=\s*([0-9.e+-]+)", cell_source(cell), re.S):
            out[m.group(2)] = float(m.group(3))
    return out


def otter_master(lab: Lab, *, seed: int = 0) -> dict:
    """The lab as an otter-assign master notebook (questions after the lab's check cells)."""
    values, tols = expected_values(lab, seed), _tolerances(lab)
    by_var = {e.variable: e for e in lab.exercises}
    nb = copy.deepcopy(lab.notebook)
    cells = [_raw(_CONFIG.format(name=lab.path.stem))]
    for cell in nb["cells"]:
        src = cell_source(cell)
        names = answer_names(src) if cell.get("cell_type") == "code" else None
        if not names:
            # otter finds its tests relative to the kernel's folder: a lab must not leave it
            cell["source"] = _CHDIR.sub(r"# \g<0>  (otter export: grading already runs in a scratch folder)", src)
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
            cells.append(cell)
            continue
        for var in names:
            e = by_var.get(var)
            if e is None or e.key not in values:
                cells.append(_code(f"{var} = ..."))
                continue
            qname = "q_" + re.sub(r"\W+", "_", e.key).strip("_").lower()
            sol = f"{var} = {values[e.key]['expected']}  # SOLUTION"
            cells += _question(qname, e.points, sol, var,
                               _hidden_test(var, values[e.key]["expected"], tols.get(e.key, 0.0)))
    nb["cells"] = cells
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in ("kernelspec", "language_info")}
    return nb


def export_labs(folder, *, labs_dir="labs", seed: int = 0) -> list[pathlib.Path]:
    """Write one otter master notebook per lab: folder/NN-slug/NN-slug.ipynb."""
    from vmlab.grading.student import lab_notebooks

    written = []
    for path in lab_notebooks(labs_dir):
        master = otter_master(load_lab(path), seed=seed)
        target = pathlib.Path(folder) / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(master, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written
