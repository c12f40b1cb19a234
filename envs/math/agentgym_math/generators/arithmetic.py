"""Integer arithmetic: ``What is 12 + 3 × 45 - 96 ÷ 8?``

Operands have ``digits`` digits; operators come from the chosen set; × and ÷ bind
tighter than + and - (no parentheses but those around negative operands). Every
division is exact: the first factor of its product term is multiplied by the divisor, so
the running product is always a multiple of it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from agentgym_math.problem import Problem, Rand, evaluate, render


def generate(params: dict[str, Any], rnd: Rand) -> Problem:
    """An arithmetic problem for ``params`` drawn from ``rnd``."""
    digits: int = params["digits"]
    n: int = params["n_operands"]
    allowed: str = params["operators"]
    negatives: bool = params["negatives"]

    lo = 1 if digits == 1 else 10 ** (digits - 1)
    hi = 10**digits - 1
    randint, random_ = rnd.randint, rnd.random
    operators = [allowed[int(random_() * len(allowed))] for _ in range(n - 1)]
    values: list[int] = []
    for i in range(n):
        # A divisor of 1 makes a dull question; one-digit divisors start at 2.
        v = randint(max(lo, 2), hi) if i and operators[i - 1] == "/" else randint(lo, hi)
        if negatives and random_() < 0.4:
            v = -v
        values.append(v)

    # Make each division exact by scaling the first factor of its term.
    term_start = 0
    for i, op in enumerate(operators, start=1):
        if op in "+-":
            term_start = i
        elif op == "/":
            values[term_start] *= values[i]

    answer = evaluate(values, operators)
    tokens = [str(v) if v >= 0 or i == 0 else f"({v})" for i, v in enumerate(values)]
    text = f"What is {render(tokens, operators)}?"
    return Problem(text=text, answer=Fraction(answer), answer_text=str(answer))
