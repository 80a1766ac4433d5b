"""Checked exercises for the labs: predict, run, check, or reveal.

    ex = Exercises("lab1")
    ex.add("free", expected=7536, unit="MiB", explain="8192 - 144 (Xen) - 512 (dom0)")
    ex.check("free", my_answer)   # prints one deterministic verdict line
    ex.reveal("free")             # returns the answer (self-study) and remembers it was revealed

A verdict never contains the student's own value, only whether it is right and
the model's answer when it is, so the line nbval compares is the same for every
correct answer. `summary()` says how many were checked correct and how many revealed.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmlab.errors import ConfigError

__all__ = ["Exercises"]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Exercise:
    key: str
    expected: object
    tolerance: float
    unit: str
    explain: str


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

    def add(self, key: str, *, expected, tolerance: float = 0.0, unit: str = "", explain: str = "") -> None:
        self._items[key] = _Exercise(key=key, expected=expected, tolerance=tolerance, unit=unit, explain=explain)

    def _get(self, key: str) -> _Exercise:
        try:
            return self._items[key]
        except KeyError:
            raise ConfigError(f"no exercise {key!r} in {self.lab}; exercises are {', '.join(self._items)}") from None

    def reveal(self, key: str) -> "Revealed":
        """Stand in for an answer, for self-study: the check accepts it and prints the model's value.

        The answer may not be known yet (it is often what the next cell computes),
        so this returns a placeholder; the summary counts the exercise as revealed.
        """
        self.revealed.add(key)
        return Revealed(key)

    def is_correct(self, key: str, answer) -> bool:
        ex = self._get(key)
        if isinstance(answer, Revealed):
            return answer.key == key
        if answer is None or answer is ...:
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
        if answer is None or answer is ...:
            print(f"… {key}: not answered yet — replace the ... with your prediction, or use ex.reveal({key!r})")
            return
        if self.is_correct(key, answer):
            self.correct.add(key)
            why = f" ({ex.explain})" if ex.explain else ""
            print(f"✓ {key}: correct — {ex.expected!r}{unit}{why}")
            return
        self.correct.discard(key)
        print(f"✗ {key}: not what the model gives — check your reasoning and try again (or ex.reveal({key!r}))")

    def passed(self, key: str) -> bool:
        return key in self.correct

    def summary(self) -> str:
        n = len(self._items)
        own = len(self.correct - self.revealed)
        return (f"{self.lab}: {len(self.correct)}/{n} exercises correct "
                f"({own} by your own answer, {len(self.correct & self.revealed)} revealed)")
