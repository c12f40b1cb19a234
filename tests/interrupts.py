"""Deliver a signal at a chosen point of a training run, for the interrupt tests.

``AGENTGYM_TEST_SIGINT`` (read when a test's subprocess imports this module, before it
calls the CLI) or :func:`signal_at` (in the test's own process) says where:

- ``optimizer:N``: SIGINT right after the N-th optimizer step (AdamW, SFT steps included);
- ``generate:N``: SIGINT in the middle of the N-th call of a runner's ``run`` (one agent
  or a game; evaluations count), once its first round has been generated; off-policy
  that call runs in the background thread, and the signal still reaches the main one;
- ``kill:N``: SIGKILL right after step N's line is written to ``metrics.jsonl`` (nothing
  after it runs: not its teacher line, evaluation or checkpoint).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator

import torch

from agentgym.grpo.runlog import RunLog
from agentgym.rollout.runner import RolloutRunner


def install(spec: str) -> Callable[[], None]:
    """Patch the point ``spec`` names (see the module doc); returns what undoes the patch."""
    where, _, nth = spec.partition(":")
    n, count = int(nth), [0]
    undo: list[Callable[[], None]] = []
    if where == "optimizer":
        step = torch.optim.AdamW.step

        def step_then_signal(self, *args, **kwargs):
            out = step(self, *args, **kwargs)
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGINT)
            return out

        torch.optim.AdamW.step = step_then_signal
        undo.append(lambda: setattr(torch.optim.AdamW, "step", step))
    elif where == "kill":
        write = RunLog.write

        def write_then_kill(self, record, file="metrics.jsonl"):
            write(self, record, file)
            if file == "metrics.jsonl" and record.get("kind") in ("train", "sft") and record.get("step") == n:
                os.kill(os.getpid(), signal.SIGKILL)

        RunLog.write = write_then_kill
        undo.append(lambda: setattr(RunLog, "write", write))
    elif where == "generate":
        for cls in (RolloutRunner,):
            run = cls.run

            def run_interrupted(self, *args, on_round=None, _run=run, **kwargs):
                count[0] += 1
                mine = count[0] == n

                def round_done(rounds, live):
                    if mine and rounds == 1:
                        os.kill(os.getpid(), signal.SIGINT)
                    if on_round is not None:
                        on_round(rounds, live)

                return _run(self, *args, on_round=round_done, **kwargs)

            cls.run = run_interrupted
            undo.append(lambda cls=cls, run=run: setattr(cls, "run", run))
    else:
        raise ValueError(f"unknown interrupt point {spec!r}: optimizer:N, generate:N or kill:N")

    def restore() -> None:
        for u in undo:
            u()

    return restore


@contextlib.contextmanager
def signal_at(spec: str | None) -> Iterator[None]:
    """:func:`install` for the duration of a ``with`` block (nothing when ``spec`` is None)."""
    restore = install(spec) if spec else None
    try:
        yield
    finally:
        if restore is not None:
            restore()


if os.environ.get("AGENTGYM_TEST_SIGINT"):
    install(os.environ["AGENTGYM_TEST_SIGINT"])
