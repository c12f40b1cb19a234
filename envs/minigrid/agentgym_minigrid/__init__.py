"""MiniGrid and BabyAI environments for agentgym, played in words.

An LLM agent reads an egocentric text description of what the MiniGrid agent sees and
answers with action words ("turn left, go forward, pick up"). A planner that reads the
true state splits each mission into ordered subgoals that give intermediate rewards and
can be shown in the observation.

Importing this package is cheap on purpose: agentgym loads
:mod:`agentgym_minigrid.registration` at start-up, and ``minigrid`` (with pygame) is
imported only when an environment is first made.
"""

__version__ = "0.1.0"
