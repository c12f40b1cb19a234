"""agentgym: a gym for training LLM agents with reinforcement learning."""

from agentgym import vector as _vector  # noqa: F401  (registers ChatSpace with Gymnasium's shared memory)
from agentgym.env import Feedback, TaskSpec, TextEnv
from agentgym.registry import EnvSpec, discover, list_envs, make, register, spec
from agentgym.spaces import Categorical, Continuous, HeldOut, Integer, ParamSpace, Region

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Continuous",
    "EnvSpec",
    "Feedback",
    "HeldOut",
    "Integer",
    "ParamSpace",
    "Region",
    "TaskSpec",
    "TextEnv",
    "discover",
    "list_envs",
    "make",
    "register",
    "spec",
]

# Register plugin envs (built-in families included) so that gymnasium.make finds them too.
discover()
