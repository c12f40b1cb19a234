"""How much of a held-out set training can see: the overlap check behind "held out in content".

Two seeds can make the same problem. :func:`overlap` draws the training tasks a run
would draw and the held-out tasks its evaluation would use, renders each as the env
opens it (the prompt the model reads, as text), and counts held-out prompts that some
training draw also produces, for the split by seed and region alone (what agentgym did
before content keys) and for the content split.

    python -m agentgym.eval.overlap configs/quickstart.yaml
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from agentgym.env import opening_text
from agentgym.tasks import TrainingTasks


@dataclass
class Overlap:
    """Held-out prompts that training draws also produce, under one split."""

    split: str
    heldout_tasks: int
    distinct_heldout_prompts: int
    training_draws: int
    distinct_training_prompts: int
    #: Held-out tasks whose prompt some training draw produces, word for word.
    shared: int


def overlap(
    env_id: str,
    restrict: Mapping[str, Any] | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    eval_tasks: int = 64,
    eval_seed: int = 1234,
    train_draws: int = 640,
    seed: int = 0,
) -> list[Overlap]:
    """The overlap of ``eval_tasks`` held-out tasks with ``train_draws`` uniform training
    draws, under the old split (seeds and region) and the content split."""
    from agentgym.registry import make

    env = make(env_id, **dict(env_kwargs or {}))
    try:
        splits = {
            "seeds and region (before content keys)": TrainingTasks(env.param_space, env.held_out, restrict),
            "content (held-out contents, seeds and region)": env.training_tasks(restrict),
        }
        rows = []
        for name, tasks in splits.items():
            rng = np.random.default_rng(seed)
            train = {opening_text(env, tasks.spec(rng)) for _ in range(train_draws)}
            held = [opening_text(env, t) for t in tasks.held_out_specs(eval_tasks, seed=eval_seed)]
            rows.append(
                Overlap(
                    split=name,
                    heldout_tasks=len(held),
                    distinct_heldout_prompts=len(set(held)),
                    training_draws=train_draws,
                    distinct_training_prompts=len(train),
                    shared=sum(h in train for h in held),
                )
            )
        return rows
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    """Print the overlap for a run config's env, training space and eval size."""
    from agentgym.config import load_config

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m agentgym.eval.overlap CONFIG.yaml", file=sys.stderr)
        return 2
    cfg = load_config(args[0])
    tasks = cfg.train.steps * cfg.rollout.tasks_per_step
    # The run trains on `tasks` draws (each sampled group_size times); a longer run draws more.
    for draws, what in ((tasks, "the run's own task draws"), (tasks * cfg.rollout.group_size, "one per generation")):
        rows = overlap(
            cfg.env.id,
            cfg.env.params,
            env_kwargs=cfg.env.kwargs,
            eval_tasks=cfg.train.eval_tasks,
            train_draws=draws,
            seed=cfg.seed,
        )
        print(
            f"{cfg.env.id} {dict(cfg.env.params)}: {cfg.train.eval_tasks} held-out tasks asked, "
            f"{draws} training draws ({what})"
        )
        for r in rows:
            print(
                f"  {r.split}: {r.shared} of {r.heldout_tasks} held-out prompts are produced by training draws "
                f"({r.distinct_heldout_prompts} distinct held-out prompts, {r.distinct_training_prompts} distinct "
                "training prompts)"
            )
        print(json.dumps([asdict(r) for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
