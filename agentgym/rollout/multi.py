"""Play multi-agent text games: one shared policy plays every seat it controls.

Each round, every live game advances its scripted seats until a policy seat must move
(turn-based games) or collects the scripted moves of the round (simultaneous games);
then all policy moves of all games are generated in ONE batched ``generate`` call.

Each policy seat of each game becomes its own :class:`Episode` (``agent`` = the seat):
its prompt is the seat's own role-conditioned opening, its ``loss_mask`` covers only the
tokens that seat sampled, and what the other agents said reaches it as env messages
(mask 0). A reward that arrives between two of a seat's moves (the opponent folds, a
showdown) is added to the seat's last move, so ``episode.reward`` is the seat's return.
Episodes come back ordered by task group, then game, then seat.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.env import TaskSpec
from agentgym.multiagent import POLICY, TextAECEnv, TextParallelEnv, is_multiagent
from agentgym.policies.base import Policy, SamplingParams, call_with_seeds, generate_seeded, stream_seed
from agentgym.registry import make
from agentgym.rollout.episode import Episode
from agentgym.rollout.runner import RolloutStats


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
class _Game:
    env: Any
    group: int
    controllers: dict[str, str]
    seats: dict[str, _Seat]
    rng: np.random.Generator
    #: The game's own sampling stream (with ``run(seeds=...)``).
    key: int | None = None
    #: Simultaneous games: each seat's observation, kept until it moves.
    obs: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    done: bool = False
    end_reason: str = "terminated"


class MultiAgentRunner:
    """Plays multi-agent games with a policy; returns one Episode per policy seat per game.

    ``controllers`` (seat -> :data:`~agentgym.multiagent.POLICY` or a scripted kind)
    overrides each game's own :meth:`controllers` (which reads ``opponent``/``seat``
    params, so a teacher can choose opponents); scripted seats produce no Episode.
    A policy seat the game ended before it could move has no tokens to train on and
    produces no Episode either, unless ``run(..., idle_seats=True)`` (evaluation: a hand
    lost before the learner acted still counts as lost).
    """

    def __init__(
        self,
        policy: Policy,
        sampling: SamplingParams,
        *,
        max_episode_tokens: int = 4096,
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        controllers: dict[str, str] | None = None,
        demonstrator: str | None = None,
    ):
        self.policy = policy
        #: A scripted kind (e.g. "optimal") that writes every policy seat's moves instead of
        #: the policy: its Episodes are demonstrations for supervised fine-tuning.
        self.demonstrator = demonstrator
        #: Seat -> controller for every game this runner plays (None: each game's own choice).
        self.controllers = dict(controllers) if controllers else None
        self.sampling = sampling
        self.max_episode_tokens = max_episode_tokens
        self.env_kwargs = dict(env_kwargs or {})
        self.seed = seed
        self._pool: dict[str, list[Any]] = {}
        self.last_stats = RolloutStats()

    def close(self) -> None:
        """Close the games this runner keeps for reuse."""
        for envs in self._pool.values():
            for env in envs:
                env.close()
        self._pool.clear()

    def _env(self, env_id: str) -> Any:
        free = self._pool.setdefault(env_id, [])
        if free:
            return free.pop()
        env = make(env_id, **self.env_kwargs)
        if not is_multiagent(env):
            raise TypeError(f"{env_id!r} is a single-agent env: use RolloutRunner for it")
        return env

    def run(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        group_size: int = 1,
        controllers: dict[str, str] | None = None,
        on_round: Callable[[int, int], None] | None = None,
        idle_seats: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> list[Episode]:
        """Play each task ``group_size`` times (see the class doc); with ``seeds`` (one per
        task) game m of task i, its scripted seats and its policy moves draw from streams
        seeded by ``(seeds[i], m)``, whatever else shares the batch."""
        if seeds is not None and len(seeds) != len(tasks):
            raise ValueError(f"got {len(seeds)} seeds for {len(tasks)} tasks")
        stats = RolloutStats()
        games: list[_Game] = []
        for gi, task in enumerate(tasks):
            for m in range(group_size):
                env = self._env(env_id)
                if isinstance(env, TextParallelEnv):
                    obs, _ = env.reset(options={"task": task})
                else:
                    env.reset(options={"task": task})
                    obs = {}
                ctl = {**env.controllers(), **(controllers or self.controllers or {})}
                env.check_players(ctl)
                seats = {a: _Seat(a) for a in env.possible_agents if ctl[a] == POLICY}
                key = None if seeds is None else stream_seed(int(seeds[gi]), m)
                if key is None:
                    rng = np.random.default_rng([self.seed, int(env.task.seed) % (2**32), gi, m])
                else:
                    rng = np.random.default_rng(key)
                obs_messages = {a: o["messages"] for a, o in obs.items()}
                games.append(_Game(env, gi, ctl, seats, rng, key=key, obs=obs_messages))
        rounds = 0
        live = list(games)
        while live:
            requests: list[tuple[_Game, str, list[int]]] = []
            for g in live:
                try:
                    movers = self._advance(g)
                except Exception:  # an env bug: drop the game, keep the batch
                    self._drop(g, stats)
                    continue
                for agent in movers:
                    ids = self._prompt(g, agent)
                    if ids is None:
                        break
                    requests.append((g, agent, ids))
            requests = [r for r in requests if not r[0].done]
            if requests:
                t = time.perf_counter()
                completions = self._generate(requests, stats)
                stats.generate_s += time.perf_counter() - t
                moves: dict[int, dict[str, str]] = {}
                for (g, agent, _), comp in zip(requests, completions):
                    ep = g.seats[agent].episode
                    ep.token_ids.extend(comp.token_ids)
                    ep.loss_mask.extend([1] * len(comp.token_ids))
                    ep.logprobs.extend(comp.logprobs)
                    ep.turn_rewards.append(0.0)
                    stats.generated_tokens += len(comp.token_ids)
                    if comp.finish_reason == "length":
                        ep.hit_length_limit = True
                    text = self.policy.chat.decode(comp.token_ids)
                    ep.messages.append({"role": "assistant", "content": text})
                    g.seats[agent].last_completion = list(comp.token_ids)
                    moves.setdefault(id(g), {})[agent] = text
                for g in live:
                    if g.done or id(g) not in moves:
                        continue
                    try:
                        self._apply(g, moves[id(g)])
                    except Exception:
                        self._drop(g, stats)
            live = [g for g in live if not g.done]
            rounds += 1
            if on_round is not None:
                on_round(rounds, len(live))
        out: list[Episode] = []
        for g in games:
            if g.end_reason == "dropped":
                continue
            for agent in g.env.possible_agents:
                seat = g.seats.get(agent)
                if seat is None:
                    continue
                if seat.episode is not None and not seat.episode.turn_rewards:
                    seat.episode = None  # opened, but the game ended before its first move
                if seat.episode is None and idle_seats:
                    seat.episode = self._idle_episode(g, seat)
                if seat.episode is not None:
                    seat.episode.end_reason = g.end_reason
                    seat.episode.success = seat.success
                    out.append(seat.episode)
            self._pool.setdefault(env_id, []).append(g.env)
        stats.episodes = len(out)
        self.last_stats = stats
        return out

    def _generate(self, requests: list[tuple[_Game, str, list[int]]], stats: RolloutStats) -> list[Any]:
        """One batched call for the round; a policy with an adapter per role
        (:class:`~agentgym.policies.roles.RolePolicy`) gets one call per role instead."""
        if self.demonstrator is not None:
            from agentgym.rollout.runner import demo_completion

            return [
                demo_completion(
                    self.policy.chat,
                    g.env.scripted_action(agent, self.demonstrator, g.rng),
                    self.sampling.max_new_tokens,
                )
                for g, agent, _ in requests
            ]
        seeds = None
        if all(g.key is not None for g, _, _ in requests):
            seeds = [stream_seed(g.key, agent, _moves(g, agent)) for g, agent, _ in requests]
        generate_as = getattr(self.policy, "generate_as", None)
        if generate_as is None:
            stats.generate_calls += 1
            return generate_seeded(self.policy, [ids for _, _, ids in requests], self.sampling, seeds)
        out: list[Any] = [None] * len(requests)
        for role in dict.fromkeys(agent for _, agent, _ in requests):
            idx = [i for i, (_, agent, _) in enumerate(requests) if agent == role]
            role_seeds = None if seeds is None else [seeds[i] for i in idx]
            done = call_with_seeds(generate_as, role, [requests[i][2] for i in idx], self.sampling, seeds=role_seeds)
            for i, comp in zip(idx, done):
                out[i] = comp
            stats.generate_calls += 1
        return out

    # ----- one game ------------------------------------------------------------------
    def _advance(self, g: _Game) -> list[str]:
        """Play scripted seats until policy seats must move; return those seats."""
        env = g.env
        if isinstance(env, TextAECEnv):
            while True:
                if self._aec_over(g):
                    return []
                agent = env.agent_selection
                kind = g.controllers[agent]
                if kind == POLICY:
                    return [agent]
                self._aec_step(g, agent, env.scripted_action(agent, kind, g.rng))
        if not env.agents:
            self._finish(g, "terminated")
            return []
        return [a for a in env.agents if g.controllers[a] == POLICY]

    def _prompt(self, g: _Game, agent: str) -> list[int] | None:
        """The seat's ids so far plus what it observed since its last move (None: out of budget)."""
        chat = self.policy.chat
        seat = g.seats[agent]
        new = g.env.observe(agent)["messages"] if isinstance(g.env, TextAECEnv) else g.obs.get(agent, [])
        if seat.episode is None:
            ids = chat.prompt_ids(new)
            if len(ids) + self.sampling.max_new_tokens > self.max_episode_tokens:
                self._finish(g, "token_budget")  # the seat never moves: no Episode for it
                return None
            seat.episode = Episode(
                env_id=g.env.env_id or "",
                task=g.env.task,
                token_ids=list(ids),
                loss_mask=[0] * len(ids),
                logprobs=[0.0] * len(ids),
                prompt_len=len(ids),
                messages=list(new),
                policy_version=self.policy.version,
                group=g.group,
                agent=agent,
                reward_parts=seat.parts,
            )
        else:
            ep = seat.episode
            cont = chat.continuation_ids(new, seat.last_completion)
            ep.token_ids.extend(cont)
            ep.loss_mask.extend([0] * len(cont))
            ep.logprobs.extend([0.0] * len(cont))
            ep.messages.extend(new)
        if len(seat.episode.token_ids) + self.sampling.max_new_tokens > self.max_episode_tokens:
            self._finish(g, "token_budget")
            return None
        return seat.episode.token_ids

    def _idle_episode(self, g: _Game, seat: _Seat) -> Episode:
        """The record of a policy seat that never moved: what it saw, its return, no tokens to train."""
        env = g.env
        msgs = env.observe(seat.agent)["messages"] if isinstance(env, TextAECEnv) else g.obs.get(seat.agent, [])
        ids = self.policy.chat.prompt_ids(msgs) if msgs else []
        return Episode(
            env_id=env.env_id or "",
            task=env.task,
            token_ids=list(ids),
            loss_mask=[0] * len(ids),
            logprobs=[0.0] * len(ids),
            prompt_len=len(ids),
            turn_rewards=[seat.early_reward],
            reward_parts=seat.parts,
            messages=list(msgs),
            policy_version=self.policy.version,
            group=g.group,
            agent=seat.agent,
        )

    def _apply(self, g: _Game, policy_moves: dict[str, str]) -> None:
        env = g.env
        if isinstance(env, TextAECEnv):
            ((agent, text),) = policy_moves.items()
            self._aec_step(g, agent, text)
            self._aec_over(g)
            return
        actions = {}
        for a in env.agents:
            kind = g.controllers[a]
            actions[a] = policy_moves[a] if kind == POLICY else env.scripted_action(a, kind, g.rng)
        obs, rewards, terms, truncs, infos = env.step(actions)
        g.obs = {a: o["messages"] for a, o in obs.items()}
        for a in rewards:
            self._credit(g, a, rewards[a], infos[a])
        if any(terms.values()) or any(truncs.values()):
            for a, msgs in g.obs.items():
                if a in g.seats and g.seats[a].episode is not None:
                    g.seats[a].episode.messages.extend(msgs)
            self._finish(g, "terminated" if any(terms.values()) else "truncated")

    def _aec_step(self, g: _Game, agent: str, text: str) -> None:
        env = g.env
        env.step(text)
        for a in env.agents:
            self._credit(g, a, env.rewards.get(a, 0.0), env.infos.get(a, {}))

    def _aec_over(self, g: _Game) -> bool:
        env = g.env
        if g.done:
            return True
        if env.agents and not all(env.terminations[a] or env.truncations[a] for a in env.agents):
            return False
        for a, seat in g.seats.items():
            if seat.episode is not None:
                seat.episode.messages.extend(env.observe(a)["messages"])
        truncated = any(env.truncations.get(a, False) for a in env.agents)
        self._finish(g, "truncated" if truncated else "terminated")
        return True

    def _credit(self, g: _Game, agent: str, reward: float, info: dict[str, Any]) -> None:
        seat = g.seats.get(agent)
        if seat is None:
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
        if ep is not None:
            if info.get("error"):
                ep.errors.append(str(info["error"]))

    def _finish(self, g: _Game, reason: str) -> None:
        g.done = True
        g.end_reason = reason

    def _drop(self, g: _Game, stats: RolloutStats) -> None:
        stats.dropped_env_errors += 1
        stats.env_error_messages.append(traceback.format_exc(limit=3))
        g.done = True
        g.end_reason = "dropped"


def _moves(g: _Game, agent: str) -> int:
    """How many moves ``agent`` has made in game ``g`` so far."""
    ep = g.seats[agent].episode
    return 0 if ep is None else len(ep.turn_rewards)
