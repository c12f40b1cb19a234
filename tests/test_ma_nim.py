"""Nim: the optimal player's guarantees, the move parser, rewards."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("agentgym_multiagent")

import numpy as np
from agentgym_multiagent.nim import legal_moves, nim_sum, optimal_move, parse_move

import agentgym
from agentgym import TaskSpec

ENV_ID = "multiagent/nim-v0"


def test_optimal_move_reaches_zero_nim_sum_from_every_winning_position():
    rng = np.random.default_rng(0)
    for heaps in itertools.product(range(8), repeat=3):
        if not any(heaps):
            continue
        take, i = optimal_move(heaps, rng)
        assert (take, i) in legal_moves(heaps)
        after = list(heaps)
        after[i] -= take
        if nim_sum(heaps):
            assert nim_sum(after) == 0
        else:
            assert nim_sum(after) != 0  # no move keeps a zero nim-sum


def _play(env, kinds, task, rng):
    """A whole game; returns the winner and, per agent, whether it ever had a winning turn."""
    env.reset(options={"task": task})
    had_win = {a: False for a in env.possible_agents}
    while not any(env.terminations.values()):
        agent = env.agent_selection
        if nim_sum(env.heaps):
            had_win[agent] = True
        env.step(env.scripted_action(agent, kinds[agent], rng))
        assert env.infos[agent]["error"] is None
        assert env.turn <= env.max_turns
    winner = next(a for a in env.possible_agents if env.infos[a]["success"])
    return winner, had_win


@pytest.mark.parametrize("opponent", ["random", "optimal"])
@pytest.mark.parametrize("seat", [0, 1])
def test_optimal_never_loses_a_winning_position(opponent, seat):
    env = agentgym.make(ENV_ID)
    rng = np.random.default_rng(seat)
    me = env.possible_agents[seat]
    kinds = {a: ("optimal" if a == me else opponent) for a in env.possible_agents}
    counted = 0
    for s in range(300):
        params = {"heaps": 1 + s % 3, "max_heap": 2 + s % 6, "opponent": "self", "seat": 0}
        winner, had_win = _play(env, kinds, TaskSpec(params, s), rng)
        if had_win[me]:
            counted += 1
            assert winner == me, f"optimal lost from a winning position (seed {s})"
    assert counted > 20  # second seat vs optimal: only games starting at a zero nim-sum


@pytest.mark.parametrize("first", ["random", "optimal"])
def test_losing_position_always_loses_to_optimal(first):
    env = agentgym.make(ENV_ID)
    rng = np.random.default_rng(7)
    kinds = {"player_0": first, "player_1": "optimal"}
    losing = 0
    for s in range(600):
        params = {"heaps": 2 + s % 2, "max_heap": 3 + s % 5, "opponent": "self", "seat": 0}
        env.reset(options={"task": TaskSpec(params, s)})
        if nim_sum(env.heaps):
            continue
        losing += 1
        winner, _ = _play(env, kinds, TaskSpec(params, s), rng)
        assert winner == "player_1"
    assert losing > 20


def test_rewards_are_zero_sum_and_messages_tell_the_position():
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": TaskSpec({"heaps": 2, "max_heap": 4, "opponent": "self", "seat": 0}, 3)})
    first = env.observe("player_0")["messages"]
    assert first[0]["role"] == "system" and "take K from heap H" in first[0]["content"]
    assert first[-1]["content"].startswith("Heaps: heap 1 has ")
    h = list(env.heaps)
    env.step(f"I take {h[0]} from heap 1.")
    msg = env.observe("player_1")["messages"][-1]["content"]
    assert msg.startswith(f"The other player took {h[0]} from heap 1. Heaps: heap 1 has 0, heap 2 has {h[1]}.")
    env.step(f"take {h[1]} from heap 2")
    assert env.terminations == {"player_0": True, "player_1": True}
    assert env.rewards == {"player_0": -1.0, "player_1": 1.0}
    assert env.infos["player_1"]["success"] and not env.infos["player_0"]["success"]


@pytest.mark.parametrize(
    "text, heaps, move",
    [
        ("take 2 from heap 1", [3, 4], (2, 0)),
        ("TAKE 4 FROM HEAP 2.", [3, 4], (4, 1)),
        ("I will take 1 object from heap #2", [3, 4], (1, 1)),
        ("take 3 stones from heap 1, take 3 from heap 1", [3], (3, 0)),
        ("take 2", [5], (2, 0)),
    ],
)
def test_parse_move_accepts(text, heaps, move):
    assert parse_move(text, heaps) == (move, None)


@pytest.mark.parametrize(
    "text, heaps, says",
    [
        ("heap 2, 3 objects", [3, 4], "no move found"),
        ("take 2", [3, 4], "no move found"),
        ("take 1 from heap 1 and take 2 from heap 2", [3, 4], "several moves"),
        ("take 1 from heap 3", [3, 4], "no heap 3"),
        ("take 1 from heap 1", [0, 4], "heap 1 is empty"),
        ("take 0 from heap 2", [3, 4], "at least 1"),
        ("take 5 from heap 2", [3, 4], "has only 4"),
        ("take 99999999999999999999999 from heap 1", [3], "has only 3"),
    ],
)
def test_parse_move_refuses_with_legal_moves(text, heaps, says):
    move, error = parse_move(text, heaps)
    assert move is None and says in error
    assert "Legal moves:" in error


def test_illegal_move_keeps_the_turn():
    env = agentgym.make(ENV_ID, invalid_action_penalty=-0.2)
    env.reset(options={"task": TaskSpec({"heaps": 1, "max_heap": 3, "opponent": "self", "seat": 0}, 0)})
    before = list(env.heaps)
    env.step("take 9 from heap 1")
    assert env.agent_selection == "player_0" and env.heaps == before
    assert env.infos["player_0"]["reward_parts"] == {"invalid_action": -0.2}
    assert "has only" in env.observe("player_0")["messages"][-1]["content"]
