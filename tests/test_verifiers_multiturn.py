"""A multi-turn verifiers taskset as an agentgym env: the package's own ``vf.Env`` runs the
episode (a scripted user over several turns) and agentgym's agent is its model.

The taskset is written here in the form verifiers 0.4 documents for one whose env opens the
conversation (a package exporting its ``vf.Taskset`` and ``vf.Env`` in ``__all__``; the env's
``run`` drives ``agents.<seat>.interaction(task)`` turn by turn), put on the path as an
installed package would be.
"""

from __future__ import annotations

import json
import textwrap
import threading

import numpy as np
import pytest

pytest.importorskip("verifiers.v1", reason="verifiers is not installed (pip install --no-deps verifiers==0.4.0)")

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402
from tests.conftest import installed_package  # noqa: E402

PACKAGE = "agentgym_test_guess"
SECRETS = [3, 7, 5, 9, 2, 8, 4, 6, 1, 10, 7, 3]  # 7 and 3 twice: the same content
SOURCE = textwrap.dedent(
    f'''
    """Guess the number: a scripted user says higher or lower (an agentgym test taskset)."""
    import verifiers.v1 as vf


    class GuessData(vf.TaskData):
        secret: int


    class GuessTask(vf.Task[GuessData]):
        pass


    class GuessEnvConfig(vf.EnvConfig):
        player: vf.AgentConfig = vf.AgentConfig()


    class GuessEnv(vf.Env[GuessEnvConfig]):
        async def run(self, task, agents):
            seat = vf.Task(vf.TaskData(idx=task.data.idx, prompt=None, system_prompt="Guess a number from 1 to 10."))
            guesses = []
            async with agents.player.interaction(seat) as game:
                message = "Your first guess?"
                while True:
                    segment = await game.turn(message)
                    if segment.terminated:
                        break
                    guesses.append(segment.last_reply)
                    if guesses[-1] == "crash":
                        raise RuntimeError("the referee fell over")
                    if guesses[-1] == str(task.data.secret):
                        break
                    low = guesses[-1].isdigit() and int(guesses[-1]) < task.data.secret
                    message = "higher" if low else "lower"
            won = bool(guesses) and guesses[-1] == str(task.data.secret)
            game.trace.record_reward("won", float(won))
            game.trace.record_reward("quick", 0.5 * float(won and len(guesses) <= 3))


    class GuessTaskset(vf.Taskset[GuessTask, vf.TasksetConfig]):
        def load(self):
            for i, secret in enumerate({SECRETS!r}):
                yield GuessTask(GuessData(idx=i, prompt=None, secret=secret))


    __all__ = ["GuessEnv", "GuessTaskset"]
    '''
)
ENV_ID = f"verifiers:{PACKAGE}"
OPENING = [
    {"role": "system", "content": "Guess a number from 1 to 10."},
    {"role": "user", "content": "Your first guess?"},
]


@pytest.fixture(scope="module", autouse=True)
def installed(tmp_path_factory):
    yield from installed_package(tmp_path_factory, PACKAGE, SOURCE)


def _rollout_threads():
    return [t for t in threading.enumerate() if t.name == "agentgym-verifiers-rollout"]


def _row(secret):
    return TaskSpec({"row": SECRETS.index(secret)}, 0)


def test_scripted_replies_get_the_users_turns_and_the_tasksets_rewards():
    env = agentgym.make(ENV_ID)
    assert env.seats == ["player"] and env.seat == "player" and env.param_space.names == ["row"]
    obs, info = env.reset(options={"task": _row(7)})
    assert obs == OPENING and info["turn"] == 0
    seen = []
    for reply in ["5", "9", "7"]:
        obs, reward, term, trunc, info = env.step(reply)
        seen.append((obs, reward, term, trunc))
    assert seen == [
        ([{"role": "user", "content": "higher"}], 0.0, False, False),
        ([{"role": "user", "content": "lower"}], 0.0, False, False),
        ([], 1.5, True, False),
    ]
    assert info["reward_parts"] == {"won": 1.0, "quick": 0.5} and info["success"] and info["error"] is None
    # Each episode is fresh: a second one on another row starts over and scores on its own.
    assert env.reset(options={"task": _row(2)})[0] == OPENING
    _, reward, term, _, info = env.step("2")
    assert term and reward == 1.5 and info["success"]
    assert "[user] higher" not in (env.render() or "")
    env.close()
    assert not _rollout_threads()


def test_wrong_replies_fail_and_the_turn_limit_ends_the_episode_scored():
    env = agentgym.make(ENV_ID, max_turns=3)
    env.reset(options={"task": _row(9)})
    outs = [env.step(r) for r in ["1", "2", "3"]]
    assert [o[0] for o in outs[:2]] == [[{"role": "user", "content": "higher"}]] * 2
    _, reward, term, trunc, info = outs[-1]
    # The seat's verifiers turn limit stopped the rollout: scored, but truncated, not won.
    assert trunc and not term and reward == 0.0 and not info["success"] and info["error"] is None
    assert info["reward_parts"] == {"won": 0.0, "quick": 0.0}
    # Won, but slowly: only part of the reward, below success_at=1.5.
    env = agentgym.make(ENV_ID, success_at=1.5)
    env.reset(options={"task": _row(9)})
    for r in ["1", "2", "3"]:
        env.step(r)
    _, reward, term, _, info = env.step("9")
    assert term and reward == 1.0 and info["reward_parts"] == {"won": 1.0, "quick": 0.0} and not info["success"]
    env.close()


def test_reset_mid_episode_and_close_leave_no_running_rollout():
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": _row(7)})
    env.step("1")
    assert len(_rollout_threads()) == 1  # the episode waits on the agent's next reply
    env.reset(options={"task": _row(3)})  # the old one is cancelled, a new one started
    assert len(_rollout_threads()) == 1
    _, reward, term, _, _ = env.step("3")
    assert term and reward == 1.5  # the new episode is the one being played
    env.reset(options={"task": _row(5)})
    env.close()
    assert not _rollout_threads()
    env.close()  # twice is harmless


def test_an_error_in_the_taskset_ends_the_episode_with_error_set():
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": _row(4)})
    obs, reward, term, _, info = env.step("crash")
    assert term and reward == 0.0 and obs == [] and not info["success"]
    assert "the referee fell over" in info["error"]
    env.close()
    assert not _rollout_threads()
    with pytest.raises(ValueError, match="not one of"):
        agentgym.make(ENV_ID, seat="dealer")


def test_grpo_trains_two_steps_and_evaluates_on_held_out_contents(tmp_path):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            f"env.id={ENV_ID}",
            "env.kwargs.max_turns=2",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.max_episode_tokens=192",
            "grpo.mask_truncated=false",
            "train.steps=2",
            "train.eval_tasks=3",
            "train.eval_max_new_tokens=4",
        ],
    )
    trainer = GRPOTrainer(cfg, quiet=True)
    result = trainer.train()
    assert result.steps_done == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert len(steps) == 2 and all(np.isfinite(x["loss"]) for x in steps)
    assert [x for x in lines if any(k.startswith("eval/") for k in x)], "a held-out evaluation ran"
    env = agentgym.make(ENV_ID)
    held = [env.content_key(t) for t in trainer.eval_tasks]
    assert held and all(env.is_held_out_content(k) for k in held)
    # The repeated secrets are one content each: both rows held out or neither.
    cls = agentgym.spec(ENV_ID).load_class()
    rng = np.random.default_rng(0)
    trained = {cls.sample_train_task(rng).params["row"] for _ in range(200)}
    for secret in (7, 3):
        rows = {i for i, s in enumerate(SECRETS) if s == secret}
        assert rows <= trained or not rows & trained
    assert not _rollout_threads()
