"""The supervised warm start: which demonstrations each step trains on, and with what settings.

A warm start is ``warmup.steps`` optimizer steps of cross-entropy on demonstrations
(:mod:`agentgym.rollout.demos`) before the GRPO steps, in the same run, trainer, checkpoints
and metrics log. With ``source: rejection`` a step samples a batch like GRPO does and
trains on its successful episodes (expert iteration), so it is also the baseline to hold
GRPO against on the same generation budget.

When the warm start ends, GRPO starts with a fresh AdamW state (``warmup.reset_optimizer``,
on by default): one state through both would leave 0.9^k of the SFT gradient in Adam's
first moment at GRPO step k (66% after 4 steps), so "warm start + GRPO" would be partly
more SFT. The reset happens at the start of the first GRPO step, decided by the step
counter alone, so a run resumed from any checkpoint (before, at or after the boundary)
does exactly what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from agentgym.config import ConfigError, RunConfig
from agentgym.grpo.update import UpdateSettings
from agentgym.rollout.episode import Episode


class DemoSet:
    """A fixed list of demonstrations dealt out in batches, a fresh seeded shuffle per epoch.

    The batch of step ``s`` depends only on ``s`` (and the seed), so a resumed run trains
    on exactly the batches an uninterrupted one would have.
    """

    def __init__(self, episodes: list[Episode], batch_size: int, seed: int = 0):
        if not episodes:
            raise ValueError("no demonstrations to train on")
        self.episodes = episodes
        self.batch_size = batch_size
        self.seed = seed

    def batch(self, step: int) -> list[Episode]:
        n, out = len(self.episodes), []
        for k in range(step * self.batch_size, (step + 1) * self.batch_size):
            epoch, pos = divmod(k, n)
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
            out.append(self.episodes[int(order[pos])])
        return out


def build_demos(cfg: RunConfig, chat: Any) -> tuple[DemoSet | None, dict[str, float]]:
    """The run's demonstrations (oracle or file sources), and counts for the log."""
    w = cfg.warmup
    if w.source in ("none", "rejection"):
        return None, {}
    if w.source == "file":
        from agentgym.rollout.demos import load_demos

        if w.file is None:  # RunConfig refuses it; a config changed after its check can lack it
            raise ConfigError("warmup.source=file needs warmup.file (a JSONL of Episodes or chat rows)")
        try:
            eps = load_demos(w.file, chat)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"warmup.file: {exc}") from None
        return DemoSet(eps, w.batch_size, seed=cfg.seed), {"warmup/demos": float(len(eps))}
    from agentgym.rollout.demos import make_demos

    eps, stats = make_demos(
        cfg.env.id,
        chat,
        w.demos,
        restrict=w.params or cfg.env.params,
        seed=cfg.seed,
        env_kwargs=cfg.env.kwargs,
        max_new_tokens=w.max_new_tokens,
        max_episode_tokens=cfg.rollout.max_episode_tokens,
    )
    if not eps:
        raise ConfigError(f"the {cfg.env.id} demonstrator solved none of {stats.tasks} tasks: nothing to warm up on")
    counts = {"warmup/demos": float(stats.kept), "warmup/demos_failed": float(stats.failed)}
    return DemoSet(eps, w.batch_size, seed=cfg.seed), counts


def reset_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget every parameter's optimizer state (AdamW: both moments and the step count);
    the next step starts them from zero as a freshly built optimizer would. The param
    groups (lr, betas, weight decay) are kept."""
    optimizer.state.clear()


def sft_settings(update: UpdateSettings) -> UpdateSettings:
    """The update pass as supervised fine-tuning: token-mean cross-entropy, one optimizer step."""
    return replace(
        update,
        objective="sft",
        loss_agg="token_mean",
        importance_weights=False,
        beta=0.0,
        updates_per_batch=1,
        mini_batches=1,
    )
