"""TextArena games as agentgym AEC games (``textarena:<GameId>``): PettingZoo's API tests,
what each seat sees, seeding, failures kept inside the game, 2 GRPO steps of self-play and
a held-out evaluation against the scripted random player.

bench/textarena_api.py runs the API tests on every two-player game (docs/interop.md).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("textarena", reason="textarena is not installed (pip install -e '.[test]')")

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402
from agentgym.multiagent import POLICY, is_multiagent  # noqa: E402
from agentgym.registry import EnvNotFound  # noqa: E402

GAMES = ["TicTacToe-v0", "ConnectFour-v0", "KuhnPoker-v0", "LiarsDice-v0", "Poker-v0-small", "Nim-v0"]


def _play_out(env, rng, kind="random", noise=False):
    """Scripted players to the end; ``noise``: something else draws from Python's global RNG between moves."""
    import random

    moves = []
    for agent in env.agent_iter(max_iter=400):
        random.random() if noise else None
        _, _, term, trunc, _ = env.last()
        if term or trunc:
            env.step(None)
            continue
        move = env.scripted_action(agent, kind, rng)
        moves.append((agent, move))
        env.step(move)
    return moves


@pytest.mark.parametrize("game", GAMES)
def test_pettingzoo_api_and_seed_tests_pass(game):
    from pettingzoo.test import api_test, seed_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PettingZoo's advice on non-Box spaces
        api_test(agentgym.make(f"textarena:{game}"), num_cycles=60)
        seed_test(lambda: agentgym.make(f"textarena:{game}"), num_cycles=60)


def test_each_seat_sees_the_game_not_its_own_move_and_the_winner_scores():
    env = agentgym.make("textarena:TicTacToe-v0")
    assert is_multiagent(env) and env.possible_agents == ["player_0", "player_1"]
    env.reset(options={"task": TaskSpec({"opponent": "self", "seat": 0}, 3)})
    assert set(env.controllers().values()) == {POLICY}
    first = env.observe("player_0")["messages"]
    assert len(first) == 1 and "You are Player 0 in Tic Tac Toe" in first[0]["content"]
    assert "Available Moves" in first[0]["content"]
    # player_0 takes the top row, player_1 plays elsewhere: player_0 wins on its third move.
    for move in ["[0]", "[4]", "[1]", "[8]"]:
        env.step(move)
    # Since it last moved: one message for its own move's effect, one for the other seat's.
    seen = [m["content"] for m in env.observe("player_0")["messages"]]
    assert len(seen) == 2 and "placed their symbol (O) in cell 1" in seen[0] and "[Player 1] [8]" in seen[1]
    assert not any("[Player 0]" in text for text in seen)
    env.step("[2]")
    assert all(env.terminations.values())
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    assert env.infos["player_0"]["success"] and not env.infos["player_1"]["success"]
    assert env.infos["player_0"]["reward_parts"] == {"game": 1.0}
    assert "Game over" in env.observe("player_1")["messages"][-1]["content"]


def test_the_same_seed_gives_the_same_game_whatever_else_draws_randomness():
    def deal(seed, noise):
        env = agentgym.make("textarena:PigDice-v0-short")
        env.reset(options={"task": TaskSpec({"opponent": "random", "seat": 0}, seed)})
        opening = env.observe("player_0")
        moves = _play_out(env, np.random.default_rng(0), noise=noise)
        return opening, env.observe("player_0"), moves

    assert deal(5, noise=False) == deal(5, noise=True)
    assert deal(5, noise=False)[2] != deal(6, noise=False)[2]  # the dice are the seed's


def test_random_player_picks_listed_moves_and_a_crashing_game_ends_cleanly(monkeypatch):
    env = agentgym.make("textarena:TicTacToe-v0")
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    moves = {env.scripted_action("player_0", "random", rng) for _ in range(40)}
    assert moves == {f"[{i}]" for i in range(9)}
    with pytest.raises(ValueError, match="no scripted player"):
        env.scripted_action("player_0", "optimal", rng)

    def explode(action):
        raise IndexError("board index out of range")

    monkeypatch.setattr(env._game, "step", explode)
    env.step("[4]")
    assert all(env.terminations.values())
    assert "TextArena raised IndexError" in env.infos["player_0"]["error"]
    assert "board index out of range" in env.observe("player_1")["messages"][-1]["content"]


def test_unknown_games_are_clear_errors():
    with pytest.raises(EnvNotFound, match="TextArena has no game 'TicTacToe-v9'.*TicTacToe-v0"):
        agentgym.make("textarena:TicTacToe-v9")


def test_held_out_tasks_are_held_out_seeds_and_training_never_draws_them():
    cls = agentgym.spec("textarena:KuhnPoker-v0").load_class()
    held = cls.held_out_tasks(8, seed=0)
    assert len({t.seed for t in held}) == 8 and all(t.seed in cls.held_out.seeds for t in held)
    rng = np.random.default_rng(0)
    assert not any(cls.sample_train_task(rng).seed in cls.held_out.seeds for _ in range(200))


def test_grpo_self_play_two_steps_and_a_held_out_eval_against_random(tmp_path):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=textarena:TicTacToe-v0",
            "env.kwargs={max_turns: 4}",
            "env.params={opponent: [self]}",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.max_episode_tokens=512",
            "grpo.mask_truncated=false",
            "train.steps=2",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
            "multiagent.eval_opponents=[random]",
        ],
    )
    trainer = GRPOTrainer(cfg, quiet=True)
    held = agentgym.spec("textarena:TicTacToe-v0").load_class().held_out
    assert trainer.eval_tasks and all(t.seed in held.seeds for t in trainer.eval_tasks)
    assert trainer.train().steps_done == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    # The tiny model babbles: TextArena warns once, then player_0's second bad move loses the game.
    assert len(steps) == 2 and "reward/seat/player_0" in steps[0] and steps[0]["reward/seat/player_0"] < 0
    assert any("eval/opponent/random" in x for x in lines)
