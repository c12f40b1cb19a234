"""Play many episodes at once: every live episode's next turn is generated in one batch.

Each round, the runner asks the policy for one completion per live episode (a single
batched ``generate`` call), steps each episode's env with the decoded text, appends the
env's reply as token ids (loss mask 0), and retires episodes that ended. Multi-turn
episodes therefore share batches with single-turn ones until they finish.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.env import TaskSpec, TextEnv
from agentgym.policies.base import Policy, SamplingParams
from agentgym.registry import make
from agentgym.rollout.episode import Episode


@dataclass
class _Live:
    env: TextEnv
    episode: Episode


@dataclass
class RolloutStats:
    """Counters of one :meth:`RolloutRunner.run` call."""

    episodes: int = 0
    dropped_env_errors: int = 0
    generated_tokens: int = 0
    generate_calls: int = 0
    env_error_messages: list[str] = field(default_factory=list)


class RolloutRunner:
    """Plays tasks with a policy and returns :class:`Episode` records.

    ``max_episode_tokens`` bounds the whole episode (prompt + all turns): an episode that
    cannot fit another full completion ends with ``end_reason="token_budget"``.
    """

    def __init__(
        self,
        policy: Policy,
        sampling: SamplingParams,
        *,
        max_episode_tokens: int = 4096,
        env_kwargs: dict[str, Any] | None = None,
    ):
        self.policy = policy
        self.sampling = sampling
        self.max_episode_tokens = max_episode_tokens
        self.env_kwargs = dict(env_kwargs or {})
        self._pool: dict[str, list[TextEnv]] = {}
        self.last_stats = RolloutStats()

    def _env(self, env_id: str) -> TextEnv:
        free = self._pool.setdefault(env_id, [])
        return free.pop() if free else make(env_id, **self.env_kwargs)

    def _release(self, env_id: str, env: TextEnv) -> None:
        self._pool.setdefault(env_id, []).append(env)

    def run(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        group_size: int = 1,
        on_round: Callable[[int, int], None] | None = None,
    ) -> list[Episode]:
        """Play each task ``group_size`` times; episodes come back grouped in task order.

        Episodes whose env raised (a bug or a crashed worker, never a bad action) are
        dropped and counted in :attr:`last_stats`.
        """
        chat = self.policy.chat
        stats = RolloutStats()
        live: list[_Live] = []
        for gi, task in enumerate(tasks):
            for _ in range(group_size):
                env = self._env(env_id)
                messages, _ = env.reset(options={"task": task})
                ids = chat.prompt_ids(messages)
                ep = Episode(
                    env_id=env_id, task=env.task, token_ids=list(ids), loss_mask=[0] * len(ids),
                    logprobs=[0.0] * len(ids), prompt_len=len(ids), messages=list(messages),
                    policy_version=self.policy.version, group=gi,
                )
                live.append(_Live(env, ep))
        finished: list[Episode] = []
        rounds = 0
        while live:
            completions = self.policy.generate([lv.episode.token_ids for lv in live], self.sampling)
            stats.generate_calls += 1
            still: list[_Live] = []
            for lv, comp in zip(live, completions):
                ep = lv.episode
                ep.token_ids.extend(comp.token_ids)
                ep.loss_mask.extend([1] * len(comp.token_ids))
                ep.logprobs.extend(comp.logprobs)
                stats.generated_tokens += len(comp.token_ids)
                if comp.finish_reason == "length":
                    ep.hit_length_limit = True
                text = chat.decode(comp.token_ids)
                ep.messages.append({"role": "assistant", "content": text})
                try:
                    reply, reward, terminated, truncated, info = lv.env.step(text)
                except Exception:  # an env bug or a dead worker: drop the episode, keep the batch
                    stats.dropped_env_errors += 1
                    stats.env_error_messages.append(traceback.format_exc(limit=3))
                    continue  # the broken env is not returned to the pool
                ep.turn_rewards.append(float(reward))
                for k, v in info.get("reward_parts", {}).items():
                    ep.reward_parts[k] = ep.reward_parts.get(k, 0.0) + float(v)
                if info.get("error"):
                    ep.errors.append(str(info["error"]))
                ep.success = bool(info.get("success", False))
                ep.messages.extend(reply)
                if terminated or truncated:
                    ep.end_reason = "terminated" if terminated else "truncated"
                    finished.append(ep)
                    self._release(env_id, lv.env)
                    continue
                cont = chat.continuation_ids(reply, comp.token_ids)
                ep.token_ids.extend(cont)
                ep.loss_mask.extend([0] * len(cont))
                ep.logprobs.extend([0.0] * len(cont))
                if len(ep.token_ids) + self.sampling.max_new_tokens > self.max_episode_tokens:
                    ep.end_reason = "token_budget"
                    finished.append(ep)
                    self._release(env_id, lv.env)
                    continue
                still.append(lv)
            live = still
            rounds += 1
            if on_round is not None:
                on_round(rounds, len(live))
        finished.sort(key=lambda e: e.group)  # stable: members keep their order inside a group
        stats.episodes = len(finished)
        self.last_stats = stats
        return finished
