"""The `vmlab` command (and `python -m vmlab`): the toolstack's CLI plus the commands above it.

`vmlab labs copy DIR` (vmlab.labs) and `vmlab ovm ...` (vmlab.ovm, the Oracle VM layer) sit above
the toolstack, so they are plugged in here; everything else is vmlab.toolstack.cli.
"""

from __future__ import annotations

import argparse

from vmlab.labs import copy_labs
from vmlab.ovm import cli as ovm_cli
from vmlab.toolstack import cli as toolstack_cli

__all__ = ["main"]


def _labs(a: argparse.Namespace) -> str:
    if a.labs_cmd == "copy":
        return copy_labs(a.dir).text()
    raise AssertionError(a.labs_cmd)


def main(argv: list[str] | None = None) -> int:
    return toolstack_cli.main(argv, commands={"labs": _labs}, extensions=(ovm_cli,))


if __name__ == "__main__":
    raise SystemExit(main())
