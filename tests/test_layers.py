"""The shape of the package: one-way arrows between layers, no circles, rooms of one size.

Layers from the ground up (DESIGN.md): each module imports only modules of its own layer or
below, and the module graph has no cycle. Every import counts, including ones inside functions:
a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "vmlab"
WIDGETS = ROOT / "widgets"

# Longest prefix wins. Siblings on one level may import each other as long as no cycle forms.
LAYERS: dict[str, int] = {
    "vmlab.errors": 0, "vmlab.trace": 0, "vmlab.costs": 0, "vmlab.datasets": 0,
    "vmlab.exercises": 0, "vmlab._resources": 0, "vmlab.measurements": 0,
    "vmlab.hardware": 1,
    "vmlab.hypervisor": 2,
    "vmlab.paging": 3, "vmlab.io": 3, "vmlab.migration": 3,
    "vmlab.guest": 4,
    "vmlab.execution": 5, "vmlab.toolstack": 5,
    "vmlab.ovm": 6,
    "vmlab.grading": 6, "vmlab.labs": 6, "vmlab.magics": 6, "vmlab.cli": 6, "vmlab.__main__": 7,
    "vmlab.widgets": 8,
}
EXEMPT = {"vmlab"}  # vmlab/__init__.py: the lazy curated API, imports on first use only

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# Documented literal specification loops (see their docstrings), allowed past 60 lines.
LONG_FUNCTION_ALLOWED: set[str] = set()


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for base, prefix in ((PKG, "vmlab"), (WIDGETS, "vmlab.widgets")):
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([prefix, *parts])] = path
    return mods


def layer_of(module: str) -> int | None:
    best = None
    for prefix, level in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, level)
    return None if best is None else best[1]


def _imports(module: str, path: pathlib.Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        for name in names:
            # resolve to the longest known module (an imported name may be a function, not a module)
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if m not in EXEMPT and layer_of(m) is None)
    assert not missing, f"modules with no layer in tests/test_layers.py LAYERS: {missing}"


def test_no_upward_arrow():
    upward = []
    for mod, deps in graph().items():
        if mod in EXEMPT:
            continue
        for dep in deps:
            if dep not in EXEMPT and layer_of(dep) > layer_of(mod):
                upward.append(f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})")
    assert not upward, "upward arrows:\n" + "\n".join(sorted(upward))


def test_no_circle():
    # A package's __init__ re-exporting its own modules is not a circle through the package:
    # arrows from `pkg` to `pkg.mod` are dropped, and the lazy top-level API is exempt.
    g = {m: {d for d in deps - EXEMPT if not d.startswith(m + ".")}
         for m, deps in graph().items() if m not in EXEMPT}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_file_over_400_lines():
    big = [f"{p.relative_to(ROOT)}: {n}" for p in _modules().values()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES]
    assert not big, f"files over {MAX_FILE_LINES} lines (split by purpose):\n" + "\n".join(sorted(big))


def test_no_function_over_60_lines():
    long = []
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{mod}.{node.name}" not in LONG_FUNCTION_ALLOWED:
                    long.append(f"{mod}.{node.name}: {n}")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(sorted(long))
