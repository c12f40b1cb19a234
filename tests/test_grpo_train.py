"""GRPO on the tiny model: token-in/token-out, sync, every loss option trains, learning, resume."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentgym import TaskSpec
from agentgym.config import ConfigError, load_config
from agentgym.grpo.batch import collate, policy_logprobs
from agentgym.grpo.loss import Normalizer, micro_batch_loss, truncated_importance_weight
from agentgym.grpo.trainer import GRPOTrainer
from agentgym.policies import SamplingParams
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.rollout import RolloutRunner

ROOT = Path(__file__).resolve().parent.parent


def tiny_cfg(tmp_path, *extra):
    return load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            "rollout.tasks_per_step=2",
            "rollout.group_size=4",
            "rollout.max_new_tokens=6",
            "rollout.max_episode_tokens=128",
            "grpo.lr=1e-3",
            "grpo.micro_batch_size=3",
            "grpo.mask_truncated=false",  # the random tiny model never ends a reply with eos
            "train.steps=2",
            "train.eval_tasks=4",
            "train.eval_max_new_tokens=6",
            *extra,
        ],
    )


def test_trainer_logprobs_equal_sampler_logprobs_on_the_sampled_ids(tiny):
    """Token-in/token-out (2) and importance weight 1 when sampler = trainer (10), multi-turn."""
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=3)
    runner = RolloutRunner(pol, SamplingParams(max_new_tokens=5, temperature=0.7))
    eps = runner.run("test/guess-v0", [TaskSpec({"high": 50, "hint": False}, s) for s in range(3)], group_size=2)
    batch = collate(eps, [0.5] * len(eps), pol.chat.pad_token_id)
    for i, e in enumerate(eps):
        assert batch.input_ids[i, : len(e.token_ids)].tolist() == e.token_ids
        assert batch.loss_mask[i, : len(e.token_ids)].tolist() == e.loss_mask
    with torch.no_grad():
        logp, _ = policy_logprobs(model, batch, temperature=0.7)
    m = batch.loss_mask > 0
    assert torch.allclose(logp[m], batch.sampler_logp[m], atol=1e-4)
    assert torch.all(logp[~m] == 0)
    w = truncated_importance_weight(logp, batch.sampler_logp)[m]
    assert torch.allclose(w, torch.ones_like(w), atol=1e-3)


def test_truncated_episodes_leave_the_loss_and_all_masked_backward_works(tiny):
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=0)
    eps = RolloutRunner(pol, SamplingParams(max_new_tokens=3)).run(
        "test/no-e-v0", [TaskSpec({"level": 0}, 1)], group_size=3
    )
    assert all(e.hit_length_limit for e in eps)  # 3 random tokens never end with eos
    kept = collate(eps, [1.0, -1.0, 0.0], pol.chat.pad_token_id)
    dropped = collate(eps, [1.0, -1.0, 0.0], pol.chat.pad_token_id, drop_truncated=True)
    assert kept.loss_mask.sum() == 9 and dropped.loss_mask.sum() == 0
    logp, _ = policy_logprobs(model, dropped)
    loss = micro_batch_loss(-logp * dropped.advantages, dropped.loss_mask, "token_mean", Normalizer(0, 3))
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or torch.all(p.grad == 0) for p in model.parameters())
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "dr_grpo"])
def test_every_loss_option_changes_the_weights(tmp_path, agg):
    tr = GRPOTrainer(
        tiny_cfg(
            tmp_path,
            f"grpo.loss_agg={agg}",
            "rollout.max_new_tokens=3",
            "rollout.group_size=8",
            "rollout.tasks_per_step=4",
        ),
        quiet=True,
    )
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    rec = tr.train_step()
    assert rec["adv/abs_mean"] > 0 and rec["train/tokens"] > 0
    assert rec["logp_mismatch"] < 1e-4  # the trainer recomputes exactly what the sampler saw
    changed = sum(not torch.equal(before[n], p) for n, p in tr.model.named_parameters())
    assert changed == len(before)
    assert tr.policy.version == 1


def test_generation_after_an_update_uses_the_updated_weights(tmp_path):
    """(11) The generation backend is the trained model: greedy output after a step equals
    a fresh argmax decode with the trainer's weights, and the version counts steps."""
    tr = GRPOTrainer(tiny_cfg(tmp_path, "grpo.lr=0.05"), quiet=True)
    prompt = tr.policy.chat.prompt_ids([{"role": "user", "content": "Say something."}])
    greedy = SamplingParams(max_new_tokens=5, temperature=0.0)
    first = tr.policy.generate([prompt], greedy)[0].token_ids
    changed = False
    for v in range(1, 7):  # until an update moves the greedy reply (a step of tied groups moves nothing)
        tr.train_step()
        assert tr.policy.version == v
        after = tr.policy.generate([prompt], greedy)[0].token_ids
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(5):
                ids.append(int(tr.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        assert after == ids[len(prompt) :]
        if after != first:
            changed = True
            break
    assert changed, "six updates at lr 0.05 never changed the greedy reply"


def test_tiny_model_learns_a_trivially_learnable_reward(tmp_path):
    """Reward 1 for a reply without the letter e: rare at first (about 1 in 10 replies),
    then learned: the last 5 steps average above 0.9 within 25 steps."""
    cfg = tiny_cfg(
        tmp_path,
        "rollout.tasks_per_step=4",
        "rollout.group_size=8",
        "rollout.max_new_tokens=3",
        "grpo.lr=3e-3",
        "grpo.micro_batch_size=32",
        "train.steps=25",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    rewards = [tr.train_step()["reward/mean"] for _ in range(25)]
    start, end = sum(rewards[:3]) / 3, sum(rewards[-5:]) / 5
    assert start < 0.4, rewards
    assert end > 0.9, rewards


def test_grpo_drives_a_fixed_handful_of_tasks_to_success(tmp_path):
    """The optimizer sanity check: on a fixed set of tasks (teacher.name=fixed) that ask
    for opposite replies, success starts near one half (the untrained model ignores the
    prompt) and GRPO drives it to near 1 within a few hundred generations."""
    cfg = tiny_cfg(
        tmp_path,
        "env.id=test/e-or-not-v0",
        "teacher.name=fixed",
        "teacher.options={n_tasks: 4}",
        "seed=2",  # two of each kind (with 3 of one kind, the fourth task's groups go all-wrong and stay there)
        "rollout.tasks_per_step=4",
        "rollout.group_size=8",
        "rollout.max_new_tokens=3",
        "grpo.lr=3e-3",
        "grpo.micro_batch_size=32",
        "train.steps=40",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    fixed = getattr(tr.teacher, "inner", tr.teacher).fixed
    assert sorted(t.params["want_e"] for t in fixed) == [False, False, True, True]
    succ = [tr.train_step()["success/mean"] for _ in range(40)]
    start, end = sum(succ[:3]) / 3, sum(succ[-5:]) / 5
    assert start < 0.75, succ
    assert end > 0.9, succ


def test_wrong_config_keys_and_values_are_named_before_any_model_loads(tmp_path):
    with pytest.raises(ConfigError, match=r"'eps_hihg' is not in grpo.*did you mean 'eps_high'"):
        load_config(None, ["grpo.eps_hihg=0.3"])
    with pytest.raises(ConfigError, match=r"'rollouts' is not in the top level.*did you mean 'rollout'"):
        load_config(None, ["rollouts.group_size=4"])
    with pytest.raises(ConfigError, match=r"grpo.lr: Input should be greater than 0"):
        load_config(None, ["grpo.lr=-1"])
    with pytest.raises(ConfigError, match=r"grpo.loss_agg"):
        load_config(None, ["grpo.loss_agg=mean"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout:\n  group_size: 8\n  temprature: 0.7\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'rollout.temprature'.*did you mean 'temperature'"):
        load_config(bad)
    bad.write_text("rollout: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    cfg = load_config(None, ["env.params={digits: [1, 2]}", "model.lora.r=4"])
    assert cfg.env.params == {"digits": [1, 2]} and cfg.model.lora.r == 4


def test_train_refuses_to_overwrite_a_run(tmp_path):
    cfg = tiny_cfg(tmp_path, "train.steps=1")
    GRPOTrainer(cfg, quiet=True).train()
    with pytest.raises(FileExistsError, match="--resume"):
        GRPOTrainer(cfg, quiet=True)


def test_lora_trains_only_the_adapter_and_exports_a_merged_model(tmp_path):
    cfg = tiny_cfg(
        tmp_path,
        "model.lora.r=4",
        "grpo.lr=1e-2",
        "rollout.max_new_tokens=3",
        "rollout.group_size=8",
        "rollout.tasks_per_step=4",
        "train.steps=1",
        "train.save_every=1",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    frozen = {n: p.detach().clone() for n, p in tr.model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    tr.train()
    assert all(torch.equal(frozen[n], p) for n, p in tr.model.named_parameters() if n in frozen)
    assert any(not torch.equal(trained[n], p) for n, p in tr.model.named_parameters() if n in trained)
    saved = load_file(str(tmp_path / "run" / "checkpoints" / "step_000001" / "weights.safetensors"))
    assert set(saved) == set(trained)  # the checkpoint holds the adapter only
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "run" / "final"))
    assert not any("lora_" in n for n, _ in merged.named_parameters())


def test_kl_penalty_loads_a_reference_only_when_asked(tmp_path):
    assert GRPOTrainer(tiny_cfg(tmp_path / "a"), quiet=True).ref_model is None
    tr = GRPOTrainer(
        tiny_cfg(
            tmp_path / "b",
            "grpo.beta=0.5",
            "rollout.max_new_tokens=3",
            "rollout.group_size=8",
            "rollout.tasks_per_step=4",
        ),
        quiet=True,
    )
    assert tr.ref_model is not None and not any(p.requires_grad for p in tr.ref_model.parameters())
    rec = tr.train_step()
    assert rec["train/tokens"] > 0 and torch.isfinite(torch.tensor(rec["loss"]))


def test_dynamic_sampling_drops_all_equal_groups_and_counts_them(tmp_path):
    # The random tiny model never guesses right: every group is all zeros.
    tr = GRPOTrainer(
        tiny_cfg(
            tmp_path,
            "env.id=test/guess-v0",
            "env.kwargs={max_turns: 1}",
            "grpo.dynamic_sampling=true",
            "grpo.max_refill_rounds=2",
        ),
        quiet=True,
    )
    rec = tr.train_step()
    assert rec["rollout/rounds"] == 3 and rec["rollout/dropped"] == rec["rollout/spent"] == 3 * 2 * 4
    assert rec["train/skipped"] == 1.0 and tr.policy.version == 1
    assert tr.teacher.metrics()["teacher/groups_seen"] == 6  # the teacher still hears about every group


def test_teacher_state_is_checkpointed_and_restored(tmp_path):
    cfg = tiny_cfg(
        tmp_path,
        "env.id=test/guess-v0",
        "env.kwargs={max_turns: 1}",
        "teacher.name=bandit",
        "teacher.options={sec_alpha: 0.5}",
        "train.steps=2",
        "train.save_every=1",
        "train.eval_tasks=2",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    tr.train()
    assert any(
        k.startswith("teacher/arm[")
        for k in json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[1])
    )
    again = GRPOTrainer(load_config(tmp_path / "run" / "config.yaml"), resume=True, quiet=True)
    assert again.step == 2
    assert [t.to_dict() for t in again.teacher.sample(20)] == [t.to_dict() for t in tr.teacher.sample(20)]
    groups = [json.loads(x) for x in (tmp_path / "run" / "teacher.jsonl").read_text().splitlines()]
    assert [g["step"] for g in groups] == [1, 2] and all(len(g["groups"]) == 2 for g in groups)


def test_wrong_teacher_option_is_a_config_error_before_the_model_loads(tmp_path, monkeypatch):
    import agentgym.grpo.setup as trainer_mod

    monkeypatch.setattr(trainer_mod, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match="has no option 'sec_alhpa'"):
        GRPOTrainer(tiny_cfg(tmp_path, "teacher.name=bandit", "teacher.options={sec_alhpa: 0.5}"), quiet=True)


def test_step_record_breaks_the_step_time_into_its_parts(tmp_path):
    # Two optimizer steps per batch so the pi_old pass runs and is timed too.
    tr = GRPOTrainer(tiny_cfg(tmp_path, "grpo.mini_batches=2"), quiet=True)
    rec = tr.train_step()
    parts = [rec[f"time/{k}"] for k in ("forward_s", "backward_s", "optimizer_s", "old_logp_s")]
    assert all(p > 0 for p in parts), rec
    # The update's parts happen inside its wall time; sampling and env work inside the rollout's.
    assert sum(parts) <= rec["time/train_s"]
    assert rec["time/sample_s"] > 0 and rec["time/env_s"] > 0
    assert rec["time/sample_s"] + rec["time/env_s"] <= rec["time/generate_s"]
    assert rec["train/micro_batches"] >= 2


def test_a_checkpoint_that_cannot_be_written_says_why_and_keeps_the_last_one(tmp_path, monkeypatch):
    """A full disk mid-write (torch raises RuntimeError from its zip writer): a clear error
    naming the free space and the resume command, the previous checkpoint intact, no
    half-written folder left behind."""
    from agentgym.grpo import checkpoint as ck

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    root = tmp_path / "run" / "checkpoints"
    first = ck.save_checkpoint(root, 1, model, opt, {})

    def full_disk(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 113310848 vs 113310736")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(ck.CheckpointWriteError, match=r"MiB are free.*step_000001\) is intact.*--resume"):
        ck.save_checkpoint(root, 2, model, opt, {})
    assert ck.list_checkpoints(root) == [first]
    assert not list(root.glob(".step_*"))
    monkeypatch.undo()
    assert ck.load_checkpoint(first, model, opt)["step"] == 1


def test_held_out_evals_carry_standard_errors_to_metrics_summary_checkpoints_and_table(tmp_path, capsys):
    from agentgym.cli import _print_result
    from agentgym.grpo.checkpoint import latest_checkpoint

    cfg = tiny_cfg(
        tmp_path,
        "env.id=math/arithmetic-v0",
        "rollout.temperature=0.9",
        "train.steps=1",
        "train.eval_tasks=3",
        "train.eval_k=2",
        "train.save_every=1",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    res = tr.train()
    run = tmp_path / "run"
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [0, 1]
    for line in evals:  # k samples at the training temperature, and a greedy pass
        assert (line["eval/k"], line["eval/temperature"], line["eval/tasks"]) == (2, 0.9, 3)
        assert line["eval/success"] == line["eval/mean_at_k"] and line["eval/success_se"] == line["eval/mean_at_k_se"]
        for name in ("mean_at_k", "pass_at_k", "greedy"):
            assert {f"eval/{name}_se", f"eval/{name}_low", f"eval/{name}_high"} <= set(line)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_success_before"] == evals[0]["eval/success"] == res.evals[0]
    assert summary["heldout_success_after_se"] == evals[1]["eval/success_se"]
    after = summary["heldout_after"]
    assert after["step"] == 1 and after["k"] == 2 and after["temperature"] == 0.9 and after["tasks"] == 3
    assert after["greedy"]["se"] == evals[1]["eval/greedy_se"] and after["pass_at_k"]["tasks"] == 3
    assert summary["heldout_before"]["mean_at_k"]["value"] == summary["heldout_success_before"]
    assert (summary["eval_k"], summary["eval_temperature"], summary["eval_greedy"]) == (2, 0.9, True)
    assert summary["eval_distinct_tasks"] == 3 and summary["eval_tasks"] == 3
    # The change is paired by task: its value is the difference of the means, its s.e. that
    # of the per-task differences (recomputed here from the two evals' task records).
    change = summary["heldout_change"]["mean_at_k"]
    assert change["value"] == pytest.approx(summary["heldout_success_after"] - summary["heldout_success_before"])
    recs = [json.loads((run / "evals" / f"step_{s:06d}.json").read_text())["envs"][0]["tasks"] for s in (0, 1)]
    per = [{json.dumps(t["task"], sort_keys=True): sum(t["successes"]) / 2 for t in r} for r in recs]
    diffs = [per[1][key] - per[0][key] for key in sorted(per[0])]
    mean = sum(diffs) / 3
    assert change["se"] == pytest.approx((sum((d - mean) ** 2 for d in diffs) / 2 / 3) ** 0.5, nan_ok=True)
    step0 = json.loads((run / "evals" / "step_000000.json").read_text())["envs"][0]
    assert step0["overall"]["mean_at_k"]["tasks"] == 3 and len(step0["tasks"][0]["successes"]) == 2
    assert (run / "plots" / "training.png").stat().st_size > 0
    # The end-of-run table: value ± s.e. [95% CI] and the tasks, before and after.
    _print_result(res)
    said = capsys.readouterr().out
    assert "mean@2 at T=0.9" in said and "±" in said and said.count(" 3 │") >= 2 and "(paired)" in said
    # The estimates survive a resume; a checkpoint from before they existed still loads.
    again = GRPOTrainer(load_config(run / "config.yaml"), resume=True, quiet=True)
    same = json.dumps(again.eval_stats, sort_keys=True) == json.dumps(tr.eval_stats, sort_keys=True)  # NaN too
    assert same and again.evals == tr.evals
    again.close()
    state_file = latest_checkpoint(run / "checkpoints") / "state.json"
    state = json.loads(state_file.read_text())
    del state["eval_stats"]
    state_file.write_text(json.dumps(state))
    old = GRPOTrainer(load_config(run / "config.yaml"), resume=True, quiet=True)
    assert old.eval_stats == {} and old.evals == tr.evals and old._heldout_text() == f"{tr.evals[1]:.1%}"
    old.close()


def test_the_kl_term_is_measured_against_the_reference_not_the_policy(tmp_path, monkeypatch):
    """Step 1 (advantages +1, -1, ...) moves the policy away from the reference; step 2 gets
    zero advantages, so its loss is the KL term alone: beta times the mean k3 estimate over
    its tokens, which the step also logs as kl/ref (from the same, on-policy log-probs),
    and it has a gradient. Against the policy itself the term and its gradient would be 0."""
    import numpy as np

    from agentgym.grpo import trainer as trainer_mod

    calls = []

    def advantages(rewards, groups, **kwargs):
        calls.append(1)
        n = len(rewards)
        return np.resize([1.0, -1.0], n) if len(calls) == 1 else np.zeros(n)

    monkeypatch.setattr(trainer_mod, "group_advantages", advantages)
    beta = 0.5
    tr = GRPOTrainer(
        tiny_cfg(
            tmp_path,
            f"grpo.beta={beta}",
            "grpo.lr=3e-2",
            "train.kl_every=1",
            "rollout.max_new_tokens=3",
            "rollout.group_size=8",
        ),
        quiet=True,
    )
    try:
        first, second = tr.train_step(), tr.train_step()
    finally:
        tr.close()
    assert first["kl/ref"] == pytest.approx(0.0, abs=1e-6)  # step 1 starts at the reference
    assert second["kl/ref"] > 1e-4
    assert second["loss"] == pytest.approx(beta * second["kl/ref"], rel=1e-3)
    assert second["grad_norm"] > 0
