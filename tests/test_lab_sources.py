"""Lab sources an instructor can edit: jupytext percent files that the committed notebooks match.

The builder (tools/build_labs.py) runs a source and keeps only deterministic text outputs; these
checks need no kernel: one notebook per source with the same cells, and nothing rich stored.
"""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "labs" / "src").glob("[0-9][0-9]_*.py"))


def _builder():
    spec = importlib.util.spec_from_file_location("build_labs", ROOT / "tools" / "build_labs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_notebook_per_source_and_no_orphans():
    b = _builder()
    assert SOURCES
    assert sorted(b.notebook_path(s).name for s in SOURCES) == sorted(p.name for p in (ROOT / "labs").glob("*.ipynb"))


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_source_is_percent_format_and_the_notebook_has_its_cells(src):
    b = _builder()
    text = src.read_text(encoding="utf-8")
    assert "# %%" in text and "format_name: percent" in text, f"{src.name} is not a jupytext percent file"
    nb = json.loads(b.notebook_path(src).read_text(encoding="utf-8"))
    built = [("md" if c["cell_type"] == "markdown" else "code", "".join(c["source"])) for c in nb["cells"]]
    assert built == [(kind, body.strip("\n")) for kind, body in b.load_cells(src)], \
        f"{b.notebook_path(src).name} is stale; run python tools/build_labs.py {src.name[:2]}"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_notebook_stores_text_outputs_only(src):
    nb = json.loads(_builder().notebook_path(src).read_text(encoding="utf-8"))
    assert "widgets" not in nb["metadata"]
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            assert out["output_type"] in ("stream", "execute_result"), out["output_type"]
            assert set(out.get("data", {})) <= {"text/plain"}
            assert out.get("name", "stdout") == "stdout"
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert "bokeh" not in outputs.lower() and "<script" not in outputs
