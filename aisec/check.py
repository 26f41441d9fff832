"""Immediate feedback for students, and value records for the grader.

Two calls live here, one for each audience:

* ``check("lab00.q1", answer)`` runs the *visible* checks of a question (they live in
  ``aisec/<lab>/checks.py``, readable by anyone) and prints a friendly report: what
  passed, what failed, and a hint for what to do next. It raises ``CheckFailed`` when a
  check fails, so a test cell that calls it fails in nbgrader as well.
* ``record("q1.hidden_seed", value, ...)`` is used only by *hidden* tests. It does not
  judge anything: it serialises ``value`` as plain JSON data (strict types: a ``bool``
  is not an ``int``, an ``int`` subclass is refused) and displays it under a private MIME
  type. The grader compares it, outside the student's process, with the value that the
  instructor's reference solution recorded under the same key, using the rule that the
  *reference* run recorded. Faking ``__eq__``, patching numpy or stripping asserts in the
  student's kernel cannot turn a wrong value into points.
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

RECORD_MIME = "application/vnd.aisec.record+json"
#: What :func:`check` reports to the grader: which of the question's catalogued checks passed.
VISIBLE_MIME = "application/vnd.aisec.visible+json"

#: A visible check: gets the student's answer, raises ``AssertionError(hint)`` when wrong.
CheckFn = Callable[[Any], None]


class CheckFailed(AssertionError):
    """Raised by :func:`check` when at least one visible check failed."""


@dataclass(frozen=True)
class Check:
    """One visible, named property of an answer."""

    description: str
    run: CheckFn


def _load_checks(question: str) -> list[Check]:
    lab, sep, name = question.partition(".")
    if not sep or not lab or not name:
        raise ValueError(f"check() wants an id like 'lab00.q1', got {question!r}")
    try:
        module = importlib.import_module(f"aisec.{lab}.checks")
    except ModuleNotFoundError as exc:
        raise ValueError(f"No checks exist for lab {lab!r}: is the id {question!r} spelled right?") from exc
    checks: Mapping[str, list[Check]] = module.CHECKS
    if name not in checks:
        known = ", ".join(sorted(checks))
        raise ValueError(f"Lab {lab} has no question {name!r}; its questions are: {known}")
    return checks[name]


def check(question: str, answer: Any, *, quiet: bool = False) -> None:
    """Run the visible checks of ``question`` on ``answer`` and print a report.

    Raises :class:`CheckFailed` if any failed. Returns None on purpose: a number as the last
    value of a test cell would be read by nbgrader as partial credit.
    """
    checks = _load_checks(question)
    lines: list[str] = []
    failures: list[str] = []
    for item in checks:
        try:
            item.run(answer)
        except NotImplementedError:
            failures.append(item.description)
            lines.append(
                f"  ✘ {item.description}\n"
                "      not answered yet: replace `raise NotImplementedError()` with your code, then re-run the cell."
            )
            break
        except AssertionError as exc:
            failures.append(item.description)
            hint = str(exc) or "no hint for this one: re-read the question's docstring."
            lines.append(f"  ✘ {item.description}\n      hint: {hint}")
        except Exception as exc:  # noqa: BLE001 - a crash in student code is feedback, not a grader error
            failures.append(item.description)
            lines.append(
                f"  ✘ {item.description}\n      your code raised {type(exc).__name__}: {exc}"
            )
        else:
            lines.append(f"  ✔ {item.description}")
    _report_visible(question, [item.description for item in checks], lines)
    passed = len(checks) - len(failures)
    header = f"{question}: {passed}/{len(checks)} visible checks passed"
    if not quiet or failures:
        print(header)
        print("\n".join(lines))
    if failures:
        raise CheckFailed(f"{question}: {counted(len(failures), 'check')} failed: " + "; ".join(failures))
    if not quiet:
        print("  Hidden tests on other data run when your lab is graded.")


def _report_visible(question: str, descriptions: list[str], lines: list[str]) -> None:
    """Tell the grader which catalogued checks passed (it writes the feedback text itself)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return  # plain Python (the course's own tests): nothing to report to
    from IPython.display import display

    status = []
    for index in range(len(descriptions)):
        if index >= len(lines):
            status.append("not_run")
        elif lines[index].startswith("  ✔"):
            status.append("passed")
        elif "not answered yet" in lines[index]:
            status.append("not_answered")
        else:
            status.append("failed")
    display({VISIBLE_MIME: {"question": question, "status": status}, "text/plain": ""}, raw=True)


# ----------------------------------------------------------------------------- records


#: Why a value cannot be graded: fixed texts, so that the grader may show them in feedback.
NOT_NUMERIC_ARRAY = "a numpy array that is not of numbers or bools"
NON_STR_KEYS = "dict keys must be plain str"
UNSUPPORTED_TYPE = "a value of an unsupported type (subclasses and custom objects cannot be graded)"
UNGRADABLE_REASONS = frozenset({NOT_NUMERIC_ARRAY, NON_STR_KEYS, UNSUPPORTED_TYPE})


class UngradableValue(TypeError):
    """A value that cannot be serialised as plain data for the grader."""


def to_plain(value: Any) -> Any:
    """Convert ``value`` to JSON data with strict types, or raise :class:`UngradableValue`.

    Accepted: None, bool, int, float, str (exact types, numpy scalars), lists/tuples of
    those, numpy arrays and torch tensors (as nested lists), and dicts with str keys.
    Subclasses of builtins are refused, since they can override comparison.
    """
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    module = kind.__module__
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise UngradableValue(NOT_NUMERIC_ARRAY)
            return [to_plain(v) for v in value.tolist()] if value.ndim else to_plain(value.item())
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return to_plain(float(value))
    if module == "torch" and kind.__name__ == "Tensor":
        return to_plain(value.detach().cpu().numpy())
    if kind in (list, tuple):
        return [to_plain(v) for v in value]
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise UngradableValue(NON_STR_KEYS)
        return {k: to_plain(v) for k, v in value.items()}
    raise UngradableValue(UNSUPPORTED_TYPE)


def record(
    key: str,
    value: Any,
    *,
    atol: float = 0.0,
    rtol: float = 0.0,
    at_least: float | None = None,
    at_most: float | None = None,
    unordered: bool = False,
    score: str | None = None,
) -> None:
    """Display ``value`` for the grader under ``key`` (hidden tests only).

    The rule (``atol``/``rtol`` closeness to the reference value, or the thresholds
    ``at_least``/``at_most``, or ``unordered`` comparison of lists) is read by the grader
    from the *reference* run, never from the student's. With ``score="<name>"`` the value is a
    set of raw outputs: the grader computes a rate from them with
    ``aisec.grading.scorers.SCORERS[name]`` (against the truth carried by the reference's value)
    and applies ``at_least``/``at_most`` to that rate.
    """
    from IPython.display import display

    try:
        payload: dict[str, Any] = {"key": key, "value": to_plain(value)}
    except UngradableValue as exc:
        payload = {"key": key, "invalid": str(exc)}
    payload["rule"] = {
        "atol": float(atol),
        "rtol": float(rtol),
        "at_least": None if at_least is None else float(at_least),
        "at_most": None if at_most is None else float(at_most),
        "unordered": bool(unordered),
        "score": None if score is None else str(score),
    }
    display({RECORD_MIME: payload, "text/plain": f"[value recorded for grading: {key}]"}, raw=True)


# ------------------------------------------------------------- building blocks for checks


@contextmanager
def stand_ins(answer: Callable[..., Any], **functions: Callable[..., Any]) -> Iterator[None]:
    """Run ``answer`` with ``functions`` in place of the notebook's functions of the same names.

    An answer that builds on earlier questions looks their functions up by name in the notebook (its
    ``__globals__``); a check swaps in stand-ins that answer the check's own fixtures only (so they hold
    no answer to an earlier question), and a bug in an earlier question costs points once, where it is."""
    namespace = getattr(answer, "__globals__", None)
    if not isinstance(namespace, dict):
        yield
        return
    saved = {name: namespace[name] for name in functions if name in namespace}
    namespace.update(functions)
    try:
        yield
    finally:
        for name in functions:
            if name in saved:
                namespace[name] = saved[name]
            else:
                namespace.pop(name, None)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number: "1 character", "2 characters", "0 queries"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def with_article(noun: str) -> str:
    """The noun after "a" or "an" by its first letter: "an int", "a float", "an ndarray".

    Type names are read letter by letter when they start with a consonant that sounds like a vowel
    ("an ndarray"); such names are listed, the rest follow the first letter."""
    vowel_sound = noun[:1].lower() in "aeiou" or noun in {"ndarray", "MLP"}
    return f"{'an' if vowel_sound else 'a'} {noun}"


def expect_type(value: Any, expected: type | tuple[type, ...], what: str = "the answer") -> None:
    """Assert an exact type (subclasses refused: they can fake equality)."""
    types = expected if isinstance(expected, tuple) else (expected,)
    if type(value) not in types:
        names = " or ".join(with_article(t.__name__) for t in types)
        raise AssertionError(f"{what} should be {names}, got {with_article(type(value).__name__)}")


def expect_close(value: Any, expected: float, tol: float, what: str = "the value") -> None:
    """Assert a real number within ``tol`` of ``expected``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise AssertionError(f"{what} should be a number, got {with_article(type(value).__name__)}")
    if not abs(float(value) - expected) <= tol:
        raise AssertionError(f"{what} is {float(value):.4g}; expected about {expected:.4g} (±{tol:g})")


def expect_items(value: Any, expected: Sequence[Any], what: str = "the answer") -> None:
    """Assert the same items as ``expected`` in any order."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise AssertionError(f"{what} should be a list, got {with_article(type(value).__name__)}")
    missing = [e for e in expected if e not in value]
    extra = [v for v in value if v not in expected]
    if missing or extra:
        raise AssertionError(f"{what}: missing {missing or 'nothing'}, unexpected {extra or 'nothing'}")
