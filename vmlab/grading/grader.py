"""Grade submissions of one lab: per exercise correct / wrong / revealed / unanswered / error.

    results = grade("labs/01-meet-the-hypervisor.ipynb", ["subs/s1.ipynb", ...],
                    out="scores.csv", feedback="feedback/", jobs=2)

Each submission: its answers are read (never run), put into the instructor's copy, and that
copy runs in a fresh kernel with the student's seed; the verdicts come from the record the
lab's `Exercises` writes, never from printed text. One submission's failure (not a notebook,
a lab cell that times out, a kernel that dies) is that submission's per-exercise reason; the
batch always finishes.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from vmlab.exercises import seed_for_student
from vmlab.grading.answers import Answer, read_answer, submitted_answers
from vmlab.grading.lab import Lab, NotANotebook, load_lab, read_notebook, splice, student_literal

STATUSES = ("correct", "wrong", "revealed", "unanswered", "error")


@dataclass(frozen=True, kw_only=True, slots=True)
class ExerciseResult:
    key: str
    status: str          # one of STATUSES
    points: float
    max_points: float
    answer: str = ""     # what the student wrote
    expected: str = ""   # the model's value for this student's seed (instructor view)
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmissionResult:
    student: str
    path: str
    seed: int
    exercises: tuple[ExerciseResult, ...]
    note: str = ""

    @property
    def total(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_total(self) -> float:
        return sum(e.max_points for e in self.exercises)


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    cell_timeout: float = 60
    seed: int | None = None        # one seed for everybody; None: each student's own (from the id)
    id_from: str = "name"          # "name": the file name's stem; "metadata": metadata.vmlab.student
    kernel_name: str = "python3"


def student_id(path: pathlib.Path, nb: dict | None, id_from: str = "name") -> str:
    if id_from == "metadata" and nb is not None:
        meta = nb.get("metadata", {}).get("vmlab", {})
        if isinstance(meta, dict) and isinstance(meta.get("student"), str) and meta["student"].strip():
            return meta["student"].strip()
    return path.stem


def _seed(options: Options, sid: str) -> int:
    return options.seed if options.seed is not None else seed_for_student(sid)


def _all_error(lab: Lab, reason: str) -> tuple[ExerciseResult, ...]:
    return tuple(ExerciseResult(key=e.key, status="error", points=0, max_points=e.points, reason=reason)
                 for e in lab.exercises)


def _verdict(ex, ans: Answer, rec: dict | None, stopped: str) -> ExerciseResult:
    base = dict(key=ex.key, max_points=ex.points, answer=ans.shown)
    if ans.kind == "invalid":
        return ExerciseResult(status="error", points=0, reason=ans.reason,
                              expected=rec["expected"] if rec else "", **base)
    if rec is None:
        return ExerciseResult(status="error", points=0, reason=stopped or "the check did not run", **base)
    status = rec["status"] if rec["status"] in STATUSES else "error"
    if ans.kind == "unanswered":
        status = "unanswered"
    reason = ans.reason or {"correct": "", "wrong": "not what the model gives for your seed"}.get(status, "")
    return ExerciseResult(status=status, points=ex.points if status == "correct" else 0,
                          expected=rec["expected"], reason=reason, **base)


def grade_submission(lab: Lab, path, options: Options = Options()) -> SubmissionResult:
    """Grade one submission against the instructor's lab (never raises for a bad submission)."""
    from vmlab.grading.run import run_lab

    path = pathlib.Path(path)
    try:
        nb = read_notebook(path)
    except NotANotebook as e:
        sid = student_id(path, None)
        seed = _seed(options, sid)
        return SubmissionResult(student=sid, path=str(path), seed=seed, exercises=_all_error(lab, str(e)))
    sid = student_id(path, nb, options.id_from)
    seed = _seed(options, sid)
    found = submitted_answers(nb["cells"])
    answers = {e.key: read_answer(e.variable, e.key, found) for e in lab.exercises}
    own = student_literal(nb["cells"])
    note = ""
    if options.seed is None and own is not None and own.strip() != sid:
        note = (f"the notebook's STUDENT is {own!r}, the grader's id is {sid!r}: graded with the seed of "
                f"{sid!r} ({seed}); if your numbers differ, set STUDENT = {sid!r} and re-run")
    outcome = run_lab(splice(lab, answers), seed=seed, cwd=lab.path.parent,
                      cell_timeout=options.cell_timeout, kernel_name=options.kernel_name)
    last = {r.get("key"): r for r in outcome.records}
    results = tuple(_verdict(e, answers[e.key], last.get(e.key), outcome.stopped) for e in lab.exercises)
    return SubmissionResult(student=sid, path=str(path), seed=seed, exercises=results, note=note)


@functools.lru_cache(maxsize=4)
def _cached_lab(path: str) -> Lab:
    return load_lab(path)


def _grade_in_worker(lab_path: str, path: str, options: Options) -> SubmissionResult:
    lab = _cached_lab(lab_path)
    try:
        return grade_submission(lab, path, options)
    except Exception as e:  # a grader bug must not sink the batch: report it per exercise
        p = pathlib.Path(path)
        return SubmissionResult(student=p.stem, path=path, seed=_seed(options, p.stem),
                                exercises=_all_error(lab, f"grader error: {type(e).__name__}: {e}"))


def expand(submissions) -> list[pathlib.Path]:
    """Files as given; a folder stands for the .ipynb files in it (sorted)."""
    out = []
    for s in submissions:
        p = pathlib.Path(s)
        out.extend(sorted(p.glob("*.ipynb")) if p.is_dir() else [p])
    return out


def grade(lab, submissions, *, out=None, feedback=None, jobs: int = 1, options: Options = Options(),
          show_expected: bool = True) -> list[SubmissionResult]:
    """Grade every submission (files or folders) with `jobs` parallel processes; write CSV / feedback."""
    from vmlab.grading.report import write_csv, write_feedback

    lab_obj = load_lab(lab)
    paths = expand(submissions)
    if jobs <= 1 or len(paths) <= 1:
        results = [_grade_in_worker(str(lab_obj.path), str(p), options) for p in paths]
    else:
        import multiprocessing

        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_grade_in_worker, str(lab_obj.path), str(p), options) for p in paths]
            results = [_collect(f, lab_obj, p, options) for f, p in zip(futures, paths)]
    results = _flag_duplicates(results)
    if out:
        write_csv(results, lab_obj, out)
    if feedback:
        write_feedback(results, lab_obj, feedback, show_expected=show_expected)
    return results


def _flag_duplicates(results: list[SubmissionResult]) -> list[SubmissionResult]:
    """Two files with one student id both get a row, each with a note naming the other files."""
    paths: dict[str, list[str]] = {}
    for r in results:
        paths.setdefault(r.student, []).append(r.path)
    return [dataclasses.replace(r, note=(r.note + "; " if r.note else "") + "the same student id also comes from "
                                + ", ".join(p for p in paths[r.student] if p != r.path))
            if len(paths[r.student]) > 1 else r for r in results]


def _collect(future, lab: Lab, path: pathlib.Path, options: Options) -> SubmissionResult:
    try:
        return future.result()
    except Exception as e:  # the worker process died (killed, out of memory)
        return SubmissionResult(student=path.stem, path=str(path),
                                seed=_seed(options, path.stem),
                                exercises=_all_error(lab, f"grader process failed: {type(e).__name__}: {e}"))
