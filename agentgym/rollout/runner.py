"""Play many episodes at once: every live episode's next turn is generated in one batch.

Each round, the runner asks the policy for one completion per live episode (a single
batched ``generate`` call), sends every live episode's decoded text to the env pool in
one batched ``step``, appends each env's reply as token ids (loss mask 0), and retires
episodes that ended. Multi-turn episodes therefore share batches with single-turn ones
until they finish.

Where the envs live is the pool's business (:mod:`agentgym.rollout.pool`): in this
process (default) or in Ray workers. Generation always stays here, so the Episodes are
the same, record for record and in the same order, whatever the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.env import TaskSpec
from agentgym.policies.base import ChatFormat, Completion, Policy, SamplingParams, generate_seeded, stream_seed
from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import EnvPool, InProcessPool


@dataclass
class _Live:
    handle: int
    episode: Episode
    #: The episode's own sampling stream (with ``run(seeds=...)``).
    key: int | None = None


@dataclass
class RolloutStats:
    """Counters of one :meth:`RolloutRunner.run` call."""

    episodes: int = 0
    dropped_env_errors: int = 0
    generated_tokens: int = 0
    generate_calls: int = 0
    env_error_messages: list[str] = field(default_factory=list)
    #: Env workers that died during the run and were replaced (Ray pool).
    worker_restarts: int = 0
    #: Episodes replayed on a replacement worker.
    replayed_episodes: int = 0
    #: Replays that diverged or failed again (those episodes are in ``dropped_env_errors``).
    replay_failures: int = 0
    #: Seconds in the policy's ``generate`` (or the oracle) and in env resets and steps.
    generate_s: float = 0.0
    env_s: float = 0.0


class RolloutRunner:
    """Plays tasks with a policy and returns :class:`Episode` records.

    ``max_episode_tokens`` bounds the whole episode (prompt + all turns): an episode that
    cannot fit another full completion ends with ``end_reason="token_budget"``.
    ``pool`` holds the envs (default: a fresh :class:`InProcessPool`).
    """

    def __init__(
        self,
        policy: Policy,
        sampling: SamplingParams,
        *,
        max_episode_tokens: int = 4096,
        env_kwargs: dict[str, Any] | None = None,
        pool: EnvPool | None = None,
    ):
        self.policy = policy
        self.sampling = sampling
        self.max_episode_tokens = max_episode_tokens
        self.env_kwargs = dict(env_kwargs or {})
        self.pool: EnvPool = pool if pool is not None else InProcessPool()
        self.last_stats = RolloutStats()

    def close(self) -> None:
        """Close the pool's envs (and its workers)."""
        self.pool.close()

    def run(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        group_size: int = 1,
        on_round: Callable[[int, int], None] | None = None,
        demonstrate: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> list[Episode]:
        """Play each task ``group_size`` times; episodes come back grouped in task order.

        ``seeds`` (one per task): member m of task i samples its turn t from a random stream
        seeded by ``(seeds[i], m, t)``, so an episode's tokens do not depend on which other
        episodes shared its batches (the trainer splits tasks over processes this way).

        Episodes whose env raised (a bug or a crashed worker, never a bad action) are
        dropped and counted in :attr:`last_stats`.

        With ``demonstrate`` each env's own oracle (``env.oracle()``) writes every reply
        instead of the policy: the reply text is encoded and closed with eos, so the
        Episode is laid out exactly as a sampled one (loss mask 1 on the demonstrator's
        tokens, log-probs 0), ready for supervised fine-tuning. Needs the in-process pool.
        """
        chat = self.policy.chat
        stats = RolloutStats()
        pool_before = self.pool.stats.copy()
        if seeds is not None and len(seeds) != len(tasks):
            raise ValueError(f"got {len(seeds)} seeds for {len(tasks)} tasks")
        specs = [task for task in tasks for _ in range(group_size)]
        groups = [gi for gi in range(len(tasks)) for _ in range(group_size)]
        members = [m for _ in range(len(tasks)) for m in range(group_size)]
        live: list[_Live] = []
        t = time.perf_counter()
        opened_all = self.pool.reset(env_id, specs, self.env_kwargs)
        stats.env_s += time.perf_counter() - t
        for gi, m, opened in zip(groups, members, opened_all):
            if opened.error is not None:
                stats.dropped_env_errors += 1
                stats.env_error_messages.append(opened.error)
                continue
            ids = chat.prompt_ids(opened.messages)
            ep = Episode(
                env_id=env_id,
                task=opened.task,
                token_ids=list(ids),
                loss_mask=[0] * len(ids),
                logprobs=[0.0] * len(ids),
                prompt_len=len(ids),
                messages=list(opened.messages),
                policy_version=self.policy.version,
                group=gi,
            )
            key = None if seeds is None else stream_seed(int(seeds[gi]), m)
            live.append(_Live(opened.handle, ep, key))
        finished: list[Episode] = []
        rounds = 0
        try:
            while live:
                t = time.perf_counter()
                if demonstrate:
                    texts = self.pool.oracle([lv.handle for lv in live])
                    completions = [demo_completion(chat, t, self.sampling.max_new_tokens) for t in texts]
                else:
                    prompts = [lv.episode.token_ids for lv in live]
                    row_seeds = None if seeds is None else [stream_seed(lv.key, lv.episode.num_turns) for lv in live]
                    completions = generate_seeded(self.policy, prompts, self.sampling, row_seeds)
                stats.generate_s += time.perf_counter() - t
                stats.generate_calls += 1
                texts = []
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
                    texts.append(text)
                t = time.perf_counter()
                results = self.pool.step([lv.handle for lv in live], texts)
                stats.env_s += time.perf_counter() - t
                still: list[_Live] = []
                ended: list[int] = []
                for lv, comp, res in zip(live, completions, results):
                    ep = lv.episode
                    if res.error is not None:  # an env bug or a lost worker: drop the episode, keep the batch
                        stats.dropped_env_errors += 1
                        stats.env_error_messages.append(res.error)
                        continue
                    ep.turn_rewards.append(float(res.reward))
                    for k, v in res.info.get("reward_parts", {}).items():
                        ep.reward_parts[k] = ep.reward_parts.get(k, 0.0) + float(v)
                    if res.info.get("error"):
                        ep.errors.append(str(res.info["error"]))
                    ep.success = bool(res.info.get("success", False))
                    ep.messages.extend(res.messages)
                    if res.terminated or res.truncated:
                        ep.end_reason = "terminated" if res.terminated else "truncated"
                        finished.append(ep)
                        ended.append(lv.handle)
                        continue
                    cont = chat.continuation_ids(res.messages, comp.token_ids)
                    ep.token_ids.extend(cont)
                    ep.loss_mask.extend([0] * len(cont))
                    ep.logprobs.extend([0.0] * len(cont))
                    if len(ep.token_ids) + self.sampling.max_new_tokens > self.max_episode_tokens:
                        ep.end_reason = "token_budget"
                        finished.append(ep)
                        ended.append(lv.handle)
                        continue
                    still.append(lv)
                self.pool.release(ended)
                live = still
                rounds += 1
                if on_round is not None:
                    on_round(rounds, len(live))
        finally:
            if live:  # an exception (policy, callback) left episodes open: free their envs
                self.pool.release([lv.handle for lv in live])
        finished.sort(key=lambda e: e.group)  # stable: members keep their order inside a group
        stats.episodes = len(finished)
        after = self.pool.stats
        stats.worker_restarts = after.worker_restarts - pool_before.worker_restarts
        stats.replayed_episodes = after.replayed_episodes - pool_before.replayed_episodes
        stats.replay_failures = after.replay_failures - pool_before.replay_failures
        self.last_stats = stats
        return finished


def demo_completion(chat: ChatFormat, text: str, max_new_tokens: int | None = None) -> Completion:
    """A demonstrator's reply as the policy would have produced it: its ids, then eos (cut
    at ``max_new_tokens`` like a sampled reply, without eos, when longer)."""
    ids = chat.encode(text) + [min(chat.eos_token_ids)]
    if max_new_tokens is not None and len(ids) > max_new_tokens:
        ids = ids[:max_new_tokens]
        return Completion(ids, [0.0] * len(ids), "length")
    return Completion(ids, [0.0] * len(ids), "stop")
