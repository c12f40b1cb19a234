"""The MiniGrid text interface: the view equals minigrid's observation, the text holds
the whole observation, action words parse, and fuzzed replies never crash the env."""

from __future__ import annotations

import pytest

pytest.importorskip("minigrid")
pytest.importorskip("agentgym_minigrid")

import numpy as np  # noqa: E402
from agentgym_minigrid.levels import FAMILIES, build, reset_level  # noqa: E402
from agentgym_minigrid.text import (  # noqa: E402
    ACTION_WORDS,
    ActionError,
    parse_actions,
    render_view,
    wall_segments,
)
from agentgym_minigrid.textbot import parse_view, parse_walls  # noqa: E402
from agentgym_minigrid.view import egocentric, encode, occlusion_mask  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from minigrid.minigrid_env import MiniGridEnv as RawMiniGridEnv  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402


def _random_states(family, n_levels=3, n_steps=60, seed=0):
    """minigrid envs of ``family`` walked by random actions, yielded after every step."""
    rng = np.random.default_rng(seed)
    for level in range(n_levels):
        env = build(family, 5 + level % 4, 1 + level % 3)
        reset_level(env, level)
        for _ in range(n_steps):
            yield env
            _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
            if terminated or truncated:
                reset_level(env, int(rng.integers(1000)))


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_view_equals_minigrids_observation(family):
    for env in _random_states(family):
        cells, visible = egocentric(env)
        assert np.array_equal(encode(cells, visible, env.agent_view_size), RawMiniGridEnv.gen_obs(env)["image"])


@pytest.mark.parametrize("family", FAMILIES)
def test_text_view_holds_the_whole_observation(family):
    """Parse the text back into a 7x7 view: every visible cell's contents and the
    visibility mask (recomputed from the text alone) match minigrid's observation."""
    from minigrid.core.world_object import Wall

    for env in _random_states(family, seed=1):
        cells, visible = egocentric(env)
        text = render_view(cells, visible, 7, env.agent_dir, env.carrying)
        facts = parse_view(text)
        assert facts["dir"] == env.agent_dir
        carried = facts["carrying"]
        assert (carried is None) == (env.carrying is None)
        if carried is not None:
            assert carried.encode() == env.carrying.encode()
        local = [None] * 49
        for (ahead, lat), obj in facts["objects"]:
            local[(6 - ahead) * 7 + 3 + lat] = obj
        for ahead, lat in facts["walls"]:
            local[(6 - ahead) * 7 + 3 + lat] = Wall()
        mask = occlusion_mask(local, 7) if not env.see_through_walls else [True] * 49
        assert [m or c is not None for m, c in zip(mask, local)] == visible
        local[45] = env.carrying
        truth = encode(cells, visible, 7)
        assert np.array_equal(encode(local, visible, 7), truth)


def test_view_text_format():
    env = agentgym.make("minigrid/levels-v0")
    msgs, _ = env.reset(
        options={"task": TaskSpec({"family": "doorkey", "size": 5, "count": 1, "show_subgoals": False}, 0)}
    )
    lines = msgs[1]["content"].splitlines()
    assert lines[0] == "Mission: use the key to open the door and then get to the goal"
    assert lines[1].startswith("You face ") and "You carry nothing." in lines[1] and "Steps left: 250." in lines[1]
    assert lines[2].startswith("Ahead: ") and " Left: " in lines[2] and " Right: " in lines[2]
    assert lines[3].startswith("You see: ") and "locked yellow door" in lines[3]
    assert lines[4].startswith("Walls: ")


def test_wall_segments_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(300):
        walls = {(a, lat) for a in range(7) for lat in range(-3, 4) if rng.random() < 0.35 and (a, lat) != (0, 0)}
        text = "; ".join(wall_segments(walls))
        assert (parse_walls(text) if walls else set()) == walls
    assert wall_segments({(4, lat) for lat in range(-3, 4)}) == ["row 4 ahead from 3 left to 3 right"]
    assert wall_segments({(a, -1) for a in range(4)}) == ["column 1 left from 0 to 3 ahead"]
    assert wall_segments({(2, 0)}) == ["2 ahead"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("turn left", [0]),
        ("Turn Right, go forward", [1, 2]),
        ("left then right and forward", [0, 1, 2]),
        ("pick up the yellow key; toggle the door\ndrop", [3, 5, 4]),
        ("1. turn left\n2. go forward 2 times\n3) open", [0, 2, 2, 5]),
        ("I should turn first.\nActions: turn left, forward x2", [0, 2, 2]),
        ("- left\n- move forward twice\n- done", [0, 2, 2, 6]),
        ("3 forward", [2, 2, 2]),
        ("go forward 3 steps.", [2, 2, 2]),
        ("Please go forward.", [2]),
        ("grab it, put down, unlock the door, close the door, stop", [3, 4, 5, 5, 6]),
    ],
)
def test_action_words(text, expected):
    assert parse_actions(text, 8) == (expected, None)


@pytest.mark.parametrize(
    "text", ["", "   ", "fly", "go to the key", "turn around", "left 2 cats", "forward 0 times", "...", "jump, left"]
)
def test_not_actions(text):
    with pytest.raises(ActionError, match="turn left, turn right, go forward"):
        parse_actions(text, 8)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("I will turn left to face the key, then go forward twice.", [0, 2, 2]),
        ("The key is to my left, so I should pick up the key and toggle the door", [3, 5]),
        ("Looking around: nothing here. Let me move forward.", [2]),
    ],
)
def test_lenient_reader_pulls_actions_out_of_prose(text, expected):
    assert parse_actions(text, 8, "lenient") == (expected, None)
    with pytest.raises(ActionError):
        parse_actions(text, 8)  # the strict reader refuses the same reply


def test_lenient_reader_reads_an_action_list_as_the_strict_one_does():
    for text in ("turn right, go forward x2", "1. left\n2. pick up the key", "Actions: toggle, done"):
        assert parse_actions(text, 8, "lenient") == parse_actions(text, 8)
    assert parse_actions("forward x20", 8, "lenient")[1]  # the cap warns in both


@pytest.mark.parametrize(
    "text",
    # words that mean something else in a described scene are not read as actions
    ["The door is to the left of you and the key is on the right.", "Take a look: the room is open.", "", "fly"],
)
def test_lenient_reader_still_refuses_replies_without_an_action(text):
    with pytest.raises(ActionError, match="no action found|is not an action"):
        parse_actions(text, 8, "lenient")


def test_unknown_reader_is_an_error():
    with pytest.raises(ValueError, match="reader must be one of"):
        parse_actions("left", 8, "loose")


def test_action_cap():
    actions, warning = parse_actions("forward x20", 8)
    assert actions == [2] * 8 and "only the first 8" in warning
    actions, warning = parse_actions(", ".join(["left"] * 100_000), 8)  # a runaway reply
    assert actions == [0] * 8 and warning


# ----- fuzzing --------------------------------------------------------------------------
_words = st.sampled_from(
    [
        *ACTION_WORDS,
        "left",
        "right",
        "forward",
        "pick",
        "open",
        "the",
        "red",
        "key",
        "door",
        "x3",
        "3",
        "times",
        "twice",
        "then",
        "and",
        ",",
        ";",
        "\n",
        ".",
        "Actions:",
        "1.",
        "-",
        "jump",
        "go",
        "to",
        "ball",
        "9999999999",
        "0",
        "-5",
        "üñí",
        "\x00",
        "{",
        "}",
        "\\",
        "'",
    ]
)
_replies = st.one_of(
    st.lists(_words, max_size=30).map(" ".join),
    st.text(max_size=200),
    st.lists(_words, max_size=30).map("".join),
)


@pytest.fixture(scope="module")
def fuzz_env():
    return agentgym.make("minigrid/levels-v0", max_turns=40, max_actions=6)


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(reply=_replies, family=st.sampled_from(FAMILIES), seed=st.integers(0, 50), new_episode=st.booleans())
def test_fuzzed_replies_never_crash(fuzz_env, reply, family, seed, new_episode):
    env = fuzz_env
    if new_episode or env._done or env.task is None:
        env.reset(
            options={
                "task": TaskSpec(
                    {"family": family, "size": 5 + seed % 4, "count": 1 + seed % 3, "show_subgoals": bool(seed % 2)},
                    seed,
                )
            }
        )
    steps_before = env.minigrid.step_count
    obs, reward, terminated, truncated, info = env.step(reply)
    assert isinstance(reward, float) and np.isfinite(reward)
    assert reward == pytest.approx(sum(info["reward_parts"].values()))
    assert set(info["reward_parts"]) == {"success", "subgoal", "invalid"}
    assert isinstance(info["success"], bool) and isinstance(terminated, bool) and isinstance(truncated, bool)
    assert env.observation_space.contains(obs)
    assert 0 <= env.minigrid.step_count - steps_before <= env.max_actions
    if not terminated:
        assert obs and obs[0]["role"] == "user" and obs[0]["content"]
    if info["error"] is not None and env.minigrid.step_count == steps_before:
        assert info["reward_parts"]["invalid"] == env.invalid_penalty
