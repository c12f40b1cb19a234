"""Device and numerics of a run: gradient checkpointing changes no gradient, bf16-mixed
keeps float32 weights and trains close to fp32, a missing GPU is a config error."""

from __future__ import annotations

import pytest
import torch

from agentgym.config import ConfigError, load_config
from agentgym.grpo.trainer import GRPOTrainer
from agentgym.placement import resolve_device, resolve_precision


def _cfg(tmp_path, name, *extra):
    return load_config(
        None,
        [
            f"run_dir={tmp_path / name}",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            "rollout.tasks_per_step=4",
            "rollout.group_size=8",
            "rollout.max_new_tokens=2",
            "grpo.lr=3e-3",
            "grpo.mask_truncated=false",
            "grpo.micro_batch_size=8",
            "train.eval_tasks=2",
            *extra,
        ],
    )


def _one_step(tmp_path, name, *extra, count_mlp=False):
    tr = GRPOTrainer(_cfg(tmp_path, name, *extra), quiet=True)
    calls = []
    if count_mlp:  # forward calls (with gradients) of a module inside the first decoder layer
        mlp = tr.model.model.layers[0].mlp
        forward = mlp.forward

        def counted(*args, **kwargs):  # not a hook: a checkpoint's recompute runs no hooks
            calls.append(torch.is_grad_enabled())
            return forward(*args, **kwargs)

        mlp.forward = counted
    try:
        rec = tr.train_step()
        rec["mlp_calls"] = calls
        return tr, rec, {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    finally:
        tr.close()


def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_step(tmp_path):
    # share_prefix off on both sides: with checkpointing the shared-prompt pass is off
    # (the cache cannot be checkpointed), and that pass differs by float rounding only.
    _, rec_a, wa = _one_step(tmp_path, "plain", "grpo.share_prefix=false", count_mlp=True)
    tr, rec_b, wb = _one_step(
        tmp_path, "ckpt", "grpo.share_prefix=false", "train.gradient_checkpointing=true", count_mlp=True
    )
    assert tr.model.is_gradient_checkpointing
    # The layer really is checkpointed: its forward runs again in backward (with grad),
    # so the trained micro-batches cost one more forward each (generation calls alike).
    assert sum(rec_b["mlp_calls"]) == 2 * sum(rec_a["mlp_calls"]) > 0
    assert rec_a["grad_norm"] > 0
    assert rec_b["grad_norm"] == pytest.approx(rec_a["grad_norm"], rel=1e-5)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_bf16_mixed_keeps_float32_weights_and_trains_close_to_fp32(tmp_path):
    _, rec32, w32 = _one_step(tmp_path, "fp32", "train.precision=fp32")
    tr, rec16, w16 = _one_step(tmp_path, "bf16", "train.precision=bf16-mixed")
    assert all(w.dtype == torch.float32 for w in w16.values())
    assert tr.parts.update.autocast == "bfloat16" and tr.policy.autocast_dtype == torch.bfloat16
    # The same batch (sampled under bf16 it may differ a little): a step of the same size.
    assert rec16["grad_norm"] == pytest.approx(rec32["grad_norm"], rel=0.3)
    assert rec16["logp_mismatch"] < 0.05  # sampler and trainer under the same autocast agree


def test_bf16_weights(tmp_path):
    tr, rec, w = _one_step(tmp_path, "bf16w", "train.precision=bf16")
    assert all(t.dtype == torch.bfloat16 for t in w.values()) and rec["grad_norm"] > 0


def test_resolution_rules():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) == (torch.float32, None)
    assert resolve_precision("auto", torch.device("cuda", 0)) == (torch.float32, torch.bfloat16)
    assert resolve_precision("bf16", torch.device("cpu")) == (torch.bfloat16, None)
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.device=cuda"):
        GRPOTrainer(_cfg(tmp_path, "cuda", "train.device=cuda"), quiet=True)


def test_what_is_not_implemented_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="train.fsdp shards the model over torchrun's processes"):
        GRPOTrainer(_cfg(tmp_path, "fsdp", "train.fsdp=true"), quiet=True)
