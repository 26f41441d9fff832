"""Verdicts: what the grader decided about each test cell, as structured data end to end.

The judge builds them, feedback renders them into the graded notebook, the gradebook step
stores them next to the grades, and ``aisec-grade self`` prints them one check per line.
Every string in a verdict is written by the grader (a check's name from the lab's catalogue or
the reference's record keys, a reason from a fixed set, a hidden record's authored hint from the
lab's ``HIDDEN_HINTS``): nothing the student's code printed, raised or named while hidden code ran
reaches a verdict.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field
from typing import Any

#: Exception names shown in feedback. Any other name (a student can define ``class AnyText(Exception)``)
#: is shown as "an exception": a class name the student chooses is a channel out of the kernel.
SHOWN_EXCEPTIONS = frozenset(
    name for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
) | {"CheckFailed"}


@dataclass(frozen=True)
class CheckVerdict:
    """One check of a test cell: a visible check, a hidden record, or how the cell ran."""

    kind: str  # visible | hidden | run
    name: str
    passed: bool
    reason: str = ""
    #: For a hidden record: the property it tests, authored in the lab's ``HIDDEN_HINTS`` (never a value).
    hint: str = ""

    def line(self) -> str:
        mark = "✔" if self.passed else "✘"
        label = {"visible": "visible check", "hidden": "hidden check", "run": "run"}.get(self.kind, self.kind)
        text = f"{mark} {label}: {self.name}"
        if self.passed:
            return text
        # A failed hidden record names what it tests first: its key and a location alone name no property.
        if self.hint:
            text += f" (tests: {self.hint})"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass
class CellVerdict:
    """The grader's verdict on one autograded test cell."""

    grade_id: str
    checks: list[CheckVerdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        """One line per check, failed checks first."""
        ordered = sorted(self.checks, key=lambda c: c.passed)
        return [c.line() for c in ordered] or ["✘ this test cell could not be graded"]

    def to_json(self) -> dict[str, Any]:
        return {"grade_id": self.grade_id, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellVerdict:
        return cls(str(data["grade_id"]), [CheckVerdict(**c) for c in data.get("checks", [])])


def exception_name(ename: Any) -> str:
    """How feedback names an exception the student's kernel reported."""
    return ename if isinstance(ename, str) and ename in SHOWN_EXCEPTIONS else "an exception of the student's own type"
