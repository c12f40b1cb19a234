"""Every registered built-in env, one contract: registered through its package's entry point,
cheap to list, Gymnasium's ``check_env`` (or PettingZoo's API and seed tests for a game),
seeded resets that repeat, and an oracle that solves training tasks where one ships.

Families add their own behaviour tests in their own modules; this one is the floor every
env stands on, parametrized over what the registry lists, so a new env is covered the
moment it is registered.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import agentgym
from agentgym.env import TextEnv, TextSpace
from agentgym.multiagent import TextAECEnv, TextParallelEnv, is_multiagent
from tests.conftest import browser_missing

FAMILIES = ("agentgym-math", "agentgym-tools", "agentgym-minigrid", "agentgym-web", "agentgym-multiagent")
SPECS = [s for s in agentgym.list_envs() if s.source in FAMILIES]
IDS = [s.id for s in SPECS]
#: Constructor arguments: MiniGrid's turn limit is shorter than some oracle paths.
KWARGS: dict[str, dict] = {i: {"max_turns": 100_000} for i in IDS if i.startswith("minigrid/")}
#: Families whose ANSI rendering check_env also checks.
RENDER_CHECKED = ("math/", "minigrid/")


def _make(env_id: str):
    if env_id.startswith("web/") and browser_missing() is not None:
        pytest.skip(browser_missing())
    if env_id == "tools/taskfile-v0":
        pytest.skip("tools/taskfile-v0 is made from a task file (covered in tests/test_tools_taskfile.py)")
    return agentgym.make(env_id, **KWARGS.get(env_id, {}))


def test_every_family_registers_its_envs_through_its_entry_point():
    assert {s.source for s in SPECS} == set(FAMILIES)
    assert len(IDS) >= 30
    for s in SPECS:
        assert s.description, s.id
        assert s.id.split("/")[0] == s.source.removeprefix("agentgym-"), s.id


def test_listing_the_envs_imports_no_family_code():
    heavy = (
        "sympy",
        "math_verify",
        "minigrid",
        "pygame",
        "playwright",
        "agentgym_math.env",
        "agentgym_tools.env",
        "agentgym_minigrid.env",
        "agentgym_web.env",
        "agentgym_multiagent.nim",
    )
    code = f"import sys, agentgym; agentgym.list_envs(); print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _MostlyLegal(TextSpace):
    """A game's action space whose samples are mostly a scripted legal move, so PettingZoo's
    tests play whole games to the end; sometimes garbage."""

    def __init__(self, env, agent: str):
        super().__init__(env.max_action_chars)
        self.env, self.agent = env, agent

    def sample(self, mask=None, probability=None) -> str:
        if self.np_random.random() < 0.15 or not self.env.agents:
            return super().sample()
        env = self.env
        mover = env.agent_selection if isinstance(env, TextAECEnv) else self.agent
        return env.scripted_action(mover, env.scripted_kinds[-1], self.np_random)


@pytest.mark.parametrize("env_id", IDS)
def test_api_conformance(env_id):
    env = _make(env_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # text observations are not NumPy arrays; the asserts still run
            if not is_multiagent(env):
                from gymnasium.utils.env_checker import check_env

                check_env(env.unwrapped, skip_render_check=not env_id.startswith(RENDER_CHECKED))
                return
            from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

            def legal():
                game = agentgym.make(env_id)
                for agent in game.possible_agents:
                    game.action_spaces[agent] = _MostlyLegal(game, agent)
                return game

            for make in (lambda: agentgym.make(env_id), legal):
                if isinstance(env, TextParallelEnv):
                    parallel_api_test(make(), num_cycles=60)
                    parallel_seed_test(make, num_cycles=60)
                else:
                    api_test(make(), num_cycles=60)
                    seed_test(make, num_cycles=60)
    finally:
        env.close()  # a tools env holds a sandbox worker (and its cgroup) until closed


@pytest.mark.parametrize("env_id", IDS)
def test_the_same_seed_gives_the_same_opening(env_id):
    a, b = _make(env_id), _make(env_id)
    try:
        if isinstance(a, TextParallelEnv):
            assert a.reset(seed=11)[0] == b.reset(seed=11)[0] and a.task == b.task
        elif is_multiagent(a):
            a.reset(seed=11)
            b.reset(seed=11)
            assert [a.observe(x) for x in a.agents] == [b.observe(x) for x in b.agents]
            assert a.task == b.task
        else:
            oa, _ = a.reset(seed=11)
            ob, _ = b.reset(seed=11)
            assert oa == ob and a.unwrapped.task == b.unwrapped.task
            oc, _ = a.reset(seed=12)
            assert a.unwrapped.task != b.unwrapped.task or oc != oa
    finally:
        a.close()
        b.close()


def _has_oracle(env) -> bool:
    return not is_multiagent(env) and type(env.unwrapped).oracle is not TextEnv.oracle


@pytest.mark.parametrize("env_id", IDS)
def test_the_oracle_solves_training_tasks(env_id):
    env = _make(env_id)
    if not _has_oracle(env):
        env.close()
        pytest.skip(f"{env_id} ships no oracle (games have scripted players, tested with each game)")
    inner = env.unwrapped
    rng = np.random.default_rng(0)
    solved = 0
    try:
        for _ in range(3):
            inner.reset(options={"task": type(inner).sample_train_task(rng)})
            for _turn in range(5000):
                _, _, term, trunc, info = inner.step(inner.oracle())
                if term or trunc:
                    break
            solved += bool(info["success"])
    finally:
        env.close()
    assert solved == 3, f"the oracle solved {solved} of 3 tasks"


#: Envs whose first observation shows less than the task's content, so two different
#: problems can open alike: MiniGrid's first view is the agent's partial view of a grid.
PARTIAL_VIEW = ("minigrid/",)
#: Envs whose reset needs a browser or a sandbox: their content keys are checked, not their openings.
HEAVY_RESET = ("web/", "tools/python-v0", "tools/mixed-v0")


def _opening_text(env, spec) -> str:
    if is_multiagent(env):
        out = env.reset(options={"task": spec})
        if isinstance(env, TextParallelEnv):
            obs = out[0]
        else:
            obs = {a: env.observe(a) for a in env.possible_agents}
        return repr(sorted((a, o["messages"]) for a, o in obs.items()))
    messages, _ = env.reset(options={"task": spec})
    return repr(messages)


@pytest.mark.parametrize("env_id", IDS)
def test_training_never_draws_held_out_content(env_id):
    """Held out in content, not only in seed: many training draws (uniform and at given
    params, as a teacher draws) share no content with the held-out tasks, and the
    held-out tasks are distinct problems."""
    env = agentgym.make(env_id)  # content keys need no browser and no sandbox
    try:
        tasks = env.training_tasks()
        held = tasks.held_out_specs(48, seed=0)
        if env.held_out.content_fraction == 0:
            assert tasks.content is None and held  # one content (a user's page): held out by seed only
            return
        assert held, f"{env_id}: no held-out task"  # Kuhn poker has 6 deals: 2 are held out
        rng = np.random.default_rng(1)
        train = [tasks.spec(rng) for _ in range(300)]
        for _ in range(100):
            params = tasks.params(rng)
            try:
                train.append(tasks.spec(rng, params))
            except agentgym.spaces.ParamError:
                pass  # every content of those params is held out: a teacher is refused
        held_keys = [env.content_key(t) for t in held]
        train_keys = {env.content_key(t) for t in train}
        assert len(set(held_keys)) == len(held_keys), f"{env_id}: held-out tasks repeat a content"
        assert not train_keys & set(held_keys), f"{env_id}: training draws held-out content"
        assert all(env.is_held_out_content(k) for k in held_keys)
        if env_id.startswith(HEAVY_RESET + PARTIAL_VIEW):
            return
        # What the agent is shown, compared as text: no training opening is a held-out one.
        train_text = {_opening_text(env, t) for t in train[:150]}
        shared = [t for t in held if _opening_text(env, t) in train_text]
        assert not shared, f"{env_id}: {len(shared)} held-out openings appear in training draws"
    finally:
        env.close()
