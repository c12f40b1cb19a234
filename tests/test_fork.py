"""A run started from another run's warm start is the run it would have been from scratch;
the KL anchor is the warm-started model, and ``kl/ref`` measures the distance to it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from agentgym.config import ConfigError, load_config
from agentgym.grpo.fork import find_donor, fork_warm_start, warm_start_checkpoint
from agentgym.grpo.trainer import GRPOTrainer, resume_run, train_from_config

BASE = [
    "model.name=tiny",
    "env.id=test/no-e-v0",
    "warmup.source=oracle",
    "warmup.steps=3",
    "warmup.demos=16",
    "warmup.batch_size=8",
    "warmup.lr=3e-3",
    "rollout.tasks_per_step=2",
    "rollout.group_size=4",
    "rollout.max_new_tokens=4",
    "grpo.mask_truncated=false",
    "train.eval_tasks=6",
    "train.eval_max_new_tokens=4",
    "train.eval_k=2",
    "train.eval_temperature=1.0",
    "train.steps=2",
    "train.save_every=100",
    "train.report_to=[]",
]

#: A run that differs from BASE in settings that act only after the warm start (each of
#: them changes what GRPO does; none may change the warm start or its evaluations).
AFTER = [
    "grpo.lr=3e-3",
    "grpo.scale_std=false",
    "grpo.beta=0.05",
    "grpo.kl_estimator=k2",
    "grpo.eps_low=0.1",
    "grpo.eps_high=0.15",
    "grpo.loss_agg=seq_mean_token_mean",
    "grpo.updates_per_batch=2",
    "grpo.mini_batches=2",
    "rollout.tasks_per_step=3",
    "rollout.group_size=3",
    "rollout.max_new_tokens=3",
    "rollout.temperature=0.7",
    "teacher.name=bandit",
    "train.steps=3",
    "train.eval_every=2",
    "train.save_every=1",
    "train.kl_every=1",
]


def _cfg(run_dir, *extra):
    return load_config(None, [*BASE, f"run_dir={run_dir}", *extra])


def _lines(run_dir, name="metrics.jsonl"):
    rows = [json.loads(x) for x in (run_dir / name).read_text().splitlines()]
    return [json.dumps({k: v for k, v in r.items() if not k.startswith("time/")}, sort_keys=True) for r in rows]


def _untimed(data):
    if isinstance(data, dict):
        return {k: _untimed(v) for k, v in data.items() if "seconds" not in k}
    return [_untimed(x) for x in data] if isinstance(data, list) else json.dumps(data)


def _final(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


def test_a_forked_run_is_the_run_from_scratch_bit_for_bit(tmp_path):
    donor, scratch, forked = tmp_path / "donor", tmp_path / "scratch", tmp_path / "forked"
    GRPOTrainer(_cfg(donor), quiet=True).train()
    ck = warm_start_checkpoint(donor)
    assert ck is not None and ck.name == "step_000003"
    # The warm start is kept without AdamW moments (GRPO resets them anyway).
    assert torch.load(ck / "optimizer.pt", weights_only=True)["state"] == {}
    GRPOTrainer(_cfg(scratch, *AFTER), quiet=True).train()
    assert find_donor(tmp_path, _cfg(forked, *AFTER)) == donor
    train_from_config(None, [*BASE, f"run_dir={forked}", *AFTER], quiet=True, from_warm_start=donor)
    want, got = _final(scratch), _final(forked)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert _lines(forked) == _lines(scratch)
    assert _lines(forked, "teacher.jsonl") == _lines(scratch, "teacher.jsonl")
    for report in sorted((scratch / "evals").glob("*.json")):
        ours = json.loads((forked / "evals" / report.name).read_text())
        assert _untimed(ours) == _untimed(json.loads(report.read_text()))
    assert _untimed(json.loads((forked / "summary.json").read_text())) == _untimed(
        json.loads((scratch / "summary.json").read_text())
    )
    # GRPO itself differed: the donor's weights are not these.
    assert not all(torch.equal(_final(donor)[k], got[k]) for k in got)


def test_a_warm_start_that_differs_is_refused_and_nothing_is_left_behind(tmp_path):
    donor = tmp_path / "donor"
    GRPOTrainer(_cfg(donor, "train.steps=0"), quiet=True).train()
    other = tmp_path / "other"
    for change, named in (("warmup.lr=1e-3", "warmup.lr"), ("seed=1", "seed"), ("train.eval_k=1", "train.eval_k")):
        with pytest.raises(ConfigError, match=named):
            fork_warm_start(donor, _cfg(other, change))
        assert not other.exists() or not any(other.iterdir())
    # The eval temperature counts, whichever setting gives it.
    with pytest.raises(ConfigError, match="eval_temperature"):
        fork_warm_start(donor, _cfg(other, "train.eval_temperature=null", "rollout.temperature=0.7"))
    with pytest.raises(ConfigError, match="oracle or file"):
        fork_warm_start(donor, _cfg(other, "warmup.source=rejection"))
    assert find_donor(tmp_path, _cfg(other, "warmup.lr=1e-3")) is None


def test_the_kl_anchor_is_the_warm_started_model_and_survives_a_resume(tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(run, "train.kl_every=1", "grpo.lr=1e-2", "train.steps=3", "train.save_every=1")
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        for _ in range(5):  # 3 warm-start steps, then 2 GRPO steps
            tr.log.write(tr.step_once())
            if tr.step == 3:
                tr._save("warm_start")
        tr._save()
        warm = load_file(str(warm_start_checkpoint(run) / "weights.safetensors"))
        ref = dict(tr.ref_model.named_parameters())
        assert all(torch.equal(ref[k], warm[k]) for k in ref)
        now = dict(tr.model.named_parameters())
        assert not all(torch.equal(now[k], warm[k]) for k in ref)  # GRPO moved the policy, not the anchor
    finally:
        tr.close()
    rows = [r for r in map(json.loads, _lines(run)) if r["kind"] == "train"]
    # The first GRPO step samples with the anchor's own weights: KL 0; then it grows.
    assert abs(rows[0]["kl/ref"]) < 1e-5 and rows[1]["kl/ref"] > 1e-4
    # A resumed run loads the anchor from warm_start/, not the weights it resumed with.
    again = GRPOTrainer(load_config(run / "config.yaml"), resume=True, quiet=True)
    try:
        ref = dict(again.ref_model.named_parameters())
        assert again.step == 5 and all(torch.equal(ref[k], warm[k]) for k in ref)
    finally:
        again.close()


def test_kl_ref_base_anchors_to_the_model_as_loaded(tmp_path):
    from agentgym.policies.models import load_model

    run = tmp_path / "run"
    tr = GRPOTrainer(_cfg(run, "train.kl_every=1", "grpo.kl_ref=base", "train.steps=1"), quiet=True)
    try:
        rec = [tr.step_once() for _ in range(4)][-1]
    finally:
        tr.close()
    base = dict(load_model("tiny", seed=0)[0].named_parameters())
    assert all(torch.equal(p, base[k]) for k, p in tr.ref_model.named_parameters())
    assert rec["kl/ref"] > 1e-3  # the warm start moved the sampler away from the base


def test_a_missing_anchor_is_a_clear_error_on_resume(tmp_path):
    import shutil

    run = tmp_path / "run"
    GRPOTrainer(_cfg(run, "grpo.beta=0.1", "train.save_every=1"), quiet=True).train()
    shutil.rmtree(run / "warm_start")
    with pytest.raises(RuntimeError, match="warm_start"):
        resume_run(run, quiet=True, overrides=["train.steps=3"])


def test_groups_with_signal_counts_groups_whose_rewards_differ():
    from agentgym import TaskSpec
    from agentgym.curriculum import GroupResult
    from agentgym.grpo.metrics import rollout_metrics

    def group(*rewards):
        return GroupResult(task=TaskSpec(params={}, seed=0), rewards=list(rewards), successes=[r > 0 for r in rewards])

    out = rollout_metrics([], [group(1, 1, 1), group(0, 1, 0), group(0, 0, 0), group(0.5, 0.5, 1)], step=1)
    assert out["groups/with_signal"] == 0.5


def test_eval_start_false_skips_only_the_untrained_models_evaluation(tmp_path):
    full, skipped = tmp_path / "full", tmp_path / "skipped"
    GRPOTrainer(_cfg(full), quiet=True).train()
    GRPOTrainer(_cfg(skipped, "train.eval_start=false"), quiet=True).train()
    assert sorted(p.name for p in (full / "evals").glob("step_*.json"))[0] == "step_000000.json"
    assert sorted(p.name for p in (skipped / "evals").glob("step_*.json")) == ["step_000003.json", "step_000005.json"]
    # Evaluations draw from their own generator: without the first one, training is the same.
    want, got = _final(full), _final(skipped)
    assert all(torch.equal(want[k], got[k]) for k in want)
    for name in ("step_000003.json", "step_000005.json"):
        ours = json.loads((skipped / "evals" / name).read_text())
        assert _untimed(ours) == _untimed(json.loads((full / "evals" / name).read_text()))
    summary = json.loads((skipped / "summary.json").read_text())
    assert summary["heldout_before"]["step"] == 3 == summary["heldout_after_warmup"]["step"]
    assert summary["heldout_change_after_warmup"] is not None
    with pytest.raises(ConfigError, match="eval_start=false needs a warm start"):
        load_config(None, [*BASE, "warmup.source=none", "warmup.steps=0", "train.eval_start=false"])
