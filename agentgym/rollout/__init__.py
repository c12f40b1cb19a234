"""Episodes and the multi-turn batched rollout runner."""

from agentgym.rollout.episode import Episode
from agentgym.rollout.runner import RolloutRunner, RolloutStats

__all__ = ["Episode", "RolloutRunner", "RolloutStats"]
