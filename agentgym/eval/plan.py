"""An evaluation planned and checked before any model loads (what ``agentgym eval`` runs).

:func:`plan_eval` turns the command's arguments into an :class:`EvalPlan`: the held-out
tasks of each env, which envs are games (and against whom), how results break down. A
wrong env id, env kwarg, opponent, ``--param`` or ``--by`` fails here with
:class:`EvalArgError` naming the option, in a second, not after the model has loaded.
:meth:`EvalPlan.run` then plays it with a policy.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.eval.heldout import EnvReport, eval_passes, evaluate_env
from agentgym.policies.base import SamplingParams
from agentgym.tasks import TaskSpec

#: The rows a game's report always breaks down by.
GAME_ROWS = ("opponent", "opponent / seat")


class EvalArgError(ValueError):
    """An evaluation argument that cannot work; ``option`` names it (``--k``, ``--param``, ...)."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


@dataclass
class EvalPlan:
    """What an evaluation plays: ``n_tasks`` held-out tasks of each env (or ``task_lists``
    where ``--param`` restricted them), ``k`` samples each with ``sampling`` plus a greedy
    pass; a game in every seat against each of its opponents."""

    env_ids: list[str]
    n_tasks: int
    k: int
    seed: int
    sampling: SamplingParams
    greedy: bool
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    restrict: dict[str, list[Any]] = field(default_factory=dict)
    #: Env id -> its held-out tasks, where ``restrict`` chose them.
    task_lists: dict[str, list[TaskSpec]] = field(default_factory=dict)
    #: Game env id -> (its opponents, its number of seats).
    games: dict[str, tuple[list[str], int]] = field(default_factory=dict)
    by: list[str] = field(default_factory=list)

    @property
    def passes(self) -> int:
        """Passes over each task: the sampled one, and the greedy one when asked."""
        return eval_passes(self.sampling, self.greedy)

    @property
    def breakdown(self) -> list[str]:
        """The rows the report shows: ``by``, and for games each opponent and seat."""
        extra = [b for b in GAME_ROWS if b not in self.by] if self.games else []
        return [*self.by, *extra]

    def plays(self, env_id: str) -> int:
        """How many task plays ``env_id``'s evaluation finishes (what a progress bar counts)."""
        tasks = len(self.task_lists.get(env_id, range(self.n_tasks)))
        if env_id in self.games:
            opponents, seats = self.games[env_id]
            tasks *= sum(1 if o == "self" else seats for o in opponents)
        return tasks * self.passes

    def run(
        self,
        policy: Any,
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
        on_samples: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[EnvReport]:
        """Play the plan with ``policy``, env by env. ``progress(env_id, plays)`` is called as
        an env starts and returns what counts its finished plays."""
        reports = []
        for env_id in self.env_ids:
            advance = progress(env_id, self.plays(env_id)) if progress is not None else None
            common: dict[str, Any] = dict(
                n_tasks=self.n_tasks,
                tasks=self.task_lists.get(env_id),
                k=self.k,
                sampling=self.sampling,
                greedy=self.greedy,
                seed=self.seed,
                env_kwargs=self.env_kwargs,
                progress=advance,
                on_samples=on_samples,
            )
            opponents = self.games[env_id][0] if env_id in self.games else ()
            reports.append(evaluate_env(policy, env_id, opponents=opponents, **common))
        return reports


def check_env_ids(env_ids: Sequence[str]) -> None:
    """Raise :class:`EvalArgError` for an env id that is not registered."""
    for env_id in env_ids:
        _spec(env_id)


def plan_eval(
    env_ids: Sequence[str],
    *,
    n_tasks: int,
    k: int,
    seed: int,
    max_new_tokens: int,
    temperature: float,
    greedy: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    restrict: dict[str, list[Any]] | None = None,
    opponents: Sequence[str] | None = None,
    by: Sequence[str] | None = None,
) -> EvalPlan:
    """Check every argument of an evaluation (no model) and plan it; raise
    :class:`EvalArgError` naming the first one that cannot work."""
    from agentgym.rollout.seats import eval_settings

    check_env_ids(env_ids)
    if k < 1 or n_tasks < 1:
        raise EvalArgError("--k and --tasks must be at least 1")
    if temperature == 0 and k > 1:
        raise EvalArgError("--temperature 0 is greedy: its k samples would all be alike; use --k 1")
    try:
        sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    except ValueError as exc:
        raise EvalArgError(str(exc)) from None
    kwargs, restrict = dict(env_kwargs or {}), dict(restrict or {})
    plan = EvalPlan(list(env_ids), n_tasks, k, seed, sampling, greedy, kwargs, restrict, by=list(by or []))
    if restrict:
        for env_id in env_ids:
            cls = _spec(env_id).load_class()
            try:
                plan.task_lists[env_id] = cls.held_out_tasks(n_tasks, seed=seed, env_kwargs=kwargs, restrict=restrict)
            except (ValueError, KeyError, TypeError) as exc:
                raise EvalArgError(f"{env_id}: {exc}", "--param") from None
    for env_id in env_ids:  # a bad kwarg or opponent fails here, before the model loads
        try:
            probe = _spec(env_id).make(**kwargs)
        except (TypeError, ValueError) as exc:
            raise EvalArgError(f"{env_id}: {exc}", "--env-kwarg") from None
        try:
            opps = list(opponents or ["random"])
            if eval_settings(probe, opps)[0].opponent:  # a game: played against opponents
                plan.games[env_id] = (opps, len(probe.possible_agents))
        except ValueError as exc:
            raise EvalArgError(str(exc), "--opponent") from None
        finally:
            probe.close()
    for env_id in env_ids:  # a misspelt breakdown fails before the model loads
        names = [d.name for d in _spec(env_id).load_class().param_space.dims]
        names += list(GAME_ROWS) if env_id in plan.games else []
        for b in plan.by:
            if b not in names:
                close = difflib.get_close_matches(b, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise EvalArgError(
                    f"{env_id} has no parameter {b!r} to break results down by{hint}; it has {', '.join(names)}",
                    "--by",
                )
    return plan


def _spec(env_id: str) -> Any:
    from agentgym.registry import EnvNotFound, spec

    try:
        return spec(env_id)
    except EnvNotFound as exc:
        raise EvalArgError(str(exc), "ENV_ID") from None
