"""The math environments through agentgym's public API: registration, determinism,
oracle, rewards, multi-turn retries, hostile actions and held-out sampling."""

from __future__ import annotations

import math
import re

import gymnasium
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentgym
from agentgym import TaskSpec

FAMILIES = ("arithmetic", "fractions", "linear", "word")
ALL_IDS = [f"math/{f}-{v}" for f in FAMILIES for v in ("v0", "retry-v0")]
#: Parameters with plenty of distinct tasks, to see seeds make a difference.
RICH_PARAMS = {
    "arithmetic": {"digits": 3, "n_operands": 3, "operators": "+-*/", "negatives": True},
    "fractions": {"kind": "fraction", "n_operands": 3, "max_denominator": 12, "operators": "+-*/"},
    "linear": {"form": "ax+b=cx+d", "coeff_max": 20, "fractional_solution": False},
    "word": {"steps": 3, "distractors": 1, "magnitude": 2, "theme": "cooking"},
}


def test_all_ids_are_registered_through_the_entry_point():
    specs = {s.id: s for s in agentgym.list_envs()}
    for env_id in ALL_IDS:
        assert env_id in specs
        assert specs[env_id].source == "agentgym-math"
        assert specs[env_id].description
        assert specs[env_id].kwargs["max_turns"] == (3 if "retry" in env_id else 1)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_make_gives_the_math_prompt(env_id):
    # (check_env and the entry point: tests/test_conformance.py)
    env = gymnasium.make(env_id)
    obs, info = env.reset(seed=7)
    assert obs[0]["role"] == "system" and "\\boxed{}" in obs[0]["content"]
    assert obs[1]["role"] == "user" and obs[1]["content"]


@pytest.mark.parametrize("family", FAMILIES)
def test_same_spec_same_task_and_seeds_vary(family):
    params = RICH_PARAMS[family]
    a, b = agentgym.make(f"math/{family}-v0"), agentgym.make(f"math/{family}-v0")
    spec = TaskSpec(params, 12345)
    msgs_a, _ = a.reset(options={"task": spec})
    oracle_a = a.oracle()
    b.reset(options={"task": TaskSpec(params, 999)})  # some other task in between
    msgs_b, info = b.reset(options={"task": TaskSpec(dict(params), 12345)})
    assert msgs_a == msgs_b and oracle_a == b.oracle()
    assert info["task"] == {"params": params, "seed": 12345}
    # A dict spec is the same task too.
    msgs_c, _ = b.reset(options={"task": {"params": params, "seed": 12345}})
    assert msgs_c == msgs_a

    texts = set()
    for seed in range(60):
        msgs, _ = a.reset(options={"task": TaskSpec(params, seed)})
        texts.add(msgs[1]["content"])
    assert len(texts) >= 55


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_oracle_is_always_correct(env_id):
    env = agentgym.make(env_id)
    rng = np.random.default_rng(0)
    for _ in range(300):
        env.reset(options={"task": env.sample_train_task(rng)})
        obs, reward, terminated, truncated, info = env.step(env.oracle())
        assert info["success"] is True and terminated and not truncated
        assert info["error"] is None
        assert reward == pytest.approx(env.correct_reward + env.format_reward)
        assert info["reward_parts"] == pytest.approx({"correct": 1.0, "format": 0.1})
        assert obs == []


def test_reward_kwargs_and_bad_max_turns():
    env = agentgym.make("math/arithmetic-v0", correct_reward=2.0, format_reward=0.0)
    env.reset(options={"task": TaskSpec(RICH_PARAMS["arithmetic"], 1)})
    assert env.step(env.oracle())[1] == pytest.approx(2.0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            agentgym.make("math/arithmetic-v0", max_turns=bad)
    with pytest.raises(RuntimeError):
        agentgym.make("math/arithmetic-v0").oracle()


@pytest.mark.parametrize("family", FAMILIES)
def test_single_turn_wrong_and_missing_answers(family):
    env = agentgym.make(f"math/{family}-v0")
    spec = TaskSpec(RICH_PARAMS[family], 3)
    env.reset(options={"task": spec})
    wrong = f"\\boxed{{{env.problem.answer + 1}}}"
    obs, reward, terminated, truncated, info = env.step(wrong)
    assert terminated and not info["success"] and info["error"] is None
    assert reward == pytest.approx(0.1)  # the format part only
    assert info["reward_parts"] == {"correct": 0.0, "format": 0.1}

    env.reset(options={"task": spec})
    obs, reward, terminated, truncated, info = env.step("I think it is big.")
    assert terminated and not info["success"] and reward == 0.0
    assert "\\boxed{}" in info["error"]


def _wrong(env) -> str:
    return f"Hmm. \\boxed{{{env.problem.answer - 3}}}"


@pytest.mark.parametrize("family", FAMILIES)
def test_retry_rewards_decrease_with_turns(family):
    env = agentgym.make(f"math/{family}-retry-v0")
    spec = TaskSpec(RICH_PARAMS[family], 42)
    finals = []
    for n_wrong in range(3):
        env.reset(options={"task": spec})
        answer_text = env.problem.answer_text
        for turn in range(n_wrong):
            obs, reward, terminated, truncated, info = env.step(_wrong(env))
            assert reward == 0.0 and not terminated and not truncated and not info["success"]
            assert info["turn"] == turn + 1
            assert obs == [{"role": "user", "content": "That is not correct. Try again."}]
            # The feedback never gives the answer away.
            assert answer_text not in obs[0]["content"] and not re.search(r"\d", obs[0]["content"])
        obs, reward, terminated, truncated, info = env.step(env.oracle())
        assert terminated and info["success"]
        finals.append(reward)
    assert finals == pytest.approx([1.0 + 0.1, 1.0 * (1 - 1 / 3) + 0.1, 1.0 * (1 - 2 / 3) + 0.1])
    assert finals[0] > finals[1] > finals[2] > 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_retry_episode_ends_after_max_turns_wrong(family):
    env = agentgym.make(f"math/{family}-retry-v0")
    env.reset(options={"task": TaskSpec(RICH_PARAMS[family], 5)})
    steps = [env.step(_wrong(env)) for _ in range(env.max_turns)]
    assert [s[2] for s in steps] == [False, False, True]
    assert not any(s[4]["success"] for s in steps)
    assert steps[-1][1] == pytest.approx(0.1)  # an answer, but a wrong one
    with pytest.raises(RuntimeError):
        env.step(env.oracle())


def test_retry_without_an_answer_explains_the_format():
    env = agentgym.make("math/linear-retry-v0")
    env.reset(options={"task": TaskSpec(RICH_PARAMS["linear"], 1)})
    obs, reward, terminated, _, info = env.step("no idea")
    assert not terminated and reward == 0.0
    assert "\\boxed{}" in info["error"] and "\\boxed{}" in obs[0]["content"]
    assert "Try again" in obs[0]["content"]


@pytest.mark.parametrize("action", [None, b"\\boxed{1}", 7, 3.5, ["\\boxed{1}"], {"a": 1}, "x" * 70_000])
def test_unusable_actions_give_an_error(action):
    env = agentgym.make("math/word-retry-v0")
    env.reset(options={"task": TaskSpec(RICH_PARAMS["word"], 2)})
    obs, reward, terminated, truncated, info = env.step(action)
    assert isinstance(info["error"], str) and info["error"]
    assert math.isfinite(reward) and not info["success"]


ACTIONS = st.one_of(
    st.just(""),
    st.text(max_size=400),
    st.lists(st.integers(0, 0x10FFFF), max_size=300).map(lambda cps: "".join(map(chr, cps))),
    st.binary(max_size=400).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.lists(
        st.sampled_from(
            [
                "\\boxed{",
                "\\fbox{",
                "}",
                "{",
                "\\frac",
                "\\dfrac",
                "12",
                "-",
                "/",
                ".",
                "^",
                "$",
                "\\sqrt",
                "answer is ",
                "Answer:",
                "x =",
                "\\left(",
                "\\right)",
                "\x00",
                "\ud800",
                " ",
                "\n",
                "!",
            ]
        ),
        max_size=60,
    ).map("".join),
    st.lists(st.one_of(st.integers(), st.fractions().map(str), st.text(max_size=6)), max_size=300).map(
        lambda xs: "".join(f"\\boxed{{{x}}}" for x in xs)
    ),
    st.text(min_size=1, max_size=5).map(lambda p: (p * (1_000_000 // len(p) + 1))[:1_000_000]),
    st.integers(1, 60_000).map(lambda n: "\\boxed{" * n),
)


@pytest.fixture(scope="module")
def fuzz_envs():
    return {fid: agentgym.make(fid) for fid in ("math/fractions-v0", "math/linear-retry-v0")}


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(action=ACTIONS, seed=st.integers(0, 2**31 - 1), retry=st.booleans())
def test_fuzz_step_never_raises(fuzz_envs, action, seed, retry):
    from agentgym_math.verifier import extract_answer, last_number

    env = fuzz_envs["math/linear-retry-v0" if retry else "math/fractions-v0"]
    env.reset(seed=seed)
    obs, reward, terminated, truncated, info = env.step(action)
    assert isinstance(reward, float) and math.isfinite(reward)
    assert isinstance(info["success"], bool)
    assert isinstance(obs, list) and env.observation_space.contains(obs)
    no_answer = len(action) > env.max_action_chars or (extract_answer(action) is None and last_number(action) is None)
    if not info["success"] and no_answer:
        assert isinstance(info["error"], str) and info["error"]
    if info["error"] is not None:
        assert not info["success"]


@pytest.mark.parametrize("family", FAMILIES)
def test_training_sampling_never_returns_held_out_tasks(family):
    env_cls = type(agentgym.make(f"math/{family}-v0"))
    region, seeds = env_cls.held_out.region, env_cls.held_out.seeds
    assert region is not None
    region.check_against(env_cls.param_space)
    rng = np.random.default_rng(2024)
    # Only the region's box is excluded: each of its constraints alone is still trained on.
    partial = dict.fromkeys(region.constraints, 0)
    for _ in range(100_000):
        spec = env_cls.sample_train_task(rng)
        assert not region.contains(spec.params), spec
        assert spec.seed not in seeds
        for key, allowed in region.constraints.items():
            partial[key] += spec.params[key] in allowed
    assert all(n > 1000 for n in partial.values()), partial


@pytest.mark.parametrize("family", FAMILIES)
def test_held_out_tasks_cover_the_region_and_work(family):
    env = agentgym.make(f"math/{family}-v0")
    tasks = type(env).held_out_tasks(40, seed=1)
    inside = [t for t in tasks if env.held_out.region.contains(t.params)]
    assert len(inside) >= 10
    for t in tasks:
        env.reset(options={"task": t})
        assert env.step(env.oracle())[4]["success"]


def test_render_shows_the_transcript():
    env = agentgym.make("math/arithmetic-retry-v0", render_mode="ansi")
    env.reset(options={"task": TaskSpec(RICH_PARAMS["arithmetic"], 8)})
    env.step(_wrong(env))
    env.step(env.oracle())
    text = env.render()
    assert "[user] What is" in text and "Try again" in text and env.oracle() in text


def test_bare_final_number_counts_without_format_reward_unless_strict():
    from agentgym import TaskSpec

    spec = TaskSpec({"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}, seed=3)
    lenient, strict = agentgym.make("math/arithmetic-v0"), agentgym.make("math/arithmetic-v0", strict_format=True)
    lenient.reset(options={"task": spec})
    strict.reset(options={"task": spec})
    gold = lenient.problem.answer_text
    reply = f"First 1 + 1 = 2, and then the sum is {gold}."
    _, r, _, _, info = lenient.step(reply)
    assert info["success"] and r == 1.0 and info["reward_parts"] == {"correct": 1.0, "format": 0.0}
    _, r, _, _, info = strict.step(reply)
    assert not info["success"] and r == 0.0 and "no final answer" in info["error"]
    lenient.reset(options={"task": spec})
    _, r, _, _, info = lenient.step(f"The answer is \\boxed{{{gold}}}.")
    assert r == pytest.approx(1.1) and info["reward_parts"]["format"] == 0.1
    lenient.reset(options={"task": spec})
    _, r, _, _, info = lenient.step(f"{gold} is what you get if you add 1000")  # the LAST number counts
    assert not info["success"] and info["error"] is None


def test_system_prompt_is_configurable():
    env = agentgym.make("math/word-v0", system_prompt="Be brief.")
    messages, _ = env.reset(seed=0)
    assert messages[0] == {"role": "system", "content": "Be brief."}
