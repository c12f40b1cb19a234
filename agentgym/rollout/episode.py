"""The Episode record: the one record that flows from rollout to trainer to teacher.

Token-in/token-out: ``token_ids`` is the exact sequence the policy saw and produced,
in order: the prompt, then for each turn the sampled ids followed by the ids of the
environment's reply. ``loss_mask[i]`` is 1 only where ``token_ids[i]`` was sampled by
the policy; ``logprobs[i]`` is the sampler's log-prob there (0 elsewhere). Nothing is
ever re-tokenized after sampling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from agentgym.env import TaskSpec


@dataclass
class Episode:
    """One played episode (see module doc for the token layout)."""

    env_id: str
    task: TaskSpec
    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    #: Length of the opening prompt (the first ``prompt_len`` ids are never trained on).
    prompt_len: int
    #: Reward of each step, in order; ``reward`` is their sum.
    turn_rewards: list[float] = field(default_factory=list)
    success: bool = False
    #: Summed reward parts over the episode (format, correctness, ...).
    reward_parts: dict[str, float] = field(default_factory=dict)
    #: The conversation as text, for transcripts and debugging (not used for training).
    messages: list[dict[str, str]] = field(default_factory=list)
    #: Why the episode ended: "terminated", "truncated" (turn limit), "token_budget".
    end_reason: str = "terminated"
    #: True when some completion hit ``max_new_tokens`` without an eos token.
    hit_length_limit: bool = False
    #: Errors the env reported for actions (malformed output), in order.
    errors: list[str] = field(default_factory=list)
    policy_version: int = 0
    #: Index of the group (same task, G samples) this episode belongs to.
    group: int = 0
    #: In a multi-agent game, the seat this episode is the view of ("" for one agent).
    #: Each seat's episode holds only its own sampled tokens in ``loss_mask``; what the
    #: other agents said reaches it as env messages (mask 0).
    agent: str = ""

    @property
    def reward(self) -> float:
        return float(sum(self.turn_rewards))

    @property
    def num_turns(self) -> int:
        return len(self.turn_rewards)

    @property
    def num_policy_tokens(self) -> int:
        return int(sum(self.loss_mask))

    def __post_init__(self) -> None:
        if not (len(self.token_ids) == len(self.loss_mask) == len(self.logprobs)):
            raise ValueError(
                f"token_ids, loss_mask and logprobs must align: {len(self.token_ids)}, "
                f"{len(self.loss_mask)}, {len(self.logprobs)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["task"] = self.task.to_dict()
        d["reward"] = self.reward
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Episode:
        d = dict(d)
        d.pop("reward", None)
        d["task"] = TaskSpec.from_dict(d["task"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
