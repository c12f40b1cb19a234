"""Teachers, filters and make_teacher: update rules by hand, exact state round-trips, and
no held-out spec ever sampled."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agentgym.curriculum import (
    ALPGMMTeacher,
    BanditTeacher,
    DynamicSampling,
    FilteredSampling,
    GroupResult,
    PassRateBand,
    RandomTeacher,
    ScheduleTeacher,
    TrainingTasks,
    dim_cells,
    filtered_sampling,
    make_teacher,
    teacher_options,
)
from agentgym.curriculum.bandit import epsilon, proportional, softmax, ucb
from agentgym.curriculum.cells import cell_index, value_from_unit
from agentgym.env import TaskSpec
from agentgym.spaces import Categorical, Continuous, HeldOut, Integer, ParamSpace, Region

# A small space whose held-out corner (level 7-9 with x >= 0.5) is where rewards are high.
SMALL = ParamSpace([Integer("level", 0, 9), Continuous("x", 0.0, 1.0)])
SMALL_HELD = HeldOut(
    seeds=range(1_000_000_000, 1_000_100_000), region=Region({"level": [7, 8, 9], "x": (0.5, 1.0)}, name="corner")
)
# A mixed space: categorical + integer + continuous (log), held out: op "*" with noise >= 1.
MIXED = ParamSpace(
    [
        Categorical("op", ("+", "-", "*")),
        Integer("digits", 1, 6),
        Continuous("noise", 0.1, 10.0, log=True),
    ]
)
MIXED_HELD = HeldOut(
    seeds=range(1_000_000_000, 1_000_100_000), region=Region({"op": ["*"], "noise": (1.0, 10.0)}, name="hard")
)


def small_tasks() -> TrainingTasks:
    return TrainingTasks(SMALL, SMALL_HELD)


def mixed_tasks() -> TrainingTasks:
    return TrainingTasks(MIXED, MIXED_HELD)


def group(params, successes, adv=0.0, rewards=None, outcomes=None) -> GroupResult:
    """A group; its outcomes (what teachers read) are its successes unless given."""
    successes = [bool(s) for s in successes]
    rewards = [float(s) for s in successes] if rewards is None else [float(r) for r in rewards]
    return GroupResult(TaskSpec(dict(params), 0), rewards, successes, adv, outcomes=outcomes)


def three_arms(**kw) -> BanditTeacher:
    space = ParamSpace([Categorical("arm", ("a", "b", "c"))])
    return BanditTeacher(TrainingTasks(space, HeldOut()), seed=0, **kw)


# ----- bandit update rules by hand -------------------------------------------------------


def test_sec_q_update_and_softmax_on_three_arms():
    t = three_arms(signal="abs_adv", sampler="sec", sec_alpha=0.5, sec_tau=0.5)
    assert t.arms() == ["arm=a", "arm=b", "arm=c"]
    np.testing.assert_allclose(t.probabilities(), [1 / 3] * 3)  # Q = 0 everywhere
    # Batch 1: arm a has groups with |A| 0.4 and 0.8 (mean 0.6), arm b 0.2, arm c none.
    t.update([group({"arm": "a"}, [1, 0], 0.4), group({"arm": "a"}, [1, 0], 0.8), group({"arm": "b"}, [1, 0], 0.2)])
    # Q = 0.5 * 0 + 0.5 * [0.6, 0.2, 0] = [0.3, 0.1, 0]
    m = t.metrics()
    assert [m[f"teacher/arm[arm={a}]/q"] for a in "abc"] == pytest.approx([0.3, 0.1, 0.0])
    # Batch 2: only arm b, |A| 0.6. Q = 0.5 * [0.3, 0.1, 0] + 0.5 * [0, 0.6, 0] = [0.15, 0.35, 0]:
    # arm a decays although nothing bad happened to it.
    t.update([group({"arm": "b"}, [1, 0], 0.6)])
    m = t.metrics()
    assert [m[f"teacher/arm[arm={a}]/q"] for a in "abc"] == pytest.approx([0.15, 0.35, 0.0])
    # p = softmax(Q / 0.5) = softmax([0.3, 0.7, 0]): e^0.3 = 1.349859, e^0.7 = 2.013753, e^0 = 1,
    # sum 4.363612 -> [0.309344, 0.461488, 0.229168]
    np.testing.assert_allclose(t.probabilities(), [0.309344, 0.461488, 0.229168], atol=1e-6)
    assert [m[f"teacher/arm[arm={a}]/p"] for a in "abc"] == pytest.approx([0.309344, 0.461488, 0.229168], abs=1e-6)
    # The sampler follows p: over 20k draws arm b is picked about 46% of the time.
    picks = [s.params["arm"] for s in t.sample(20_000)]
    assert picks.count("b") / len(picks) == pytest.approx(0.4615, abs=0.015)


def test_dump_ucb_on_a_small_window():
    t = three_arms(signal="abs_adv", sampler="dump", dump_window=2, dump_temperature=0.1)
    # Arm a: |A| 0.2, 0.4, 0.9 -> window keeps the last two, mu_a = 0.65, n_a = 3.
    # Arm b: |A| 0.5 -> mu_b = 0.5, n_b = 1. Arm c unseen: mu_c = 0, n_c = 0. N = 4.
    t.update([group({"arm": "a"}, [1, 0], 0.2), group({"arm": "a"}, [1, 0], 0.4)])
    t.update([group({"arm": "a"}, [1, 0], 0.9), group({"arm": "b"}, [1, 0], 0.5)])
    # UCB_a = 0.65 + sqrt(2 ln 5 / 4) = 0.65 + 0.897061 = 1.547061
    # UCB_b = 0.50 + sqrt(2 ln 5 / 2) = 0.50 + 1.268636 = 1.768636
    # UCB_c = 0.00 + sqrt(2 ln 5 / 1) = 1.794123
    expected_ucb = [1.547061, 1.768636, 1.794123]
    np.testing.assert_allclose(ucb(t.signals(), [3, 1, 0]), expected_ucb, atol=1e-6)
    np.testing.assert_allclose(t.signals(), [0.65, 0.5, 0.0])
    # p = softmax(UCB / 0.1): exponents relative to c: -2.470613, -0.254863, 0
    # -> e^.. = 0.084533, 0.775022, 1 (sum 1.859555) -> p = [0.045459, 0.416778, 0.537763]
    np.testing.assert_allclose(t.probabilities(), [0.045459, 0.416778, 0.537763], atol=1e-6)
    np.testing.assert_allclose(t.probabilities(), softmax(np.array(expected_ucb), 0.1), atol=1e-5)


def test_ema_learning_progress_after_two_updates_and_p1p():
    t = three_arms(signal="ema_lp", sampler="proportional")
    assert t.signals().tolist() == [0.0, 0.0, 0.0]
    t.update([group({"arm": "a"}, [1, 0, 0, 0, 0])])  # success 0.2: fast = slow = 0.2, LP 0
    assert t.signals()[0] == 0.0
    t.update([group({"arm": "a"}, [1, 1, 1, 0, 0])])  # success 0.6
    # fast = 0.9 * 0.2 + 0.1 * 0.6 = 0.24; slow = 0.9 * 0.2 + 0.1 * 0.24 = 0.204; LP = 0.036
    assert t.signals()[0] == pytest.approx(0.036)
    assert t.metrics()["teacher/arm[arm=a]/lp"] == pytest.approx(0.036)

    p = three_arms(signal="p1p", sampler="proportional")
    np.testing.assert_allclose(p.signals(), [0.25] * 3)  # unseen arms: p = 0.5 prior
    p.update([group({"arm": "a"}, [1, 0, 0, 0, 0])])
    p.update([group({"arm": "a"}, [1, 1, 1, 0, 0])])
    # p = fast EMA = 0.24 -> p(1 - p) = 0.24 * 0.76 = 0.1824
    np.testing.assert_allclose(p.signals(), [0.1824, 0.25, 0.25])


def test_ema_on_normalized_outcomes():
    t = three_arms(signal="ema_lp", reward_range=(-1.0, 1.0))
    t.update([group({"arm": "a"}, [0, 0], outcomes=[-1.0, -1.0])])  # normalized mean 0
    t.update([group({"arm": "a"}, [0, 0], outcomes=[1.0, 3.0])])  # 1 and 3 -> 1 and 1 (clipped)
    # fast = 0.1, slow = 0.01, LP = 0.09
    assert t.signals()[0] == pytest.approx(0.09)


def test_proportional_sampler_epsilon_schedule():
    assert epsilon(0) == pytest.approx(1.0)
    assert epsilon(320) == pytest.approx(0.2 + 0.8 / math.e)  # 0.494304
    assert epsilon(320) == pytest.approx(0.494304, abs=1e-6)
    assert epsilon(10_000) == pytest.approx(0.2, abs=1e-12)
    # eps 0.5, signals [0.3, 0.1, 0]: 0.5/3 + 0.5 * [0.75, 0.25, 0] = [0.541667, 0.291667, 0.166667]
    np.testing.assert_allclose(proportional(np.array([0.3, 0.1, 0.0]), 0.5), [0.541667, 0.291667, 0.166667], atol=1e-6)
    np.testing.assert_allclose(proportional(np.zeros(4), 0.3), [0.25] * 4)  # no signal yet: uniform

    t = three_arms(signal="abs_adv", sampler="proportional")
    t.update([group({"arm": "a"}, [1, 0], 0.3), group({"arm": "b"}, [1, 0], 0.1)])
    eps = 0.2 + 0.8 * math.exp(-1 / 320)  # one update call: 0.2 + 0.8 * 0.996880 = 0.997504
    assert t.metrics()["teacher/epsilon"] == pytest.approx(eps)
    assert eps == pytest.approx(0.997504, abs=1e-6)
    np.testing.assert_allclose(t.probabilities(), eps / 3 + (1 - eps) * np.array([0.75, 0.25, 0.0]))


def test_arm_binning_of_numeric_dims():
    # Integer 1..9 (9 values > 4 bins): unit centres (v - 0.5) / 9 -> 0.056, 0.167 | 0.278, 0.389 |
    # 0.5, 0.611, 0.722 | 0.833, 0.944.
    n = Integer("n", 1, 9)
    assert [c.values for c in dim_cells(n, 4)] == [(1, 2), (3, 4), (5, 6, 7), (8, 9)]
    assert [cell_index(n, 4, v) for v in range(1, 10)] == [0, 0, 1, 1, 2, 2, 2, 3, 3]
    # An integer dim with no more values than bins keeps one cell per value.
    assert [c.values for c in dim_cells(Integer("m", 1, 4), 4)] == [(1,), (2,), (3,), (4,)]
    # Continuous [0, 2] in 4 bins of 0.5; the top edge belongs to the last bin.
    x = Continuous("x", 0.0, 2.0)
    assert [c.label for c in dim_cells(x, 4)] == ["[0,0.5]", "[0.5,1]", "[1,1.5]", "[1.5,2]"]
    assert [cell_index(x, 4, v) for v in (0.0, 0.49, 0.5, 1.0, 1.99, 2.0)] == [0, 0, 1, 2, 3, 3]
    # A log dim is binned on the log scale: 10 is halfway from 1 to 100.
    s = Continuous("s", 1.0, 100.0, log=True)
    assert [cell_index(s, 2, v) for v in (1.0, 9.9, 10.0, 100.0)] == [0, 0, 1, 1]
    # exp(log 0.1 + 1 * (log 10 - log 0.1)) rounds to 10.000000000000007: the dim clamps it.
    assert MIXED["noise"].from_unit(1.0) == 10.0 and value_from_unit(MIXED["noise"], 1.0) == 10.0
    assert value_from_unit(MIXED["noise"], 0.0) == pytest.approx(0.1)
    # SMALL: level 0..9, centres (v + 0.5) / 10 -> {0,1} {2,3,4} {5,6} {7,8,9}; x -> 4 bins.
    # 16 arms, minus the two wholly held out (level 7..9 with x in [0.5, 0.75] and [0.75, 1]) = 14.
    t = BanditTeacher(small_tasks(), bins=4)
    assert len(t.arms()) == 14
    assert "level=7..9,x=[0.5,0.75]" not in t.arms() and "level=7..9,x=[0.25,0.5]" in t.arms()
    assert t.arm_of({"level": 6, "x": 0.3}) == t.arms().index("level=5..6,x=[0.25,0.5]")
    # update maps results back to their arm.
    t.update([group({"level": 4, "x": 0.99}, [1, 0], 0.7)])
    assert t.metrics()["teacher/arm[level=2..4,x=[0.75,1]]/n"] == 1.0
    # Arm dims may be a subset: the other dims are then drawn uniformly inside each arm.
    t2 = BanditTeacher(mixed_tasks(), arm_dims=["op"])
    assert t2.arms() == ["op=+", "op=-", "op=*"]  # op=* is only partly held out: kept
    noise = [s.params["noise"] for s in t2.sample(2000) if s.params["op"] == "*"]
    assert noise and max(noise) < 1.0 and min(noise) >= 0.1


def test_bandit_rejects_bad_options():
    with pytest.raises(ValueError, match="signal"):
        three_arms(signal="nope")
    with pytest.raises(ValueError, match="sampler"):
        three_arms(sampler="nope")
    with pytest.raises(ValueError, match="held-out"):
        BanditTeacher(TrainingTasks(SMALL, HeldOut(region=Region({"level": list(range(10))}))))


# ----- schedule --------------------------------------------------------------------------


def test_schedule_frontier_positions():
    space = ParamSpace([Categorical("size", ("xs", "s", "m", "l", "xl")), Continuous("noise", 0.0, 1.0)])
    t = ScheduleTeacher(TrainingTasks(space, HeldOut()), seed=0, total_steps=8, window=0.15)
    assert t.dims == ["size"]  # default: the non-continuous dims
    # Levels 0, .25, .5, .75, 1; frontier = updates / 8.
    seen = lambda: sorted({s.params["size"] for s in t.sample(400)}, key=("xs", "s", "m", "l", "xl").index)  # noqa: E731
    assert t.frontier == 0.0 and seen() == ["xs"]
    t.update([])
    assert t.frontier == 0.125 and seen() == ["xs", "s"]  # |0 - .125| and |.25 - .125| <= .15
    for _ in range(3):
        t.update([])
    assert t.frontier == 0.5 and seen() == ["m"]  # .25 and .75 are .25 away
    for _ in range(20):
        t.update([])
    assert t.frontier == 1.0 and seen() == ["xl"]
    assert t.metrics()["teacher/frontier"] == 1.0
    # Two dims of three values: level = (rank_a + rank_b) / 2 with ranks 0, .5, 1.
    two = ParamSpace([Integer("a", 1, 3), Integer("b", 1, 3)])
    t2 = ScheduleTeacher(TrainingTasks(two, HeldOut()), total_steps=4, window=0.1)
    t2.update([])
    t2.update([])  # frontier 0.5: cells with a + b = 4 (levels .5): (1,3), (2,2), (3,1)
    assert {(s.params["a"], s.params["b"]) for s in t2.sample(300)} == {(1, 3), (2, 2), (3, 1)}


def test_schedule_by_episodes_and_held_out_cells():
    # Frontier by episodes: 2 groups of 4 rewards = 8 of 16 episodes -> 0.5.
    t = ScheduleTeacher(small_tasks(), total_steps=16, by="episodes")
    t.update([group({"level": 1, "x": 0.1}, [1, 0, 1, 0])] * 2)
    assert t.frontier == 0.5
    # At the end levels 8 and 9 (levels 8/9 = 0.889 and 1, within 0.15 of the frontier) are
    # sampled; they are held out only for x >= 0.5, so x is redrawn below it.
    for _ in range(3):
        t.update([group({"level": 1, "x": 0.1}, [1, 0, 1, 0])] * 2)
    assert t.frontier == 1.0
    specs = t.sample(500)
    assert {s.params["level"] for s in specs} == {8, 9}
    assert max(s.params["x"] for s in specs) < 0.5
    # A fully held-out hardest cell is removed: the frontier stops at the last allowed level.
    held = HeldOut(region=Region({"level": [9]}))
    t3 = ScheduleTeacher(TrainingTasks(SMALL, held), total_steps=1)
    t3.update([])
    assert {s.params["level"] for s in t3.sample(300)} == {8}


# ----- ALP-GMM ---------------------------------------------------------------------------


def plane(held: HeldOut | None = None) -> TrainingTasks:
    return TrainingTasks(ParamSpace([Continuous("u", 0.0, 1.0), Continuous("v", 0.0, 1.0)]), held or HeldOut())


def test_alp_is_distance_to_the_nearest_earlier_task():
    t = ALPGMMTeacher(plane(), fit_rate=100)
    pts = [(0.1, 0.1), (0.9, 0.9), (0.2, 0.1), (0.8, 0.9), (0.1, 0.1), (0.12, 0.1)]
    rew = [0.0, 1.0, 0.3, 0.6, 0.5, 0.45]
    t.update([group({"u": u, "v": v}, [0], outcomes=[r]) for (u, v), r in zip(pts[:3], rew[:3])])
    t.update([group({"u": u, "v": v}, [0], outcomes=[r]) for (u, v), r in zip(pts[3:], rew[3:])])
    # 0: first task, ALP 0
    # 1: nearest earlier is 0 -> |1 - 0| = 1
    # 2: nearest is 0 (0.1 away) -> |0.3 - 0| = 0.3
    # 3: nearest is 1 (0.1 away) -> |0.6 - 1| = 0.4
    # 4: repeats point 0 (distance 0) -> |0.5 - 0| = 0.5
    # 5: points 0 and 4 tie at 0.02; the most recent (4) wins -> |0.45 - 0.5| = 0.05
    _, r, alp = t.episodes_table()
    np.testing.assert_allclose(alp, [0.0, 1.0, 0.3, 0.4, 0.5, 0.05], atol=1e-12)
    np.testing.assert_allclose(r, rew)
    # Outcomes are normalized from reward_range and clipped: (-1, 1) maps 0 to 0.5 and 3 to 1.
    t2 = ALPGMMTeacher(plane(), reward_range=(-1.0, 1.0))
    t2.update([group({"u": 0.5, "v": 0.5}, [0, 0], outcomes=[0.0, 3.0])])  # mean of 0.5 and 1
    assert t2.episodes_table()[1].tolist() == [0.75]


def test_alp_tree_matches_brute_force_across_rebuilds():
    # 2,600 episodes in uneven batches (some of one row): more than two KD-tree rebuilds.
    rng = np.random.default_rng(3)
    space = ParamSpace([Integer("k", 0, 4), Continuous("u", 0.0, 1.0)])
    t = ALPGMMTeacher(TrainingTasks(space, HeldOut()), fit_rate=10_000)
    params = [{"k": int(rng.integers(5)), "u": float(rng.random())} for _ in range(2600)]
    rewards = rng.random(2600)
    i = 0
    for size in [1, 1, 700, 3, 900, 1, 994]:
        t.update([group(p, [0], outcomes=[r]) for p, r in zip(params[i : i + size], rewards[i : i + size])])
        i += size
    pts, r, alp = t.episodes_table()
    np.testing.assert_allclose(alp, ALPGMMTeacher.alp_of(pts, r), atol=1e-12)


def test_alp_gmm_fits_and_focuses_where_progress_is():
    # Rewards flip at random for u < 0.25 (high ALP) and are 0 elsewhere (ALP 0).
    tasks = plane()
    t = ALPGMMTeacher(tasks, seed=1, fit_rate=200, random_task_ratio=0.1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        specs = t.sample(50)
        t.update(
            [group(s.params, [0], outcomes=[float(rng.random() < 0.5) if s.params["u"] < 0.25 else 0.0]) for s in specs]
        )
    m = t.metrics()
    assert m["teacher/fits"] == 2 and m["teacher/gmm_components"] >= 2
    u = np.array([s.params["u"] for s in t.sample(2000)])
    # Uniform sampling would put 25% below 0.25; with 10% uniform tasks the mixture puts most there.
    assert (u < 0.25).mean() > 0.6


# ----- every teacher's state round-trips exactly -----------------------------------------


def synthetic_results(specs, rng, hot) -> list[GroupResult]:
    """G = 4 binary rewards with success 0.5 where ``hot(params)``, else 0.05."""
    out = []
    for s in specs:
        p = 0.5 if hot(s.params) else 0.05
        succ = rng.random(4) < p
        r = succ.astype(float)
        adv = np.abs(r - r.mean()) / (r.std() + 1e-6)
        out.append(GroupResult(s, r.tolist(), succ.tolist(), float(adv.mean())))
    return out


def hot_small(p) -> bool:  # next to the held-out corner
    return p["level"] >= 5 and p["x"] >= 0.35


def hot_mixed(p) -> bool:
    return p["op"] == "*" and p["noise"] >= 0.5


TEACHERS = [
    ("random", {}),
    ("schedule", {"total_steps": 30}),
    ("bandit", {"signal": "abs_adv", "sampler": "sec"}),
    ("bandit", {"signal": "abs_adv", "sampler": "dump"}),
    ("bandit", {"signal": "ema_lp", "sampler": "proportional"}),
    ("bandit", {"signal": "p1p", "sampler": "sec", "arm_dims": ["op", "digits"]}),
    ("bandit", {"signal": "ema_lp", "sampler": "dump", "bins": 3}),
    ("alp_gmm", {"fit_rate": 60, "max_components": 4}),
]


def specs_equal(a: list[TaskSpec], b: list[TaskSpec]) -> bool:
    return [s.to_dict() for s in a] == [s.to_dict() for s in b]


@pytest.mark.parametrize("name,opts", TEACHERS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in TEACHERS])
def test_state_round_trips_exactly(name, opts):
    tasks = mixed_tasks()
    rng = np.random.default_rng(0)
    a = make_teacher(name, tasks, seed=5, **opts)
    for _ in range(20):  # 160 groups: ALP-GMM fits twice (after 60 and 120)
        a.update(synthetic_results(a.sample(8), rng, hot_mixed))
    if name == "alp_gmm":
        assert a.metrics()["teacher/fits"] >= 2
    # Through JSON too: a state is plain data.
    state = json.loads(json.dumps(a.state_dict()))
    b = make_teacher(name, tasks, seed=999, **opts)
    b.load_state_dict(state)
    assert b.metrics() == a.metrics()
    assert specs_equal(a.sample(25), b.sample(25))
    feed = synthetic_results([TaskSpec({"op": "*", "digits": 2, "noise": 0.7}, 1)] * 8, rng, hot_mixed)
    a.update(feed)
    b.update(feed)
    assert specs_equal(a.sample(25), b.sample(25))
    assert b.metrics() == a.metrics()


def test_bandit_state_refuses_other_arms():
    a = BanditTeacher(small_tasks(), bins=4)
    b = BanditTeacher(small_tasks(), bins=3)
    with pytest.raises(ValueError, match="different arms"):
        b.load_state_dict(a.state_dict())


# ----- no held-out spec, ever ------------------------------------------------------------


@pytest.mark.parametrize("name,opts", TEACHERS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in TEACHERS])
def test_no_held_out_spec_is_ever_sampled(name, opts):
    # 50,000 samples on each space (100,000 per teacher), fed results that reward tasks next
    # to the held-out region, so every learning teacher is pulled toward it.
    if name == "bandit" and "arm_dims" in opts:
        opts = {**opts, "arm_dims": None}
    for tasks, hot in ((small_tasks(), hot_small), (mixed_tasks(), hot_mixed)):
        teacher = make_teacher(name, tasks, seed=7, **opts)
        rng = np.random.default_rng(1)
        region, seeds = tasks.held_out.region, tasks.held_out.seeds
        near = 0
        for _ in range(50):
            specs = teacher.sample(1000)
            assert not any(s.seed in seeds or region.contains(s.params) for s in specs)
            near += sum(hot(s.params) for s in specs)
            # Feed back a slice of the batch: the distributions move every step.
            teacher.update(synthetic_results(specs[:: 10 if name != "alp_gmm" else 40], rng, hot))
        if name in ("bandit", "alp_gmm"):
            assert near > 0  # they did go next to the region
        if name == "alp_gmm" or (opts.get("sampler"), opts.get("signal")) == ("dump", "abs_adv"):
            # ...and these two moved well past a uniform share of tasks there.
            uniform = np.mean([hot(s.params) for s in RandomTeacher(tasks, seed=0).sample(4000)])
            assert np.mean([hot(s.params) for s in specs]) > 1.5 * uniform


# ----- filters ---------------------------------------------------------------------------


def test_dynamic_sampling_and_pass_rate_band_by_hand():
    ds = DynamicSampling()
    assert ds.keep(group({}, [1, 0, 1]))  # mixed rewards
    assert not ds.keep(group({}, [1, 1, 1]))  # all equal: zero advantage
    assert not ds.keep(group({}, [0, 0], rewards=[0.5, 0.5]))
    assert not ds.keep(group({}, [0, 0], rewards=[0.5, 0.25]))  # equal successes: rewards are not read
    assert ds.keep(group({}, [0, 0], rewards=[0.5, 0.25], outcomes=[0.5, 0.25]))  # unless they are the outcomes
    assert not ds.keep(group({}, [1]))  # one reward: nothing to compare
    band = PassRateBand(0.25, 0.75)
    assert band.keep(group({}, [1, 0, 0, 0]))  # 0.25: the band includes its edges
    assert band.keep(group({}, [1, 1, 1, 0]))  # 0.75
    assert not band.keep(group({}, [1, 1, 1, 1]))  # 1.0
    assert not band.keep(group({}, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))  # 0.1
    assert not band.keep(group({}, []))
    default = PassRateBand()
    assert default.keep(group({}, [1] + [0] * 9)) and not default.keep(group({}, [1] + [0] * 10))  # 0.1 vs 0.0909
    with pytest.raises(ValueError):
        PassRateBand(0.8, 0.2)


class SpyTeacher(RandomTeacher):
    def __init__(self, tasks):
        super().__init__(tasks, seed=0)
        self.updates: list[int] = []

    def update(self, results):
        super().update(results)
        self.updates.append(len(results))


def alternating_play(g: int = 4):
    """Groups 0, 2, 4, ... have mixed rewards; 1, 3, 5, ... all zero."""
    count = [0]

    def play(specs):
        out = []
        for s in specs:
            succ = [count[0] % 2 == 0] + [False] * (g - 1)
            out.append(group(s.params, succ))
            count[0] += 1
        return out

    return play


def test_filtered_sampling_counts_dropped_rollouts_and_updates_with_every_group():
    teacher = SpyTeacher(small_tasks())
    fs = FilteredSampling(teacher, DynamicSampling(), max_rounds=3)
    kept, stats = fs(alternating_play(g=4), target=4)
    # Round 1: 4 tasks, groups 0..3 -> keep 0, 2. Round 2: 2 tasks, groups 4, 5 -> keep 4.
    # Round 3: 1 task, group 6 -> keep it: 4 kept of 7 played, 3 dropped.
    assert len(kept) == 4
    assert teacher.updates == [4, 2, 1]  # the teacher heard every group, dropped ones too
    assert stats.rounds == 3 and stats.groups_played == 7 and stats.groups_dropped == 3
    assert stats.rollouts_spent == 28 and stats.rollouts_dropped == 12 and stats.rollouts_kept == 16
    assert teacher.metrics()["teacher/groups_seen"] == 7
    # Out of rounds: everything played is spent, the batch stays short.
    never = lambda specs: [group(s.params, [0, 0, 0, 0]) for s in specs]  # noqa: E731
    kept2, stats2 = fs(never, target=3)
    assert kept2 == [] and stats2.rounds == 3 and stats2.groups_played == 9 and stats2.rollouts_dropped == 36
    assert fs.metrics()["filter/rollouts_spent"] == 28 + 36
    # The function form, with several filters at once.
    kept3, d = filtered_sampling(
        RandomTeacher(small_tasks()),
        alternating_play(g=10),
        target=2,
        filters=[DynamicSampling(), PassRateBand(0.1, 0.9)],
        max_rounds=5,
    )
    assert len(kept3) == 2 and d["groups_played"] == 3 and d["rollouts_spent"] == 30


# ----- make_teacher ----------------------------------------------------------------------


def test_make_teacher_names_and_options():
    tasks = mixed_tasks()
    assert isinstance(make_teacher("random", tasks), RandomTeacher)
    assert isinstance(make_teacher("schedule", tasks, total_steps=5), ScheduleTeacher)
    b = make_teacher("bandit", tasks, seed=3, signal="p1p", sampler="dump", bins=2)
    assert isinstance(b, BanditTeacher) and (b.signal, b.sampler, b.bins) == ("p1p", "dump", 2)
    g = make_teacher("alp_gmm", tasks, fit_rate=150, random_task_ratio=0.05)
    assert isinstance(g, ALPGMMTeacher) and (g.fit_rate, g.random_task_ratio) == (150, 0.05)
    with pytest.raises(TypeError, match="'fit_rate'"):
        make_teacher("bandit", tasks, fit_rate=3)
    with pytest.raises(TypeError, match="'window'"):
        make_teacher("random", tasks, window=3)
    with pytest.raises(ValueError, match="unknown teacher"):
        make_teacher("gan", tasks)
    assert "random_task_ratio" in teacher_options("alp_gmm") and teacher_options("random") == []
    # RandomTeacher as before.
    r = make_teacher("random", tasks, seed=1)
    r.update(synthetic_results(r.sample(6), np.random.default_rng(0), hot_mixed))
    assert r.metrics() == {"teacher/groups_seen": 6.0, "teacher/entropy_ratio": 1.0, "teacher/max_prob_ratio": 1.0}


def test_the_fixed_teacher_cycles_one_set_of_distinct_training_tasks():
    import agentgym
    from agentgym.curriculum import make_teacher

    env = agentgym.make("math/arithmetic-v0")
    tasks = env.training_tasks({"digits": [1], "n_operands": [2], "operators": ["+"], "negatives": [False]})
    t = make_teacher("fixed", tasks, seed=3, n_tasks=5)
    first = t.sample(3) + t.sample(4)
    keys = [env.content_key(s) for s in first]
    assert len(set(keys[:5])) == 5 and keys[5:] == keys[:2]  # 5 distinct problems, then round again
    assert all(tasks.is_train_content(s) for s in first)
    again = make_teacher("fixed", tasks, seed=0, n_tasks=5)
    again.load_state_dict(t.state_dict())
    assert again.sample(5) == t.sample(5)  # the same set and place after a resume
    with pytest.raises(ValueError, match="n_tasks"):
        make_teacher("fixed", tasks, n_tasks=0)
