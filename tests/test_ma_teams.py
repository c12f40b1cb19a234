"""Pioneer/observer and solver/critic teams over a single-agent task family."""

from __future__ import annotations

import pytest

pytest.importorskip("agentgym_multiagent")
pytest.importorskip("agentgym_math")

import numpy as np
from agentgym_multiagent.teams import (
    PioneerObserverEnv,
    parse_verdict,
    register_team_game,
    team_game_class,
)

import agentgym
from agentgym import TaskSpec
from agentgym.registry import _REGISTRY

PO, SC = "multiagent/pioneer-observer-v0", "multiagent/solver-critic-v0"


def _task(env, seed, **extra):
    params = {**type(env).sample_train_task(np.random.default_rng(seed)).params, "opponent": "self", "seat": 0, **extra}
    return TaskSpec(params, seed)


def _inner_verdict(env, text):
    """The single-agent env's own judgement of ``text`` on the same task."""
    single = agentgym.make(env.task_env)
    inner_params = {k: v for k, v in env.task.params.items() if k not in ("opponent", "seat")}
    single.reset(options={"task": TaskSpec(inner_params, env.task.seed)})
    return single.step(text)[4]["success"]


def test_question_and_verifier_are_the_single_agent_env_s():
    env = agentgym.make(PO)
    single = agentgym.make("math/arithmetic-v0")
    for seed in range(20):
        task = _task(env, seed)
        env.reset(options={"task": task})
        msgs, _ = single.reset(options={"task": TaskSpec({k: task.params[k] for k in single.param_space.names}, seed)})
        assert env.observe("pioneer")["messages"][-1] == msgs[-1]
        assert env.gold == single.oracle()
        for text in (env.gold, "The answer is \\boxed{0.5}", "no idea", f"{env.gold} or maybe 3"):
            assert env.judge(text) == _inner_verdict(env, text)


@pytest.mark.parametrize("pioneer_right", [True, False])
@pytest.mark.parametrize("observer_right", [True, False])
def test_pioneer_observer_rewards(pioneer_right, observer_right):
    env = agentgym.make(PO, shared_reward=1.0, individual_reward=0.25)
    env.reset(options={"task": _task(env, 5)})
    wrong = "The answer is \\boxed{123456789}."
    assert env.agent_selection == "pioneer"
    first = env.gold if pioneer_right else wrong
    env.step(first)
    assert env.rewards["pioneer"] == (0.25 if pioneer_right else 0.0)
    assert env.agent_selection == "observer"
    seen = env.observe("observer")["messages"]
    assert seen[0]["role"] == "system" and "observer" in seen[0]["content"]
    assert env.question in seen[-1]["content"] and first in seen[-1]["content"]
    env.step(env.gold if observer_right else wrong)
    assert all(env.terminations.values())
    assert env.rewards == {"pioneer": 1.0 * observer_right, "observer": 1.25 * observer_right}
    assert env.infos["observer"]["reward_parts"] == {
        "shared": 1.0 * observer_right,
        "individual": 0.25 * observer_right,
    }
    assert env.infos["pioneer"]["success"] == env.infos["observer"]["success"] == observer_right


def test_observer_echo_repeats_the_pioneer():
    env = agentgym.make(PO)
    env.reset(options={"task": _task(env, 2)})
    rng = np.random.default_rng(0)
    env.step("I think \\boxed{7}")
    assert env.scripted_action("observer", "echo", rng) == "I think \\boxed{7}"


def test_random_answers_are_right_about_half_the_time():
    env = agentgym.make(PO)
    rng = np.random.default_rng(0)
    right = 0
    for seed in range(200):
        env.reset(options={"task": _task(env, seed)})
        right += env.judge(env.scripted_action("pioneer", "random", rng))
        assert env.judge(env.scripted_action("pioneer", "oracle", rng))
    assert 70 < right < 130


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("correct", "correct"),
        ("Incorrect. The sum is wrong.", "incorrect"),
        ("This is not correct: 3 + 4 is 7.", "incorrect"),
        ("Correct - although an incorrect step appears, the result holds.", "correct"),
        ("I think it's CORRECT.", "correct"),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == (verdict, None)


def test_parse_verdict_refuses_text_without_one():
    for text in ("", "yes", "correctly done?", "the answer is 5"):
        verdict, error = parse_verdict(text)
        assert verdict is None and "correct or incorrect" in error


def _solver_critic(first_right, verdict, revised_right=None):
    env = agentgym.make(SC, solver_reward=1.0, critic_reward=1.0)
    env.reset(options={"task": _task(env, 9)})
    wrong = "The answer is \\boxed{987654321}."
    returns = {a: 0.0 for a in env.possible_agents}

    def step(text):
        env.step(text)
        for a, r in env.rewards.items():
            returns[a] += r

    step(env.gold if first_right else wrong)
    assert env.agent_selection == "critic"
    assert "Start your reply with one word" in env.observe("critic")["messages"][-1]["content"]
    step(f"{verdict}, because I checked it.")
    if verdict == "incorrect":
        assert env.agent_selection == "solver" and not any(env.terminations.values())
        assert "You may revise" in env.observe("solver")["messages"][-1]["content"]
        step(env.gold if revised_right else wrong)
    assert all(env.terminations.values())
    return env, returns


@pytest.mark.parametrize("first_right", [True, False])
@pytest.mark.parametrize("verdict", ["correct", "incorrect"])
@pytest.mark.parametrize("revised_right", [True, False])
def test_solver_critic_rewards(first_right, verdict, revised_right):
    env, returns = _solver_critic(first_right, verdict, revised_right)
    critic_right = (verdict == "correct") == first_right
    final_right = first_right if verdict == "correct" else revised_right
    assert returns == {"solver": float(final_right), "critic": float(critic_right)}
    assert env.infos["solver"]["success"] == final_right
    assert env.infos["critic"]["success"] == critic_right


def test_scripted_oracle_critic_judges_truthfully():
    env = agentgym.make(SC)
    rng = np.random.default_rng(1)
    for seed in range(60):
        env.reset(options={"task": _task(env, seed)})
        answer = env.scripted_action("solver", "random", rng)
        env.step(answer)
        verdict, _ = parse_verdict(env.scripted_action("critic", "oracle", rng))
        assert (verdict == "correct") == _inner_verdict(env, answer)


def test_unparseable_verdict_is_an_error_and_the_critic_tries_again():
    env = agentgym.make(SC, invalid_action_penalty=-0.3)
    env.reset(options={"task": _task(env, 1)})
    env.step(env.gold)
    env.step("hmm, let me think")
    assert env.agent_selection == "critic"
    assert env.infos["critic"]["reward_parts"] == {"invalid_action": -0.3}
    assert "correct or incorrect" in env.infos["critic"]["error"]


def test_task_env_kwarg_and_other_families():
    assert agentgym.make(PO, task_env="math/arithmetic-v0").task_env == "math/arithmetic-v0"
    with pytest.raises(ValueError, match="register_team_game"):
        agentgym.make(PO, task_env="math/linear-v0")
    cls = team_game_class("pioneer-observer", "math/linear-v0")
    assert cls is team_game_class("pioneer-observer", "math/linear-v0")
    assert issubclass(cls, PioneerObserverEnv) and cls.task_env == "math/linear-v0"
    linear = agentgym.spec("math/linear-v0").load_class()
    assert cls.param_space.names == [*linear.param_space.names, "opponent", "seat"]
    assert cls.held_out.region == linear.held_out.region
    register_team_game("test/pioneer-observer-linear-v0", "pioneer-observer", "math/linear-v0")
    try:
        env = agentgym.make("test/pioneer-observer-linear-v0")
    finally:
        _REGISTRY.pop("test/pioneer-observer-linear-v0")
    assert type(env) is cls
    env.reset(seed=0)
    assert "Solve for x" in env.question
    env.step(env.gold)
    env.step(env.gold)
    assert env.infos["observer"]["success"]
    with pytest.raises(ValueError):
        team_game_class("debate", "math/linear-v0")


def test_word_problem_variants_play():
    for env_id in ("multiagent/pioneer-observer-word-v0", "multiagent/solver-critic-word-v0"):
        env = agentgym.make(env_id)
        env.reset(seed=3)
        assert env.task_env == "math/word-v0" and "theme" in env.task.params
        env.step(env.gold)
        assert env.rewards[env.possible_agents[0]] > 0
