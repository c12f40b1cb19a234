"""Calculator and unit conversion: a chain of arithmetic and conversions on a quantity.

Example (depth 3, one extra call): "Start with 12.5 km. Step 1: convert it to m.
Step 2: multiply the result by 3. Step 3: subtract 420 from the result. Also: what is
17.5 times 4? Answer with the step 3 result, then the other value, separated by a
comma."
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agentgym_tools.calls import Tool
from agentgym_tools.worlds.base import Step, ToolError, World, num, offer, pick, schema, text

# Units by dimension, as factors to the base unit.
UNITS: dict[str, dict[str, float]] = {
    "length": {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0},
    "mass": {"g": 0.001, "kg": 1.0, "t": 1000.0},
    "time": {"s": 1.0, "min": 60.0, "h": 3600.0},
    "volume": {"ml": 0.001, "l": 1.0},
}
_DIM = {u: d for d, us in UNITS.items() for u in us}
ALL_UNITS = sorted(_DIM)


def _r(x: float) -> float:
    if not math.isfinite(x) or abs(x) > 1e15:
        raise ToolError("result out of range")
    y = float(f"{x:.10g}")  # 10 significant digits: no float noise, nothing tiny rounded to 0
    return int(y) if y.is_integer() and abs(y) < 2**53 else y


def add(a: float, b: float) -> float:
    return _r(a + b)


def subtract(a: float, b: float) -> float:
    return _r(a - b)


def multiply(a: float, b: float) -> float:
    return _r(a * b)


def divide(a: float, b: float) -> float:
    if b == 0:
        raise ToolError("division by zero")
    return _r(a / b)


def convert(value: float, from_unit: str, to_unit: str) -> float:
    if _DIM[from_unit] != _DIM[to_unit]:
        raise ToolError(f"cannot convert {from_unit} ({_DIM[from_unit]}) to {to_unit} ({_DIM[to_unit]})")
    return _r(value * UNITS[_DIM[from_unit]][from_unit] / UNITS[_DIM[to_unit]][to_unit])


def _binary(name: str, fn: Any, what: str) -> Tool:
    return Tool(name, what, schema({"a": num("first number"), "b": num("second number")}), fn)


TOOLS = {
    "add": _binary("add", add, "Return a + b."),
    "subtract": _binary("subtract", subtract, "Return a - b."),
    "multiply": _binary("multiply", multiply, "Return a * b."),
    "divide": _binary("divide", divide, "Return a / b."),
    "convert": Tool(
        "convert",
        "Convert a quantity between units of the same kind (length, mass, time, volume).",
        schema(
            {
                "value": num("the quantity"),
                "from_unit": text("unit of the value", ALL_UNITS),
                "to_unit": text("unit wanted", ALL_UNITS),
            }
        ),
        convert,
    ),
}
NEAR_MISSES = [
    Tool(
        "power",
        "Return a raised to the power b.",
        schema({"a": num("base"), "b": num("exponent")}),
        lambda a, b: _r(a**b) if abs(b) < 20 else 0,
    ),
    Tool(
        "sqrt",
        "Square root of x.",
        schema({"x": num("a number >= 0")}),
        lambda x: _r(math.sqrt(abs(x))),
    ),
    Tool(
        "modulo",
        "Return a mod b.",
        schema({"a": num("number"), "b": num("divisor")}),
        lambda a, b: _r(a % b) if b else 0,
    ),
]
_OP_TEXT = {
    "add": "add {b} to the result",
    "subtract": "subtract {b} from the result",
    "multiply": "multiply the result by {b}",
    "divide": "divide the result by {b}",
}
_EXTRA_TEXT = {
    "add": "{a} plus {b}",
    "subtract": "{a} minus {b}",
    "multiply": "{a} times {b}",
    "divide": "{a} divided by {b}",
}


def _literal(rng: np.random.Generator, op: str) -> float:
    if op == "divide":
        return int(pick(rng, (2, 4, 5, 8, 10)))
    if op == "multiply":
        return int(rng.integers(2, 13))
    return int(rng.integers(1, 500))


def generate(params: dict[str, Any], rng: np.random.Generator) -> World:
    unit = pick(rng, ALL_UNITS)
    value = _r(float(rng.integers(1, 400)) / pick(rng, (1, 2, 4)))
    lines = [f"Start with {value} {unit}."]
    steps: list[Step] = []
    needed: set[str] = set()
    for level in range(int(params["depth"])):
        op = pick(rng, ("convert", "add", "subtract", "multiply", "divide"))
        if op == "convert":
            factors = UNITS[_DIM[unit]]
            near = [u for u in factors if u != unit and 1e-3 <= factors[u] / factors[unit] <= 1e3]
            target = pick(rng, near)
            args = {"value": value, "from_unit": unit, "to_unit": target}
            lines.append(f"Step {level + 1}: convert the result to {target}.")
            value, unit = convert(**args), target
        else:
            b = _literal(rng, op)
            args = {"a": value, "b": b}
            lines.append(f"Step {level + 1}: {_OP_TEXT[op].format(b=b)}.")
            value = TOOLS[op].fn(**args)  # type: ignore[misc]
        needed.add(op)
        steps.append(Step(op, args, {k: [v] for k, v in args.items()}, level))
    answer: list[Any] = [value]
    extras = []
    for _ in range(int(params["extra_calls"])):
        op = pick(rng, ("add", "subtract", "multiply", "divide"))
        args = {"a": int(rng.integers(10, 1000)), "b": _literal(rng, op)}
        extras.append(_EXTRA_TEXT[op].format(**args))
        needed.add(op)
        steps.append(Step(op, args, {k: [v] for k, v in args.items()}, 0))
        answer.append(TOOLS[op].fn(**args))  # type: ignore[misc]
    if extras:
        lines.append("Also compute " + "; and ".join(extras) + ".")
    last = f"the step {int(params['depth'])} result (in {unit}, without the unit)"
    fmt = last + (", then the other values in the order asked, separated by commas" if extras else "")
    tools = offer([TOOLS[n] for n in sorted(needed)], NEAR_MISSES, int(params["distractors"]), rng)
    return World(" ".join(lines), tools, steps, answer, f"Give {fmt}.")
