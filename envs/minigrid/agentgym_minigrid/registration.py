"""Entry point of the ``agentgym.envs`` group: registers the MiniGrid ids with agentgym.

agentgym imports this at start-up, so it imports nothing heavy: the environment classes
(and minigrid, with pygame) are named by string and load on the first ``make``.
"""

from __future__ import annotations

import agentgym

#: family -> (class name in agentgym_minigrid.env, description)
_FAMILIES = (
    ("empty", "EmptyEnv", "an empty room; get to the green goal square"),
    ("doorkey", "DoorkeyEnv", "pick up the key, unlock the door, get to the goal"),
    ("multiroom", "MultiroomEnv", "rooms joined by closed doors; get to the goal in the last one"),
    ("keycorridor", "KeycorridorEnv", "fetch a key from a side room to unlock the room with the ball; pick it up"),
    ("goto", "GotoEnv", "BabyAI GoTo: go to an object among distractors"),
    ("open", "OpenEnv", "BabyAI Open: open the door of a colour"),
    ("pickup", "PickupEnv", "BabyAI Pickup: pick up an object among distractors"),
    ("putnext", "PutnextEnv", "BabyAI PutNext: put one object next to another"),
)


def register() -> None:
    """Register ``minigrid/levels-v0`` (every family) and ``minigrid/<family>-v0``."""
    agentgym.register(
        "minigrid/levels-v0",
        "agentgym_minigrid.env:MiniGridEnv",
        description=(
            "MiniGrid/BabyAI in words: a text view of what the agent sees, action words, "
            "planner subgoals with rewards; families empty, doorkey, multiroom, keycorridor, "
            "goto, open, pickup, putnext."
        ),
    )
    for family, cls, what in _FAMILIES:
        agentgym.register(
            f"minigrid/{family}-v0",
            f"agentgym_minigrid.env:{cls}",
            description=f"MiniGrid in words: {what}.",
        )
