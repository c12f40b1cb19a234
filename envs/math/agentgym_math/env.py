"""The math environments: one :class:`MathEnv` subclass per family of generated problems.

An episode is one problem. The agent answers in text; the last ``\\boxed{}`` (or an
"answer is X" phrase) is checked exactly against the gold rational. With
``max_turns > 1`` a wrong answer gets "That is not correct. Try again." and another
turn, and a correct answer is worth less the later it comes.

Reward parts (they sum to the reward):

- ``correct``: ``correct_reward * (1 - (turn - 1) / max_turns)`` when the answer is right;
- ``format``: ``format_reward`` on the episode's last step if that action stated its
  answer in the asked form (a ``\\boxed{}`` or an "answer is" phrase), right or wrong.

With ``strict_format=False`` (the default) a reply with neither a box nor an answer
phrase is judged by the last number it contains ("8 + 6 = 14." answers 14), as lenient
GSM8K graders do; it can be correct but earns no format reward, so training still
pushes towards the asked form. ``strict_format=True`` counts such replies as giving no
answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from agentgym import Categorical, Feedback, HeldOut, Integer, ParamSpace, Region, TaskSpec, TextEnv
from agentgym.env import positive_int
from agentgym_math.generators import arithmetic, chain, linear, rationals, word
from agentgym_math.problem import Draws, Problem, Rand
from agentgym_math.verifier import NO_ANSWER_ERROR, check, extract_answer, last_number

SYSTEM_PROMPT = "Solve the math problem. Think briefly, then give only the final answer in \\boxed{}."
RETRY_MESSAGE = "That is not correct. Try again."


class MathEnv(TextEnv):
    """Base of the math families: a generated problem with an exact rational answer.

    Subclasses set ``param_space``, ``held_out`` and ``generator``
    (``generate(params, rnd) -> Problem``).
    """

    generator: ClassVar[Callable[[dict[str, Any], Rand], Problem]]

    def __init__(
        self,
        max_turns: int = 1,
        correct_reward: float = 1.0,
        format_reward: float = 0.1,
        render_mode: str | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        strict_format: bool = False,
    ):
        super().__init__(render_mode=render_mode)
        self.max_turns = positive_int("max_turns", max_turns)
        self.correct_reward = float(correct_reward)
        self.format_reward = float(format_reward)
        self.problem: Problem | None = None
        self.system_prompt = str(system_prompt)
        self.strict_format = bool(strict_format)

    def _reset(self, params: dict[str, Any], rng: np.random.Generator) -> list[dict[str, str]]:
        self.problem = type(self).generator(params, Draws(rng))
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.problem.text},
        ]

    def _step(self, action: str) -> Feedback:
        problem = self.problem
        assert problem is not None  # the base class calls reset() first
        answer = extract_answer(action)
        formatted = answer is not None
        if answer is None and not self.strict_format:
            answer = last_number(action)
        if answer is None:
            correct, error = False, NO_ANSWER_ERROR
        else:
            correct, error = check(answer, problem.answer)
        final = correct or self.turn >= self.max_turns
        if not final:
            hint = RETRY_MESSAGE if error is None else f"{error[0].upper()}{error[1:]}. Try again."
            return Feedback(
                messages=[{"role": "user", "content": hint}],
                reward_parts={"correct": 0.0, "format": 0.0},
                error=error,
            )
        scale = 1.0 - (self.turn - 1) / self.max_turns
        return Feedback(
            messages=[],
            reward_parts={
                "correct": self.correct_reward * scale if correct else 0.0,
                "format": self.format_reward if formatted else 0.0,
            },
            terminated=True,
            success=correct,
            error=error,
        )

    def content_key(self, task: TaskSpec) -> str:
        """The problem as posed (``What is 6 + 1?``): the same text from any params or seed is the same problem."""
        clean = self.param_space.validate(task.params)
        return type(self).generator(dict(clean), Draws(np.random.default_rng(int(task.seed)))).text

    def oracle(self) -> str:
        """A correct final answer for the current problem."""
        if self.problem is None:
            raise RuntimeError("call reset() before oracle()")
        return f"The answer is \\boxed{{{self.problem.answer_text}}}."


class ArithmeticEnv(MathEnv):
    """Integer arithmetic with operator precedence: ``What is 12 + 3 × 45 - 96 ÷ 8?``"""

    param_space = ParamSpace(
        [
            Integer("digits", 1, 4, description="digits of each operand"),
            Integer("n_operands", 2, 5, description="numbers in the expression"),
            Categorical(
                "operators",
                ("+", "+-", "+-*", "+-*/"),
                description="operators that may appear (× and ÷ bind tighter; ÷ is always exact)",
            ),
            Categorical("negatives", (False, True), description="whether operands may be negative"),
        ]
    )
    # Half of all contents held out: the easy corner the main job trains on is small (162
    # one-digit two-operand problems), and evaluation needs many distinct problems there.
    held_out = HeldOut(
        region=Region({"digits": [3], "n_operands": [4]}, name="3-digit, 4 operands"), content_fraction=0.5
    )
    generator = staticmethod(arithmetic.generate)


class ChainEnv(MathEnv):
    """One-digit + and - chains of 2 to 8 numbers, in four wordings: ``Compute 3 + 8 - 5.``

    The curriculum testbed: length is the difficulty knob (skill carries over along it),
    wording should not matter. Held out: a quarter of all problems (by text), and every
    5-number chain worded ``result`` (a cell never trained on).
    """

    param_space = ParamSpace(
        [
            Integer("n_operands", 2, 8, description="numbers in the chain (the difficulty knob)"),
            Categorical("wording", tuple(chain.WORDINGS), description="how the question is put"),
        ]
    )
    held_out = HeldOut(region=Region({"n_operands": [5], "wording": ["result"]}, name="5 numbers, 'result' wording"))
    generator = staticmethod(chain.generate)


class FractionsEnv(MathEnv):
    """Exact arithmetic on fractions, terminating decimals or mixed numbers."""

    param_space = ParamSpace(
        [
            Categorical(
                "kind",
                ("fraction", "decimal", "mixed"),
                description="how operands are written: 5/6, 0.375 or 2 1/3",
            ),
            Integer("n_operands", 2, 4, description="numbers in the expression"),
            Integer("max_denominator", 2, 12, description="largest denominator of an operand"),
            Categorical("operators", ("+-", "+-*/"), description="operators that may appear"),
        ]
    )
    held_out = HeldOut(region=Region({"kind": ["mixed"], "n_operands": [3]}, name="mixed numbers, 3 operands"))
    generator = staticmethod(rationals.generate)


class LinearEnv(MathEnv):
    """One linear equation in x: ``Solve for x: 3x + 5 = -7``."""

    param_space = ParamSpace(
        [
            Categorical(
                "form",
                ("ax+b=c", "ax+b=cx+d", "a(x+b)=c"),
                description="shape of the equation",
            ),
            Integer(
                "coeff_max",
                2,
                20,
                description="largest absolute coefficient (and integer solution)",
            ),
            Categorical(
                "fractional_solution",
                (False, True),
                description="whether x is a non-integer fraction",
            ),
        ]
    )
    held_out = HeldOut(
        region=Region({"form": ["a(x+b)=c"], "fractional_solution": [True]}, name="a(x+b)=c, fractional x")
    )
    generator = staticmethod(linear.generate)


class WordEnv(MathEnv):
    """Multi-step word problems (shopping, travel, cooking, school) with whole-number answers."""

    param_space = ParamSpace(
        [
            Integer("steps", 1, 4, description="arithmetic steps from the first amount to the answer"),
            Integer("distractors", 0, 3, description="irrelevant sentences with numbers"),
            Integer(
                "magnitude",
                1,
                3,
                description="digits of the amounts added and taken away (multipliers and divisors are 2-9)",
            ),
            Categorical("theme", word.THEMES, description="setting of the story"),
        ]
    )
    held_out = HeldOut(region=Region({"theme": ["travel"], "steps": [3]}, name="travel, 3 steps"))
    generator = staticmethod(word.generate)
