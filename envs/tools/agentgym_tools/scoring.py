"""Scoring tool use: calls against ground truth, and final answers.

Reward parts in the spirit of ToolRL (Qian et al., 2025), each in [0, 1] before its
weight:

- ``format``: the mean over the agent's replies of 1 for a well-formed reply (every
  ``<tool_call>`` block valid JSON naming a known tool with valid arguments, or an
  ``<answer>``), 0.5 for one with the tags but a broken inside, 0 for neither;
- ``name``: multiset Jaccard similarity between the tool names called and the names in
  the ground truth, |G ∩ P| / |G ∪ P| (calling extra or repeated tools costs);
- ``args``: for each ground-truth call, the best-matching call of that name (each used
  once) scores the share of argument keys on which the two agree, over the union of
  their keys; the mean over ground-truth calls (a missing call scores 0);
- ``answer``: the final answer is right.

Matching ignores order: calls made in one reply are parallel, and a sequence of
dependent calls is pinned down by its arguments anyway.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym_tools.calls import ToolCall

#: An acceptable value may be a predicate over (argument value, the call's result).
Matcher = Callable[[Any, Any], bool]
DEFAULT_WEIGHTS = {"format": 0.1, "name": 0.2, "args": 0.2, "answer": 1.0}
_NUM_RE = re.compile(r"-?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class ExpectedCall:
    """A ground-truth call: its name and, per argument, the list of acceptable values.

    ``None`` in an argument's list means the argument may be left out.
    """

    name: str
    arguments: Mapping[str, Sequence[Any]] = field(default_factory=dict)


@dataclass
class MadeCall:
    """A call the agent made, with what it returned (``None`` if it was not run)."""

    call: ToolCall
    result: Any = None


def values_equal(got: Any, want: Any) -> bool:
    """Loose JSON equality: numbers by value (relative 1e-4), strings case- and space-insensitive."""
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want or (isinstance(got, str) and got.strip().lower() == str(want).lower())
    if isinstance(want, (int, float)):
        num = _as_number(got)
        return num is not None and math.isclose(num, float(want), rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(want, str):
        return isinstance(got, (str, int, float)) and _norm(str(got)) == _norm(want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(values_equal, got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and all(values_equal(got[k], want[k]) for k in want)
    return got == want


def _as_number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        try:
            return float(x) if math.isfinite(x) else None
        except OverflowError:  # a JSON integer too large for a float
            return None
    if isinstance(x, str):
        try:
            return float(x.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def _norm(s: str) -> str:
    return " ".join(s.strip().lower().split())


def _value_ok(got: Any, present: bool, acceptable: Sequence[Any], result: Any) -> bool:
    if not present:
        return any(a is None for a in acceptable)
    for a in acceptable:
        if a is None:
            continue
        if callable(a):
            try:
                if a(got, result):
                    return True
            except Exception:  # a matcher given garbage is a mismatch, never a crash
                continue
        elif values_equal(got, a):
            return True
    return False


def argument_score(made: MadeCall, expected: ExpectedCall) -> float:
    """Share of argument keys (union of both calls') on which ``made`` is acceptable."""
    given = made.call.arguments
    keys = set(expected.arguments) | set(given)
    if not keys:
        return 1.0
    ok = sum(
        1
        for k in keys
        if k in expected.arguments and _value_ok(given.get(k), k in given, expected.arguments[k], made.result)
    )
    return ok / len(keys)


def name_score(made: Sequence[MadeCall], expected: Sequence[ExpectedCall]) -> float:
    """Multiset Jaccard similarity of called names and expected names."""
    got = Counter(m.call.name for m in made)
    want = Counter(e.name for e in expected)
    union = sum((got | want).values())
    return 1.0 if union == 0 else sum((got & want).values()) / union


def args_score(made: Sequence[MadeCall], expected: Sequence[ExpectedCall]) -> float:
    """Mean over expected calls of the best unused same-name call's argument score."""
    if not expected:
        return 1.0
    used: set[int] = set()
    total = 0.0
    # Most constrained expectations first, so a loose one does not take a call a strict one needs.
    order = sorted(range(len(expected)), key=lambda i: -len(expected[i].arguments))
    for i in order:
        exp = expected[i]
        best, best_j = 0.0, None
        for j, m in enumerate(made):
            if j in used or m.call.name != exp.name:
                continue
            s = argument_score(m, exp)
            if best_j is None or s > best:
                best, best_j = s, j
        if best_j is not None:
            used.add(best_j)
            total += best
    return total / len(expected)


def numbers_in(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUM_RE.findall(text)]


#: Words an answer may wrap around a value ("it is a Tuesday.") without changing it.
_FILLER = frozenset("the a an it is was its answer final result value on in at of that this be will".split())


def _words(text: str) -> list[str]:
    words = (w.strip(".:-/") for w in _norm(re.sub(r"[^\w\s\-./:]", " ", text)).split())
    return [w for w in words if w and w not in _FILLER]


def answer_correct(text: str | None, expected: Sequence[Any]) -> bool:
    """Whether ``text`` gives the ``expected`` values, in order.

    All numbers: the last ``len(expected)`` numbers in the text equal them (relative
    1e-4, or within 0.005 when the expected value has at most two decimals, as money
    and rounded quantities are written); "5,120" is also read as the two values 5 and
    120. Otherwise the text is split at commas into exactly one item per expected
    value; a numeric item must end with the number, a text item must have the same
    words as the value up to filler ("it is a Tuesday." gives Tuesday). Hedging ("Monday
    or Tuesday", every weekday in a row) does not pass.
    """
    if text is None or not expected:
        return False
    if all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in expected):
        readings = [numbers_in(text)]
        if len(expected) > 1:
            readings.append(numbers_in(text.replace(",", ", ")))
        return any(
            len(nums) >= len(expected)
            and all(_num_close(g, float(w)) for g, w in zip(nums[-len(expected) :], expected))
            for nums in readings
        )
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 812,000 -> 812000
    items = [x for x in text.split(",") if x.strip()]
    if len(items) != len(expected):
        return False
    for item, want in zip(items, expected):
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            nums = numbers_in(item)
            if not nums or not _num_close(nums[-1], float(want)):
                return False
        elif _words(item) != _words(str(want)):
            return False
    return True


def _num_close(got: float, want: float) -> bool:
    if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-9):
        return True
    return abs(want * 100 - round(want * 100)) < 1e-9 and abs(got - want) <= 0.005 + 1e-9


def score(
    made: Sequence[MadeCall],
    expected: Sequence[ExpectedCall],
    replies_ok: Sequence[float],
    answer_ok: bool,
    weights: Mapping[str, float],
) -> dict[str, float]:
    """The weighted reward parts of an episode."""
    fmt = sum(replies_ok) / len(replies_ok) if replies_ok else 0.0
    raw = {
        "format": fmt,
        "name": name_score(made, expected),
        "args": args_score(made, expected),
        "answer": 1.0 if answer_ok else 0.0,
    }
    return {k: float(weights.get(k, 0.0)) * v for k, v in raw.items()}


def check_weights(weights: Mapping[str, Any] | None) -> dict[str, float]:
    """Default weights updated with ``weights``; unknown keys or non-numbers are errors."""
    out = dict(DEFAULT_WEIGHTS)
    for k, v in (weights or {}).items():
        if k not in DEFAULT_WEIGHTS:
            raise ValueError(f"unknown reward weight {k!r}; the parts are {', '.join(DEFAULT_WEIGHTS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"reward weight {k!r} must be a finite number, got {v!r}")
        out[k] = float(v)
    return out
