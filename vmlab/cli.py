"""The `vmlab` command (and `python -m vmlab`): the toolstack's CLI plus the commands above it.

`vmlab labs copy DIR` (vmlab.labs), `vmlab grade` and `vmlab labs student|export` (vmlab.grading)
and `vmlab ovm ...` (vmlab.ovm, the Oracle VM layer) sit above the toolstack, so they are plugged
in here; everything else is vmlab.toolstack.cli.
"""

from __future__ import annotations

import argparse

from vmlab.grading import cli as grading_cli
from vmlab.labs import copy_labs
from vmlab.ovm import cli as ovm_cli
from vmlab.toolstack import cli as toolstack_cli

__all__ = ["main"]


def _labs(a: argparse.Namespace) -> str:
    if a.labs_cmd == "copy":
        return copy_labs(a.dir).text()
    return grading_cli.run(a)  # student, export


class _Commands:
    """Parsers for the commands that need no state file: grading's `grade` and `labs`, plus `labs copy`."""

    def add_parsers(self, sub, sim_sub) -> None:
        grading_cli.register(sub)
        labs = sub.choices["labs"]
        actions = next(x for x in labs._actions if isinstance(x, argparse._SubParsersAction))
        actions.add_parser("copy", help="write a fresh set of lab notebooks into DIR, skipping files that exist"
                           ).add_argument("dir", metavar="DIR")

    def handles(self, pool, a) -> bool:
        return False

    def run(self, pool, a) -> str:  # pragma: no cover - handles() is never true
        raise AssertionError(a.cmd)


def main(argv: list[str] | None = None) -> int:
    return toolstack_cli.main(argv, commands={"labs": _labs, "grade": grading_cli.run},
                              extensions=(_Commands(), ovm_cli))


if __name__ == "__main__":
    raise SystemExit(main())
