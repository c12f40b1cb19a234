"""Scripted players against each other: every env, every pair of kinds, to the end; the play CLI."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("agentgym_multiagent")

from agentgym_multiagent.__main__ import main
from agentgym_multiagent.play import play_games
from agentgym_multiagent.registration import GAME_IDS

import agentgym

IDS = list(GAME_IDS)
ZERO_SUM = {"multiagent/kuhn-poker-v0", "multiagent/nim-v0"}


@pytest.mark.parametrize("env_id", IDS)
def test_every_pair_of_scripted_kinds_plays_to_the_end(env_id):
    kinds = agentgym.make(env_id).scripted_kinds
    for k0, k1 in itertools.product(kinds, repeat=2):
        report = play_games(env_id, [k0, k1], 12, seed=1)
        assert len(report.results) == 12
        for r in report.results:
            assert not r.truncated and r.moves >= 1
            if env_id in ZERO_SUM:
                assert sum(r.returns.values()) == pytest.approx(0.0)
                assert sum(r.success.values()) == 1  # exactly one winner
        assert report.table().count("\n") == 4


def test_strong_players_beat_weak_ones():
    nim = play_games("multiagent/nim-v0", ["optimal", "random"], 150, seed=0)
    assert nim.success_rate("player_0") > 0.85
    oracle_team = play_games("multiagent/pioneer-observer-v0", ["oracle", "oracle"], 40, seed=0)
    assert oracle_team.success_rate("observer") == 1.0
    critic = play_games("multiagent/solver-critic-v0", ["random", "oracle"], 60, seed=0)
    assert critic.success_rate("critic") == 1.0
    # A random solver is right half the time, then the true "incorrect" lets it revise
    # (right half the time again): 3/4.
    assert 0.5 < critic.success_rate("solver") < 1.0
    fair = play_games("multiagent/negotiation-v0", ["fair", "fair"], 80, seed=0)
    greedy = play_games("multiagent/negotiation-v0", ["greedy", "greedy"], 80, seed=0)
    deals = lambda rep: sum(r.returns["player_0"] > 0 or r.returns["player_1"] > 0 for r in rep.results)  # noqa: E731
    assert deals(fair) > deals(greedy)


def test_params_and_errors():
    report = play_games(
        "multiagent/nim-v0", {"player_0": "optimal", "player_1": "optimal"}, 20, seed=0, params={"heaps": 1}
    )
    # One heap: the first player takes it all.
    assert report.success_rate("player_0") == 1.0
    with pytest.raises(ValueError, match="no scripted player"):
        play_games("multiagent/nim-v0", ["optimal", "greedy"], 1)
    with pytest.raises(ValueError, match="every seat"):
        play_games("multiagent/nim-v0", {"player_0": "optimal"}, 1)


def test_play_cli_prints_a_table(capsys):
    assert main(["play", "multiagent/kuhn-poker-v0", "--p0", "optimal", "--p1", "random", "--games", "30"]) == 0
    out = capsys.readouterr().out
    assert "player_0=optimal vs player_1=random, 30 games" in out
    assert "success" in out and "mean return" in out
    assert main(["play", "multiagent/nim-v0", "--p0", "all", "--p1", "random", "--games", "5", "-p", "heaps=2"]) == 0
    assert capsys.readouterr().out.count("games truncated") == 2
    assert main(["play", "multiagent/nim-v0", "--p0", "nash", "--p1", "random", "--games", "5"]) == 2


def _policy_move(text: str) -> str:
    """A fixed-rule player reading its conversation: what the runner's policy says."""
    import re

    last = text[text.rfind("user") :]
    if "check or bet" in last:
        return "I bet."
    if "call or fold" in last:
        return "call"
    heaps = re.findall(r"heap (\d+) has (\d+)", last)
    if heaps:
        h = next(i for i, n in heaps if int(n) > 0)
        return f"take 1 from heap {h}"
    if "What do you take?" in last or "what do you take?" in last:
        return "books=0 hats=0 balls=0"
    return "The answer is \\boxed{0}."


@pytest.mark.parametrize(
    "env_id, params",
    [
        ("multiagent/kuhn-poker-v0", {"opponent": "optimal", "seat": 1}),
        ("multiagent/nim-v0", {"heaps": 2, "max_heap": 4, "opponent": "random", "seat": 0}),
        ("multiagent/negotiation-v0", {"n_kinds": 3, "max_count": 2, "max_rounds": 3, "opponent": "fair", "seat": 1}),
        (
            "multiagent/solver-critic-v0",
            {"digits": 1, "n_operands": 2, "operators": "+", "negatives": False, "opponent": "oracle", "seat": 0},
        ),
    ],
)
def test_the_runner_plays_a_policy_against_scripted_opponents(chat, env_id, params):
    from agentgym import TaskSpec
    from agentgym.policies.base import SamplingParams
    from agentgym.policies.scripted import ScriptedPolicy
    from agentgym.rollout import RolloutRunner

    runner = RolloutRunner(ScriptedPolicy(chat, _policy_move), SamplingParams(max_new_tokens=24))
    tasks = [TaskSpec(params, s) for s in range(3)]
    eps = runner.run(env_id, tasks, group_size=2)
    seat = agentgym.make(env_id).possible_agents[params["seat"]]
    assert [e.agent for e in eps] == [seat] * 6
    for e in eps:
        assert e.end_reason == "terminated" and not e.errors
        assert e.reward == pytest.approx(sum(e.reward_parts.values()))
        assert sum(e.loss_mask) > 0
