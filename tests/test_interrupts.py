"""Interrupted runs resume exactly, driven through the ``agentgym train`` CLI.

Each run is a subprocess; ``tests/interrupts.py`` delivers SIGINT at a chosen point (in
the middle of a step's generation, right after an optimizer step), or the test kills the
process with SIGKILL. The resumed run must end with the same weights, bit for bit, and the
same metrics log as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import metrics_rows

ROOT = Path(__file__).resolve().parent.parent

# Reward 1 for a reply without the letter e: about one reply in ten from the random tiny
# model, so groups differ and every step moves the weights (a run whose weights never
# change would make "the same weights" mean nothing).
CLI_OVER = [
    "model.name=tiny",
    "env.id=test/no-e-v0",
    "teacher.name=bandit",
    "teacher.options={arm_dims: [level]}",
    "rollout.tasks_per_step=2",
    "rollout.group_size=8",
    "rollout.max_new_tokens=3",
    "grpo.lr=3e-3",
    "grpo.mask_truncated=false",
    "train.steps=5",
    "train.save_every=2",
    "train.eval_tasks=2",
    "train.eval_max_new_tokens=4",
]


def _cli(args: list[str], sigint_at: str | None = None) -> subprocess.Popen:
    code = (
        "import sys, tests.conftest, tests.interrupts; from agentgym.cli import main; "
        f"sys.argv = ['agentgym', *{args!r}]; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("AGENTGYM_TEST_SIGINT", None)
    if sigint_at:
        env["AGENTGYM_TEST_SIGINT"] = sigint_at
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "straight"
    p = _cli(["train", *CLI_OVER, f"run_dir={run}"])
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert sum(r["grad_norm"] > 0 for r in metrics_rows(run) if r["kind"] == "train") >= 2  # the weights move
    return run


@pytest.mark.parametrize("where", ["generate:5", "optimizer:3"])
def test_ctrl_c_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, uninterrupted, where):
    """Ctrl-C in the middle of step 3's generation (run call 5: the first two are the step-0
    evaluation's sampled and greedy passes) or right after step 3's optimizer step: the run
    finishes step 3, saves it and exits 130; ``--resume`` then ends with bit-identical
    weights and metrics."""
    run = tmp_path / "cut"
    p = _cli(["train", *CLI_OVER, f"run_dir={run}"], sigint_at=where)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 130, err[-3000:]
    assert "continue with: agentgym train --resume" in out
    steps = sorted(int(c.name.split("_")[1]) for c in (run / "checkpoints").glob("step_*"))
    assert steps[-1] == 3 and [r["step"] for r in metrics_rows(run) if r["kind"] == "train"] == [1, 2, 3]
    r = _cli(["train", "--resume", str(run)])
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, err[-3000:]
    a, b = _final_weights(uninterrupted), _final_weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert metrics_rows(uninterrupted) == metrics_rows(run)


MODES = {
    "on-policy": ["train.steps=6"],
    "off-policy": ["rollout.off_policy_steps=1", "train.steps=6"],
    # Rejection fine-tuning, then GRPO (with a fresh AdamW state): resumed from checkpoint 2,
    # which is before the SFT -> GRPO boundary (3 warm-start steps), at it (2), after it (1).
    "warm start, resumed before GRPO": ["warmup.source=rejection", "warmup.steps=3", "train.steps=3"],
    "warm start, resumed at the boundary": ["warmup.source=rejection", "warmup.steps=2", "train.steps=4"],
    "warm start, resumed after the boundary": ["warmup.source=rejection", "warmup.steps=1", "train.steps=5"],
}


@pytest.mark.parametrize("mode", list(MODES))
def test_sigkill_and_resume_is_bit_identical(tmp_path, mode):
    """Killed after checkpoint 2, resumed: the same weights, metrics (no gap, no duplicate
    step) and plots as an uninterrupted run. Off-policy, checkpoint 2 holds the batch
    already generated for step 3, so the resumed run trains on the same episodes."""
    off_policy = mode == "off-policy"
    over = [*CLI_OVER, *MODES[mode], "train.eval_every=3"]
    a, b = tmp_path / "a", tmp_path / "b"
    p = _cli(["train", *over, f"run_dir={a}"])
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    # SIGKILL right after step 3's metrics line: checkpoint 2 is the newest, step 3 is in
    # the log and must be dropped on resume (no duplicate step).
    p = _cli(["train", *over, f"run_dir={b}"], sigint_at="kill:3")
    p.communicate(timeout=600)
    assert p.returncode == -signal.SIGKILL
    assert not (b / "summary.json").exists()
    assert [r["step"] for r in metrics_rows(b) if r["kind"] in ("train", "sft")] == [1, 2, 3]
    assert sorted(c.name for c in (b / "checkpoints").glob("step_*")) == ["step_000002"]
    pending = (b / "checkpoints" / "step_000002" / "pending.json").exists()
    r = _cli(["train", "--resume", str(b)])
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, err[-3000:]
    assert f"resuming {b} from step 2 (step_000002)" in out  # the checkpoint it resumed from
    wa, wb = _final_weights(a), _final_weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_a, rows_b = metrics_rows(a), metrics_rows(b)
    assert sum(r.get("grad_norm", 0) > 0 for r in rows_a if r["kind"] in ("train", "sft")) >= 2  # the weights move
    assert rows_a == rows_b
    staleness = [r["rollout/staleness"] for r in rows_b if r["kind"] in ("train", "sft")]
    assert staleness == ([0, 1, 1, 1, 1, 1] if off_policy else [0] * 6)
    if mode.startswith("warm start"):
        warm = next(int(o.split("=")[1]) for o in MODES[mode] if o.startswith("warmup.steps="))
        steps = [r for r in rows_b if r["kind"] in ("sft", "train")]
        assert [r["kind"] for r in steps] == ["sft"] * warm + ["train"] * (6 - warm)
        assert [r.get("optimizer/reset", 0.0) for r in steps] == [0.0] * warm + [1.0] + [0.0] * (5 - warm)
    assert pending is bool(off_policy)
    assert json.loads((b / "summary.json").read_text())["steps"] == 6
    assert (b / "plots" / "training.png").stat().st_size > 10_000


# ----- Ctrl-C in each mode, in the test's own process ------------------------------------------
# The trainer's own SIGINT handler (installed by train()) gets a real SIGINT from
# tests/interrupts.py; the run finishes the step under way, checkpoints it and returns;
# resume_run() finishes it. Small runs: 4 tasks x 8 replies of 3 tokens, 4 steps.
INPROC_OVER = [
    "model.name=tiny",
    "env.id=test/no-e-v0",
    "rollout.tasks_per_step=4",
    "rollout.group_size=8",
    "rollout.max_new_tokens=3",
    "grpo.lr=3e-3",
    "grpo.mask_truncated=false",
    "train.steps=4",
    "train.save_every=10",
    "train.eval_tasks=2",
    "train.eval_k=1",
    "train.eval_greedy=false",
    "train.eval_max_new_tokens=2",
    "train.report_to=[]",
]

#: mode: (settings, where the SIGINT comes, the step the run stops after). Runner calls
#: count the step-0 evaluation's (one: eval_k 1, no greedy pass).
CTRL_C = {
    # Step 3's batch is generated in the background during step 2's update: the run
    # finishes step 2 and keeps that batch in checkpoint 2 (pending.json).
    "off-policy": (["rollout.off_policy_steps=1"], "generate:4", 2),
    # Oracle demonstrations: after the 2nd of 3 SFT steps; resumed, SFT step 3 then GRPO.
    "warm start": (
        [
            "warmup.source=oracle",
            "warmup.steps=3",
            "warmup.demos=12",
            "warmup.batch_size=4",
            "warmup.lr=1e-3",
            "train.steps=2",
        ],
        "optimizer:2",
        2,
    ),
    # Two passes over each batch: after the first pass of step 3 (optimizer step 5 of 8).
    "updates_per_batch=2": (["grpo.updates_per_batch=2"], "optimizer:5", 3),
    # LoRA with dropout: the resumed dropout masks must be the uninterrupted run's too.
    "LoRA": (["model.lora={r: 4, alpha: 8, dropout: 0.1}", "grpo.lr=3e-2"], "optimizer:2", 2),
    # A two-seat game (self-play, one episode per seat), in the middle of step 2's games.
    "game": (["env.id=test/ma-seats-v0", "env.params={spread: [true]}"], "generate:4", 2),
}


def _train_here(run: Path, over: list[str], sigint: str | None = None):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer
    from tests import interrupts

    cfg = load_config(None, [*over, f"run_dir={run}"])
    with interrupts.signal_at(sigint):
        return GRPOTrainer(cfg, quiet=True).train()


@pytest.mark.parametrize("mode", list(CTRL_C))
def test_ctrl_c_then_resume_is_bit_identical_in_every_mode(tmp_path, mode):
    import tests.test_multiagent_core  # noqa: F401  (registers test/ma-seats-v0)
    from agentgym.grpo.trainer import resume_run
    from agentgym.policies.models import load_model

    extra, sigint, stop = CTRL_C[mode]
    over = [*INPROC_OVER, *extra]
    straight = _train_here(tmp_path / "a", over)
    assert not straight.interrupted
    cut = _train_here(tmp_path / "b", over, sigint)
    assert cut.interrupted and cut.steps_done == stop
    steps = sorted(int(c.name.split("_")[1]) for c in (tmp_path / "b" / "checkpoints").glob("step_*"))
    assert steps[-1] == stop and not (tmp_path / "b" / "final").exists()
    if mode == "off-policy":  # the batch generated for the next step is part of the checkpoint
        assert (tmp_path / "b" / "checkpoints" / f"step_{stop:06d}" / "pending.json").exists()
    resumed = resume_run(tmp_path / "b", quiet=True)
    assert not resumed.interrupted and resumed.steps_done == straight.steps_done
    wa, wb = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_a, rows_b = metrics_rows(tmp_path / "a"), metrics_rows(tmp_path / "b")
    assert rows_a == rows_b
    # Steps on both sides of the interruption moved the weights (else "the same" is cheap).
    moved = [r["step"] for r in rows_a if r["kind"] in ("train", "sft") and r.get("grad_norm", 0) > 0]
    assert min(moved) <= stop < max(moved)
    init = load_model("tiny", seed=0)[0].state_dict()
    assert any(not torch.equal(wa[k], init[k]) for k in wa if k in init)
