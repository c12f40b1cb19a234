"""Seats: a single-agent env is a one-seat play, a game a play with a seat per agent; the
runner, the pools and the server play both through the same turns."""

from __future__ import annotations

import pytest

import agentgym
from agentgym import TaskSpec
from agentgym.multiagent import POLICY
from agentgym.policies import SamplingParams, ScriptedPolicy
from agentgym.rollout import InProcessPool, RolloutRunner
from agentgym.rollout.seats import GameSeats, OneSeat, Seating, eval_settings, seat_env
from tests.test_multiagent_core import nim_task  # registers the toy games

GUESS = TaskSpec({"high": 9, "hint": False}, 4)


def test_a_single_agent_env_is_one_seat_that_always_moves():
    play = seat_env(agentgym.make("test/guess-v0"))
    assert isinstance(play, OneSeat) and play.seats == [""]
    turn = play.reset(GUESS)
    assert turn.movers == [""] and "Guess my number" in turn.observations[""][0]["content"]
    secret = play.env.unwrapped.secret
    turn = play.step(str(secret % 9 + 1))  # wrong
    assert turn.movers == [""] and not turn.done and [c[:2] for c in turn.credits] == [("", 0.0)]
    turn = play.step({"": str(secret)})
    assert turn.done and turn.end_reason == "terminated" and turn.credits[0][2]["success"]
    assert eval_settings(play.env, ["random"]) == eval_settings(play.env, [])  # opponents mean nothing here


def test_a_game_seats_its_players_and_scripted_seats_move_inside_the_play():
    play = seat_env(agentgym.make("test/ma-nim-v0"))
    assert isinstance(play, GameSeats)
    turn = play.reset(nim_task(5, "ones", seat=1), Seating(seed=3))
    # player_0 is scripted ("ones"): it has moved before the learner's first turn
    assert play.seats == ["player_1"] and turn.movers == ["player_1"] and turn.said == [("player_0", "ones", "1")]
    assert "heap 4" in turn.observations["player_1"][-1]["content"]
    with pytest.raises(ValueError, match="must move now"):
        play.step({"player_0": "1"})
    turn = play.step("3")  # the learner takes 3 of 4, the scripted seat takes the last
    assert turn.done and turn.said == [("player_0", "ones", "1")]
    assert ("player_1", -1.0) in [c[:2] for c in turn.credits]
    with pytest.raises(RuntimeError, match="ended"):
        play.step("1")


def test_a_game_with_every_seat_scripted_plays_to_its_end_at_reset():
    for env_id, task in (("test/ma-nim-v0", nim_task(3)), ("test/ma-guess-v0", TaskSpec({"n": 3}, 1))):
        play = seat_env(agentgym.make(env_id))
        everyone = {a: "random" if env_id.endswith("nim-v0") else "low" for a in play.env.possible_agents}
        turn = play.reset(task, Seating(everyone))
        assert turn.done and turn.movers == [] and play.seats == [] and turn.said


def test_a_seat_whose_prompt_cannot_fit_a_reply_makes_no_episode_but_counts_in_evaluation(chat):
    """The token budget ends a play before a seat that cannot fit one more reply moves,
    a single-agent env's only seat included (there was nothing to train on)."""
    runner = RolloutRunner(ScriptedPolicy(chat, lambda t: "5"), SamplingParams(max_new_tokens=8), max_episode_tokens=10)
    assert runner.run("test/guess-v0", [GUESS], group_size=2) == []
    idle = runner.run("test/guess-v0", [GUESS], group_size=2, idle_seats=True)
    assert [(e.agent, e.reward, e.num_policy_tokens, e.end_reason) for e in idle] == [("", 0.0, 0, "token_budget")] * 2


def test_pool_results_read_a_one_seat_play_as_gymnasium_does(chat):
    pool = InProcessPool()
    (opened,) = pool.reset("test/guess-v0", [GUESS])
    assert opened.seats == [""] and opened.messages == opened.turn.observations[""]
    secret = pool._live[opened.handle][1].env.unwrapped.secret
    (res,) = pool.step([opened.handle], [str(secret)])
    assert res.terminated and not res.truncated and res.reward == 1.0 and res.info["success"]
    (game,) = pool.reset("test/ma-nim-v0", [nim_task(4)], seatings=[Seating({"player_1": "ones"}, demonstrator="ones")])
    assert game.seats == ["player_0"] and pool.oracle([game.handle]) == ["1"]  # the seat to move, demonstrated
    pool.close()


def test_members_of_a_group_come_back_in_member_order_whenever_they_finish(chat):
    """In round 1 member 0 of each task guesses 5 and member 1 guesses 1: on seed 23 (secret
    1) member 1 finishes first, on seed 1 (secret 5) member 0 does. Episodes still come back
    by task, then member."""
    calls = []

    def reply(text):
        calls.append(text)
        return "5" if len(calls) % 2 else "1"

    runner = RolloutRunner(ScriptedPolicy(chat, reply), SamplingParams(max_new_tokens=4))
    tasks = [TaskSpec({"high": 9, "hint": False}, s) for s in (23, 1)]
    eps = runner.run("test/guess-v0", tasks, group_size=2)
    first = [next(m["content"] for m in e.messages if m["role"] == "assistant") for e in eps]
    assert [e.group for e in eps] == [0, 0, 1, 1] and first == ["5", "1", "5", "1"]
    assert eps[1].num_turns == 1 < eps[0].num_turns and eps[2].num_turns == 1 < eps[3].num_turns


def test_evaluation_settings_of_a_game():
    settings = eval_settings(agentgym.make("test/ma-nim-v0"), ["self", "ones"])
    assert [(s.opponent, s.seat) for s in settings] == [("self", "all"), ("ones", "player_0"), ("ones", "player_1")]
    assert settings[0].controllers == {"player_0": POLICY, "player_1": POLICY}
    with pytest.raises(ValueError, match="no scripted player"):
        eval_settings(agentgym.make("test/ma-nim-v0"), ["nash"])
