"""Warm start: demonstrations as Episodes, supervised fine-tuning in the trainer, and its stages."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from agentgym import TaskSpec
from agentgym.config import ConfigError, load_config
from agentgym.grpo.batch import TokenBatch, policy_logprobs
from agentgym.grpo.trainer import GRPOTrainer
from agentgym.grpo.update import UpdateSettings, update_policy
from agentgym.grpo.warmup import DemoSet
from agentgym.policies import SamplingParams, ScriptedPolicy
from agentgym.rollout import RolloutRunner
from agentgym.rollout.demos import chat_episode, load_demos, make_demos, save_demos


def test_an_oracle_demonstration_is_laid_out_as_a_sampled_episode(chat):
    """The same task played by a scripted policy that says what the oracle says gives the
    same ids and mask: demonstrations and rollouts are one record."""
    demos, stats = make_demos("test/guess-v0", chat, 6, restrict={"high": [20]}, seed=3)
    assert stats.kept == 6 and stats.failed == 0
    for d in demos:
        runner = RolloutRunner(
            ScriptedPolicy(chat, lambda _text, d=d: _oracle_reply(d)), SamplingParams(max_new_tokens=32)
        )
        (played,) = runner.run("test/guess-v0", [d.task])
        assert played.token_ids == d.token_ids and played.loss_mask == d.loss_mask
        assert d.success and d.num_turns == 1 and d.policy_version == -1


def _oracle_reply(demo) -> str:
    return next(m["content"] for m in demo.messages if m["role"] == "assistant")


def test_demonstrations_never_use_held_out_seeds_or_regions(chat):
    from agentgym.registry import spec

    cls = spec("test/guess-v0").load_class()
    demos, _ = make_demos("test/guess-v0", chat, 40, seed=0)
    for d in demos:
        assert not cls.held_out.is_held_out(d.task.params, d.task.seed)


def test_game_demonstrations_come_from_the_optimal_player(chat):
    pytest.importorskip("agentgym_multiagent")
    demos, stats = make_demos("multiagent/nim-v0", chat, 6, restrict={"opponent": ["self"], "heaps": [2, 3]}, seed=1)
    assert stats.kept == len(demos) > 0
    assert {d.agent for d in demos} == {"player_0", "player_1"}
    assert all(not d.errors and d.num_policy_tokens > 0 for d in demos)  # every move legal


def test_a_chat_row_puts_the_loss_on_assistant_turns_only(chat):
    row = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ],
        "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}],
    }
    ep = chat_episode(row, chat)
    eos = min(chat.eos_token_ids)
    trained = [t for t, m in zip(ep.token_ids, ep.loss_mask) if m]
    assert trained == chat.encode("hello") + [eos] + chat.encode("4") + [eos]
    # The ids are what the chat template renders for the whole conversation (tools listed).
    rendered = chat.tokenizer.apply_chat_template(ep.messages, tokenize=False)
    assert chat.decode(ep.token_ids, skip_special_tokens=False).strip() == rendered.strip()
    assert '"name": "add"' in ep.messages[0]["content"]


def test_demo_files_round_trip_and_bad_lines_are_named(chat, tmp_path):
    demos, _ = make_demos("test/guess-v0", chat, 4, seed=0)
    path = tmp_path / "d.jsonl"
    assert save_demos(path, demos) == 4
    back = load_demos(path, chat)
    assert [d.token_ids for d in back] == [d.token_ids for d in demos]
    with open(path, "a") as fh:
        fh.write(json.dumps({"messages": [{"role": "user", "content": "no reply"}]}) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:5: not a demonstration"):
        load_demos(path, chat)


def test_demo_batches_depend_only_on_the_step_and_cover_each_epoch():
    from agentgym.rollout.episode import Episode

    eps = [Episode("x", TaskSpec({}, i), [1, 2], [0, 1], [0.0, 0.0], 1) for i in range(10)]
    a, b = DemoSet(eps, 4, seed=7), DemoSet(eps, 4, seed=7)
    first_epoch = [e.task.seed for s in range(2) for e in a.batch(s)] + [e.task.seed for e in a.batch(2)][:2]
    assert sorted(first_epoch) == list(range(10))
    assert [e.task.seed for e in a.batch(5)] == [e.task.seed for e in b.batch(5)]


def test_the_sft_objective_is_token_mean_cross_entropy(tiny):
    model, _ = tiny
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (3, 10), generator=g)
    attn = torch.ones(3, 10, dtype=torch.long)
    mask = torch.zeros(3, 10)
    mask[0, 4:9] = 1
    mask[1, 6:8] = 1
    mask[2, 3:4] = 1
    batch = TokenBatch(ids, attn, mask, torch.zeros(3, 10), torch.full((3, 1), 5.0))  # advantages are ignored
    m = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    s = UpdateSettings(objective="sft", temperature=0.7, micro_batch_size=2, max_grad_norm=1e9)
    stats = update_policy(m, torch.optim.SGD(m.parameters(), lr=1.0), batch, s)
    ref = copy.deepcopy(model)
    logp, _ = policy_logprobs(ref, batch, 1.0)  # cross-entropy at temperature 1, whatever rollouts use
    ce = -(logp * mask).sum() / mask.sum()
    ce.backward()
    assert stats["loss"] == pytest.approx(float(ce), rel=1e-5)
    for n, p in m.named_parameters():
        want = -dict(ref.named_parameters())[n].grad
        assert torch.allclose(p.detach() - before[n], want, atol=1e-4 * max(1.0, float(want.abs().max())))


def _cfg(tmp_path, *extra):
    return load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=test/guess-v0",
            "env.kwargs={max_turns: 1}",
            "env.params={high: [3]}",
            "rollout.tasks_per_step=2",
            "rollout.group_size=4",
            "rollout.max_new_tokens=4",
            "grpo.mask_truncated=false",
            "train.eval_tasks=8",
            "train.eval_max_new_tokens=4",
            *extra,
        ],
    )


def test_a_warm_start_teaches_the_tiny_model_the_demonstrated_replies(tmp_path):
    """Guess a number in 1..3: the random tiny model almost never replies with a digit; after
    oracle demonstrations it answers with one (and so is right about a third of the time),
    then GRPO runs on in the same run with its own steps and evaluations."""
    cfg = _cfg(
        tmp_path,
        "warmup.source=oracle",
        "warmup.steps=30",
        "warmup.demos=64",
        "warmup.batch_size=16",
        "warmup.lr=3e-3",
        "train.steps=2",
        "train.eval_every=1",
        "train.save_every=100",
        "train.eval_k=1",  # greedy: what the demonstrations taught, without sampling noise
        "train.eval_temperature=0",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    res = tr.train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["warmup", "eval"] and kinds.count("sft") == 30 and kinds.count("train") == 2
    sft = [r for r in rows if r["kind"] == "sft"]
    assert sft[-1]["loss"] < 0.25 * sft[0]["loss"]
    evals = {r["step"]: r for r in rows if r["kind"] == "eval"}
    assert sorted(evals) == [0, 30, 31, 32]  # before, after the warm start, every GRPO step
    assert evals[30]["eval/no_answer"] < 0.5 < evals[0]["eval/no_answer"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["warmup_steps"] == 30 and summary["heldout_success_after_warmup"] == evals[30]["eval/success"]
    # GRPO started with a fresh AdamW state, and the log says so; the teacher's spread is
    # logged every step and summed up at the end (a random teacher stays uniform).
    train = [r for r in rows if r["kind"] == "train"]
    assert train[0]["optimizer/reset"] == 1.0 and "optimizer/reset" not in train[1]
    assert all(r["teacher/entropy_ratio"] == 1.0 for r in rows if r["kind"] in ("sft", "train"))
    assert summary["teacher"]["line"] == "teacher: stayed uniform (entropy 1.00 of uniform)"
    assert res.warmup_steps == 30 and res.steps_done == 32


def test_rejection_fine_tuning_trains_on_the_successful_samples_only(tmp_path, monkeypatch):
    from agentgym.grpo import trainer as trainer_mod

    seen = []
    real = trainer_mod.update_policy
    monkeypatch.setattr(
        trainer_mod, "update_policy", lambda m, o, b, s, **kw: (seen.append((b, s)), real(m, o, b, s, **kw))[1]
    )
    # Reward 1 for a reply without the letter e: some of the random tiny model's replies.
    cfg = _cfg(
        tmp_path,
        "env.id=test/no-e-v0",
        "env.params={}",
        "env.kwargs={}",
        "warmup.source=rejection",
        "warmup.steps=3",
        "train.steps=0",
        "rollout.group_size=8",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        recs = [tr.step_once() for _ in range(3)]
    finally:
        tr.close()
    for rec in recs:
        assert rec["kind"] == "sft" and rec["rollout/spent"] == 16
    kept = [r["warmup/kept_episodes"] for r in recs]
    successes = [round(r["success/mean"] * 16) for r in recs]
    assert kept == successes and 0 < sum(kept) < 48
    assert all(s.objective == "sft" for _, s in seen) and [len(b) for b, _ in seen] == [k for k in kept if k]


def test_warmup_config_mistakes_are_named(tmp_path):
    with pytest.raises(ConfigError, match="warmup.file"):
        load_config(None, ["warmup.source=file", "warmup.steps=2"])
    with pytest.raises(ConfigError, match="needs warmup.steps"):
        load_config(None, ["warmup.source=oracle"])
    with pytest.raises(ConfigError, match="nothing to train"):
        load_config(None, ["train.steps=0"])
    with pytest.raises(ConfigError, match=r"warmup.file: .*holds no demonstrations|warmup.file: .*No such file"):
        GRPOTrainer(
            _cfg(tmp_path, "warmup.source=file", "warmup.steps=1", f"warmup.file={tmp_path / 'none.jsonl'}"), quiet=True
        )


def test_grpo_only_runs_are_unchanged_by_the_warmup_machinery(tmp_path):
    """No warm start: the lr the optimizer gets each step is grpo.lr, as before."""
    tr = GRPOTrainer(_cfg(tmp_path, "grpo.lr=2e-4"), quiet=True)
    try:
        tr.step_once()
        assert all(g["lr"] == 2e-4 for g in tr.optimizer.param_groups) and tr.demos is None
    finally:
        tr.close()


def test_rft_after_a_warm_start_trains_on_the_successful_samples_at_the_grpo_lr(tmp_path, monkeypatch):
    """grpo.objective=rft: after the oracle warm start, each step samples like GRPO and
    trains cross-entropy on its successful episodes only, at grpo.lr (the control GRPO
    has to beat on the same generations)."""
    from agentgym.grpo import trainer as trainer_mod

    seen = []
    real = trainer_mod.update_policy
    monkeypatch.setattr(
        trainer_mod,
        "update_policy",
        lambda m, o, b, s, **kw: (seen.append((len(b), s.objective, o.param_groups[0]["lr"])), real(m, o, b, s, **kw))[
            1
        ],
    )
    cfg = _cfg(
        tmp_path,
        "env.id=test/no-e-v0",
        "env.params={}",
        "env.kwargs={}",
        "warmup.source=oracle",
        "warmup.demos=8",
        "warmup.batch_size=4",
        "warmup.steps=2",
        "grpo.objective=rft",
        "grpo.lr=7e-4",
        "train.steps=3",
        "rollout.group_size=8",
    )
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        recs = [tr.step_once() for _ in range(5)]
    finally:
        tr.close()
    assert [r["kind"] for r in recs] == ["sft", "sft", "train", "train", "train"]
    assert seen[0] == (4, "sft", cfg.warmup.lr)  # demonstrations at the warm-start lr
    rft = recs[2:]
    kept = [r["rft/kept_episodes"] for r in rft]
    assert kept == [round(r["success/mean"] * 16) for r in rft] and all(r["rollout/spent"] == 16 for r in rft)
    assert seen[2:] == [(k, "sft", 7e-4) for k in kept if k]
    assert all("adv/abs_mean" not in r for r in rft)  # no policy gradient
