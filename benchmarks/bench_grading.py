"""Grading throughput: generated Lab 1 submissions graded with parallel processes.

    python benchmarks/bench_grading.py [N] [--jobs J]     # default: 200 submissions, one process per CPU

Each submission is a student copy of Lab 1 for its own id (so its own seed and numbers), answered
right, wrong, revealed or not at all in rotation; grading runs the instructor's copy in a fresh
kernel per submission. `make bench` runs a 20-submission version (run.py repeats it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAB1 = ROOT / "labs" / "01-meet-the-hypervisor.ipynb"


def _scenario(nb: dict, student: str) -> dict:
    from vmlab.exercises import lab_seed, variant

    src = next("".join(c["source"]) for c in nb["cells"] if "variant(lab_seed(STUDENT))" in "".join(c["source"]))
    ns = {"STUDENT": student, "lab_seed": lab_seed, "variant": variant}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(src, ns)
    return ns


def make_submissions(folder: pathlib.Path, n: int) -> list[pathlib.Path]:
    from vmlab.grading.student import student_notebook

    os.environ.pop("VMLAB_SEED", None)
    lab = json.loads(LAB1.read_text())
    paths = []
    for i in range(n):
        sid = f"s{i:03d}"
        sc = _scenario(lab, sid)
        host, dom0, vm1 = sc["HOST_MIB"], sc["DOM0_MIB"], sc["VM1_MIB"]
        answers = {"answer_free_mib": f"{host} - 16 - {host // 64} - {dom0}", "answer_vm1_frames": str(vm1 * 256),
                   "answer_state": '"r-----"', "answer_balloon": str(104 + vm1 // 8), "answer_errno": "-1"}
        kind = i % 4   # 0 right, 1 one wrong, 2 one revealed, 3 two unanswered
        if kind == 1:
            answers["answer_errno"] = "-22"
        elif kind == 2:
            answers["answer_state"] = 'ex.reveal("state after unpause")'
        elif kind == 3:
            answers["answer_balloon"] = answers["answer_free_mib"] = "..."
        nb = student_notebook(lab, lab=LAB1.stem, student=sid)
        for c in nb["cells"]:
            name = c["source"].split(" = ...", 1)[0] if c["cell_type"] == "code" else ""
            if name in answers:
                c["source"] = f"{name} = {answers[name]}"
        path = folder / f"{sid}.ipynb"
        path.write_text(json.dumps(nb))
        paths.append(path)
    return paths


def grade_generated(n: int, jobs: int) -> tuple[float, float]:
    from vmlab.grading import grade

    with tempfile.TemporaryDirectory(prefix="vmlab-bench-grade-") as tmp:
        folder = pathlib.Path(tmp)
        make_submissions(folder, n)
        t0 = time.perf_counter()
        results = grade(LAB1, [folder], out=folder / "scores.csv", feedback=folder / "fb", jobs=jobs)
        elapsed = time.perf_counter() - t0
    want = sum(5 if i % 4 == 0 else 4 if i % 4 in (1, 2) else 3 for i in range(n))
    got = sum(r.total for r in results)
    assert got == want, f"graded {got} points, expected {want}"
    return elapsed, n / elapsed * 60


def bench_grade_lab1_20():
    """measurement: 20 generated Lab 1 submissions, one process per CPU (200: run this file)"""
    elapsed, per_min = grade_generated(20, os.cpu_count() or 1)
    return f"{per_min:.1f} submissions/min"


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv and argv[0].isdigit() else 200
    jobs = int(argv[argv.index("--jobs") + 1]) if "--jobs" in argv else (os.cpu_count() or 1)
    elapsed, per_min = grade_generated(n, jobs)
    print(f"graded {n} Lab 1 submissions with {jobs} processes on {os.cpu_count()} CPUs in {elapsed:.1f} s: "
          f"{per_min:.1f} submissions/min ({elapsed / n:.2f} s each)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
