"""Python execution: quantities too tedious to work out by hand, computed with a sandboxed tool.

A chain of depth d: each step's input is the previous step's result ("let x be the
number of primes below 1234; let y be the sum of the digits of x**7"). Every step is one
``run_python`` call; scoring accepts any code whose printed output ends with the right
number (the code itself is free).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym_tools.calls import Tool
from agentgym_tools.scoring import numbers_in
from agentgym_tools.worlds.base import Step, ToolError, World, offer, pick, schema, text
from agentgym_tools.worlds.calculator import TOOLS as CALC_TOOLS


def _primes_below(n: int) -> int:
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))
    return int(sum(sieve))


def _fib_mod(n: int, m: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % m
    return a


def _divisors(n: int) -> int:
    return sum(2 - (d * d == n) for d in range(1, math.isqrt(n) + 1) if n % d == 0)


def _collatz(n: int) -> int:
    steps = 0
    while n > 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


@dataclass(frozen=True)
class Op:
    """One computation: its phrase, the oracle's code, and the true value, given the input x and a constant k."""

    phrase: str
    code: str
    value: Callable[[int, int], int]
    k_range: tuple[int, int]


OPS = {
    "primes": Op(
        "the number of primes below {x} + {k}",
        "n = {x} + {k}\nsieve = [True] * n\nfor i in range(2, n):\n    if sieve[i]:\n        for j in range(i * i, "
        "n, i):\n            sieve[j] = False\nprint(sum(sieve[2:]))",
        lambda x, k: _primes_below(x + k),
        (100, 3000),
    ),
    "digits": Op(
        "the sum of the decimal digits of ({x} + 1) ** {k}",
        "print(sum(int(c) for c in str(({x} + 1) ** {k})))",
        lambda x, k: sum(int(c) for c in str((x + 1) ** k)),
        (5, 40),
    ),
    "fib": Op(
        "the ({x} + 10)-th Fibonacci number modulo {k} (F(0) = 0, F(1) = 1)",
        "a, b = 0, 1\nfor _ in range({x} + 10):\n    a, b = b, (a + b) % {k}\nprint(a)",
        lambda x, k: _fib_mod(x + 10, k),
        (97, 9973),
    ),
    "divisors": Op(
        "the number of divisors of {x} * {k}",
        "import math\nn = {x} * {k}\nprint(sum(2 - (d * d == n) for d in range(1, math.isqrt(n) + 1) if n % d == 0))",
        lambda x, k: _divisors(x * k),
        (12, 360),
    ),
    "collatz": Op(
        "the number of Collatz steps from {x} + {k} down to 1",
        "n, s = {x} + {k}, 0\nwhile n > 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    s += 1\nprint(s)",
        lambda x, k: _collatz(x + k),
        (20, 900),
    ),
}


@dataclass(frozen=True)
class Prints:
    """Accepts any ``code`` whose run printed ``value`` as its last number."""

    value: int

    def __call__(self, code: Any, result: Any) -> bool:
        nums = numbers_in(str(result)) if isinstance(result, (str, int)) else []
        return bool(nums) and nums[-1] == self.value


def python_tool(run: Callable[[str], Any]) -> Tool:
    return Tool(
        "run_python",
        "Run Python 3 code (standard library only, no files outside a scratch folder, no network) "
        "and return what it prints. Use print() to see values.",
        schema({"code": text("Python source code")}),
        run,
    )


def _shell(command: str) -> str:
    raise ToolError("shell access is disabled")


NEAR_MISSES = [
    Tool("run_shell", "Run a shell command.", schema({"command": text("shell command")}), _shell),
    CALC_TOOLS["multiply"],
    CALC_TOOLS["add"],
]


def generate(params: dict[str, Any], rng: np.random.Generator, run: Callable[[str], Any]) -> World:
    depth = int(params["depth"])
    names = list(OPS)
    x = int(rng.integers(10, 60))
    phrases, steps, answer = [], [], []
    var = "x"
    for level in range(depth):
        op = OPS[pick(rng, names)]
        k = int(rng.integers(*op.k_range))
        shown_x = str(x) if level == 0 else f"{var}"
        phrases.append(f"Step {level + 1}: let {chr(ord('a') + level)} be {op.phrase.format(x=shown_x, k=k)}.")
        code = op.code.format(x=x, k=k)
        x = op.value(x, k)
        steps.append(Step("run_python", {"code": code}, {"code": [Prints(x)]}, level))
        var = chr(ord("a") + level)
    answer.append(x)
    extra = []
    for _ in range(int(params["extra_calls"])):
        op = OPS[pick(rng, names)]
        k, x0 = int(rng.integers(*op.k_range)), int(rng.integers(10, 60))
        value = op.value(x0, k)
        extra.append(op.phrase.format(x=x0, k=k))
        steps.append(Step("run_python", {"code": op.code.format(x=x0, k=k)}, {"code": [Prints(value)]}, 0))
        answer.append(value)
    question = "Use the tools to compute exactly. " + " ".join(phrases)
    if extra:
        question += " Also compute: " + "; and ".join(extra) + "."
    last = chr(ord("a") + depth - 1)
    fmt = f"Give {last}" + (", then the other values in the order asked, separated by commas." if extra else ".")
    tools = offer([python_tool(run)], NEAR_MISSES, int(params["distractors"]), rng)
    return World(question, tools, steps, answer, fmt)


__all__ = ["OPS", "Prints", "generate", "python_tool"]
