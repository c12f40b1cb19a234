"""Negotiation: tables and values, the request parser, deals, the round limit."""

from __future__ import annotations

import pytest

pytest.importorskip("agentgym_multiagent")

import numpy as np
from agentgym_multiagent.negotiation import (
    TOTAL_VALUE,
    fair_request,
    fits,
    parse_request,
    show,
    value_vectors,
    worth,
)

import agentgym
from agentgym import TaskSpec

ENV_ID = "multiagent/negotiation-v0"


def _task(seed=0, **params):
    return TaskSpec({"n_kinds": 3, "max_count": 3, "max_rounds": 3, "opponent": "self", "seat": 0, **params}, seed)


def test_tables_have_private_different_values_of_equal_total():
    env = agentgym.make(ENV_ID)
    rng = np.random.default_rng(0)
    for _ in range(200):
        task = env.sample_train_task(rng)
        env.reset(options={"task": task})
        p = task.params
        assert len(env.counts) == p["n_kinds"] and all(1 <= c <= p["max_count"] for c in env.counts)
        v0, v1 = env.values["player_0"], env.values["player_1"]
        assert v0 != v1
        assert worth(env.counts, v0) == worth(env.counts, v1) == TOTAL_VALUE
    assert value_vectors((1, 1)) == [(i, 10 - i) for i in range(11)]


def test_each_agent_sees_only_its_own_values():
    env = agentgym.make(ENV_ID)
    obs, _ = env.reset(options={"task": _task(4)})
    for agent in ("player_0", "player_1"):
        system = obs[agent]["messages"][0]["content"]
        mine = ", ".join(f"{n} {v}" for n, v in zip(("book", "hat", "ball"), env.values[agent]))
        assert f"Your points per item: {mine} " in system
        assert "books=0 hats=0 balls=0" in system
        assert obs[agent]["messages"][1]["content"] == "Round 1 of 3. What do you take?"


def test_deal_rewards_each_agent_its_own_share():
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": _task(1)})
    counts = env.counts
    mine = tuple(c // 2 for c in counts)
    theirs = tuple(c - m for c, m in zip(counts, mine))
    assert fits(mine, theirs, counts)
    obs, rewards, terms, truncs, infos = env.step({"player_0": show(mine), "player_1": f"I take {show(theirs)}."})
    assert all(terms.values()) and not any(truncs.values())
    for agent, take in (("player_0", mine), ("player_1", theirs)):
        share = worth(take, env.values[agent]) / TOTAL_VALUE
        assert rewards[agent] == pytest.approx(share)
        assert infos[agent]["reward_parts"] == {"deal": pytest.approx(share)}
        assert infos[agent]["success"] == (share >= 0.5)
        assert obs[agent]["messages"][-1]["content"].startswith("Deal in round 1")
    assert env.agents == []


def test_no_deal_by_the_last_round_gives_zero_and_shows_requests():
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": _task(2, max_rounds=2)})
    everything = show(env.counts)
    obs, rewards, terms, *_ = env.step({"player_0": everything, "player_1": everything})
    assert not any(terms.values()) and rewards == {"player_0": 0.0, "player_1": 0.0}
    msg = obs["player_0"]["messages"][-1]["content"]
    assert f"the other agent asked for {everything}" in msg and "too many" in msg and "Round 2" in msg
    obs, rewards, terms, truncs, infos = env.step({"player_0": everything, "player_1": everything})
    assert all(terms.values()) and not any(truncs.values())
    assert rewards == {"player_0": 0.0, "player_1": 0.0}
    assert not infos["player_0"]["success"] and "both get 0" in obs["player_1"]["messages"][-1]["content"]


def test_a_round_of_only_unusable_requests_still_counts():
    # Both agents fail in the last round: the game ends there (no extra round).
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": _task(3, max_rounds=2)})
    env.step({"player_0": "books=9 hats=9 balls=9", "player_1": "hello"})
    obs, rewards, terms, truncs, infos = env.step({"player_0": None, "player_1": "x" * 5000})
    assert all(terms.values()) and env.agents == []
    for agent in ("player_0", "player_1"):
        assert infos[agent]["error"]
        assert infos[agent]["reward_parts"]["invalid_action"] == env.invalid_action_penalty
        assert "could not be read" in obs[agent]["messages"][0]["content"]


@pytest.mark.parametrize(
    "text, request_",
    [
        ("books=1 hats=0 balls=2", (1, 0, 2)),
        ("I take Books: 2, hats: 1, balls: 0 please", (2, 1, 0)),
        ("book=1 hat=1 ball=1", (1, 1, 1)),
        ("books=1 books=1 hats=0 balls=0", (1, 0, 0)),
    ],
)
def test_parse_request_accepts(text, request_):
    assert parse_request(text, (2, 2, 2)) == (request_, None)


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "no request found"),
        ("give me everything", "no request found"),
        ("books=1 hats=2", "balls"),
        ("books=3 hats=0 balls=0", "only 2"),
        ("books=-1 hats=0 balls=0", "negative"),
        ("cars=1 books=0 hats=0 balls=0", "no cars"),
        ("books=1 books=2 hats=0 balls=0", "twice"),
        ("books=1 hats=0 balls=0 " + "x" * 400, "too long"),
    ],
)
def test_parse_request_refuses_with_the_format(text, says):
    req, error = parse_request(text, (2, 2, 2))
    assert req is None and says in error and "books=0 hats=0 balls=0" in error


def test_fair_player():
    values, counts = (1, 2, 3), (3, 2, 1)  # worth 10
    ask = fair_request(values, counts, None)
    assert worth(ask, values) >= 5 and ask == (0, 1, 1)
    # The other left enough: take exactly what it left.
    assert fair_request(values, counts, (3, 0, 0)) == (0, 2, 1)
    assert fair_request(values, counts, (0, 2, 1)) == (0, 1, 1)


def test_general_sum_a_deal_can_be_good_for_both():
    # Different values make some splits worth more than half to both agents.
    env = agentgym.make(ENV_ID)
    rng = np.random.default_rng(1)
    both_gain = 0
    for _ in range(50):
        env.reset(options={"task": env.sample_train_task(rng)})
        v0, v1 = env.values["player_0"], env.values["player_1"]
        best = max(
            worth(t, v0) + worth(tuple(c - x for c, x in zip(env.counts, t)), v1)
            for t in np.ndindex(*(c + 1 for c in env.counts))
        )
        both_gain += best > TOTAL_VALUE
    assert both_gain > 25
