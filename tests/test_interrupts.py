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
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

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


def _train_rows(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "straight"
    p = _cli(["train", *CLI_OVER, f"run_dir={run}"])
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    assert sum(r["grad_norm"] > 0 for r in _train_rows(run) if r["kind"] == "train") >= 2  # the weights move
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
    assert steps[-1] == 3 and [r["step"] for r in _train_rows(run) if r["kind"] == "train"] == [1, 2, 3]
    r = _cli(["train", "--resume", str(run)])
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, err[-3000:]
    a, b = _final_weights(uninterrupted), _final_weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _train_rows(uninterrupted) == _train_rows(run)


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
    p = _cli(["train", *over, f"run_dir={b}"])
    deadline = time.time() + 600
    while time.time() < deadline:  # kill once step 3 is logged: after checkpoint 2, before 4
        m = b / "metrics.jsonl"
        if m.exists() and any(json.loads(x)["step"] >= 3 for x in m.read_text().splitlines() if x.strip()):
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (b / "summary.json").exists() and any(r["step"] == 3 for r in _train_rows(b))
    pending = (b / "checkpoints" / "step_000002" / "pending.json").exists()
    r = _cli(["train", "--resume", str(b)])
    _, err = r.communicate(timeout=600)
    assert r.returncode == 0, err[-3000:]
    wa, wb = _final_weights(a), _final_weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_a, rows_b = _train_rows(a), _train_rows(b)
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
