"""Generated math tasks checked against an independent computation.

Each test samples 10,000 tasks over its family's whole parameter space, reads the
problem back out of the user message (or, for word problems, the formula over the
named quantities) and recomputes the answer with a small exact evaluator written here
on Python's ``ast`` and :class:`fractions.Fraction`: it shares no code with the
generators, so a precedence, sign or division bug in either shows up as a mismatch.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

import numpy as np
import pytest

import agentgym
from agentgym import TaskSpec

N_TASKS = 10_000


class Inexact(AssertionError):
    """A division in an integer-only expression did not come out whole."""


def exact_eval(expr: str, names: dict[str, int] | None = None, *, whole_divisions: bool = False) -> Fraction:
    """Evaluate ``expr`` (integers, names, + - * /, unary minus, parentheses) exactly."""
    names = names or {}

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.Name):
            return Fraction(names[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                assert right != 0, f"division by zero in {expr!r}"
                q = left / right
                if whole_divisions and q.denominator != 1:
                    raise Inexact(f"{left} / {right} is not whole in {expr!r}")
                return q
        raise AssertionError(f"unexpected syntax {ast.dump(node)} in {expr!r}")

    return ev(ast.parse(expr, mode="eval"))


def sample_tasks(env_cls, n: int, seed: int) -> list[TaskSpec]:
    rng = np.random.default_rng(seed)
    return [TaskSpec(env_cls.param_space.sample(rng), int(rng.integers(0, 2**31))) for _ in range(n)]


def question_expression(text: str) -> str:
    m = re.fullmatch(r"What is (.+)\?", text)
    assert m, text
    return m.group(1).replace("×", "*").replace("÷", "/")


def test_arithmetic_answers_match_independent_evaluation():
    env = agentgym.make("math/arithmetic-v0")
    seen_ops = set()
    for spec in sample_tasks(type(env), N_TASKS, seed=1):
        msgs, _ = env.reset(options={"task": spec})
        p = spec.params
        expr = question_expression(msgs[1]["content"])
        value = exact_eval(expr, whole_divisions=True)
        assert value == env.problem.answer, (expr, value, env.problem.answer)
        assert value.denominator == 1
        literals = re.findall(r"\d+", expr)
        assert len(literals) == p["n_operands"], expr
        # Dividends are scaled up by their divisors; no operand is shorter than asked.
        assert all(len(x) >= p["digits"] for x in literals), expr
        ops = set(re.findall(r" ([-+*/]) ", expr))
        assert ops <= set(p["operators"]), (expr, p["operators"])
        seen_ops |= ops
        if not p["negatives"]:
            assert not re.search(r"(^|\()-", expr), expr
    assert seen_ops == set("+-*/")


def fraction_expression(text: str) -> str:
    expr = question_expression(text)
    expr = re.sub(r"(\d+)\.(\d+)", lambda m: f"({int(m[1] + m[2])}/{10 ** len(m[2])})", expr)
    expr = re.sub(r"(\d+) (\d+)/(\d+)", r"(\1 + \2/\3)", expr)
    return re.sub(r"(?<![\d(])(\d+)/(\d+)", r"(\1/\2)", expr)


def test_fractions_answers_match_independent_evaluation():
    env = agentgym.make("math/fractions-v0")
    kinds = set()
    for spec in sample_tasks(type(env), N_TASKS, seed=2):
        msgs, _ = env.reset(options={"task": spec})
        p = spec.params
        text = msgs[1]["content"]
        value = exact_eval(fraction_expression(text))
        assert value == env.problem.answer, (text, value, env.problem.answer)
        kinds.add(p["kind"])
        assert len(re.split(r" [-+×÷] ", text[8:-1])) == p["n_operands"], text
        if p["kind"] == "decimal":
            assert re.fullmatch(r"What is \d+\.\d+( [-+×÷] \d+\.\d+)*\?", text), text
            # Terminating operands and divisors give a terminating answer.
            den = value.denominator
            while den % 2 == 0:
                den //= 2
            while den % 5 == 0:
                den //= 5
            assert den == 1, (text, value)
            assert Fraction(env.oracle()[len("The answer is \\boxed{") : -2]) == value
        elif p["kind"] == "mixed":
            for _whole, num, den in re.findall(r"(\d+) (\d+)/(\d+)", text):
                assert 1 <= int(num) < int(den) <= p["max_denominator"], text
        else:
            for num, den in re.findall(r"(\d+)/(\d+)", text):
                assert int(den) <= p["max_denominator"] and int(num) % int(den) != 0, text
    assert kinds == {"fraction", "decimal", "mixed"}


def linear_sides(text: str) -> tuple[str, str]:
    m = re.fullmatch(r"Solve for x: (.+) = (.+)", text)
    assert m, text

    def to_python(side: str) -> str:
        return re.sub(r"(\d)\s*([x(])", r"\1*\2", side)

    return to_python(m.group(1)), to_python(m.group(2))


def test_linear_solutions_satisfy_their_equations():
    env = agentgym.make("math/linear-v0")
    for spec in sample_tasks(type(env), N_TASKS, seed=3):
        msgs, _ = env.reset(options={"task": spec})
        p = spec.params
        left, right = linear_sides(msgs[1]["content"])
        x = env.problem.answer

        def gap(at: Fraction, left=left, right=right) -> Fraction:
            return exact_eval(left, {"x": at}) - exact_eval(right, {"x": at})

        assert gap(x) == 0, (msgs[1]["content"], x)
        # Linear with a non-zero net slope: x is the one and only solution.
        assert gap(Fraction(1)) - gap(Fraction(0)) != 0
        assert (x.denominator != 1) == p["fractional_solution"], (msgs[1]["content"], x)
        if not p["fractional_solution"]:
            assert abs(x) <= p["coeff_max"]
        coeffs = [int(c) for c in re.findall(r"(-?\d+)(?=x|\()", msgs[1]["content"])]
        assert all(1 <= abs(c) <= p["coeff_max"] for c in coeffs), msgs[1]["content"]


def test_word_problem_answers_match_their_formulas():
    env = agentgym.make("math/word-v0")
    for spec in sample_tasks(type(env), N_TASKS, seed=4):
        msgs, _ = env.reset(options={"task": spec})
        p = spec.params
        prob = env.problem
        text = msgs[1]["content"]
        value = exact_eval(prob.formula, prob.quantities, whole_divisions=True)
        assert value == prob.answer, (text, prob.formula, prob.quantities)
        assert value.denominator == 1 and value >= 1, (text, value)
        assert len(prob.quantities) == p["steps"] + 1
        assert set(re.findall(r"[a-z]", prob.formula)) == set(prob.quantities)
        numbers = re.findall(r"\b\d+\b", text)
        # Every quantity is stated in the text, plus exactly one number per distractor.
        assert len(numbers) == len(prob.quantities) + p["distractors"], (text, prob.quantities)
        for q in prob.quantities.values():
            assert str(q) in numbers, (text, q)
        assert text.endswith("?") and text.count("?") == 1


def test_word_problem_templates_are_varied():
    from agentgym_math.generators import word

    assert len(word.TEMPLATES) >= 8
    for theme in word.THEMES:
        assert sum(t.theme == theme for t in word.TEMPLATES) >= 2
    env = agentgym.make("math/word-v0")
    openings = set()
    for spec in sample_tasks(type(env), 2000, seed=5):
        msgs, _ = env.reset(options={"task": spec})
        openings.add(re.sub(r"\d+", "N", msgs[1]["content"].split(".")[0]))
    assert len(openings) >= 8


@pytest.mark.parametrize(
    "family, params",
    [
        ("arithmetic", {"digits": 1, "n_operands": 5, "operators": "+-*/", "negatives": True}),
        (
            "fractions",
            {"kind": "decimal", "n_operands": 4, "max_denominator": 2, "operators": "+-*/"},
        ),
        ("linear", {"form": "ax+b=cx+d", "coeff_max": 2, "fractional_solution": True}),
        ("word", {"steps": 4, "distractors": 3, "magnitude": 1, "theme": "school"}),
    ],
)
def test_corner_params_still_give_valid_tasks(family, params):
    env = agentgym.make(f"math/{family}-v0")
    for seed in range(500):
        env.reset(options={"task": TaskSpec(params, seed)})
        _, reward, terminated, _, info = env.step(env.oracle())
        assert info["success"] and terminated
