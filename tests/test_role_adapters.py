"""One LoRA adapter per role (multiagent.adapters: per_role): each seat is played and
trained by its own adapter, and nothing of one seat's update reaches another's."""

from __future__ import annotations

import pytest
import torch

import agentgym
from agentgym import HeldOut, Integer, ParamSpace
from agentgym.config import ConfigError, load_config
from agentgym.multiagent import Outcome, TextAECEnv


class TwoSays(TextAECEnv):
    """``first`` then ``second`` each say something once; a reply without the letter e
    scores 1 for its speaker (about 1 reply in 10 of the tiny random model)."""

    agent_names = ("first", "second")
    param_space = ParamSpace([Integer("n", 1, 3)])
    held_out = HeldOut(content_fraction=0.0)  # every task says the same: one content, seeds only
    scripted_kinds = ("plain",)

    def _reset(self, params, rng):
        self.said = 0
        return {
            a: [{"role": "system", "content": f"You are {a}."}, {"role": "user", "content": "Say something."}]
            for a in self.agent_names
        }

    def _next_agent(self):
        return self.agent_names[self.said]

    def _play(self, agent, text):
        self.said += 1
        score = {agent: {"no_e": float("e" not in text.lower())}}
        if self.said == 2:
            return Outcome(done=True, rewards=score, success={agent: "e" not in text.lower()})
        return Outcome(rewards=score)

    def _scripted(self, agent, kind, rng):
        return "ok"


agentgym.register("test/ma-two-says-v0", TwoSays, gymnasium_id=False)


def _cfg(tmp_path, *extra):
    return load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "seed=0",
            "model.name=tiny",
            "env.id=test/ma-two-says-v0",
            "model.lora.r=4",
            "multiagent.adapters=per_role",
            "multiagent.eval_opponents=[plain]",
            "rollout.tasks_per_step=2",
            "rollout.group_size=8",
            "rollout.max_new_tokens=3",
            "grpo.lr=1e-2",
            "grpo.mask_truncated=false",
            "train.steps=1",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=3",
            *extra,
        ],
    )


def _adapter(tr, role):
    return {n: p.detach().clone() for n, p in tr.adapters.adapter_parameters(role).items()}


def _changed(a, b):
    return any(not torch.equal(a[n], b[n]) for n in a)


def test_each_seat_is_played_by_its_own_adapter(tmp_path):
    from agentgym.grpo.trainer import GRPOTrainer

    tr = GRPOTrainer(_cfg(tmp_path), quiet=True)
    calls = []
    real = tr.policy.generate_as

    def spy(role, prompts, sampling):
        out = real(role, prompts, sampling)
        calls.append((role, tr.model.active_adapter, len(prompts)))
        return out

    tr.policy.generate_as = spy
    try:
        eps = tr.runner.run("test/ma-two-says-v0", tr.teacher.sample(2), group_size=3)
    finally:
        tr.close()
    # One call per role each round, with that role's adapter active, for its 6 games.
    assert calls == [("first", "first", 6), ("second", "second", 6)]
    assert sorted({e.agent for e in eps}) == ["first", "second"]


def test_a_seat_s_update_reaches_only_its_own_adapter(tmp_path):
    from agentgym.grpo.trainer import GRPOTrainer

    # "first" is scripted: only "second" has episodes, so only its adapter may change.
    tr = GRPOTrainer(_cfg(tmp_path, "multiagent.controllers={first: plain}"), quiet=True)
    try:
        before = {r: _adapter(tr, r) for r in tr.adapters.roles}
        base = {n: p.detach().clone() for n, p in tr.model.named_parameters() if "lora_" not in n}
        rec = tr.train_step()
        assert rec["grad_norm"] > 0 and "reward/seat/second" in rec and "reward/seat/first" not in rec
        assert _changed(before["second"], _adapter(tr, "second"))
        assert not _changed(before["first"], _adapter(tr, "first"))
        assert not _changed(base, {n: p.detach() for n, p in tr.model.named_parameters() if "lora_" not in n})
    finally:
        tr.close()


def test_self_play_trains_both_adapters_apart_and_exports_one_model_per_role(tmp_path):
    from transformers import AutoModelForCausalLM

    from agentgym.grpo.trainer import GRPOTrainer

    tr = GRPOTrainer(_cfg(tmp_path, "train.steps=2", "train.save_every=1"), quiet=True)
    before = {r: _adapter(tr, r) for r in tr.adapters.roles}
    res = tr.train()
    assert res.steps_done == 2
    after = {r: _adapter(tr, r) for r in tr.adapters.roles}
    assert _changed(before["first"], after["first"]) and _changed(before["second"], after["second"])
    # Same init (LoRA B = 0), different data: the two adapters are now different.
    a, b = after["first"], after["second"]
    assert any(not torch.equal(a[n], b[n.replace(".first.", ".second.")]) for n in a)
    final = tmp_path / "run" / "final"
    m1 = AutoModelForCausalLM.from_pretrained(final / "first")
    m2 = AutoModelForCausalLM.from_pretrained(final / "second")
    assert not any("lora_" in n for n, _ in m1.named_parameters())
    ids = torch.tensor([[1, 2, 3, 4]])
    assert not torch.allclose(m1(ids).logits, m2(ids).logits)
    assert (final / "adapters" / "second").is_dir()


def test_checkpoint_holds_every_adapter_and_resume_restores_them(tmp_path):
    from agentgym.grpo.trainer import GRPOTrainer, resume_run

    cfg = _cfg(tmp_path, "train.steps=1", "train.save_every=1")
    tr = GRPOTrainer(cfg, quiet=True)
    initial = {r: _adapter(tr, r) for r in tr.adapters.roles}
    tr.train()
    saved = {r: _adapter(tr, r) for r in tr.adapters.roles}
    assert all(_changed(initial[r], saved[r]) for r in tr.adapters.roles)  # so a restore is not a no-op
    again = GRPOTrainer(cfg, resume=True, quiet=True)  # a fresh model, then the checkpoint
    try:
        assert again.step == 1
        for r in again.adapters.roles:
            assert not _changed(saved[r], _adapter(again, r))
    finally:
        again.close()
    assert resume_run(tmp_path / "run", quiet=True).steps_done == 1


def test_role_exchange_rotates_which_adapter_plays_and_learns_a_seat(tmp_path):
    from agentgym.grpo.trainer import GRPOTrainer

    # Only seat "second" has episodes; swap_every=1 hands it to the other adapter each step.
    tr = GRPOTrainer(_cfg(tmp_path, "multiagent.controllers={first: plain}", "multiagent.swap_every=1"), quiet=True)
    try:
        changed = []
        for _ in range(2):
            before = {r: _adapter(tr, r) for r in tr.adapters.roles}
            rec = tr.train_step()
            assert rec["grad_norm"] > 0
            changed.append(
                (rec["multiagent/rotation"], {r for r in tr.adapters.roles if _changed(before[r], _adapter(tr, r))})
            )
        assert changed == [(0.0, {"second"}), (1.0, {"first"})]
        assert tr.adapters.assignment == {"first": "second", "second": "first"}
    finally:
        tr.close()


def test_per_role_config_errors_are_clear(tmp_path):
    from agentgym.grpo.trainer import GRPOTrainer

    with pytest.raises(ConfigError, match="needs model.lora"):
        load_config(None, ["multiagent.adapters=per_role"])
    with pytest.raises(ConfigError, match="swap_every rotates per-role adapters"):
        load_config(None, ["multiagent.swap_every=2"])
    with pytest.raises(ConfigError, match="off_policy_steps"):
        load_config(None, ["multiagent.adapters=per_role", "model.lora.r=4", "rollout.off_policy_steps=1"])
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'x'}",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            "model.lora.r=4",
            "multiagent.adapters=per_role",
        ],
    )
    with pytest.raises(ConfigError, match="needs a multi-agent game"):
        GRPOTrainer(cfg, quiet=True)
