"""Collecting a step's episodes: teacher -> runner -> filters (refill) -> Episodes.

One loop, :class:`~agentgym.curriculum.filters.FilteredSampling`, draws tasks, plays them,
tells the teacher about every group and keeps the groups that pass the filters. A group
is one task's G episodes of one seat: in a game each seat the policy played is judged
(and its advantages computed) on its own, as GRPO compares it.

What the teacher and the filters read of each episode is its *outcome*
(``teacher.outcome``): its success by default, its shaped reward, or one reward part
(:func:`episode_outcome`); a group's mean |advantage| for the teacher is computed on
those outcomes. The update's advantages are computed by the trainer on the shaped
rewards, whatever the outcome.

With ``rollout.off_policy_steps: 1`` the next step's batch is collected in a background
thread (:meth:`Collector.start`) while the trainer updates. A finished batch that has not
been trained on yet is part of the run's state: :meth:`Collector.pending_state` gives it
to the checkpoint and :meth:`Collector.restore_pending` puts it back on resume.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from agentgym.curriculum import FilteredSampling, GroupResult, Teacher
from agentgym.curriculum.base import check_outcome
from agentgym.grpo.advantages import group_advantages, group_ids
from agentgym.grpo.distributed import World
from agentgym.policies.base import call_with_seeds, stream_seed
from agentgym.rollout import Episode, Runner
from agentgym.tasks import TaskSpec


class RolloutCancelled(RuntimeError):
    """A background rollout stopped because the trainer closed."""


def episode_outcome(episode: Episode, outcome: str = "success") -> float:
    """What teachers and filters read of ``episode``: 1.0 / 0.0 for its success
    (``success``), its shaped reward (``reward``) or one reward part (``part:<name>``;
    0.0 when the episode does not report that part)."""
    if outcome == "success":
        return float(bool(episode.success))
    if outcome == "reward":
        return float(episode.reward)
    return float(episode.reward_parts.get(outcome[len("part:") :], 0.0))


def group_result(episodes: list[Episode], outcome: str = "success", scale_std: bool = True) -> GroupResult:
    """One group (one task, one seat) as the teacher and the filters see it: its rewards and
    successes, its outcomes, and the mean |GRPO advantage| of the outcomes."""
    outcomes = [episode_outcome(e, outcome) for e in episodes]
    adv = group_advantages(outcomes, [0] * len(outcomes), scale_std=scale_std)
    return GroupResult(
        episodes[0].task,
        [e.reward for e in episodes],
        [e.success for e in episodes],
        float(np.mean(np.abs(adv))),
        episodes[0].agent,
        list(episodes),
        outcomes=outcomes,
    )


@dataclass
class Collected:
    """One step's batch: the kept episodes (grouped per task), every group played, counters."""

    episodes: list[Episode]
    results: list[GroupResult]
    stats: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": [e.to_dict() for e in self.episodes],
            "results": [
                {
                    "task": r.task.to_dict(),
                    "rewards": r.rewards,
                    "successes": r.successes,
                    "mean_abs_advantage": r.mean_abs_advantage,
                    "agent": r.agent,
                    "outcomes": r.outcomes,
                }
                for r in self.results
            ],
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Collected:
        results = [
            GroupResult(
                TaskSpec.from_dict(r["task"]),
                list(r["rewards"]),
                list(r["successes"]),
                float(r["mean_abs_advantage"]),
                r.get("agent", ""),
                outcomes=r.get("outcomes"),
            )
            for r in d["results"]
        ]
        return cls([Episode.from_dict(e) for e in d["episodes"]], results, dict(d["stats"]))


class Collector:
    """Fills each step's batch of ``tasks_per_step`` tasks (see module doc)."""

    def __init__(
        self,
        runner: Runner,
        teacher: Teacher,
        filters: list[Any],
        *,
        env_id: str,
        tasks_per_step: int,
        group_size: int,
        max_refill_rounds: int,
        scale_std: bool = True,
        outcome: str = "success",
        seed: int = 0,
        world: World | None = None,
    ):
        self.runner = runner
        self.seed = int(seed)
        #: Across processes (torchrun): each rank plays its share of every round's tasks.
        self.world = (world or World()).for_rollout()
        self.env_id = env_id
        self.tasks_per_step = tasks_per_step
        self.group_size = group_size
        self.scale_std = scale_std
        #: What teachers and filters read of each episode (see :func:`episode_outcome`).
        self.outcome = check_outcome(outcome)
        self._part_checked = False
        # With no filter every group is kept, so the batch fills in one round.
        self.sampling = FilteredSampling(teacher, filters, max_rounds=max_refill_rounds + 1)
        self._stop = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    # ----- one batch ---------------------------------------------------------------
    def collect(self) -> Collected:
        played: list[GroupResult] = []
        counts = {"env_errors": 0, "worker_restarts": 0, "replayed_episodes": 0}
        seconds = {"sample_s": 0.0, "env_s": 0.0}
        serial = [0]  # tasks played so far this step: each task's episodes get a unique group

        version = int(getattr(getattr(self.runner, "policy", None), "version", 0))

        def play(specs: list[TaskSpec]) -> list[list[GroupResult]]:
            # Task serial[0] + i of this step samples from its own streams, on any rank.
            keys = [stream_seed(self.seed, "rollout", version, serial[0] + i) for i in range(len(specs))]
            share = self.world.share(len(specs))
            eps = call_with_seeds(
                self.runner.run,
                self.env_id,
                [specs[i] for i in share],
                group_size=self.group_size,
                on_round=self._check_stop,
                seeds=[keys[i] for i in share],
            )
            st = self.runner.last_stats
            counts["env_errors"] += st.dropped_env_errors
            counts["worker_restarts"] += st.worker_restarts
            counts["replayed_episodes"] += st.replayed_episodes
            seconds["sample_s"] += st.generate_s
            seconds["env_s"] += st.env_s
            local = []
            for k, i in enumerate(share):
                local.append(self._groups([replace(e, group=serial[0] + i) for e in eps if e.group == k]))
            per_task = self._exchange(local, len(specs)) if self.world.distributed else local
            serial[0] += len(specs)
            played.extend(r for groups in per_task for r in groups)
            return per_task

        kept, fs = self.sampling(play, self.tasks_per_step)
        self._check_part(played)
        if self.world.distributed:
            totals = self.world.sum_ints(*counts.values())
            counts = {k: int(v) for k, v in zip(counts, totals)}
        episodes = [e for res in kept for e in res.episodes]
        # Groups 0, 1, ... per kept task (the seats of one task share one), on copies: the
        # teacher's and the filters' results keep the episodes as they were played.
        renumber = group_ids([e.group for e in episodes])
        episodes = [replace(e, group=g) for e, g in zip(episodes, renumber)]
        stats = {
            "rollout/spent": float(fs.rollouts_spent),
            "rollout/dropped": float(fs.rollouts_dropped),
            "rollout/rounds": float(fs.rounds),
            **{f"rollout/{k}": float(v) for k, v in counts.items()},
            # This rank's rollout time: sampling tokens, and env resets and steps.
            **{f"time/{k}": v for k, v in seconds.items()},
        }
        return Collected(episodes, played, stats)

    def _exchange(self, local: list[list[GroupResult]], n: int) -> list[list[GroupResult]]:
        """Every rank's groups of this round, in task order: this rank's with their
        episodes, the others' as results only (rewards, successes: what filters and the
        teacher read)."""
        light = [
            [(r.task.to_dict(), r.rewards, r.successes, r.mean_abs_advantage, r.agent, r.outcomes) for r in groups]
            for groups in local
        ]
        out: list[list[GroupResult]] = []
        for rank, theirs in enumerate(self.world.gather(light)):
            if rank == self.world.rank:
                out.extend(local)
                continue
            for groups in theirs:
                out.append(
                    [GroupResult(TaskSpec.from_dict(t), rw, sc, a, ag, outcomes=oc) for t, rw, sc, a, ag, oc in groups]
                )
        if len(out) != n:
            raise RuntimeError(f"ranks returned {len(out)} tasks for a round of {n}")
        return out

    def _groups(self, eps: list[Episode]) -> list[GroupResult]:
        """One GroupResult per seat of one task's episodes (one for a single-agent env)."""
        by_seat: dict[str, list[Episode]] = {}
        for e in eps:
            by_seat.setdefault(e.agent, []).append(e)
        return [group_result(members, self.outcome, self.scale_std) for members in by_seat.values()]

    def _check_part(self, played: list[GroupResult]) -> None:
        """Warn (once) when no episode of a batch reports the reward part teachers read."""
        if self._part_checked or not self.outcome.startswith("part:"):
            return
        eps = [e for r in played for e in r.episodes]
        name = self.outcome[len("part:") :]
        if any(name in e.reward_parts for e in eps):
            self._part_checked = True
        elif eps:
            self._part_checked = True  # said once
            seen = sorted({k for e in eps for k in e.reward_parts})
            warnings.warn(
                f"teacher.outcome={self.outcome}: no episode of this batch reports a reward part {name!r} "
                f"(they report: {', '.join(seen) or 'none'}), so teachers and filters read 0 for it",
                RuntimeWarning,
                stacklevel=2,
            )

    def _check_stop(self, rounds: int, live: int) -> None:
        if self._stop.is_set():
            raise RolloutCancelled("the trainer is closing")

    # ----- in the background (off-policy) --------------------------------------------
    @property
    def busy(self) -> bool:
        """A batch is being collected, or waits to be taken."""
        return self._pending is not None

    def start(self) -> None:
        """Collect the next batch in a background thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentgym-rollout")
        self._pending = self._executor.submit(self.collect)

    def take(self) -> Collected:
        """The batch collected in the background (its exception is raised here), else a fresh one."""
        if self._pending is None:
            return self.collect()
        result = self._pending.result()
        self._pending = None  # only now: an interruption while waiting leaves it pending
        return result

    def wait(self) -> None:
        """Block until the batch in flight (if any) is collected; it stays pending."""
        if self._pending is not None:
            wait_futures([self._pending])

    def pending_state(self) -> dict[str, Any] | None:
        """The collected batch not yet trained on, as plain data (None when there is none)."""
        if self._pending is None:
            return None
        return self._pending.result().to_dict()

    def restore_pending(self, state: dict[str, Any]) -> None:
        done: Future = Future()
        done.set_result(Collected.from_dict(state))
        self._pending = done

    def close(self) -> None:
        """Stop the batch in flight at its next round; safe to call twice."""
        if self._executor is not None:
            self._stop.set()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending = None
        self.runner.close()
