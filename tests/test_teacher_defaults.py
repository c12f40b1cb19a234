"""Training defaults that do what they say (issue 30): teachers and filters read success,
not shaped totals; teacher defaults act within a short run and the run says whether its
teacher left uniform; GRPO after a warm start begins with a fresh AdamW state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agentgym.config import ConfigError, load_config
from agentgym.curriculum import (
    SIGNALS,
    DynamicSampling,
    GroupResult,
    PassRateBand,
    TrainingTasks,
    make_teacher,
    run_options,
)
from agentgym.curriculum.base import check_outcome, spread_metrics
from agentgym.env import TaskSpec
from agentgym.grpo.collect import episode_outcome, group_result
from agentgym.grpo.metrics import teacher_summary
from agentgym.rollout.episode import Episode
from agentgym.spaces import Categorical, Continuous, HeldOut, ParamSpace

# ----- what teachers and filters read ---------------------------------------------------


def episode(correct: bool, bonus: float = 0.0, task: TaskSpec | None = None) -> Episode:
    """A one-turn math-like episode: 1 for a right answer, ``bonus`` for the format."""
    parts = {"correct": float(correct), "format": bonus}
    return Episode(
        "x",
        task or TaskSpec({"arm": "a"}, 0),
        [1, 2],
        [0, 1],
        [0.0, -0.5],
        1,
        turn_rewards=[sum(parts.values())],
        success=correct,
        reward_parts=parts,
    )


def test_outcomes_are_success_reward_or_a_named_part():
    e = episode(True, 0.1)
    assert episode_outcome(e) == 1.0 and episode_outcome(e, "reward") == pytest.approx(1.1)
    assert episode_outcome(e, "part:format") == pytest.approx(0.1)
    assert episode_outcome(e, "part:nope") == 0.0  # a part the episode does not report
    assert episode_outcome(episode(False, 0.1)) == 0.0
    for ok in ("success", "reward", "part:correct"):
        assert check_outcome(ok) == ok
    for bad in ("", "part:", "part: x", "rewards", "Success"):
        with pytest.raises(ValueError, match="unknown outcome"):
            check_outcome(bad)
    assert load_config(None, ["teacher.outcome=part:correct"]).teacher.outcome == "part:correct"
    with pytest.raises(ConfigError, match="teacher.outcome"):
        load_config(None, ["teacher.outcome=score"])


def test_a_format_bonus_moves_no_teacher_signal_and_no_filter():
    """Two all-correct groups, one with a 0.1 format bonus in half its samples: with
    std-normalized advantages the shaped rewards of the second give |A| = 1 (as
    "learnable" as p = 0.5). Every teacher signal and filter decision is the same for
    both; reading the shaped reward (teacher.outcome=reward) brings the old reading back."""
    plain = group_result([episode(True) for _ in range(8)])
    bonus = group_result([episode(True, 0.1 * (i % 2)) for i in range(8)])
    assert plain.rewards != bonus.rewards  # the update sees the bonus ...
    assert plain.mean_abs_advantage == bonus.mean_abs_advantage == 0.0  # ... the teacher does not
    assert plain.outcomes == bonus.outcomes == [1.0] * 8

    arms = TrainingTasks(ParamSpace([Categorical("arm", ("a", "b", "c"))]), HeldOut())
    for signal in SIGNALS:
        for sampler in ("sec", "dump", "proportional"):
            a = make_teacher("bandit", arms, signal=signal, sampler=sampler)
            b = make_teacher("bandit", arms, signal=signal, sampler=sampler)
            a.update([plain])
            b.update([bonus])
            np.testing.assert_array_equal(a.signals(), b.signals())
            np.testing.assert_array_equal(a.probabilities(), b.probabilities())
    a, b = make_teacher("alp_gmm", arms), make_teacher("alp_gmm", arms)
    a.update([plain, plain])
    b.update([bonus, bonus])
    np.testing.assert_array_equal(a.episodes_table()[1], b.episodes_table()[1])
    np.testing.assert_array_equal(a.episodes_table()[2], b.episodes_table()[2])
    for f in (DynamicSampling(), PassRateBand(0.1, 0.9)):
        assert f.keep(plain) is f.keep(bonus) is False  # all right: nothing to learn either way

    # The shaped reading, as it was: the bonus group looks maximally learnable.
    shaped = group_result([episode(True, 0.1 * (i % 2)) for i in range(8)], outcome="reward")
    assert shaped.mean_abs_advantage == pytest.approx(1.0, abs=1e-4)
    assert DynamicSampling().keep(shaped)
    # A named part reads that part only: the format part does differ in the bonus group.
    assert group_result([episode(True, 0.1 * (i % 2)) for i in range(8)], outcome="part:format").outcomes[:2] == [
        0.0,
        pytest.approx(0.1),
    ]
    # Half right: the success signal is what it was (|A| = 2 sqrt(p (1 - p)) = 1 at p = 0.5).
    half = group_result([episode(i % 2 == 0, 0.1) for i in range(8)])
    assert half.mean_abs_advantage == pytest.approx(1.0, abs=1e-4) and DynamicSampling().keep(half)


def test_collected_batches_keep_their_outcomes_through_a_checkpoint():
    from agentgym.grpo.collect import Collected

    g = group_result([episode(True, 0.1 * (i % 2)) for i in range(4)], outcome="part:format")
    back = Collected.from_dict(json.loads(json.dumps(Collected(g.episodes, [g], {}).to_dict())))
    assert back.results[0].outcomes == g.outcomes and back.results[0].mean_abs_advantage == g.mean_abs_advantage


# ----- teacher defaults act within a short run -----------------------------------------

ARMS = ("a", "b", "c", "d")
STEPS, TASKS_PER_STEP, G = 50, 4, 8


def synthetic_run(name: str, options: dict, seed: int) -> tuple[float, float]:
    """A seeded student with four arms from easy to out of reach (success sigmoid(skill -
    difficulty)); an arm's skill grows with the mean |advantage| of its groups, so it
    improves as often as it is practised. Returns the teacher's lowest entropy ratio and
    highest max-probability ratio over 50 steps of 4 groups of 8."""
    tasks = TrainingTasks(ParamSpace([Categorical("arm", ARMS)]), HeldOut())
    teacher = make_teacher(name, tasks, seed=seed, **options)
    rng = np.random.default_rng(100 + seed)
    difficulty, skill = np.array([-3.0, -0.5, 1.0, 4.0]), np.zeros(len(ARMS))
    lowest, highest = 1.0, 1.0
    for _ in range(STEPS):
        groups = []
        p = 1.0 / (1.0 + np.exp(-(skill - difficulty)))
        for spec in teacher.sample(TASKS_PER_STEP):
            k = ARMS.index(spec.params["arm"])
            wins = rng.random(G) < p[k]
            r = wins.astype(float)
            abs_adv = float(np.abs((r - r.mean()) / (r.std() + 1e-6)).mean())
            groups.append(GroupResult(spec, r.tolist(), wins.tolist(), abs_adv))
            skill[k] += 0.15 * abs_adv
        teacher.update(groups)
        m = teacher.metrics()
        lowest, highest = min(lowest, m["teacher/entropy_ratio"]), max(highest, m["teacher/max_prob_ratio"])
    return lowest, highest


def departed(lowest: float, highest: float) -> bool:
    return lowest < 0.95 or highest >= 1.5


@pytest.mark.parametrize("name", ["bandit", "alp_gmm"])
def test_a_teacher_at_its_defaults_leaves_uniform_within_50_steps(name):
    """At the defaults a trainer gives a 50-step run of 4 tasks (the options users leave
    unset), both learning teachers sample measurably non-uniformly on every seed; at the
    old defaults (SEC alpha 0.1, tau 1.0; ALP-GMM fit_rate 250) they stay near uniform."""
    defaults = run_options(name, STEPS, TASKS_PER_STEP)
    old = {"sec_alpha": 0.1, "sec_tau": 1.0} if name == "bandit" else {"fit_rate": 250}
    for seed in range(3):
        now = synthetic_run(name, defaults, seed)
        before = synthetic_run(name, {**defaults, **old}, seed)
        assert departed(*now), (seed, now)
        assert not departed(*before), (seed, before)


def test_defaults_and_run_length_options():
    arms = TrainingTasks(ParamSpace([Categorical("arm", ARMS)]), HeldOut())
    b = make_teacher("bandit", arms)
    assert (b.sec_alpha, b.sec_tau, b.eps_decay) == (0.5, 0.3, 320.0)
    assert make_teacher("bandit", arms, signal="p1p").sec_tau == pytest.approx(0.075)
    assert make_teacher("bandit", arms, sampler="proportional", **run_options("bandit", 12, 4)).eps_decay == 3.0
    assert make_teacher("bandit", arms, sec_tau=1.0, total_steps=12).sec_tau == 1.0  # the user's option wins
    # ALP-GMM: a fifth of the run's groups, within [20, 250]; the paper's 250 without a length.
    assert make_teacher("alp_gmm", arms).fit_rate == 250
    assert make_teacher("alp_gmm", arms, **run_options("alp_gmm", 12, 4)).fit_rate == 20  # 48 groups
    assert make_teacher("alp_gmm", arms, **run_options("alp_gmm", 50, 4)).fit_rate == 40
    assert make_teacher("alp_gmm", arms, **run_options("alp_gmm", 10_000, 8)).fit_rate == 250
    assert make_teacher("alp_gmm", arms, fit_rate=150, total_groups=48).fit_rate == 150
    assert make_teacher("alp_gmm", arms).random_task_ratio == 0.2
    assert run_options("random", 12, 4) == {} and run_options("schedule", 12, 4) == {"total_steps": 12}


def test_the_trainer_gives_teachers_the_run_length(tmp_path):
    from agentgym.grpo.setup import check_config

    base = ["model.name=tiny", "env.id=test/no-e-v0", "rollout.tasks_per_step=4", "train.steps=12"]
    _, t, _ = check_config(load_config(None, [*base, "teacher.name=alp_gmm"]))
    assert t.fit_rate == 20 and t.total_groups == 48
    _, t, _ = check_config(load_config(None, [*base, "teacher.name=alp_gmm", "teacher.options={fit_rate: 30}"]))
    assert t.fit_rate == 30
    warm = ["warmup.source=rejection", "warmup.steps=4", "teacher.name=bandit"]
    _, t, _ = check_config(load_config(None, [*base, *warm, "teacher.options={sampler: proportional}"]))
    assert t.total_steps == 16 and t.eps_decay == 4.0  # rejection warm-start steps sample too
    with pytest.raises(ConfigError, match="teacher.outcome"):
        check_config(load_config(None, [*base, "teacher.name=bandit", "teacher.options={outcome: reward}"]))


def test_spread_metrics_and_the_run_verdict(tmp_path):
    assert spread_metrics(np.full(4, 0.25)) == {"teacher/entropy_ratio": 1.0, "teacher/max_prob_ratio": 1.0}
    m = spread_metrics(np.array([0.7, 0.1, 0.1, 0.1]))
    # H = -(0.7 ln 0.7 + 3 * 0.1 ln 0.1) = 0.940448; / ln 4 = 0.678390
    assert m["teacher/entropy_ratio"] == pytest.approx(0.678390, abs=1e-6)
    assert m["teacher/max_prob_ratio"] == pytest.approx(2.8)
    # Against an uneven uniform (held-out corners): sampling like it is ratio 1.
    u = np.array([0.5, 0.3, 0.2, 0.0])
    assert spread_metrics(u, u) == {"teacher/entropy_ratio": 1.0, "teacher/max_prob_ratio": 1.0}

    def verdict(rows):
        path = tmp_path / "metrics.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return teacher_summary("bandit", path)

    flat = [{"step": s, "kind": "train", "teacher/entropy_ratio": 1.0, "teacher/max_prob_ratio": 1.0} for s in (1, 2)]
    assert verdict(flat)["line"] == "teacher: stayed uniform (entropy 1.00 of uniform)"
    rows = [*flat, {"step": 3, "kind": "train", "teacher/entropy_ratio": 0.62, "teacher/max_prob_ratio": 2.4}]
    rows.append({"step": 3, "kind": "eval", "eval/success": 0.5})
    v = verdict(rows)
    assert v["verdict"] == "departed" and v["entropy_ratio_min_step"] == 3
    assert v["line"].startswith("teacher: departed from uniform (entropy 0.62 of uniform at its lowest, step 3")
    near = [{"step": 1, "kind": "train", "teacher/entropy_ratio": 0.98, "teacher/max_prob_ratio": 1.3}]
    assert verdict(near)["verdict"] == "near_uniform"
    assert verdict([{"step": 1, "kind": "train"}])["verdict"] == "unknown"


def test_every_teacher_reports_its_spread():
    space = ParamSpace([Categorical("arm", ARMS), Continuous("x", 0.0, 1.0)])
    tasks = TrainingTasks(space, HeldOut())
    for name in ("random", "schedule", "bandit", "alp_gmm"):
        m = make_teacher(name, tasks).metrics()
        assert 0.0 <= m["teacher/entropy_ratio"] <= 1.0 and m["teacher/max_prob_ratio"] >= 1.0 - 1e-9, name
        if name != "schedule":  # nothing learned yet: uniform
            assert m["teacher/entropy_ratio"] == pytest.approx(1.0) and m["teacher/max_prob_ratio"] == pytest.approx(
                1.0
            )


# ----- a fresh optimizer for GRPO after the warm start ----------------------------------


def _warm_cfg(tmp_path, *extra):
    # Reward 1 for a reply without the letter e: some replies of the random tiny model, so
    # the warm start (rejection fine-tuning) and the GRPO step both have gradients (seed 1:
    # both warm-start steps keep some episodes).
    return load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "seed=1",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            "rollout.tasks_per_step=2",
            "rollout.group_size=8",
            "rollout.max_new_tokens=3",
            "grpo.lr=3e-3",
            "grpo.mask_truncated=false",
            "warmup.source=rejection",
            "warmup.steps=2",
            "warmup.lr=3e-3",
            "train.steps=1",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
            *extra,
        ],
    )


def _three_steps(cfg) -> tuple[object, list[dict], dict]:
    """Run 2 warm-start steps and 1 GRPO step; returns the trainer, the records and the
    gradients the GRPO step's optimizer step saw (after clipping)."""
    from agentgym.grpo.trainer import GRPOTrainer

    tr = GRPOTrainer(cfg, quiet=True)
    grads: dict[int, torch.Tensor] = {}

    def keep_grads(opt, args, kwargs):
        grads.clear()
        grads.update(
            {id(p): p.grad.detach().clone() for g in opt.param_groups for p in g["params"] if p.grad is not None}
        )

    tr.optimizer.register_step_pre_hook(keep_grads)
    try:
        records = [tr.step_once() for _ in range(3)]
    finally:
        tr.close()
    return tr, records, grads


def test_grpo_after_a_warm_start_starts_with_a_fresh_adamw_state(tmp_path):
    """After the first GRPO step Adam's moments hold that step's gradient alone:
    exp_avg = (1 - beta1) g, exp_avg_sq = (1 - beta2) g^2, step 1. With
    warmup.reset_optimizer=false they still carry the SFT steps (0.9 of them here)."""
    tr, records, grads = _three_steps(_warm_cfg(tmp_path))
    assert [r["kind"] for r in records] == ["sft", "sft", "train"]
    assert records[2]["optimizer/reset"] == 1.0 and "optimizer/reset" not in records[1]
    b1, b2 = tr.optimizer.param_groups[0]["betas"]
    assert sum(float(g.abs().sum()) for g in grads.values()) > 0  # the GRPO step had a gradient
    for group in tr.optimizer.param_groups:
        for p in group["params"]:
            state, g = tr.optimizer.state[p], grads[id(p)]
            assert float(state["step"]) == 1.0
            torch.testing.assert_close(state["exp_avg"], (1 - b1) * g, rtol=1e-6, atol=1e-12)
            torch.testing.assert_close(state["exp_avg_sq"], (1 - b2) * g * g, rtol=1e-6, atol=1e-16)

    kept, _, grads = _three_steps(_warm_cfg(tmp_path / "kept", "warmup.reset_optimizer=false"))
    p = next(p for p in kept.optimizer.param_groups[0]["params"] if float(grads[id(p)].abs().sum()) > 0)
    state = kept.optimizer.state[p]
    assert float(state["step"]) == 3.0
    assert not torch.allclose(state["exp_avg"], (1 - b1) * grads[id(p)], rtol=1e-3, atol=1e-9)


def test_a_run_reads_the_outcome_it_names(tmp_path):
    """teacher.outcome reaches the collector: a named part is what the teacher hears, and
    a part no episode reports is said once (its outcome reads 0)."""
    import warnings

    from agentgym.grpo.trainer import GRPOTrainer

    cfg = _warm_cfg(tmp_path, "warmup.source=none", "warmup.steps=0", "teacher.outcome=part:no_e")
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            batch = tr.collector.collect()
        assert all(r.outcomes == [e.reward_parts["no_e"] for e in r.episodes] for r in batch.results)
    finally:
        tr.close()
    cfg = _warm_cfg(tmp_path / "typo", "warmup.source=none", "warmup.steps=0", "teacher.outcome=part:no_ee")
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        with pytest.warns(RuntimeWarning, match=r"reports a reward part 'no_ee' \(they report: no_e\)"):
            batch = tr.collector.collect()
        assert all(r.outcomes == [0.0] * len(r.episodes) for r in batch.results)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            tr.collector.collect()  # said once
    finally:
        tr.close()
