"""Play many plays at once: every policy move of every live play is generated in one batch.

Every env is played the same way, as seats taking turns (:mod:`agentgym.rollout.seats`):
a single-agent env is a play with one policy seat, a game has a seat per agent, each
played by the policy or by a scripted kind. Each round, the runner asks the policy for
one completion per policy seat that must move, over all live plays (a single batched
``generate`` call), sends each play's decoded moves to the env pool in one batched
``step``, and reads back whose turn it is next. Plays that ended retire; multi-turn ones
share batches with single-turn ones until they finish.

Each policy seat of each play becomes its own :class:`Episode` (``agent`` = the seat,
``""`` for a single-agent env): its prompt is the seat's own opening, its ``loss_mask``
covers only the tokens that seat sampled, and what the env and the other seats said
reaches it as env messages (mask 0), appended when the seat next moves. A reward that
arrives between two of a seat's moves (the opponent folds, a showdown) is added to the
seat's last move, so ``episode.reward`` is the seat's return. Episodes come back in task
order, then member of the group, then seat.

Where the envs live is the pool's business (:mod:`agentgym.rollout.pool`): in this
process (default) or in Ray workers. Generation always stays here, so the Episodes are
the same, record for record and in the same order, whatever the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from agentgym.env import Message, TaskSpec
from agentgym.policies.base import (
    ChatFormat,
    Completion,
    Policy,
    SamplingParams,
    call_with_seeds,
    generate_seeded,
    stream_seed,
)
from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import EnvPool, InProcessPool
from agentgym.rollout.seats import Seating, Turn


@dataclass
class _Seat:
    agent: str
    episode: Episode | None = None
    #: Ids sampled at this seat's last move (the chat template closes that turn).
    last_completion: list[int] = field(default_factory=list)
    #: Reward that arrived before the seat's first move.
    early_reward: float = 0.0
    #: Summed reward parts; the seat's Episode shares this dict once it exists.
    parts: dict[str, float] = field(default_factory=dict)
    #: The seat's success as the env last reported it.
    success: bool = False


@dataclass
class _Play:
    env_id: str
    handle: int
    group: int
    task: TaskSpec
    seats: dict[str, _Seat]
    #: The play's own sampling stream (with ``run(seeds=...)``).
    key: int | None = None
    #: Policy seats whose move the next round generates.
    movers: list[str] = field(default_factory=list)
    #: What each policy seat had been told at the last turn (an idle seat's record).
    seen: dict[str, list[Message]] = field(default_factory=dict)
    done: bool = False
    end_reason: str = "terminated"


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
    #: Plays replayed on a replacement worker.
    replayed_episodes: int = 0
    #: Replays that diverged or failed again (those plays are in ``dropped_env_errors``).
    replay_failures: int = 0
    #: Seconds in the policy's ``generate`` (or the oracle) and in env resets and steps.
    generate_s: float = 0.0
    env_s: float = 0.0


class RolloutRunner:
    """Plays tasks of any env with a policy and returns :class:`Episode` records.

    ``max_episode_tokens`` bounds a seat's whole episode (prompt + all turns): a play in
    which a seat to move cannot fit another full completion ends with
    ``end_reason="token_budget"``. ``pool`` holds the envs (default: a fresh
    :class:`InProcessPool`). In a game, ``controllers`` (seat ->
    :data:`~agentgym.multiagent.POLICY` or a scripted kind) override each game's own
    (which reads ``opponent``/``seat`` params, so a teacher can choose opponents), and
    ``seed`` seeds the scripted seats of a run without ``seeds``. Scripted seats produce
    no Episode; nor does a policy seat the play ended before it could move, unless
    ``run(..., idle_seats=True)`` (evaluation: a hand lost before the learner acted
    still counts as lost).
    """

    def __init__(
        self,
        policy: Policy,
        sampling: SamplingParams,
        *,
        max_episode_tokens: int = 4096,
        env_kwargs: dict[str, Any] | None = None,
        pool: EnvPool | None = None,
        controllers: dict[str, str] | None = None,
        seed: int = 0,
    ):
        self.policy = policy
        self.sampling = sampling
        self.max_episode_tokens = max_episode_tokens
        self.env_kwargs = dict(env_kwargs or {})
        self.pool: EnvPool = pool if pool is not None else InProcessPool()
        #: Seat -> controller for every game this runner plays (None: each game's own choice).
        self.controllers = dict(controllers) if controllers else None
        self.seed = seed
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
        seeds: Sequence[int] | None = None,
        *,
        demonstrate: bool | str = False,
        controllers: dict[str, str] | None = None,
        idle_seats: bool = False,
    ) -> list[Episode]:
        """Play each task ``group_size`` times; episodes come back grouped in task order.

        ``seeds`` (one per task): play m of task i draws its scripted seats from a stream
        seeded by ``(seeds[i], m)`` and seat s samples its move t from one seeded by
        ``(seeds[i], m, s, t)`` (no ``s`` for a single-agent env), so an episode's tokens
        do not depend on which other plays shared its batches (the trainer splits tasks
        over processes this way). ``controllers`` seat this run's games (default: the
        runner's).

        Plays whose env raised (a bug or a crashed worker, never a bad action) are
        dropped and counted in :attr:`last_stats`.

        With ``demonstrate`` a demonstrator writes every policy seat's reply instead of
        the policy: a single-agent env's own oracle (``env.oracle()``), a game's best
        scripted player (or the scripted kind ``demonstrate`` names). The reply text is
        encoded and closed with eos, so the Episode is laid out exactly as a sampled one
        (loss mask 1 on the demonstrator's tokens, log-probs 0), ready for supervised
        fine-tuning. Needs the in-process pool.
        """
        stats = RolloutStats()
        pool_before = self.pool.stats.copy()
        if seeds is not None and len(seeds) != len(tasks):
            raise ValueError(f"got {len(seeds)} seeds for {len(tasks)} tasks")
        kind = demonstrate if isinstance(demonstrate, str) else None
        plays = self._open(env_id, tasks, group_size, seeds, controllers or self.controllers, kind, stats)
        live = self._retire(plays)
        rounds = 0
        try:
            while live:
                self._round(live, bool(demonstrate), stats)
                live = self._retire(live)
                rounds += 1
                if on_round is not None:
                    on_round(rounds, len(live))
        finally:
            if live:  # an exception (policy, callback) left plays open: free their envs
                self.pool.release([p.handle for p in live])
        out = [ep for p in plays if p.end_reason != "dropped" for ep in self._episodes(p, idle_seats)]
        stats.episodes = len(out)
        after = self.pool.stats
        stats.worker_restarts = after.worker_restarts - pool_before.worker_restarts
        stats.replayed_episodes = after.replayed_episodes - pool_before.replayed_episodes
        stats.replay_failures = after.replay_failures - pool_before.replay_failures
        self.last_stats = stats
        return out

    def _open(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        group_size: int,
        seeds: Sequence[int] | None,
        controllers: dict[str, str] | None,
        demonstrator: str | None,
        stats: RolloutStats,
    ) -> list[_Play]:
        """Open ``group_size`` plays per task, in task order, and book their first turns."""
        specs, seatings = [], []
        for gi, task in enumerate(tasks):
            for m in range(group_size):
                key = None if seeds is None else stream_seed(int(seeds[gi]), m)
                specs.append(task)
                seatings.append(Seating(controllers, key, self.seed, gi, m, demonstrator))
        t = time.perf_counter()
        opened_all = self.pool.reset(env_id, specs, self.env_kwargs, seatings)
        stats.env_s += time.perf_counter() - t
        plays: list[_Play] = []
        for seating, opened in zip(seatings, opened_all):
            if opened.error is not None:
                stats.dropped_env_errors += 1
                stats.env_error_messages.append(opened.error)
                continue
            assert opened.task is not None and opened.turn is not None  # set on every opened play
            seats = {a: _Seat(a) for a in opened.seats}
            plays.append(_Play(env_id, opened.handle, seating.group, opened.task, seats, seating.key))
            self._take(plays[-1], opened.turn)
        return plays

    def _round(self, live: list[_Play], demonstrate: bool, stats: RolloutStats) -> None:
        """Generate every live play's moves in one batch, step the plays, book their turns."""
        requests = [(p, agent) for p in live for agent in p.movers]
        t = time.perf_counter()
        completions = self._generate(requests, demonstrate, stats)
        stats.generate_s += time.perf_counter() - t
        moves: dict[int, dict[str, str]] = {}
        for (p, agent), comp in zip(requests, completions):
            seat = p.seats[agent]
            ep = _opened(seat)
            ep.token_ids.extend(comp.token_ids)
            ep.loss_mask.extend([1] * len(comp.token_ids))
            ep.logprobs.extend(comp.logprobs)
            ep.turn_rewards.append(0.0)
            stats.generated_tokens += len(comp.token_ids)
            if comp.finish_reason == "length":
                ep.hit_length_limit = True
            text = self.policy.chat.decode(comp.token_ids)
            ep.messages.append({"role": "assistant", "content": text})
            seat.last_completion = list(comp.token_ids)
            moves.setdefault(p.handle, {})[agent] = text
        t = time.perf_counter()
        results = self.pool.step([p.handle for p in live], [moves[p.handle] for p in live])
        stats.env_s += time.perf_counter() - t
        for p, res in zip(live, results):
            if res.error is not None:  # an env bug or a lost worker: drop the play, keep the batch
                stats.dropped_env_errors += 1
                stats.env_error_messages.append(res.error)
                p.done, p.end_reason = True, "dropped"
            else:
                self._take(p, cast(Turn, res.turn))

    def _episodes(self, p: _Play, idle_seats: bool) -> list[Episode]:
        """A finished play's Episodes, one per policy seat that moved (or every seat with ``idle_seats``)."""
        out = []
        for seat in p.seats.values():
            if seat.episode is not None and not seat.episode.turn_rewards:
                seat.episode = None  # opened, but the play ended before its first move
            if seat.episode is None and idle_seats:
                seat.episode = self._idle_episode(p, seat)
            if seat.episode is not None:
                seat.episode.end_reason = p.end_reason
                seat.episode.success = seat.success
                out.append(seat.episode)
        return out

    def _retire(self, plays: list[_Play]) -> list[_Play]:
        """The plays still live; the envs of those that ended go back to the pool."""
        self.pool.release([p.handle for p in plays if p.done and p.end_reason != "dropped"])
        return [p for p in plays if not p.done]

    def _generate(self, requests: list[tuple[_Play, str]], demonstrate: bool, stats: RolloutStats) -> list[Completion]:
        """One batched call for the round; a policy with an adapter per role
        (:class:`~agentgym.policies.roles.RolePolicy`) gets one call per seat instead."""
        prompts = [_opened(p.seats[agent]).token_ids for p, agent in requests]
        if demonstrate:
            stats.generate_calls += 1
            oracle = getattr(self.pool, "oracle", None)
            if oracle is None:
                raise TypeError(f"demonstrations need a pool with oracle() (the in-process pool), not {self.pool!r}")
            texts = oracle([p.handle for p, _ in requests], [agent or None for _, agent in requests])
            return [demo_completion(self.policy.chat, t, self.sampling.max_new_tokens) for t in texts]
        seeds = None
        if all(p.key is not None for p, _ in requests):
            seeds = [
                stream_seed(cast(int, p.key), *([agent] if agent else []), _moves(p, agent)) for p, agent in requests
            ]
        generate_as = getattr(self.policy, "generate_as", None)
        if generate_as is None or not any(agent for _, agent in requests):
            stats.generate_calls += 1
            return generate_seeded(self.policy, prompts, self.sampling, seeds)
        out: list[Any] = [None] * len(requests)
        for role in dict.fromkeys(agent for _, agent in requests):
            idx = [i for i, (_, agent) in enumerate(requests) if agent == role]
            role_seeds = None if seeds is None else [seeds[i] for i in idx]
            done = call_with_seeds(generate_as, role, [prompts[i] for i in idx], self.sampling, seeds=role_seeds)
            for i, comp in zip(idx, done):
                out[i] = comp
            stats.generate_calls += 1
        return out

    # ----- one play ------------------------------------------------------------------
    def _take(self, p: _Play, turn: Turn) -> None:
        """Book a turn: credit its rewards, end the play or open the next moves' prompts."""
        for agent, reward, info in turn.credits:
            self._credit(p, agent, reward, info)
        p.seen = turn.observations
        p.movers = []
        if turn.done:
            for agent, seat in p.seats.items():
                if seat.episode is not None:
                    seat.episode.messages.extend(turn.observations.get(agent, []))
            p.done, p.end_reason = True, turn.end_reason
            return
        for agent in turn.movers:
            if not self._prompt(p, agent, turn.observations.get(agent, [])):
                p.movers = []
                p.done, p.end_reason = True, "token_budget"
                return
            p.movers.append(agent)

    def _prompt(self, p: _Play, agent: str, new: list[Message]) -> bool:
        """Extend the seat's ids with what it observed since its last move (False: out of budget)."""
        chat = self.policy.chat
        seat = p.seats[agent]
        if seat.episode is None:
            ids = chat.prompt_ids(new)
            if len(ids) + self.sampling.max_new_tokens > self.max_episode_tokens:
                return False  # the seat never moves: no Episode for it
            seat.episode = self._episode(p, seat, new, ids)
        else:
            ep = seat.episode
            cont = chat.continuation_ids(new, seat.last_completion)
            ep.token_ids.extend(cont)
            ep.loss_mask.extend([0] * len(cont))
            ep.logprobs.extend([0.0] * len(cont))
            ep.messages.extend(new)
        return len(seat.episode.token_ids) + self.sampling.max_new_tokens <= self.max_episode_tokens

    def _credit(self, p: _Play, agent: str, reward: float, info: dict[str, Any]) -> None:
        seat = p.seats.get(agent)
        if seat is None:  # a scripted seat
            return
        ep = seat.episode
        if ep is None or not ep.turn_rewards:
            seat.early_reward += float(reward)
        else:
            ep.turn_rewards[-1] += float(reward) + seat.early_reward
            seat.early_reward = 0.0
        for k, v in info.get("reward_parts", {}).items():
            seat.parts[k] = seat.parts.get(k, 0.0) + float(v)
        seat.success = bool(info.get("success", seat.success))
        if ep is not None and info.get("error"):
            ep.errors.append(str(info["error"]))

    def _episode(self, p: _Play, seat: _Seat, msgs: list[Message], ids: list[int]) -> Episode:
        """A seat's Episode opened on ``msgs`` (their prompt ``ids``, never trained on)."""
        return Episode(
            env_id=p.env_id,
            task=p.task,
            token_ids=list(ids),
            loss_mask=[0] * len(ids),
            logprobs=[0.0] * len(ids),
            prompt_len=len(ids),
            reward_parts=seat.parts,
            messages=list(msgs),
            policy_version=self.policy.version,
            group=p.group,
            agent=seat.agent,
        )

    def _idle_episode(self, p: _Play, seat: _Seat) -> Episode:
        """The record of a policy seat that never moved: what it saw, its return, no tokens to train."""
        msgs = p.seen.get(seat.agent, [])
        ep = self._episode(p, seat, msgs, self.policy.chat.prompt_ids(msgs) if msgs else [])
        ep.turn_rewards.append(seat.early_reward)
        return ep


def _opened(seat: _Seat) -> Episode:
    """The seat's Episode, opened by its prompt before it moves."""
    assert seat.episode is not None, f"seat {seat.agent!r} moves before its prompt was opened"
    return seat.episode


def _moves(p: _Play, agent: str) -> int:
    """How many moves ``agent`` has made in play ``p`` so far."""
    ep = p.seats[agent].episode
    return 0 if ep is None else len(ep.turn_rewards)


def demo_completion(chat: ChatFormat, text: str, max_new_tokens: int | None = None) -> Completion:
    """A demonstrator's reply as the policy would have produced it: its ids, then eos (cut
    at ``max_new_tokens`` like a sampled reply, without eos, when longer)."""
    ids = chat.encode(text) + [min(chat.eos_token_ids)]
    if max_new_tokens is not None and len(ids) > max_new_tokens:
        ids = ids[:max_new_tokens]
        return Completion(ids, [0.0] * len(ids), "length")
    return Completion(ids, [0.0] * len(ids), "stop")
