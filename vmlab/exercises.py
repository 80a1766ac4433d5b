"""Checked exercises for the labs: predict, run, check, or reveal; and per-student variants.

    ex = Exercises("lab1")
    ex.add("free", expected=7536, unit="MiB", explain="8192 - 144 (Xen) - 512 (dom0)")
    ex.check("free", my_answer)   # prints one deterministic verdict line
    ex.reveal("free")             # stands in for an answer (self-study): the check shows the model's value

A verdict never contains the student's own value, only whether it is right and
the model's answer when it is, so the line nbval compares is the same for every
correct answer. A revealed answer is reported as revealed, never as correct.

Grading: when the environment variable VMLAB_GRADING names a file, every check also
appends one JSON line to it (key, status, the answer's repr, the expected value's repr,
points): the grader (vmlab.grading) reads that record, never the printed text.

Variants: `seed = lab_seed()` reads VMLAB_SEED (the grader sets it per student), else a
student id given to it (stable hash), else DEFAULT_SEED; `variant(seed).choice(name, [...])`
and `.integer(name, lo, hi, default=...)` derive scenario parameters from it. The default
seed always gives the first option / the default, so the committed notebooks keep their numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from vmlab.errors import ConfigError

__all__ = ["Exercises", "Variant", "variant", "lab_seed", "seed_for_student", "DEFAULT_SEED"]

GRADING_ENV = "VMLAB_GRADING"
SEED_ENV = "VMLAB_SEED"
DEFAULT_SEED = 0  # the committed notebooks' scenario: every choice() is its first option


def seed_for_student(student_id: str) -> int:
    """A stable seed in 1 .. 2**31 - 1 from a student id (sha256; never DEFAULT_SEED)."""
    digest = hashlib.sha256(student_id.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (2**31 - 1) + 1


def lab_seed(student: str = "") -> int:
    """The seed of this run: $VMLAB_SEED if set (the grader sets it), else from `student`, else DEFAULT_SEED."""
    raw = os.environ.get(SEED_ENV, "").strip()
    if raw:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{SEED_ENV}={raw!r} is not an integer; a seed is a whole number, e.g. {SEED_ENV}=42") from None
    return seed_for_student(student) if student.strip() else DEFAULT_SEED


@dataclass(frozen=True, slots=True)
class Variant:
    """Deterministic scenario parameters for one seed; each is drawn by name, so draws are independent."""

    seed: int

    def _draw(self, name: str, n: int) -> int:
        digest = hashlib.sha256(f"{self.seed}:{name}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % n

    def choice(self, name: str, options):
        """One of `options`; the first one for DEFAULT_SEED (the committed notebooks' scenario)."""
        options = list(options)
        if not options:
            raise ConfigError(f"variant {name!r}: no options to choose from; give at least one")
        return options[0] if self.seed == DEFAULT_SEED else options[self._draw(name, len(options))]

    def integer(self, name: str, lo: int, hi: int, *, default: int) -> int:
        """A whole number in lo..hi inclusive; `default` for DEFAULT_SEED."""
        if not lo <= default <= hi:
            raise ConfigError(f"variant {name!r}: default {default} outside {lo}..{hi}; pick a default inside the range")
        return default if self.seed == DEFAULT_SEED else lo + self._draw(name, hi - lo + 1)


def variant(seed: int) -> Variant:
    return Variant(int(seed))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Exercise:
    key: str
    expected: object
    tolerance: float
    unit: str
    explain: str
    points: float


@dataclass(frozen=True, slots=True)
class Revealed:
    """What `Exercises.reveal` returns: "show me the answer" for exercise `key`."""

    key: str

    def __repr__(self) -> str:
        return f"<the answer to {self.key!r}: run the check to see it>"


class Exercises:
    def __init__(self, lab: str) -> None:
        self.lab = lab
        self._items: dict[str, _Exercise] = {}
        self.revealed: set[str] = set()
        self.correct: set[str] = set()

    def add(self, key: str, *, expected, tolerance: float = 0.0, unit: str = "", explain: str = "",
            points: float = 1) -> None:
        self._items[key] = _Exercise(key=key, expected=expected, tolerance=tolerance, unit=unit,
                                     explain=explain, points=points)

    def _get(self, key: str) -> _Exercise:
        try:
            return self._items[key]
        except KeyError:
            raise ConfigError(f"no exercise {key!r} in {self.lab}; exercises are {', '.join(self._items)}") from None

    def reveal(self, key: str) -> "Revealed":
        """Stand in for an answer, for self-study: the check prints the model's value, marked as revealed.

        The answer may not be known yet (it is often what the next cell computes),
        so this returns a placeholder; the summary counts the exercise as revealed.
        """
        self.revealed.add(key)
        return Revealed(key)

    def is_correct(self, key: str, answer) -> bool:
        """Whether `answer` is the model's value (a revealed answer is never "correct")."""
        ex = self._get(key)
        if isinstance(answer, Revealed) or answer is None or answer is ...:
            return False
        if isinstance(ex.expected, (int, float)) and not isinstance(ex.expected, bool):
            try:
                value = float(answer)
            except (TypeError, ValueError):
                return False
            tol = ex.tolerance if ex.tolerance else 1e-9 * max(1.0, abs(ex.expected))
            return abs(value - ex.expected) <= tol
        if isinstance(ex.expected, str) and isinstance(answer, str):
            return answer.strip() == ex.expected
        return answer == ex.expected

    def check(self, key: str, answer) -> None:
        """Print one verdict line for `answer`; `passed(key)` tells the result afterwards."""
        ex = self._get(key)
        unit = f" {ex.unit}" if ex.unit else ""
        why = f" ({ex.explain})" if ex.explain else ""
        if answer is None or answer is ...:
            status = "unanswered"
            print(f"… {key}: not answered yet — replace the ... after the = with your prediction, "
                  f"or with ex.reveal({key!r}) to see the model's answer")
        elif isinstance(answer, Revealed) and answer.key == key:
            status = "revealed"
            self.correct.discard(key)
            print(f"◇ {key}: revealed, not answered — the model gives {ex.expected!r}{unit}{why}")
        elif self.is_correct(key, answer):
            status = "correct"
            self.correct.add(key)
            print(f"✓ {key}: correct — {ex.expected!r}{unit}{why}")
        else:
            status = "wrong"
            self.correct.discard(key)
            print(f"✗ {key}: not what the model gives — check your reasoning and try again (or ex.reveal({key!r}))")
        self._record(ex, status, answer)

    def _record(self, ex: _Exercise, status: str, answer) -> None:
        path = os.environ.get(GRADING_ENV)
        if not path:
            return
        row = {"lab": self.lab, "key": ex.key, "status": status, "answer": repr(answer),
               "expected": repr(ex.expected), "unit": ex.unit, "explain": ex.explain, "points": ex.points}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def passed(self, key: str) -> bool:
        return key in self.correct

    def summary(self) -> str:
        n = len(self._items)
        shown = len(self.revealed & set(self._items))
        return f"{self.lab}: {len(self.correct)}/{n} exercises correct by your own answer, {shown} revealed"
