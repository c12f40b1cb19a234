"""Fractions, decimals and mixed numbers: ``What is 3/4 + 5/6 × 2/3?``

All operands are positive and none is a whole number. ``kind`` picks how they are
written:

- ``fraction``: ``5/6`` (denominators 2..max_denominator);
- ``decimal``: ``0.375``, exact, with denominators 2, 4, 5, 8, 10 up to
  max_denominator; a divisor's numerator is a product of 2s and 5s, so every quotient,
  and the answer, is a terminating decimal too;
- ``mixed``: ``2 1/3`` (a whole part 1..5 and a proper fraction).

The answer is exact; the oracle writes it as ``p/q`` (``decimal``: as a decimal).
"""

from __future__ import annotations

from fractions import Fraction
from math import gcd
from typing import Any

from agentgym_math.problem import Problem, Rand, render
from agentgym_math.verifier import format_decimal, format_rational

DECIMAL_DENOMINATORS = (2, 4, 5, 8, 10)
#: Numerators whose reduced form has only the factors 2 and 5 (terminating divisors).
TERMINATING_NUMERATORS = (1, 2, 4, 5, 8, 10, 16)
#: How each decimal operand is written, computed once: (numerator, denominator) -> "1.375".
_DECIMAL_TEXT = {(k, d): format_decimal(Fraction(k, d)) for d in DECIMAL_DENOMINATORS for k in range(1, 2 * d)}


def generate(params: dict[str, Any], rnd: Rand) -> Problem:
    """A fraction/decimal/mixed-number problem for ``params`` drawn from ``rnd``."""
    kind: str = params["kind"]
    n: int = params["n_operands"]
    max_den: int = params["max_denominator"]
    allowed: str = params["operators"]

    random_, randint = rnd.random, rnd.randint
    operators = [allowed[int(random_() * len(allowed))] for _ in range(n - 1)]
    # Operands as (numerator, denominator) pairs: one Fraction at the end instead of one
    # per operation keeps the generator several times faster.
    values: list[tuple[int, int]] = []
    tokens: list[str] = []
    if kind == "decimal":
        dens = [d for d in DECIMAL_DENOMINATORS if d <= max_den] or [2]
        for i in range(n):
            den = dens[int(random_() * len(dens))]
            if i and operators[i - 1] == "/":
                nums = [k for k in TERMINATING_NUMERATORS if k < 2 * den and k % den]
                num = nums[int(random_() * len(nums))]
            else:
                num = _non_multiple(rnd, 2 * den, den)
            values.append((num, den))
            tokens.append(_DECIMAL_TEXT[num, den])
    elif kind == "mixed":
        for _ in range(n):
            den = randint(2, max_den)
            whole = randint(1, 5)
            num = randint(1, den - 1)
            g = gcd(num, den)
            values.append((whole * den + num, den))
            tokens.append(f"{whole} {num // g}/{den // g}")
    else:
        for _ in range(n):
            den = randint(2, max_den)
            num = _non_multiple(rnd, 2 * den, den)
            g = gcd(num, den)
            values.append((num, den))
            tokens.append(f"{num // g}/{den // g}")

    answer = Fraction(*_evaluate(values, operators))
    answer_text = (format_decimal(answer) if kind == "decimal" else None) or format_rational(answer)
    text = f"What is {render(tokens, operators)}?"
    return Problem(text=text, answer=answer, answer_text=answer_text)


def _non_multiple(rnd: Rand, high: int, den: int) -> int:
    """A number in ``[1, high)`` that ``den`` does not divide (so the operand is no integer)."""
    k = rnd.randint(1, high - 1)
    return k + 1 if k % den == 0 else k


def _evaluate(values: list[tuple[int, int]], operators: list[str]) -> tuple[int, int]:
    """``v0 op0 v1 ...`` on positive (numerator, denominator) pairs, × and ÷ first.

    The result is unreduced; its denominator is positive.
    """
    total_n, total_d = 0, 1
    sign = 1
    n, d = values[0]
    for op, (vn, vd) in zip(operators, values[1:]):
        if op == "*":
            n, d = n * vn, d * vd
        elif op == "/":
            n, d = n * vd, d * vn
        else:
            total_n, total_d = total_n * d + sign * n * total_d, total_d * d
            sign = 1 if op == "+" else -1
            n, d = vn, vd
    return total_n * d + sign * n * total_d, total_d * d
