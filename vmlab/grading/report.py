"""Grading output: one CSV row per student, one markdown feedback file per student."""

from __future__ import annotations

import csv
import pathlib
import re

from vmlab.grading.lab import Lab

_MARK = {"correct": "✓ correct", "wrong": "✗ wrong", "revealed": "◇ revealed (0 points)",
         "unanswered": "… unanswered", "error": "⚠ error"}


def _num(x: float) -> str:
    return f"{x:g}"


def write_csv(results, lab: Lab, out) -> pathlib.Path:
    """student, seed, one column of points per exercise (named by its key), total, max."""
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "seed", *[e.key for e in lab.exercises], "total", "max"])
        for r in results:
            pts = {e.key: e.points for e in r.exercises}
            w.writerow([r.student, r.seed, *[_num(pts.get(e.key, 0)) for e in lab.exercises],
                        _num(r.total), _num(r.max_total)])
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:200] if text else ""


def feedback_markdown(result, lab: Lab, *, show_expected: bool = True) -> str:
    lines = [f"# {lab.path.stem}: feedback for {result.student}", "",
             f"**Score: {_num(result.total)} / {_num(result.max_total)}** (scenario seed {result.seed})", ""]
    if result.note:
        lines += [f"> Note: {result.note}", ""]
    head = "| exercise | result | points | your answer |" + (" expected |" if show_expected else "") + " why |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for e in result.exercises:
        row = f"| {_cell(e.key)} | {_MARK[e.status]} | {_num(e.points)}/{_num(e.max_points)} | `{_cell(e.answer)}` |"
        if show_expected:
            row += f" {_cell(e.expected)} |"
        lines.append(row + f" {_cell(e.reason)} |")
    return "\n".join(lines) + "\n"


def write_feedback(results, lab: Lab, folder, *, show_expected: bool = True) -> list[pathlib.Path]:
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in results:
        safe = re.sub(r"[^\w.-]+", "_", r.student) or "student"
        p = folder / f"{safe}.md"
        p.write_text(feedback_markdown(r, lab, show_expected=show_expected), encoding="utf-8")
        paths.append(p)
    return paths
