"""Entry point of the ``agentgym.envs`` group: registers the multi-agent game ids.

agentgym imports this at start-up, so it imports nothing heavy: the game classes are
named by string and load on the first ``make``. They are PettingZoo envs, not Gymnasium
ones, hence ``gymnasium_id=False``.
"""

from __future__ import annotations

_GAMES = (
    (
        "kuhn-poker-v0",
        "kuhn:KuhnPokerEnv",
        "Kuhn poker (J, Q, K; ante 1; check/bet, call/fold), zero-sum chips; turn-based.",
    ),
    ("nim-v0", "nim:NimEnv", "Nim with 1-3 heaps, 'take K from heap H'; taking the last object wins; turn-based."),
    (
        "negotiation-v0",
        "negotiation:NegotiationEnv",
        "Split 2-3 kinds of items by simultaneous requests with private values; general-sum.",
    ),
    (
        "pioneer-observer-v0",
        "teams:PioneerObserverEnv",
        "Pioneer answers an arithmetic question, observer gives the final answer (CORY); cooperative.",
    ),
    (
        "pioneer-observer-word-v0",
        "teams:PioneerObserverWordEnv",
        "Pioneer answers a math word problem, observer gives the final answer (CORY); cooperative.",
    ),
    (
        "solver-critic-v0",
        "teams:SolverCriticEnv",
        "Solver answers an arithmetic question, critic judges it, solver may revise once.",
    ),
    (
        "solver-critic-word-v0",
        "teams:SolverCriticWordEnv",
        "Solver answers a math word problem, critic judges it, solver may revise once.",
    ),
)

#: Every id this package registers.
GAME_IDS = tuple(f"multiagent/{name}" for name, _, _ in _GAMES)


def register() -> None:
    """Register ``multiagent/<game>-v0`` for every game of this package."""
    from agentgym.registry import register as _register

    for name, entry, description in _GAMES:
        _register(f"multiagent/{name}", f"agentgym_multiagent.{entry}", description=description, gymnasium_id=False)
