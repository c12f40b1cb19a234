"""Episodes, the multi-turn batched rollout runner and its env pools (in-process, Ray)."""

from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import EnvPool, InProcessPool, PoolStats
from agentgym.rollout.runner import RolloutRunner, RolloutStats

__all__ = ["EnvPool", "Episode", "InProcessPool", "PoolStats", "RolloutRunner", "RolloutStats"]
