"""Per-student variants: every lab reads a seed, and two seeds give two different expected answers.

Each lab's scenario cell derives its parameters from `variant(lab_seed(STUDENT))`; the default seed
gives the book's numbers (nbval checks those against the committed notebooks). Here every lab runs
twice, with seed 0 and with a seed that changes its scenario, and at least one exercise's expected
value must differ.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import pathlib
from concurrent.futures import ProcessPoolExecutor

from vmlab.exercises import lab_seed, variant

ROOT = pathlib.Path(__file__).resolve().parents[2]
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]-*.ipynb"))


def _scenario(nb: dict, seed: int, monkeypatch) -> dict:
    monkeypatch.setenv("VMLAB_SEED", str(seed))
    src = next("".join(c["source"]) for c in nb["cells"] if "variant(lab_seed(STUDENT))" in "".join(c["source"]))
    ns = {"STUDENT": "", "lab_seed": lab_seed, "variant": variant}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(src, ns)
    return {k: v for k, v in ns.items() if k.isupper() and k != "STUDENT"}


def _expected(lab: str, seed: int) -> dict[str, str]:
    from vmlab.grading.export_otter import expected_values
    from vmlab.grading.lab import load_lab

    return {k: r["expected"] for k, r in expected_values(load_lab(lab), seed).items()}


def test_every_lab_has_a_seed_cell_and_a_scenario():
    assert len(LABS) >= 6
    for lab in LABS:
        nb = json.loads(lab.read_text())
        sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        assert sources[0].startswith('STUDENT = ""'), lab.name
        assert any("variant(lab_seed(STUDENT))" in s for s in sources), lab.name
        printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
        assert "Your scenario (seed 0)" in printed, lab.name   # the committed copy is the default seed's


def test_two_seeds_give_two_expected_answers_in_every_lab(monkeypatch):
    jobs = []
    for lab in LABS:
        nb = json.loads(lab.read_text())
        base = _scenario(nb, 0, monkeypatch)
        other = next(s for s in range(1, 200) if _scenario(nb, s, monkeypatch) != base)
        jobs.append((lab, other))
    monkeypatch.delenv("VMLAB_SEED")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        runs = {(lab, s): pool.submit(_expected, str(lab), s) for lab, other in jobs for s in (0, other)}
        for lab, other in jobs:
            a, b = runs[(lab, 0)].result(), runs[(lab, other)].result()
            assert a.keys() == b.keys(), lab.name
            assert any(a[k] != b[k] for k in a), f"{lab.name}: seeds 0 and {other} give the same answers {a}"
