"""The grading verbs of the `vmlab` command (registered by vmlab's CLI; no state file involved).

    vmlab grade LAB SUBMISSIONS... [--out scores.csv] [--feedback DIR] [--jobs N] [--timeout S] [--seed N]
    vmlab labs student DIR [--labs labs/] [--roster ids.txt]
    vmlab labs export DIR [--engine otter] [--labs labs/]
"""

from __future__ import annotations

import os
import pathlib

from vmlab.errors import ConfigError


def register(sub) -> None:
    """Add `grade` and `labs` to the vmlab subcommands."""
    g = sub.add_parser("grade", help="grade submissions of a lab: per-exercise verdicts, CSV and feedback")
    g.add_argument("lab", help="the instructor's lab notebook, e.g. labs/01-meet-the-hypervisor.ipynb")
    g.add_argument("submissions", nargs="+", help="submitted .ipynb files, or folders of them")
    g.add_argument("--out", default="scores.csv", help="CSV, one row per student (default scores.csv)")
    g.add_argument("--feedback", help="folder for one markdown feedback file per student")
    g.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: CPUs)")
    g.add_argument("--timeout", type=float, default=60, help="per-cell timeout in seconds (default 60)")
    g.add_argument("--seed", type=int, help="one scenario seed for all (default: each student's, from the id)")
    g.add_argument("--id-from", choices=("name", "metadata"), default="name",
                   help="student id: the file name's stem (default) or metadata vmlab.student")
    g.add_argument("--hide-expected", action="store_true", help="feedback without the model's values")
    labs = sub.add_parser("labs", help="student versions of the labs, and an export to otter-grader")
    ls = labs.add_subparsers(dest="labs_cmd", metavar="ACTION", parser_class=sub._parser_class)
    ls.required = True
    st = ls.add_parser("student", help="write the notebooks students get (no answers, no outputs)")
    st.add_argument("dir"), st.add_argument("--labs", default="labs"), st.add_argument("--roster")
    ex = ls.add_parser("export", help="write otter-grader assignments (otter assign input) from the labs")
    ex.add_argument("dir"), ex.add_argument("--labs", default="labs")
    ex.add_argument("--engine", choices=("otter",), default="otter")
    ex.add_argument("--seed", type=int, default=0, help="scenario seed of the exported expected values (default 0)")


def run(a) -> str:
    if a.cmd == "grade":
        return _grade(a)
    if a.labs_cmd == "student":
        from vmlab.grading.student import write_student_versions

        paths = write_student_versions(a.dir, labs_dir=a.labs, roster=a.roster)
        return f"{len(paths)} student notebook(s) written under {a.dir}"
    from vmlab.grading.export_otter import export_labs

    paths = export_labs(a.dir, labs_dir=a.labs, seed=a.seed)
    return "\n".join(f"{p}" for p in paths)


def _grade(a) -> str:
    from vmlab.grading.grader import Options, expand, grade

    if a.jobs < 1 or a.timeout <= 0:
        raise ConfigError(f"vmlab grade: --jobs {a.jobs} / --timeout {a.timeout:g} must be positive; e.g. --jobs 2 --timeout 60")
    if not pathlib.Path(a.lab).is_file():
        raise ConfigError(f"vmlab grade: no lab notebook {a.lab!r}; give the instructor's labs/NN-slug.ipynb")
    missing = [s for s in a.submissions if not pathlib.Path(s).exists()]
    if missing:
        raise ConfigError(f"vmlab grade: {missing[0]!r} does not exist; give submission files or folders")
    if not expand(a.submissions):
        raise ConfigError("vmlab grade: no .ipynb submissions found; give files or folders holding them")
    opts = Options(cell_timeout=a.timeout, seed=a.seed, id_from=a.id_from)
    results = grade(a.lab, a.submissions, out=a.out, feedback=a.feedback, jobs=a.jobs, options=opts,
                    show_expected=not a.hide_expected)
    lines = [f"{r.student:20s} {r.total:g}/{r.max_total:g}" for r in results]
    lines.append(f"{len(results)} submission(s) graded; scores in {a.out}"
                 + (f", feedback in {a.feedback}" if a.feedback else ""))
    return "\n".join(lines)
