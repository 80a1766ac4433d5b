"""Build the lab notebooks from their sources: `python tools/build_labs.py [NN ...]`.

A lab's source is labs/src/NN_slug.py in jupytext's percent format (`# %%` code
cells, `# %% [markdown]` text cells): it opens as a notebook in JupyterLab (with
jupytext installed, as the `lab` extra does) and diffs cleanly in git. The builder writes labs/NN-slug.ipynb, executes it top to bottom
in a fresh kernel (cwd labs/), and keeps only what nbval should compare:

  * text outputs (stdout and text/plain results) of ordinary code cells;
  * nothing for cells marked `# NBVAL_IGNORE_OUTPUT` or `# NBVAL_SKIP` (widgets,
    plots, BokehJS): their outputs are dropped, so no BokehJS or plot is committed;
  * execution counts 1..n in cell order, no widget state, no kernel metadata beyond the kernelspec.

It fails if an unmarked cell produced rich output (a widget or plot must be
marked) or if any cell raised, so a lab that builds is a lab nbval can check.
"""

from __future__ import annotations

import pathlib
import sys

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
MARKS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP")


def load_cells(src: pathlib.Path) -> list[tuple[str, str]]:
    nb = jupytext.read(src, fmt="py:percent")
    return [("md" if c.cell_type == "markdown" else "code", c.source) for c in nb.cells]


def notebook_path(src: pathlib.Path) -> pathlib.Path:
    num, _, slug = src.stem.partition("_")
    return LABS / f"{num}-{slug.replace('_', '-')}.ipynb"


def build(src: pathlib.Path, *, timeout: int = 600) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, text in load_cells(src):
        text = text.strip("\n")
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text))
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(LABS)}}).execute()
    nb.metadata.pop("widgets", None)  # widget state is runtime, never committed
    nb.metadata["language_info"] = {"name": "python"}
    count = 0
    for i, cell in enumerate(nb.cells):
        cell.pop("id", None)
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count  # nbval wants counts on cells with outputs; keep them deterministic
        cell.metadata = {}
        if any(m in cell.source for m in MARKS):
            cell.outputs = []
            continue
        kept = []
        for out in cell.outputs:
            if out.output_type == "error":
                raise SystemExit(f"{src.name} cell {i} raised {out.ename}: {out.evalue}")
            if out.output_type == "stream":
                if out.name == "stderr":
                    raise SystemExit(f"{src.name} cell {i} wrote to stderr: {out.text[:200]!r}; fix it or mark the cell")
                kept.append(out)
            elif out.output_type == "execute_result":
                rich = set(out.data) - {"text/plain"}
                if rich:
                    raise SystemExit(f"{src.name} cell {i} shows {sorted(rich)}; mark it # NBVAL_IGNORE_OUTPUT")
                out.execution_count = count
                out.metadata = {}
                kept.append(out)
            else:
                raise SystemExit(f"{src.name} cell {i} displays {out.output_type}; mark it # NBVAL_IGNORE_OUTPUT")
        merged = []  # one stream output per run of stdout chunks: how they were chunked is timing
        for out in kept:
            if merged and out.output_type == "stream" and merged[-1].output_type == "stream" \
                    and merged[-1].name == out.name:
                merged[-1].text += out.text
            else:
                merged.append(out)
        cell.outputs = merged
    nb.nbformat_minor = 5
    for cell in nb.cells:  # stable ids keep diffs small
        cell.id = f"cell-{nb.cells.index(cell):03d}"
    path = notebook_path(src)
    nbformat.write(nb, path)
    return path


def main(argv: list[str]) -> int:
    sources = sorted((LABS / "src").glob("[0-9][0-9]_*.py"))
    if argv:
        sources = [s for s in sources if any(s.name.startswith(a) for a in argv)]
    for src in sources:
        path = build(src)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
