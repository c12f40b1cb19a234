"""Held out in content: the split by content keys, on small spaces where seeds repeat problems.

The conformance test over every registered env is in tests/test_conformance.py; these
tests pin the mechanism (stable buckets, redrawn seeds, refused params, distinct
held-out tasks, the default key of an env that names nothing) and the main job's numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import agentgym
from agentgym import Categorical, Feedback, HeldOut, ParamSpace, TaskSpec, TextEnv
from agentgym.eval.overlap import overlap
from agentgym.spaces import ParamError, content_bucket

QUICKSTART = {"digits": [1], "n_operands": [2], "operators": ["+", "+-"], "negatives": [False]}


class Coin(TextEnv):
    """Eight problems (``pick a face of d<N>``, N the seed mod 8): names no content itself."""

    param_space = ParamSpace([Categorical("die", ("d8",))])
    held_out = HeldOut(content_fraction=0.5)
    made = 0

    def __init__(self, label: str = "die"):
        super().__init__()
        self.label = label
        type(self).made += 1

    def _reset(self, params: dict[str, Any], rng: np.random.Generator) -> list[dict[str, str]]:
        assert self.task is not None
        return [{"role": "user", "content": f"{self.label}: face {self.task.seed % 8}"}]

    def _step(self, action: str) -> Feedback:
        return Feedback([], {"ok": 1.0}, terminated=True, success=True)


def test_buckets_are_stable_and_uniform():
    # The same key lands in the same bucket on every machine and run (SHA-256, not hash()).
    assert content_bucket("What is 6 + 1?") == content_bucket("What is 6 + 1?")
    assert content_bucket("a") == int.from_bytes(bytes.fromhex("ca978112ca1bbdca"), "big") / 2**64
    share = np.mean([HeldOut(content_fraction=0.3).holds_content(str(i)) for i in range(20_000)])
    assert abs(share - 0.3) < 0.015


def test_content_fraction_is_checked():
    with pytest.raises(ValueError, match="content_fraction"):
        HeldOut(content_fraction=1.0)


def test_the_default_key_is_the_opening_of_a_twin_made_with_the_same_arguments():
    env = Coin(label="coin")
    env.reset(options={"task": TaskSpec({"die": "d8"}, 3)})
    key = env.content_key(TaskSpec({"die": "d8"}, 11))
    assert "coin: face 3" in key  # 11 % 8: the twin has the env's label, and the spec's seed
    assert env.task.seed == 3  # the env's own episode is untouched
    tasks = env.training_tasks()
    held = tasks.held_out_specs(100)
    faces = sorted({t.seed % 8 for t in held})
    assert len(held) == len(faces)  # distinct contents, no more than there are
    rng = np.random.default_rng(0)
    trained = {tasks.spec(rng).seed % 8 for _ in range(200)}
    assert trained and not trained & set(faces)
    assert trained | set(faces) == set(range(8))
    # reset() without a task draws training content too
    for s in range(20):
        env.reset(seed=s)
        assert env.task.seed % 8 in trained


def test_params_whose_every_content_is_held_out_are_refused():
    space = ParamSpace([Categorical("x", ("a", "b"))])

    class Fixed:
        def content_key(self, task: TaskSpec) -> str:
            return task.params["x"]

        def is_held_out_content(self, key: str) -> bool:
            return key == "b"

    from agentgym.tasks import TrainingTasks

    tasks = TrainingTasks(space, HeldOut(), content=Fixed())
    rng = np.random.default_rng(0)
    assert tasks.spec(rng, {"x": "a"}).params == {"x": "a"}
    with pytest.raises(ParamError, match="held-out content"):
        tasks.spec(rng, {"x": "b"})
    assert all(tasks.spec(rng).params["x"] == "a" for _ in range(50))  # uniform draws skip it
    assert [t.params["x"] for t in tasks.held_out_specs(10)] == ["b"]  # one content, no repeats


def test_the_main_jobs_held_out_prompts_were_training_prompts_and_are_not_any_more():
    old, new = overlap("math/arithmetic-v0", QUICKSTART, eval_tasks=64, train_draws=640)
    # by seed and region alone, most held-out prompts are prompts training draws produce
    assert old.shared >= 55 and old.distinct_heldout_prompts < 64
    assert new.shared == 0 and new.heldout_tasks == new.distinct_heldout_prompts == 64


def test_a_problem_held_out_of_arithmetic_is_held_out_of_its_team_games():
    math_env = agentgym.make("math/arithmetic-v0")
    game = agentgym.make("multiagent/pioneer-observer-v0")
    params = {"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}
    for seed in range(30):
        key = math_env.content_key(TaskSpec(params, seed))
        gkey = game.content_key(TaskSpec({**params, "opponent": "self", "seat": 1}, seed))
        assert key == gkey and game.is_held_out_content(gkey) == math_env.is_held_out_content(key)
    game.close()


def test_per_cell_held_out_tasks_weight_every_cell_equally():
    """math/chain-v0 has 7 lengths x 4 wordings: 56 tasks asked give 2 per cell, every one
    distinct and held out by content; a 2-number cell holds only ~40 held-out problems, so
    asking 50 per cell gives fewer there (never a repeat) and 50 elsewhere."""
    from collections import Counter

    import agentgym

    env = agentgym.make("math/chain-v0")
    tasks = env.training_tasks({})
    specs = tasks.held_out_specs_per_cell(56, seed=1)
    cells = Counter((t.params["n_operands"], t.params["wording"]) for t in specs)
    assert len(cells) == 28 and set(cells.values()) == {2}
    keys = [env.content_key(t) for t in specs]
    assert len(set(keys)) == 56 and all(env.is_held_out_content(k) for k in keys)
    # The first 28 tasks are one per cell: a truncated list still covers every cell.
    assert len({(t.params["n_operands"], t.params["wording"]) for t in specs[:28]}) == 28
    many = Counter((t.params["n_operands"], t.params["wording"]) for t in tasks.held_out_specs_per_cell(50 * 28))
    assert 20 < many[(2, "what")] < 50 and many[(8, "what")] == 50
    # A run config asks for it with train.eval_per_cell.
    from agentgym.config import load_config
    from agentgym.grpo.setup import held_out_tasks

    cfg = load_config(
        None, ["env.id=math/chain-v0", "env.params={}", "train.eval_tasks=30", "train.eval_per_cell=true"]
    )
    assert len(held_out_tasks(tasks, cfg)) == 56  # rounded up to 2 per cell
