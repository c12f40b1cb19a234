"""One-step off-policy GRPO (``rollout.off_policy_steps: 1``): step n+1's episodes are
generated during step n's update by a sampler one update behind, and importance weights
correct for the lag."""

from __future__ import annotations

import json

import pytest
import torch

from agentgym.config import ConfigError, load_config
from agentgym.grpo.trainer import GRPOTrainer, resume_run


def _cfg(tmp_path, name, off, *extra):
    return load_config(
        None,
        [
            f"run_dir={tmp_path / name}",
            "seed=0",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            # reward 1 for a reply without the letter e: about 1 reply in 10 at first
            "rollout.tasks_per_step=4",
            "rollout.group_size=8",
            "rollout.max_new_tokens=3",
            "grpo.lr=3e-3",
            "grpo.mask_truncated=false",
            "train.eval_tasks=4",
            "train.eval_max_new_tokens=6",
            "train.steps=3",
            f"rollout.off_policy_steps={off}",
            *extra,
        ],
    )


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _same(a, b):
    return all(torch.equal(a[n], b[n]) for n in a)


def _run(tmp_path, name, off, steps=3):
    """Train ``steps`` steps by hand; return per-step episodes, records, and weight snapshots."""
    tr = GRPOTrainer(_cfg(tmp_path, name, off, f"train.steps={steps}"), quiet=True)
    played: list[list] = []
    run = tr.runner.run

    def recording(*args, **kwargs):
        eps = run(*args, **kwargs)
        played.append([(e.task.seed, tuple(e.token_ids), e.policy_version, e.reward) for e in eps])
        return eps

    tr.runner.run = recording
    records, before, sampler_after = [], [], []
    try:
        for _ in range(steps):
            before.append(_weights(tr.model))
            records.append({k: v for k, v in tr.train_step().items() if not k.startswith("time/")})
            tr.collector.wait()
            sampler_after.append(_weights(tr.sampler.model))
        final = _weights(tr.model)
    finally:
        tr.close()
    return played, records, before, sampler_after, final


def test_batches_are_exactly_one_update_old_and_the_first_matches_on_policy(tmp_path):
    on_eps, on_rec, _, _, _ = _run(tmp_path, "on", 0)
    off_eps, off_rec, before, sampler_after, final = _run(tmp_path, "off", 1)
    # Step 1 is played by the initial weights in both modes: same episodes, same update.
    assert off_eps[0] == on_eps[0]
    # (The sampler is a copy of the model, so its log-probs may differ in the last bits.)
    assert off_rec[0]["logp_mismatch"] < 1e-4 and on_rec[0]["logp_mismatch"] < 1e-4
    assert off_rec[0].keys() == on_rec[0].keys()
    assert off_rec[0]["kind"] == on_rec[0]["kind"] == "train"
    # (pytest.approx over a dict holding a string fails under pytest 9.2: numbers only.)
    numbers = [k for k, v in on_rec[0].items() if isinstance(v, (int, float)) and k != "logp_mismatch"]
    assert numbers and [off_rec[0][k] for k in numbers] == pytest.approx(
        [on_rec[0][k] for k in numbers], rel=1e-4, abs=1e-6
    )
    # Then each batch was sampled by the weights of the step before: versions 0, 0, 1.
    assert [{v for _, _, v, _ in eps} for eps in off_eps] == [{0}, {0}, {1}]
    assert [r["rollout/staleness"] for r in off_rec] == [0.0, 1.0, 1.0]
    assert [r["rollout/staleness"] for r in on_rec] == [0.0, 0.0, 0.0]
    assert [{v for _, _, v, _ in eps} for eps in on_eps] == [{0}, {1}, {2}]
    # During step n's update the sampler held exactly the weights step n started from.
    assert _same(sampler_after[0], before[0]) and _same(sampler_after[1], before[1])
    assert off_rec[0]["grad_norm"] > 0 and not _same(before[0], before[1])  # step 1 did move the weights
    assert not _same(sampler_after[1], before[0])
    # Off-policy batches are other episodes than on-policy ones from step 2 on.
    assert off_eps[1] != on_eps[1]


def test_importance_weights_see_the_lag_and_only_off_policy(tmp_path):
    _, on_rec, _, _, _ = _run(tmp_path, "on", 0, steps=2)
    _, off_rec, _, _, _ = _run(tmp_path, "off", 1, steps=2)
    # Same weights sampled and trained: the log-probs agree up to float noise.
    assert on_rec[1]["logp_mismatch"] < 1e-4 and off_rec[0]["logp_mismatch"] < 1e-4
    # A one-update-old sampler: trainer and sampler log-probs differ on the sampled tokens.
    assert off_rec[1]["logp_mismatch"] > 100 * max(on_rec[1]["logp_mismatch"], 1e-7)


def test_importance_weight_is_on_by_default_when_another_engine_samples(tmp_path, monkeypatch):
    """Bug: vLLM (or any other sampler) trained without importance weights unless asked.
    Now null (the default) means on whenever the sampler is not the trained model, and
    an explicit false turns it off."""
    from agentgym.grpo import update as update_mod

    calls = []
    real = update_mod.truncated_importance_weight

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(update_mod, "truncated_importance_weight", spy)
    for off, setting, applied in ((0, None, False), (1, None, True), (1, "false", False), (0, "true", True)):
        calls.clear()
        extra = [f"grpo.importance_weights={setting}"] if setting else []
        tr = GRPOTrainer(_cfg(tmp_path, f"is{off}{setting}", off, *extra), quiet=True)
        try:
            assert tr.parts.update.importance_weights is applied
            tr.train_step()
        finally:
            tr.close()
        assert bool(calls) is applied, (off, setting)


def test_vllm_backend_turns_importance_weights_on():
    from agentgym.config import load_config as load
    from agentgym.grpo.setup import importance_weights_on

    assert importance_weights_on(load(None, ["model.backend=vllm"])) is True
    assert importance_weights_on(load(None, ["model.backend=vllm", "grpo.importance_weights=false"])) is False
    assert importance_weights_on(load(None, [])) is False
    assert importance_weights_on(load(None, ["rollout.off_policy_steps=1"])) is True


def test_off_policy_runs_are_reproducible(tmp_path):
    a_eps, a_rec, _, _, a_w = _run(tmp_path, "a", 1)
    b_eps, b_rec, _, _, b_w = _run(tmp_path, "b", 1)
    assert a_eps == b_eps and a_rec == b_rec and _same(a_w, b_w)


def test_an_error_in_the_rollout_thread_reaches_the_trainer(tmp_path):
    tr = GRPOTrainer(_cfg(tmp_path, "err", 1), quiet=True)
    run = tr.runner.run
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the batch generated during step 1's update
            raise RuntimeError("env exploded in the background")
        return run(*args, **kwargs)

    tr.runner.run = flaky
    try:
        tr.train_step()
        with pytest.raises(RuntimeError, match="exploded in the background"):
            tr.train_step()
    finally:
        tr.close()
    tr.close()  # twice is fine


def test_off_policy_run_trains_saves_and_resumes(tmp_path):
    cfg = _cfg(tmp_path, "resume", 1, "train.steps=2", "train.save_every=1", "train.eval_every=0")
    GRPOTrainer(cfg, quiet=True).train()
    run_dir = tmp_path / "resume"
    ck = json.loads((run_dir / "summary.json").read_text())
    assert ck["steps"] == 2
    # Extend the finished run by two steps: the resumed sampler starts fresh (staleness 0).
    text = (run_dir / "config.yaml").read_text().replace("steps: 2", "steps: 4")
    (run_dir / "config.yaml").write_text(text)
    res = resume_run(run_dir, quiet=True)
    assert res.steps_done == 4
    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["rollout/staleness"] for r in train] == [0.0, 1.0, 0.0, 1.0]
    assert [r["policy_version"] for r in train] == [1, 2, 3, 4]


def test_self_play_games_run_off_policy(tmp_path):
    pytest.importorskip("agentgym_multiagent")
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'nim'}",
            "seed=1",
            "model.name=tiny",
            "env.id=multiagent/nim-v0",
            "env.params.heaps=[1, 2]",  # 12 deals: 2 held out (one heap of up to 3 holds none out)
            "env.params.max_heap=[3]",
            "env.params.opponent=[self]",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=6",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=6",
            "rollout.off_policy_steps=1",
        ],
    )
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        recs = [tr.train_step() for _ in range(2)]
    finally:
        tr.close()
    assert [r["rollout/staleness"] for r in recs] == [0.0, 1.0]
    # (The random tiny model forfeits as player_0, so player_1 seldom gets to move.)
    assert "reward/seat/player_0" in recs[1] and recs[1]["policy_version"] == 2


def test_staleness_bound_is_validated():
    assert load_config(None).rollout.off_policy_steps == 0
    with pytest.raises(ConfigError, match="off_policy_steps"):
        load_config(None, ["rollout.off_policy_steps=2"])
    with pytest.raises(ConfigError, match="off_policy_steps"):
        load_config(None, ["rollout.off_policy_steps=-1"])


def test_close_stops_the_rollout_in_flight_at_its_next_round(tmp_path):
    import threading

    from agentgym.grpo.trainer import RolloutCancelled

    tr = GRPOTrainer(_cfg(tmp_path, "close", 1), quiet=True)
    run = tr.runner.run
    started, rounds, calls = threading.Event(), [], []

    def endless(env_id, tasks, group_size=1, on_round=None):
        calls.append(1)
        if len(calls) == 1:  # step 1's batch, played for real
            return run(env_id, tasks, group_size=group_size, on_round=on_round)
        started.set()
        for i in range(10**6):  # a rollout that would take forever
            rounds.append(i)
            threading.Event().wait(0.001)
            on_round(i + 1, 1)
        return []

    tr.runner.run = endless
    tr.train_step()  # starts step 2's batch in the background
    assert started.wait(30)
    pending = tr.collector._pending
    tr.close()
    assert isinstance(pending.exception(), RolloutCancelled)
    assert len(rounds) < 10**6
