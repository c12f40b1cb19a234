"""Chains of one-digit additions and subtractions, asked in one of several wordings:
``What is 3 + 8 - 5 + 1?`` or ``Compute 3 + 8 - 5 + 1.``

Made for curriculum experiments: the chain's length is a steep difficulty knob along which
skill carries over (a longer chain is a shorter one plus more of the same steps), and the
wording is a dimension that should not change difficulty, so a teacher that spends its
budget on wordings is visibly wasting it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from agentgym_math.problem import Problem, Rand, evaluate, render

#: How the question is put; ``{expr}`` is the chain.
WORDINGS = {
    "what": "What is {expr}?",
    "compute": "Compute {expr}.",
    "equals": "{expr} = ?",
    "result": "Give the result of {expr}.",
}


def generate(params: dict[str, Any], rnd: Rand) -> Problem:
    """A chain of ``n_operands`` numbers 1-9 joined by + and -, worded as ``wording`` says."""
    n: int = params["n_operands"]
    values = [rnd.randint(1, 9) for _ in range(n)]
    operators = ["+" if rnd.random() < 0.5 else "-" for _ in range(n - 1)]
    answer = evaluate(values, operators)
    text = WORDINGS[params["wording"]].format(expr=render([str(v) for v in values], operators))
    return Problem(text=text, answer=Fraction(answer), answer_text=str(answer))
