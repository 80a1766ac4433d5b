"""Write the conda environments from pyproject.toml: `python tools/gen_envs.py` (--check: compare only).

pyproject.toml is the one place the dependencies are pinned. This writes

  * environment.yml         - `conda env create -f environment.yml` from the repository root: the
                              [lab,test] extras from conda-forge, then vmlab itself (pip -e .);
  * binder/environment.yml  - what repo2docker (mybinder.org) installs; binder/postBuild then
                              installs vmlab itself from the repository (no other download).

tests/test_packaging.py fails when either file differs from what this script writes.
"""

from __future__ import annotations

import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# PyPI name -> conda-forge name, where they differ (none today; add here, not in the yml files).
CONDA_NAMES: dict[str, str] = {}
BINDER_PYTHON = "3.12"  # one fixed Python for reproducible Binder builds


def requirements() -> list[str]:
    """The runtime dependencies and the lab and test extras, deduplicated, in pyproject's order."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["lab"],
            *project["optional-dependencies"]["test"]]
    out: list[str] = []
    for r in reqs:
        name = r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
        rest = r[len(name):].replace(" ", "")
        if rest.startswith("["):  # conda has no extras: the conda-forge package brings its own
            rest = rest[rest.index("]") + 1:]
        spec = CONDA_NAMES.get(name, name) + rest
        if spec not in out:
            out.append(spec)
    return out


def render(*, python: str, pip_self: bool, header: str) -> str:
    lines = [header, "name: vmlab", "channels:", "  - conda-forge", "dependencies:", f"  - python{python}"]
    lines += [f"  - {r}" for r in requirements()]
    lines.append("  - pip")
    if pip_self:
        lines += ["  - pip:", "      - -e ."]
    return "\n".join(lines) + "\n"


def files() -> dict[pathlib.Path, str]:
    gen = "# Generated from pyproject.toml by tools/gen_envs.py; edit pyproject, then run it.\n"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    return {
        ROOT / "environment.yml": render(python=requires, pip_self=True,
                                         header=gen + "# conda env create -f environment.yml (from the repository root)"),
        ROOT / "binder" / "environment.yml": render(python=f"={BINDER_PYTHON}", pip_self=False,
                                                    header=gen + "# mybinder.org / repo2docker; binder/postBuild installs vmlab"),
    }


def main(argv: list[str]) -> int:
    stale = [p for p, text in files().items() if not p.is_file() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(ROOT)} differs from pyproject.toml; run python tools/gen_envs.py", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files()[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
