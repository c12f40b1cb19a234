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

FAMILIES = ("agentgym-math", "agentgym-tools", "agentgym-minigrid", "agentgym-web", "agentgym-multiagent")
SPECS = [s for s in agentgym.list_envs() if s.source in FAMILIES]
IDS = [s.id for s in SPECS]
#: Constructor arguments: MiniGrid's turn limit is shorter than some oracle paths.
KWARGS: dict[str, dict] = {i: {"max_turns": 100_000} for i in IDS if i.startswith("minigrid/")}
#: Families whose ANSI rendering check_env also checks.
RENDER_CHECKED = ("math/", "minigrid/")


def _web_ready() -> bool:
    try:
        from agentgym_web.browser import browser_available
    except ImportError:
        return False
    return bool(browser_available())


def _make(env_id: str):
    if env_id.startswith("web/") and not _web_ready():
        pytest.skip("no Chromium for Playwright (bash envs/web/install-browser.sh)")
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
    env.close()


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
