"""Data parallel training under ``torchrun`` (gloo, CPU): two processes give the weights of
one, with a teacher and dynamic sampling, and a killed two-process run resumes exactly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentgym.grpo.distributed import World

ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "tests" / "dist_entry.py"

OVER = [
    "model.name=tiny",
    "env.id=test/no-e-v0",
    "teacher.name=bandit",
    "teacher.options={arm_dims: [level]}",
    # 3 tasks on 2 ranks: shares of 2 and 1; refill rounds of 1 task leave a rank idle.
    "rollout.tasks_per_step=3",
    "rollout.group_size=8",
    "rollout.max_new_tokens=3",
    "rollout.temperature=0.7",
    "grpo.lr=3e-3",
    "grpo.mask_truncated=false",
    "grpo.dynamic_sampling=true",
    "grpo.max_refill_rounds=2",
    "train.steps=4",
    "train.save_every=2",
    "train.eval_tasks=2",
    "train.eval_max_new_tokens=4",
    "train.report_to=[]",
]


def test_world_shares_cover_every_task_once():
    for n in range(0, 9):
        for size in (1, 2, 3):
            shares = [list(World(rank=r, size=size).share(n)) for r in range(size)]
            assert [i for s in shares for i in s] == list(range(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def _launch(args: list[str], nproc: int, *torchrun_args: str, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env_extra or {})}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    if nproc == 1:
        cmd = [sys.executable, str(ENTRY), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        cmd += [*torchrun_args, str(ENTRY), *args]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


#: bench/gpu_check.sh sets cuda: the same test with NCCL, one GPU per rank.
DEVICE = os.environ.get("AGENTGYM_TEST_DEVICE", "cpu")


def _train(run: Path, nproc: int, *extra: str, timeout: float = 600) -> None:
    p = _launch(["train", *OVER, f"train.device={DEVICE}", *extra, f"run_dir={run}"], nproc)
    _finish(p, timeout)


def _finish(p: subprocess.Popen, timeout: float = 600) -> None:
    """Wait for a launched run; one that hangs (a deadlock) is killed and fails the test."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"the run did not finish in {timeout:.0f} s (deadlocked?): {err[-3000:]}")
    assert p.returncode == 0, (out[-2000:], err[-4000:])


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "final" / "model.safetensors"))


def _close(a: dict, b: dict, tol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=tol, atol=tol) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    _train(base / "one", 1)
    _train(base / "two", 2)
    return base


def test_two_processes_train_the_weights_of_one(runs):
    one, two = runs / "one", runs / "two"
    assert json.loads((two / "summary.json").read_text())["world_size"] == 2
    assert json.loads((one / "summary.json").read_text())["world_size"] == 1
    w1, w2 = _weights(one), _weights(two)
    assert _close(w1, w2)
    from agentgym.policies.models import load_model

    init = load_model("tiny", seed=0)[0].state_dict()
    assert any(not torch.allclose(w1[k], init[k]) for k in w1)  # the runs did move the weights
    rows1, rows2 = _rows(one), _rows(two)
    train1 = [r for r in rows1 if r["kind"] == "train"]
    train2 = [r for r in rows2 if r["kind"] == "train"]
    assert len(train1) == len(train2) == 4
    # Dynamic sampling dropped tied groups and refilled: the ranks agreed on every round.
    assert any(r["rollout/rounds"] > 1 for r in train1) and any(r["rollout/dropped"] > 0 for r in train1)
    for a, b in zip(train1, train2):
        for k in ("reward/mean", "rollout/spent", "rollout/dropped", "rollout/rounds", "train/tokens", "adv/abs_mean"):
            assert a[k] == pytest.approx(b[k], rel=1e-6), k
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-9)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    # The teacher (on rank 0) chose the same tasks and saw the same results.
    t1 = [json.loads(x) for x in (one / "teacher.jsonl").read_text().splitlines()]
    t2 = [json.loads(x) for x in (two / "teacher.jsonl").read_text().splitlines()]
    assert t1 == t2 and sum(len(t["groups"]) for t in t1) > 4 * 3
    # One process wrote the run folder: one checkpoint set, one log line per step.
    assert [r["step"] for r in rows2 if r["kind"] == "train"] == [1, 2, 3, 4]


def test_a_killed_two_process_run_resumes_exactly(runs, tmp_path):
    run = tmp_path / "killed"
    # torchrun's 30 s shutdown timeout could SIGKILL a step slowed by a loaded machine.
    # Step 3 starts with a 3 s sleep (tests/dist_entry.py), so the Ctrl-C lands inside it
    # however fast the tiny model's steps are (it once landed in step 4, the last).
    p = _launch(
        ["train", *OVER, f"train.device={DEVICE}", f"run_dir={run}"],
        2,
        "--shutdown-timeout=300",
        env_extra={"AGENTGYM_TEST_SLOW_AFTER_STEP": "2"},
    )
    deadline = time.time() + 600
    ck = run / "checkpoints" / "step_000002"
    while time.time() < deadline and p.poll() is None:  # kill once checkpoint 2 is written
        if (ck / "state.json").exists() and any(
            json.loads(x)["step"] >= 3 for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()
        ):
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (run / "summary.json").exists()
    r = _launch(["train", "--resume", str(run)], 2)
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, (out[-2000:], err[-4000:])
    assert _close(_weights(run), _weights(runs / "two"))
    assert _rows(run) == _rows(runs / "two")


# ----- off-policy (rollout.off_policy_steps=1): the rollout thread beside the update -------
#: A 2-process off-policy run takes well under a minute here; a deadlock never ends.
OFF_POLICY_TIMEOUT = 300


@pytest.fixture(scope="module")
def off_runs(runs):
    for name, nproc in (("off-one", 1), ("off-two", 2)):
        _train(runs / name, nproc, "rollout.off_policy_steps=1", timeout=OFF_POLICY_TIMEOUT)
    return runs


def test_off_policy_two_processes_train_the_weights_of_one(off_runs):
    """Step n+1's batch is collected in a background thread while step n all-reduces its
    gradients: the teacher's broadcasts and the result exchange of that thread use their
    own process group. On the update's group the two threads' collectives met in a
    different order on each rank and the run hung at step 1."""
    one, two = off_runs / "off-one", off_runs / "off-two"
    assert json.loads((two / "summary.json").read_text())["world_size"] == 2
    assert _close(_weights(one), _weights(two))
    # Off-policy indeed: not the on-policy run's weights, and batches one update old.
    assert not _close(_weights(two), _weights(off_runs / "two"))
    train1 = [r for r in _rows(one) if r["kind"] == "train"]
    train2 = [r for r in _rows(two) if r["kind"] == "train"]
    assert [r["rollout/staleness"] for r in train2] == [0.0, 1.0, 1.0, 1.0]
    assert any(r["rollout/rounds"] > 1 for r in train2)  # refills ran in the background thread too
    for a, b in zip(train1, train2, strict=True):
        for k in ("reward/mean", "rollout/spent", "rollout/dropped", "rollout/rounds", "train/tokens"):
            assert a[k] == pytest.approx(b[k], rel=1e-6), k
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-9)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    t1, t2 = ((r / "teacher.jsonl").read_text() for r in (one, two))
    assert t1 == t2


def test_off_policy_two_processes_resume_with_each_ranks_pending_batch(off_runs, tmp_path):
    """The checkpoint after step 2 holds the batch collected for step 3, and each rank
    collected its own share of it: every share is kept and each rank gets its own back
    (rank 1 once resumed on rank 0's share: step 3 trained twice rank 0's rows)."""
    run = tmp_path / "off-resumed"
    shutil.copytree(off_runs / "off-two", run)
    shutil.rmtree(run / "checkpoints" / "step_000004")
    shutil.rmtree(run / "final")
    (run / "summary.json").unlink()
    pending = json.loads((run / "checkpoints" / "step_000002" / "pending.json").read_text())
    assert len(pending["ranks"]) == 2
    assert pending["ranks"][0]["episodes"] != pending["ranks"][1]["episodes"]
    _finish(_launch(["train", "--resume", str(run)], 2), OFF_POLICY_TIMEOUT)
    assert _close(_weights(run), _weights(off_runs / "off-two"))
    assert _rows(run) == _rows(off_runs / "off-two")


# ----- FSDP2 (train.fsdp): the same step with sharded weights, gradients and AdamW state ------


@pytest.fixture(scope="module")
def fsdp_run(runs):
    _train(runs / "fsdp", 2, "train.fsdp=true")
    return runs / "fsdp"


def test_fsdp_two_processes_train_the_weights_of_one(runs, fsdp_run):
    one = runs / "one"
    assert json.loads((fsdp_run / "summary.json").read_text())["world_size"] == 2
    assert _close(_weights(one), _weights(fsdp_run))
    train1 = [r for r in _rows(one) if r["kind"] == "train"]
    train2 = [r for r in _rows(fsdp_run) if r["kind"] == "train"]
    assert len(train2) == 4
    for a, b in zip(train1, train2):
        for k in ("reward/mean", "rollout/spent", "rollout/dropped", "train/tokens"):
            assert a[k] == pytest.approx(b[k], rel=1e-6), k
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-9)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    # The checkpoint holds whole tensors, as one process writes them: AdamW's state too.
    ck1, ck2 = one / "checkpoints" / "step_000004", fsdp_run / "checkpoints" / "step_000004"
    o1 = torch.load(ck1 / "optimizer.pt", weights_only=True)["state"]
    o2 = torch.load(ck2 / "optimizer.pt", weights_only=True)["state"]
    assert o1.keys() == o2.keys()
    for k in o1:
        for name in ("exp_avg", "exp_avg_sq"):
            assert o1[k][name].shape == o2[k][name].shape
            assert torch.allclose(o1[k][name], o2[k][name], rtol=1e-5, atol=1e-8), (k, name)


def test_a_killed_fsdp_run_resumes_exactly(fsdp_run, tmp_path):
    run = tmp_path / "killed-fsdp"
    p = _launch(["train", *OVER, f"train.device={DEVICE}", "train.fsdp=true", f"run_dir={run}"], 2)
    deadline = time.time() + 600
    ck = run / "checkpoints" / "step_000002"
    while time.time() < deadline and p.poll() is None:
        if (ck / "state.json").exists() and any(
            json.loads(x)["step"] >= 3 for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()
        ):
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    r = _launch(["train", "--resume", str(run)], 2)
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, (out[-2000:], err[-4000:])
    assert _close(_weights(run), _weights(fsdp_run))
    assert _rows(run) == _rows(fsdp_run)


# ----- generation on a server (model.backend=remote) under FSDP -----------------------------
def test_fsdp_ranks_generating_on_one_server_train_the_weights_of_one(runs, tmp_path):
    """Both ranks send their prompts to one server; every rank gathers the shards, rank 0
    alone uploads them and rank 1 waits for that version. The weights are the one-process
    run's, and the server ends holding them."""
    from agentgym.policies.models import load_model
    from agentgym.policies.remote import GenerationServer
    from agentgym.policies.transformers_policy import TransformersPolicy

    model, tok = load_model("tiny", seed=0)
    model.requires_grad_(False)
    server = GenerationServer(TransformersPolicy(model, tok), model="tiny", param_names=model.state_dict()).start()
    try:
        run = tmp_path / "fsdp-remote"
        remote = ("model.backend=remote", f"model.remote.url={server.url}", "grpo.importance_weights=false")
        _train(run, 2, "train.fsdp=true", *remote)
        assert server.version == 4
    finally:
        server.close()
    final = _weights(run)
    assert _close(_weights(runs / "one"), final)
    served = model.state_dict()
    assert all(torch.equal(served[k], v) for k, v in final.items())
    rewards = [r["reward/mean"] for r in _rows(run) if r["kind"] == "train"]
    assert rewards == pytest.approx([r["reward/mean"] for r in _rows(runs / "one") if r["kind"] == "train"])


def test_ctrl_c_under_torchrun_checkpoints_the_step_and_resumes_exactly(runs, tmp_path):
    """Ctrl-C in a terminal signals torchrun and both ranks, and torchrun forwards its
    SIGINT to each rank again: the two must count as one keypress (stop after the step,
    checkpointed), not as the second one that aborts with only the last periodic
    checkpoint (step 2 here). Resumed, the run ends with the weights of one never stopped."""
    run = tmp_path / "ctrl-c"
    # torchrun's 30 s shutdown timeout could SIGKILL a step slowed by a loaded machine.
    # Step 3 starts with a 3 s sleep (tests/dist_entry.py), so the Ctrl-C lands inside it
    # however fast the tiny model's steps are (it once landed in step 4, the last). The
    # test waits for both ranks to mark step 3 begun: checkpoint 2 on disk is not enough,
    # as the loop checks for a stop after writing it (a Ctrl-C there once stopped the run
    # at step 2, rightly, before step 3 began).
    marks = tmp_path / "marks"
    marks.mkdir()
    p = _launch(
        ["train", *OVER, f"train.device={DEVICE}", f"run_dir={run}"],
        2,
        "--shutdown-timeout=300",
        env_extra={"AGENTGYM_TEST_SLOW_AFTER_STEP": "2", "AGENTGYM_TEST_STEP_MARKS": str(marks)},
    )
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:  # Ctrl-C while step 3 runs
        if all((marks / f"rank{r}-step3").exists() for r in (0, 1)):
            break
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before Ctrl-C"
    os.killpg(p.pid, signal.SIGINT)
    try:
        p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("the run did not stop after Ctrl-C")
    assert not (run / "summary.json").exists()
    assert (run / "checkpoints" / "step_000003" / "state.json").exists(), "the step under way was not checkpointed"
    r = _launch(["train", "--resume", str(run)], 2)
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, (out[-2000:], err[-4000:])
    assert _close(_weights(run), _weights(runs / "two"))
    assert _rows(run) == _rows(runs / "two")
