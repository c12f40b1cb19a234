"""Multi-agent games (envs/multiagent): PettingZoo's own API tests, registration, tasks, held-out split."""

from __future__ import annotations

import pytest

pytest.importorskip("agentgym_multiagent")

import gymnasium
import numpy as np
from agentgym_multiagent.registration import GAME_IDS

import agentgym
from agentgym import TaskSpec
from agentgym.curriculum.base import TrainingTasks
from agentgym.multiagent import POLICY, TextParallelEnv, is_multiagent
from agentgym.spaces import TRAIN_SEED_LIMIT, ParamError

IDS = list(GAME_IDS)


# (PettingZoo's api and seed tests on every game: tests/test_conformance.py)


def test_ids_are_registered_for_agentgym_only():
    ids = {s.id for s in agentgym.list_envs()}
    assert set(IDS) <= ids
    for env_id in IDS:
        # PettingZoo games, not Gymnasium envs: gymnasium.make must not know them.
        assert env_id not in gymnasium.registry
        assert agentgym.spec(env_id).source == "agentgym-multiagent"
        env = agentgym.make(env_id)
        assert is_multiagent(env) and env.env_id == env_id
        assert len(env.possible_agents) == 2


@pytest.mark.parametrize("env_id", IDS)
def test_param_space_has_opponent_and_seat(env_id):
    cls = agentgym.spec(env_id).load_class()
    env = agentgym.make(env_id)
    assert cls.param_space.names == env.param_space.names
    opp = cls.param_space["opponent"]
    assert opp.values == ("self", *env.scripted_kinds)
    assert cls.param_space["seat"].values == (0, 1)
    for kind in env.scripted_kinds:
        for seat in (0, 1):
            params = {**cls.sample_train_task(np.random.default_rng(0)).params, "opponent": kind, "seat": seat}
            env.reset(options={"task": TaskSpec(params, 5)})
            ctl = env.controllers()
            assert ctl[env.possible_agents[seat]] == POLICY
            assert ctl[env.possible_agents[1 - seat]] == kind
    params["opponent"] = "self"
    env.reset(options={"task": TaskSpec(params, 5)})
    assert set(env.controllers().values()) == {POLICY}


def _opening(env, task):
    if isinstance(env, TextParallelEnv):
        obs, _ = env.reset(options={"task": task})
        return {a: o["messages"] for a, o in obs.items()}
    env.reset(options={"task": task})
    return {a: env.observe(a)["messages"] for a in env.possible_agents}


def _script(env, task, seed):
    """Transcript of a whole scripted game (random kinds everywhere)."""
    from agentgym_multiagent.play import play_game

    env = agentgym.make(env.env_id, render_mode="ansi")
    kinds = {a: env.scripted_kinds[0] for a in env.possible_agents}
    result = play_game(env, kinds, np.random.default_rng(seed), task)
    return env.render(), result.returns


@pytest.mark.parametrize("env_id", IDS)
def test_same_task_same_game(env_id):
    a, b = agentgym.make(env_id), agentgym.make(env_id)
    cls = type(a)
    rng = np.random.default_rng(3)
    for i in range(5):
        task = cls.sample_train_task(rng)
        assert _opening(a, task) == _opening(b, TaskSpec.from_dict(task.to_dict()))
        assert _script(a, task, i) == _script(b, task, i)
    # Different seeds give different games (for the same params), at least sometimes.
    params = cls.sample_train_task(rng).params
    openings = {repr(_opening(a, TaskSpec(params, s))) for s in range(12)}
    assert len(openings) > 1
    # reset(seed=...) without a task draws the same training task.
    a.reset(seed=11)
    b.reset(seed=11)
    assert a.task == b.task


@pytest.mark.parametrize("env_id", IDS)
def test_held_out_never_sampled_for_training(env_id):
    cls = agentgym.spec(env_id).load_class()
    held = cls.held_out
    rng = np.random.default_rng(0)
    for _ in range(1500):
        task = cls.sample_train_task(rng)
        assert not held.is_held_out(task.params, task.seed)
        assert task.seed < TRAIN_SEED_LIMIT
    tasks = TrainingTasks(cls.param_space, held)
    if held.region is not None:
        inside = cls.held_out_tasks(16, seed=1)
        region_params = [t.params for t in inside if held.region.contains(t.params)]
        assert region_params, "held-out evaluation must cover the unseen region"
        with pytest.raises(ParamError):
            tasks.spec(rng, region_params[0])
    assert all(t.seed in held.seeds for t in cls.held_out_tasks(8, seed=2))


def test_region_choices():
    # The declared held-out regions, as documented in the README.
    regions = {env_id: agentgym.spec(env_id).load_class().held_out.region for env_id in IDS}
    assert regions["multiagent/kuhn-poker-v0"] is None
    assert regions["multiagent/nim-v0"].constraints == {"heaps": [3], "max_heap": [5]}
    assert regions["multiagent/negotiation-v0"].constraints == {"n_kinds": [3], "max_count": [4]}
    math_region = agentgym.spec("math/arithmetic-v0").load_class().held_out.region
    assert regions["multiagent/pioneer-observer-v0"] == math_region
    assert regions["multiagent/solver-critic-v0"] == math_region
