"""Deliver SIGINT at a chosen point of a training run, for the CLI interrupt tests.

Imported by a test's subprocess before it calls the CLI. ``AGENTGYM_TEST_SIGINT`` says
where: ``optimizer:N`` right after the N-th optimizer step, ``generate:N`` in the middle
of the N-th training batch's generation (its first round has been generated).
"""

from __future__ import annotations

import os
import signal

import torch

from agentgym.rollout.runner import RolloutRunner

where, _, nth = os.environ.get("AGENTGYM_TEST_SIGINT", "").partition(":")
count = {"optimizer": 0, "generate": 0}


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


if where == "optimizer":
    step = torch.optim.AdamW.step

    def step_then_interrupt(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        count["optimizer"] += 1
        if count["optimizer"] == int(nth):
            _interrupt()
        return out

    torch.optim.AdamW.step = step_then_interrupt

if where == "generate":
    run = RolloutRunner.run

    def run_interrupted(self, env_id, tasks, group_size=1, on_round=None, **kwargs):
        count["generate"] += 1
        mine = count["generate"] == int(nth)

        def round_done(rounds, live):
            if mine and rounds == 1:
                _interrupt()
            if on_round is not None:
                on_round(rounds, live)

        return run(self, env_id, tasks, group_size=group_size, on_round=round_done, **kwargs)

    RolloutRunner.run = run_interrupted
