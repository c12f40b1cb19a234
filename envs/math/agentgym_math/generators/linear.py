"""Linear equations in one unknown: ``Solve for x: 3x + 5 = -7``.

The solution is drawn first and the constants are computed from it, so every equation
has exactly one solution, an integer or (``fractional_solution``) a non-integer
rational ``k/m`` where ``m`` is the net coefficient of x. Coefficients and the integer
solutions stay within ``coeff_max`` in absolute value; the constant on the right-hand
side is whatever makes the equation hold.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from agentgym_math.problem import Problem, Rand
from agentgym_math.verifier import format_rational


def generate(params: dict[str, Any], rnd: Rand) -> Problem:
    """A linear equation for ``params`` drawn from ``rnd``."""
    form: str = params["form"]
    cm: int = params["coeff_max"]
    fractional: bool = params["fractional_solution"]

    a = _signed(rnd, 2, cm)
    b = _signed(rnd, 1, cm)
    if form == "ax+b=cx+d":
        c = _signed(rnd, 1, cm)
        # The net coefficient a - c must not vanish, nor be +-1 when x is to be a fraction.
        while abs(a - c) < (2 if fractional else 1):
            c = _signed(rnd, 1, cm)
        net = a - c
        x = _solution(rnd, net, cm, fractional)
        d = net * x + b  # (a - c) x = d - b
        equation = f"{_linear(a, b)} = {_linear(c, int(d))}"
    elif form == "a(x+b)=c":
        x = _solution(rnd, a, cm, fractional)
        c = a * (x + b)
        equation = f"{a}(x {'+' if b > 0 else '-'} {abs(b)}) = {int(c)}"
    else:  # ax+b=c
        x = _solution(rnd, a, cm, fractional)
        c = a * x + b
        equation = f"{_linear(a, b)} = {int(c)}"
    answer = Fraction(x)
    return Problem(text=f"Solve for x: {equation}", answer=answer, answer_text=format_rational(answer))


def _signed(rnd: Rand, low: int, high: int) -> int:
    v = rnd.randint(low, high)
    return -v if rnd.random() < 0.5 else v


def _solution(rnd: Rand, coef: int, cm: int, fractional: bool) -> int | Fraction:
    """An integer in [-cm, cm], or ``k/coef`` with ``coef`` not dividing ``k``.

    Either way ``coef * x`` is an integer, so the equation's constants are integers.
    """
    if not fractional:
        return rnd.randint(-cm, cm)
    m = abs(coef)
    k = rnd.randint(-cm * m, cm * m)
    if k % m == 0:
        k += 1
    return Fraction(k, coef)


def _linear(coef: int, const: int) -> str:
    """``coef x + const`` written the usual way: ``x``, ``-x``, ``3x - 5``, ``3x``."""
    head = "x" if coef == 1 else "-x" if coef == -1 else f"{coef}x"
    if const == 0:
        return head
    return f"{head} {'+' if const > 0 else '-'} {abs(const)}"
