"""Entry point of the ``agentgym.envs`` group: registers the math ids with agentgym.

agentgym imports this at start-up, so it imports nothing heavy: the environment classes
are named by string and load on the first ``make``.
"""

from __future__ import annotations

import agentgym

_FAMILIES = (
    ("arithmetic", "ArithmeticEnv", "integer arithmetic with operator precedence"),
    ("chain", "ChainEnv", "one-digit + and - chains of 2-8 numbers in four wordings (a curriculum testbed)"),
    ("fractions", "FractionsEnv", "exact arithmetic on fractions, decimals and mixed numbers"),
    ("linear", "LinearEnv", "solve a linear equation for x"),
    ("word", "WordEnv", "multi-step word problems with distractors"),
)
RETRY_TURNS = 3


def register() -> None:
    """Register ``math/<family>-v0`` (one answer) and ``math/<family>-retry-v0`` (3 tries)."""
    for family, cls, what in _FAMILIES:
        entry_point = f"agentgym_math.env:{cls}"
        agentgym.register(
            f"math/{family}-v0",
            entry_point,
            kwargs={"max_turns": 1},
            description=f"Math: {what}; one answer per episode.",
        )
        agentgym.register(
            f"math/{family}-retry-v0",
            entry_point,
            kwargs={"max_turns": RETRY_TURNS},
            description=(
                f"Math: {what}; up to {RETRY_TURNS} tries, 'try again' after a wrong answer, "
                "less reward for later tries."
            ),
        )
