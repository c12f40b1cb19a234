import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym import TaskSpec
from agentgym.env import ChatSpace, TextSpace


def test_check_env_passes_on_toy_env():
    env = agentgym.make("test/guess-v0")
    check_env(env, skip_render_check=False)


def test_same_spec_same_task_and_train_sampling_excludes_held_out(rng):
    env = agentgym.make("test/guess-v0")
    spec = TaskSpec({"high": 40, "hint": True}, seed=12)
    first, info = env.reset(options={"task": spec})
    again, _ = env.reset(options={"task": spec.to_dict()})  # dicts are accepted too
    assert first == again and info["task"] == spec.to_dict()
    held = env.held_out
    for _ in range(20_000):
        t = env.sample_train_task(rng)
        assert t.seed not in held.seeds and not held.region.contains(t.params)


def test_reset_without_task_is_seeded():
    env = agentgym.make("test/guess-v0")
    a, ia = env.reset(seed=3)
    b, ib = env.reset(seed=3)
    c, ic = env.reset(seed=4)
    assert a == b and ia["task"] == ib["task"] and ia["task"] != ic["task"]


def test_bad_task_is_a_clear_error():
    env = agentgym.make("test/guess-v0")
    with pytest.raises(ValueError, match="high=99 is outside"):
        env.reset(options={"task": TaskSpec({"high": 99, "hint": False}, 0)})
    with pytest.raises(ValueError, match="'params' and 'seed'"):
        env.reset(options={"task": {"high": 3}})


@pytest.mark.parametrize("action", [b"12", None, 12, ["12"], "x" * 70_000])
def test_unusable_actions_give_an_error_not_a_crash(action):
    env = agentgym.make("test/guess-v0")
    env.reset(options={"task": TaskSpec({"high": 10, "hint": False}, 1)})
    obs, reward, terminated, truncated, info = env.step(action)
    assert isinstance(info["error"], str) and info["error"]
    assert obs[0]["content"].startswith("Error:")
    assert reward == 0.0 and not terminated and not truncated and info["success"] is False


def test_multi_turn_truncates_at_max_turns_and_refuses_steps_after():
    env = agentgym.make("test/guess-v0", max_turns=2)
    env.reset(options={"task": TaskSpec({"high": 50, "hint": False}, 5)})
    wrong = str(env.secret % 50 + 1)
    _, _, term, trunc, info = env.step(wrong)
    assert (term, trunc, info["turn"]) == (False, False, 1)
    _, _, term, trunc, info = env.step(wrong)
    assert (term, trunc, info["turn"], info["success"]) == (False, True, 2, False)
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step("1")


def test_step_before_reset():
    with pytest.raises(RuntimeError, match="reset"):
        agentgym.make("test/guess-v0").step("1")


def test_oracle_solves_and_render_shows_transcript():
    env = agentgym.make("test/guess-v0", render_mode="ansi")
    env.reset(options={"task": TaskSpec({"high": 30, "hint": False}, 9)})
    _, reward, term, _, info = env.step(env.oracle())
    assert term and info["success"] and reward == 1.0 and info["reward_parts"] == {"correct": 1.0}
    text = env.render()
    assert "[user] Guess my number" in text and f"[assistant] {env.secret}" in text


def test_text_spaces():
    obs, act = ChatSpace(seed=0), TextSpace(max_length=10, seed=0)
    assert obs.contains([{"role": "user", "content": "hi"}])
    assert not obs.contains([{"role": "robot", "content": "hi"}])
    assert not obs.contains([{"role": "user", "content": 3}])
    assert act.contains("0123456789") and not act.contains("0123456789x") and not act.contains(b"x")
    assert obs.contains(obs.sample()) and isinstance(act.sample(), str)


def test_gymnasium_make_uses_the_same_env():
    env = gymnasium.make("test/guess-v0", max_turns=3)
    assert isinstance(env.unwrapped, agentgym.TextEnv) and env.unwrapped.max_turns == 3
    obs, info = env.reset(seed=1)
    assert obs[0]["role"] == "user" and "task" in info
    _, r, *_ = env.step("not a number")
    assert np.isfinite(r)


def test_feedback_can_truncate_from_inside_a_step():
    """A simulator's own budget ends the episode as a truncation, not a termination."""
    from agentgym import Feedback, TaskSpec, TextEnv

    class Budgeted(TextEnv):
        max_turns = 100

        def _reset(self, params, rng):
            return [{"role": "user", "content": "go"}]

        def _step(self, action):
            return Feedback(messages=[], reward_parts={"r": 0.0}, truncated=self.turn >= 2)

    env = Budgeted()
    env.reset(options={"task": TaskSpec({}, 0)})
    assert env.step("a")[2:4] == (False, False)
    _, _, terminated, truncated, _ = env.step("b")
    assert truncated and not terminated
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step("c")


def test_make_vec_async_matches_sync():
    """Gymnasium's shared-memory AsyncVectorEnv carries chat observations (agentgym.vector)."""
    import gymnasium

    import agentgym  # noqa: F401  (registers the ids and the shared-memory handlers)

    runs = {}
    for mode in ("sync", "async"):
        env = gymnasium.make_vec("math/arithmetic-v0", num_envs=3, vectorization_mode=mode)
        obs, _ = env.reset(seed=5)
        out, r, term, *_ = env.step(["\\boxed{1}", "no idea", "\\boxed{7}"])
        runs[mode] = (list(obs), list(out), r.tolist(), term.tolist())
        env.close()
    assert runs["async"] == runs["sync"] and runs["sync"][0][0][-1]["role"] == "user"


def test_an_observation_too_big_for_shared_memory_says_what_to_do():
    import multiprocessing as mp

    import pytest
    from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

    from agentgym.env import ChatSpace
    from agentgym.vector import SLOT_BYTES

    space = ChatSpace()
    shared = create_shared_memory(space, n=2, ctx=mp)
    write_to_shared_memory(space, 1, [{"role": "user", "content": "hi"}], shared)
    assert read_from_shared_memory(space, shared, n=2)[1] == [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError, match="shared_memory"):
        write_to_shared_memory(space, 0, [{"role": "user", "content": "x" * SLOT_BYTES}], shared)
