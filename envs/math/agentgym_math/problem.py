"""The record a generator returns, the random draws generators use, and the
flat-expression helpers two families share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

#: How each operator is written in a problem (unicode times/divide signs keep "/" free
#: for fraction bars).
OPERATOR_SYMBOLS = {"+": "+", "-": "-", "*": "×", "/": "÷"}


@dataclass(slots=True)
class Problem:
    """One generated task.

    ``answer_text`` is how the oracle writes the answer (``7``, ``7/2``, ``0.375``).
    Word problems also carry ``formula``, an expression over the names in
    ``quantities`` that gives the answer, so tests can recompute it independently.
    """

    text: str
    answer: Fraction
    answer_text: str
    formula: str = ""
    quantities: dict[str, int] = field(default_factory=dict)


class Rand(Protocol):
    """What generators draw from: the subset of :class:`random.Random` they use."""

    def random(self) -> float: ...
    def randint(self, a: int, b: int) -> int: ...
    def sample(self, population: Sequence[Any], k: int) -> list[Any]: ...


class Draws:
    """Uniform draws from a numpy generator, fetched in blocks.

    A task takes a few dozen draws. One ``rng.random(32)`` call costs about what a single
    ``rng.integers`` call does, and seeding a :class:`random.Random` per task costs more
    than generating the whole task, so generators read floats from a block instead.
    Everything still comes from ``rng`` alone: the same spec gives the same task.
    """

    __slots__ = ("_rng", "_buf", "_i")
    BLOCK = 32

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._buf: list[float] = rng.random(self.BLOCK).tolist()
        self._i = 0

    def random(self) -> float:
        """A float in [0, 1)."""
        i = self._i
        if i == self.BLOCK:
            self._buf = self._rng.random(self.BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def randint(self, a: int, b: int) -> int:
        """An integer in ``[a, b]``, both included."""
        return a + int(self.random() * (b - a + 1))

    def sample(self, population: Sequence[Any], k: int) -> list[Any]:
        """``k`` distinct elements of ``population``, in random order."""
        pool = list(population)
        out = []
        for _ in range(k):
            out.append(pool.pop(int(self.random() * len(pool))))
        return out


def evaluate(values: Sequence[int | Fraction], operators: Sequence[str]) -> int | Fraction:
    """The value of ``v0 op0 v1 op1 v2 ...`` with × and ÷ before + and -, left to right.

    Integer division must be exact (the arithmetic generator builds it so); with
    :class:`Fraction` values it is exact anyway.
    """
    total: int | Fraction = 0
    sign = 1
    term = values[0]
    for op, v in zip(operators, values[1:]):
        if op == "*":
            term = term * v
        elif op == "/":
            if type(term) is int and type(v) is int:
                q, rem = divmod(term, v)
                if rem:
                    raise ValueError(f"{term} / {v} is not exact")
                term = q
            else:
                term = term / v
        else:
            total += term if sign > 0 else -term
            sign = 1 if op == "+" else -1
            term = v
    return total + (term if sign > 0 else -term)


def render(tokens: Sequence[str], operators: Sequence[str]) -> str:
    """``tokens`` joined by their operators' symbols, with spaces around each operator."""
    parts = [tokens[0]]
    for op, tok in zip(operators, tokens[1:]):
        parts.append(f" {OPERATOR_SYMBOLS[op]} {tok}")
    return "".join(parts)
