"""Answer cells: find them, read a submission's answers without running its code, splice them in.

An answer cell is a code cell whose statements are all `answer_<name> = <expression>`
(comments allowed). Cells are matched by those names, not by position or metadata, so a
student who inserted, moved or re-created cells is still graded. The grader never runs a
student's code: each answer's expression is evaluated here, by a small evaluator that knows
literals (numbers, strings, tuples, lists), arithmetic, round/int/float/abs/min/max,
`ex.reveal("key")` and `...`; anything else (a name, an attribute, an import, a loop) is a
clear per-exercise error. Only the resulting literal enters the instructor's copy.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

ANSWER_PREFIX = "answer_"
_LINE = re.compile(r"^(answer_\w+)\s*=\s*(.+?)\s*(#.*)?$")
_MAX_LEN = 10_000
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CALLS = {"round": round, "int": int, "float": float, "abs": abs, "min": min, "max": max}


class AnswerError(ValueError):
    """An answer the grader cannot take (not a value); the message is the per-exercise reason."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """A student's answer: `kind` is value | revealed | unanswered | invalid."""

    kind: str
    literal: str = "..."   # Python source put into the instructor's answer cell
    shown: str = ""        # what the student wrote, for feedback
    reason: str = ""


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _strip_magics(src: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())


def answer_names(src: str) -> list[str] | None:
    """The answer variables a cell assigns, or None when it is not a pure answer cell."""
    try:
        tree = ast.parse(_strip_magics(src))
    except SyntaxError:
        return None
    names = []
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id.startswith(ANSWER_PREFIX)):
            return None
        names.append(stmt.targets[0].id)
    return names or None


def check_keys(src: str) -> list[tuple[str, str]]:
    """(exercise key, answer variable) for every `ex.check("key", answer_x)` in a cell, in order."""
    try:
        tree = ast.parse(_strip_magics(src))
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
                and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str) and isinstance(node.args[1], ast.Name)):
            out.append(((node.lineno, node.col_offset), node.args[0].value, node.args[1].id))
    return [(key, name) for _, key, name in sorted(out)]


def points_of(src: str) -> dict[str, float]:
    """`points=` given to `ex.add("key", ...)` in a cell (1 when not given)."""
    try:
        tree = ast.parse(_strip_magics(src))
    except SyntaxError:
        return {}
    out = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            pts = [k.value for k in node.keywords if k.arg == "points"]
            out[node.args[0].value] = float(pts[0].value) if pts and isinstance(pts[0], ast.Constant) else 1.0
    return out


def _assignments(src: str) -> dict[str, tuple[ast.expr | None, str]]:
    """answer_x -> (expression node, its text) for every top-level answer assignment in a cell."""
    out: dict[str, tuple[ast.expr | None, str]] = {}
    clean = _strip_magics(src)
    try:
        tree = ast.parse(clean)
    except SyntaxError:  # the rest of the cell is broken: read answer lines one by one
        for line in clean.splitlines():
            m = _LINE.match(line.strip())
            if m:
                try:
                    out[m.group(1)] = (ast.parse(m.group(2), mode="eval").body, m.group(2))
                except SyntaxError:
                    out[m.group(1)] = (None, m.group(2))
        return out
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id.startswith(ANSWER_PREFIX)):
            out[stmt.targets[0].id] = (stmt.value, ast.get_source_segment(clean, stmt.value) or "")
    return out


def submitted_answers(cells: list[dict]) -> dict[str, tuple[ast.expr | None, str]]:
    """Every answer assignment in a submission's code cells; a later one wins, as when run top to bottom."""
    found: dict[str, tuple[ast.expr | None, str]] = {}
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            found.update(_assignments(cell_source(cell)))
    return found


def read_answer(name: str, key: str, found: dict) -> Answer:
    """The Answer for exercise `key` (variable `name`) from a submission's assignments."""
    if name not in found:
        return Answer(kind="unanswered", reason=f"no `{name} = ...` line in the submission (answer cell missing)")
    node, text = found[name]
    if node is None:
        return Answer(kind="invalid", shown=text, reason=f"`{name} = {text}` is not valid Python")
    if isinstance(node, ast.Constant) and node.value is ...:
        return Answer(kind="unanswered", shown="...", reason="the placeholder ... was not replaced")
    if _is_reveal(node):
        revealed = node.args[0].value
        kind, reason = ("revealed", "ex.reveal was used: the model's value was shown, not predicted") if revealed == key \
            else ("invalid", f"ex.reveal({revealed!r}) reveals another exercise")
        return Answer(kind=kind, literal=f"ex.reveal({revealed!r})" if kind == "revealed" else "...",
                      shown=text, reason=reason)
    try:
        value = evaluate(node)
    except AnswerError as e:
        return Answer(kind="invalid", shown=text, reason=str(e))
    return Answer(kind="value", literal=to_literal(value), shown=text)


def _is_reveal(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "reveal"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str))


def evaluate(node: ast.expr):
    """The value of an answer expression: literals, arithmetic and a few built-ins; no names, no code."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [evaluate(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _apply(_UNARY[type(node.op)], evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = evaluate(node.left), evaluate(node.right)
        _guard(node.op, left, right)
        return _apply(_BIN[type(node.op)], left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
            and not node.keywords):
        return _apply(_CALLS[node.func.id], *[evaluate(a) for a in node.args])
    kind = "the name" if isinstance(node, ast.Name) else type(node).__name__.lower()
    raise AnswerError(f"the answer uses {kind} `{ast.unparse(node)[:60]}`: give a value or arithmetic on "
                      "numbers (the grader does not run notebook code)")


def _guard(op: ast.operator, left, right) -> None:
    if isinstance(op, ast.Pow) and isinstance(left, (int, float)) and isinstance(right, (int, float)):
        if abs(right) > 1024 or (abs(left) > 1 and abs(right) * math.log2(abs(left)) > 4096):
            raise AnswerError(f"{left!r} ** {right!r} is too large to be an answer")
    if isinstance(op, ast.Mult):
        seq, n = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > _MAX_LEN:
            raise AnswerError("the answer is too long")


def _apply(fn, *args):
    try:
        return fn(*args)
    except (ArithmeticError, TypeError, ValueError) as e:
        raise AnswerError(f"the answer expression fails: {type(e).__name__}: {e}") from None


def to_literal(value) -> str:
    """Python source for a value (round-trips inf and nan)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(to_literal(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{inner}]"
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit
        raise AnswerError("the answer is too long") from None
    if len(text) > _MAX_LEN:
        raise AnswerError("the answer is too long")
    return text
