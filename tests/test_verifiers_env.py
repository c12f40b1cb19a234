"""A verifiers taskset package as an agentgym env (``verifiers:<package>``): its rewards as
reward_parts, its test split held out, trained 2 GRPO steps and evaluated on held-out tasks.

The taskset is a package written here in the form verifiers 0.4 documents (a module whose
``__all__`` exports one ``vf.Taskset``; tasks with ``@vf.reward`` methods), put on the path
as an installed package would be.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

pytest.importorskip("verifiers.v1", reason="verifiers is not installed (pip install --no-deps verifiers==0.4.0)")

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402
from agentgym.registry import EnvNotFound  # noqa: E402
from tests.conftest import installed_package  # noqa: E402

PACKAGE = "agentgym_test_reverse"
TRAIN = ["apple", "river", "stone", "cloud", "maple", "tiger", "lemon", "piano", "olive", "candle", "shared"]
TEST = ["zebra", "quartz", "violet", "shared"]  # "shared" is in both: it must never be trained on
SOURCE = textwrap.dedent(
    f'''
    """Reverse a word (an agentgym test taskset in verifiers' documented form)."""
    from typing import Literal

    import verifiers.v1 as vf

    WORDS = {{"train": {TRAIN!r}, "test": {TEST!r}}}


    class ReverseData(vf.TaskData):
        answer: str


    class ReverseTask(vf.Task[ReverseData, vf.State, vf.TaskConfig]):
        @vf.reward(weight=1.0)
        async def exact(self, trace: vf.Trace) -> float:
            return float(trace.last_reply == self.data.answer)

        @vf.reward(weight=0.5)
        async def same_letters(self, trace: vf.Trace) -> float:
            return float(sorted(trace.last_reply) == sorted(self.data.answer))


    class ReverseConfig(vf.TasksetConfig):
        split: Literal["train", "test"] = "train"


    class ReverseTaskset(vf.Taskset[ReverseTask, ReverseConfig]):
        def load(self):
            for word in WORDS[self.config.split]:
                yield ReverseTask(
                    ReverseData(prompt=f"Reverse the word {{word}}.", system_prompt="Reply with one word.",
                                answer=word[::-1]),
                    self.config.task,
                )


    __all__ = ["ReverseTaskset"]
    '''
)
ENV_ID = f"verifiers:{PACKAGE}"


@pytest.fixture(scope="module", autouse=True)
def installed(tmp_path_factory):
    yield from installed_package(tmp_path_factory, PACKAGE, SOURCE)


def _play(env, task, reply):
    obs, _ = env.reset(options={"task": task})
    _, reward, term, trunc, info = env.step(reply)
    return obs, reward, term, trunc, info


def test_one_id_makes_an_env_whose_rewards_are_the_tasksets():
    env = agentgym.make(ENV_ID)
    assert agentgym.spec(ENV_ID).description == f"verifiers taskset {PACKAGE}"
    assert env.param_space.names == ["split", "row"] and env.param_space["split"].values == ("train", "test")
    obs, reward, term, trunc, info = _play(env, TaskSpec({"split": "train", "row": 1}, 0), "revir")
    assert obs == [
        {"role": "system", "content": "Reply with one word."},
        {"role": "user", "content": "Reverse the word river."},
    ]
    assert term and not trunc and reward == 1.5 and info["success"]
    assert info["reward_parts"] == {"exact": 1.0, "same_letters": 0.5}
    # A wrong reply: each reward part says what it scored.
    _, reward, _, _, info = _play(env, TaskSpec({"split": "train", "row": 1}, 0), "rivre")
    assert reward == 0.5 and info["reward_parts"] == {"exact": 0.0, "same_letters": 0.5} and not info["success"]
    # Rows wrap within the split; the test split has its own tasks.
    assert _play(env, TaskSpec({"split": "test", "row": 4}, 0), "x")[0][1]["content"] == "Reverse the word zebra."
    # Bad input never crashes it: the base class's error observation.
    env.reset(options={"task": TaskSpec({"split": "train", "row": 0}, 0)})
    _, reward, term, _, info = env.step(b"elppa")
    assert info["error"] and reward == 0.0 and not term


def test_the_test_split_is_held_out_and_never_trained_on():
    cls = agentgym.spec(ENV_ID).load_class()
    rng = np.random.default_rng(0)
    trained = {cls.sample_train_task(rng).params["row"] % len(TRAIN) for _ in range(300)}
    for _ in range(50):
        assert cls.sample_train_task(rng).params["split"] == "train"
    assert trained == set(range(len(TRAIN))) - {TRAIN.index("shared")}  # every train word but the shared one
    env = agentgym.make(ENV_ID)
    held = cls.held_out_tasks(20, seed=0)
    words = set()
    for task in held:
        obs, _ = env.reset(options={"task": task})
        words.add(obs[1]["content"].split()[-1].rstrip("."))
    assert words == set(TEST)  # all four test problems, each once, and nothing else


def test_unknown_package_and_prompt_less_tasksets_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(EnvNotFound, match="no installed verifiers taskset 'no_such_taskset'"):
        agentgym.make("verifiers:no_such_taskset")
    (tmp_path / "agentgym_test_userless.py").write_text(
        SOURCE.replace('prompt=f"Reverse the word {word}.", ', "prompt=None, ")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvNotFound, match="no prompt"):
        agentgym.make("verifiers:agentgym_test_userless")


def test_grpo_trains_two_steps_and_evaluates_on_the_test_split(tmp_path):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            f"env.id={ENV_ID}",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.max_episode_tokens=128",
            "grpo.mask_truncated=false",
            "train.steps=2",
            "train.eval_tasks=4",
            "train.eval_max_new_tokens=4",
        ],
    )
    trainer = GRPOTrainer(cfg, quiet=True)
    assert {t.params["split"] for t in trainer.eval_tasks[:1]} == {"test"}
    result = trainer.train()
    assert result.steps_done == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert len(steps) == 2 and all(np.isfinite(x["loss"]) for x in steps)
    evals = [x for x in lines if any(k.startswith("eval/") for k in x)]
    assert evals, "a held-out evaluation ran"
    env = agentgym.make(ENV_ID)
    for task in trainer.eval_tasks:
        assert env.is_held_out_content(env.content_key(task))
