"""The multi-agent bases, runner and per-seat GRPO advantages, on two toy games."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

import agentgym
from agentgym import Categorical, HeldOut, Integer, ParamSpace
from agentgym.env import TaskSpec
from agentgym.grpo.advantages import group_advantages, seat_groups, split_moves
from agentgym.multiagent import POLICY, Outcome, TextAECEnv, TextParallelEnv
from agentgym.policies.base import SamplingParams
from agentgym.policies.scripted import ScriptedPolicy
from agentgym.rollout import RolloutRunner
from agentgym.rollout.episode import Episode


class ToyNim(TextAECEnv):
    """One heap; take 1-3; whoever takes the last object wins (+1, the other -1)."""

    param_space = ParamSpace([Integer("heap", 1, 9), Categorical("opponent", ("self", "ones")), Integer("seat", 0, 1)])
    # A heap is the whole content and tests train on one heap: no content split (seeds only).
    held_out = HeldOut(content_fraction=0.0)
    scripted_kinds = ("ones", "random")

    def _reset(self, params, rng):
        self.heap, self.cur = params["heap"], 0
        return {
            a: [
                {"role": "system", "content": f"You are {a}."},
                {"role": "user", "content": f"Nim: heap {self.heap}. Take 1, 2 or 3."},
            ]
            for a in self.possible_agents
        }

    def _next_agent(self):
        return self.possible_agents[self.cur]

    def _play(self, agent, text):
        t = text.strip()
        if t not in ("1", "2", "3") or int(t) > self.heap:
            return Outcome(errors={agent: f"take 1 to {min(3, self.heap)}"})
        self.heap -= int(t)
        other = self.possible_agents[1 - self.cur]
        if self.heap == 0:
            return Outcome(
                done=True,
                rewards={agent: {"win": 1.0}, other: {"win": -1.0}},
                success={agent: True},
                messages={other: [{"role": "user", "content": f"Other took {t}, the last one. You lose."}]},
            )
        self.cur = 1 - self.cur
        return Outcome(messages={other: [{"role": "user", "content": f"Other took {t}; heap {self.heap}."}]})

    def _scripted(self, agent, kind, rng):
        return "1" if kind == "ones" else str(int(rng.integers(1, 4)))


class ToyGuess(TextParallelEnv):
    """Both guess a hidden digit at once each round; a right guess scores 1."""

    param_space = ParamSpace([Integer("n", 1, 5)])
    scripted_kinds = ("low",)

    def _reset(self, params, rng):
        self.secret = int(rng.integers(1, params["n"] + 1))
        self.tried = 0
        return {a: [{"role": "user", "content": f"Guess my digit in 1..{params['n']}."}] for a in self.possible_agents}

    def _play_round(self, actions):
        self.tried += 1
        hit = {a: t.strip() == str(self.secret) for a, t in actions.items()}
        return Outcome(
            done=any(hit.values()),
            rewards={a: {"hit": float(h)} for a, h in hit.items()},
            success=hit,
            messages={a: [{"role": "user", "content": "Wrong." if not h else "Right."}] for a, h in hit.items()},
        )

    def _scripted(self, agent, kind, rng):
        return str(self.tried + 1)


class ToySeats(TextParallelEnv):
    """One round of simultaneous replies; player_0 always scores 1 more than player_1, and
    with ``spread`` a reply of odd length 0.5 more: the seats' returns never compare."""

    param_space = ParamSpace([Categorical("spread", (False, True))])
    held_out = HeldOut(content_fraction=0.0)

    def _reset(self, params, rng):
        self.spread = bool(params["spread"])
        return {a: [{"role": "user", "content": "Say anything."}] for a in self.possible_agents}

    def _play_round(self, actions):
        rewards = {}
        for a, text in actions.items():
            rewards[a] = {"seat": 1.0 if a == "player_0" else 0.0}
            if self.spread:
                rewards[a]["odd"] = 0.5 * (len(text) % 2)
        return Outcome(done=True, rewards=rewards)


agentgym.register("test/ma-nim-v0", ToyNim, gymnasium_id=False)
agentgym.register("test/ma-seats-v0", ToySeats, gymnasium_id=False)
agentgym.register("test/ma-guess-v0", ToyGuess, gymnasium_id=False)


def nim_task(heap, opponent="self", seat=0, seed=1):
    return TaskSpec({"heap": heap, "opponent": opponent, "seat": seat}, seed)


def test_pettingzoo_api_and_seed_tests_pass_for_both_bases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # text observations are not numpy arrays: warnings only
        api_test(ToyNim(), num_cycles=100)
        seed_test(ToyNim)
        parallel_api_test(ToyGuess(), num_cycles=100)
        parallel_seed_test(ToyGuess)


def test_registry_makes_games_and_not_gymnasium_ids():
    import gymnasium

    env = agentgym.make("test/ma-nim-v0", max_turns=5)
    assert isinstance(env, ToyNim) and env.max_turns == 5 and env.env_id == "test/ma-nim-v0"
    assert "test/ma-nim-v0" not in gymnasium.registry


@pytest.mark.parametrize("bad", [None, b"1", 3, "x" * 5000, "", "4", "take two"])
def test_unusable_actions_get_an_error_and_the_penalty(bad):
    env = ToyNim(invalid_action_penalty=-0.25)
    env.reset(options={"task": nim_task(5)})
    env.step(bad)
    info = env.infos["player_0"]
    assert info["error"] and info["reward_parts"] == {"invalid_action": -0.25}
    assert env.rewards == {"player_0": -0.25, "player_1": 0.0}
    assert env.agent_selection == "player_0"  # the same player moves again
    assert env.observe("player_0")["messages"][-1]["content"].startswith("Error:")


def test_forfeit_after_max_invalid_moves_in_a_row_ends_the_game():
    env = ToyNim(max_invalid=2, forfeit_penalty=-1.0)
    env.reset(options={"task": nim_task(5)})
    env.step("nope")
    assert not env.terminations["player_0"]
    env.step("nope")
    assert all(env.terminations.values())
    assert env.infos["player_0"]["reward_parts"] == {"invalid_action": -0.1, "forfeit": -1.0}


def test_turn_limit_truncates_a_game_that_never_ends():
    env = ToyGuess(max_turns=3)
    obs, _ = env.reset(options={"task": TaskSpec({"n": 5}, 0)})
    for _ in range(3):
        assert env.agents
        obs, rew, term, trunc, info = env.step({a: "0" for a in env.agents})
    assert env.agents == [] and all(trunc.values()) and not any(term.values())


def test_same_task_same_game_and_controllers_follow_params():
    a, b = ToyGuess(), ToyGuess()
    a.reset(options={"task": TaskSpec({"n": 5}, 7)})
    b.reset(options={"task": TaskSpec({"n": 5}, 7)})
    assert a.secret == b.secret
    env = ToyNim()
    env.reset(options={"task": nim_task(5, "ones", seat=1)})
    assert env.controllers() == {"player_0": "ones", "player_1": POLICY}
    env.reset(options={"task": nim_task(5)})
    assert env.controllers() == {"player_0": POLICY, "player_1": POLICY}


def take_one(chat):
    return ScriptedPolicy(chat, lambda text: "1")


def test_self_play_gives_one_episode_per_seat_with_only_its_own_tokens_trained(chat):
    runner = RolloutRunner(take_one(chat), SamplingParams(max_new_tokens=8))
    eps = runner.run("test/ma-nim-v0", [nim_task(5), nim_task(4)], group_size=2)
    assert [(e.group, e.agent) for e in eps] == [(0, "player_0"), (0, "player_1")] * 2 + [
        (1, "player_0"),
        (1, "player_1"),
    ] * 2
    for e in eps:
        # The trained tokens are exactly this seat's own replies, each closed by eos.
        mine = [t for t, m in zip(e.token_ids, e.loss_mask) if m]
        n_moves = len(e.turn_rewards)
        assert chat.decode(mine) == "1" * n_moves
        # What the other seat did reaches this seat only as env text (mask 0).
        context = chat.decode([t for t, m in zip(e.token_ids, e.loss_mask) if not m])
        assert f"You are {e.agent}." in context
        if e.agent == "player_1":
            assert "Other took 1; heap 4." in context or "Other took 1; heap 3." in context
    # Heap 5, everyone takes one: player_0 takes the 1st, 3rd, 5th (last) -> wins.
    g0 = {e.agent: e for e in eps if e.group == 0}
    assert g0["player_0"].reward == 1.0 and g0["player_0"].success and len(g0["player_0"].turn_rewards) == 3
    # player_1's loss arrives on player_0's move and is credited to player_1's last move.
    assert g0["player_1"].turn_rewards == [0.0, -1.0] and not g0["player_1"].success
    g1 = {e.agent: e for e in eps if e.group == 1}
    assert g1["player_1"].reward == 1.0 and g1["player_0"].reward == -1.0


def test_scripted_seats_make_no_episodes_and_controllers_override(chat):
    runner = RolloutRunner(take_one(chat), SamplingParams(max_new_tokens=8))
    eps = runner.run("test/ma-nim-v0", [nim_task(4, "ones", seat=1)], group_size=3)
    assert [e.agent for e in eps] == ["player_1"] * 3 and all(e.reward == 1.0 for e in eps)
    eps = runner.run("test/ma-nim-v0", [nim_task(4)], group_size=1, controllers={"player_0": "ones"})
    assert [e.agent for e in eps] == ["player_1"]
    with pytest.raises(ValueError, match="no scripted player"):
        runner.run("test/ma-nim-v0", [nim_task(4)], controllers={"player_0": "optimal"})
    with pytest.raises(ValueError, match="has no seat"):
        runner.run("test/ma-nim-v0", [nim_task(4)], controllers={"dealer": "ones"})


def test_a_seat_that_never_moved_counts_in_evaluation_only(chat):
    """Heap 1, the scripted first player takes it: player_1 loses without a move. Training
    gets no Episode (nothing to train on); evaluation counts the loss."""
    from agentgym.eval import evaluate_env

    runner = RolloutRunner(take_one(chat), SamplingParams(max_new_tokens=8))
    task = nim_task(1, "ones", seat=1)
    assert runner.run("test/ma-nim-v0", [task], group_size=2) == []
    idle = runner.run("test/ma-nim-v0", [task], group_size=2, idle_seats=True)
    assert [(e.agent, e.reward, e.success, e.num_policy_tokens) for e in idle] == [("player_1", -1.0, False, 0)] * 2
    assert "Nim: heap 1." in chat.decode(idle[0].token_ids)
    rep = evaluate_env(take_one(chat), "test/ma-nim-v0", opponents=["ones"], tasks=[task, nim_task(2, seed=2)])
    # player_0 wins heap 1 and loses heap 2 (taking one each); player_1 the reverse; all 4 count.
    seat = rep.by_param["seat"]
    assert seat["player_0"].tasks == seat["player_1"].tasks == 2
    assert seat["player_0"].success == seat["player_1"].success == 0.5


def test_simultaneous_game_batches_all_seats_and_credits_each(chat):
    runner = RolloutRunner(ScriptedPolicy(chat, lambda text: "2"), SamplingParams(max_new_tokens=8))
    eps = runner.run("test/ma-guess-v0", [TaskSpec({"n": 1}, 0)], group_size=1)
    # n = 1: the secret is 1; both say 2 every round until the turn limit.
    assert [e.agent for e in eps] == ["player_0", "player_1"]
    assert all(e.end_reason == "truncated" and e.reward == 0.0 for e in eps)
    eps = runner.run("test/ma-guess-v0", [TaskSpec({"n": 3}, 0)], controllers={"player_1": "low"})
    (e,) = eps
    assert e.agent == "player_0"
    env = ToyGuess()
    env.reset(options={"task": TaskSpec({"n": 3}, 0)})
    # "low" guesses 1, 2, 3...; the policy always says 2: it scores iff the secret is 2.
    assert e.success == (env.secret == 2)


def test_malformed_replies_are_penalised_and_the_game_still_ends(chat):
    runner = RolloutRunner(
        ScriptedPolicy(chat, lambda text: "I think I will take some"), SamplingParams(max_new_tokens=16)
    )
    eps = runner.run("test/ma-nim-v0", [nim_task(6)], group_size=2)
    # player_0 moves first: three errors in a row and it forfeits, so player_1 never
    # moves and has no tokens to train on (no episode).
    assert [e.agent for e in eps] == ["player_0", "player_0"]
    for e in eps:
        assert e.end_reason == "terminated" and len(e.errors) == 3
        assert e.reward_parts["forfeit"] == -1.0 and e.reward_parts["invalid_action"] == pytest.approx(-0.3)


def test_token_budget_ends_the_game_cleanly(chat):
    # Both seats fit a move or two (openings of 37 and 51 tokens), not the whole game.
    runner = RolloutRunner(take_one(chat), SamplingParams(max_new_tokens=8), max_episode_tokens=80)
    eps = runner.run("test/ma-nim-v0", [nim_task(9)], group_size=1)
    assert sorted(e.agent for e in eps) == ["player_0", "player_1"]
    assert all(e.end_reason == "token_budget" and e.num_turns >= 1 for e in eps)


def test_per_seat_advantages_by_hand():
    def ep(group, agent, r):
        return Episode("g", TaskSpec({}, 0), [1, 2], [0, 1], [0.0, -1.0], 1, turn_rewards=[r], group=group, agent=agent)

    eps = [ep(0, "a", 1.0), ep(0, "b", -1.0), ep(0, "a", 0.0), ep(0, "b", 1.0), ep(1, "a", 2.0), ep(1, "a", 2.0)]
    gids = seat_groups(eps)
    assert gids == [0, 1, 0, 1, 2, 2]
    adv = group_advantages([e.reward for e in eps], gids, scale_std=False)
    # Seat a in task 0: returns 1, 0 -> mean 0.5; seat b: -1, 1 -> mean 0; task 1 all equal.
    assert adv.tolist() == [0.5, -1.0, -0.5, 1.0, 0.0, 0.0]
    # Pooling the seats (the wrong way) would compare a's 1.0 with b's -1.0: mean 0.25.
    pooled = group_advantages([e.reward for e in eps], [e.group for e in eps], scale_std=False)
    assert pooled[0] == pytest.approx(0.75)


def test_split_moves_gives_each_move_its_return_to_go_and_group():
    # prompt(2) move0(2) env(1) move1(1, no eos) : rewards 0.5 then 1.0
    e = Episode(
        "g",
        TaskSpec({}, 0),
        [5, 6, 7, 0, 8, 9],
        [0, 0, 1, 1, 0, 1],
        [0, 0, -0.1, -0.2, 0, -0.3],
        2,
        turn_rewards=[0.5, 1.0],
        group=3,
        agent="b",
    )
    f = Episode(
        "g",
        TaskSpec({}, 0),
        [5, 6, 7, 0, 8, 0],
        [0, 0, 1, 1, 0, 1],
        [0, 0, -0.1, -0.2, 0, -0.3],
        2,
        turn_rewards=[0.0, 0.0],
        group=3,
        agent="b",
    )
    samples, gids = split_moves([e, f], eos_token_ids={0})
    assert [s.reward for s in samples] == [1.5, 1.0, 0.0, 0.0]
    assert samples[0].token_ids == [5, 6, 7, 0] and samples[0].loss_mask == [0, 0, 1, 1]
    assert samples[1].token_ids == e.token_ids and samples[1].loss_mask == [0, 0, 0, 0, 0, 1]
    assert [s.hit_length_limit for s in samples] == [False, True, False, False]
    # Moves are compared with the same move of the same seat: (3, b, 0) and (3, b, 1).
    assert gids == [0, 1, 0, 1]
    adv = group_advantages([s.reward for s in samples], gids, scale_std=False)
    assert adv.tolist() == [0.75, 0.5, -0.75, -0.5]


def test_grpo_trains_on_a_game_with_per_seat_metrics_and_game_eval(tmp_path):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=test/ma-nim-v0",
            "env.kwargs={max_turns: 6}",
            "env.params={opponent: [self]}",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.max_episode_tokens=256",
            "train.steps=1",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
            "multiagent.advantages=role_turn",
            "multiagent.eval_opponents=[ones, self]",
        ],
    )
    trainer = GRPOTrainer(cfg, quiet=True)
    record = trainer.train_step()
    # The tiny model babbles: player_0 forfeits before player_1 ever moves.
    assert {"reward/seat/player_0", "success/seat/player_0", "loss"} <= set(record)
    rep = trainer.evaluate()
    assert set(rep.by_param["opponent"]) == {"ones", "self"}
    assert set(rep.by_param["seat"]) == {"player_0", "player_1", "all"}
    # 2 tasks x 2 seats vs "ones", + 2 self-play games x 2 seats, each train.eval_k=4 times:
    # player_0 forfeits, and player_1, which never moved, still counts in evaluation.
    assert rep.overall.episodes == 8 * 4 and rep.overall.tasks == 2  # standard errors over the 2 deals
    assert rep.by_param["opponent / seat"]["ones / player_1"].episodes == 2 * 4
    # The eval line carries each opponent's success, and the training plot draws them.
    import json

    from agentgym.eval.plots import plot_training

    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["eval/opponent/ones"] == rep.by_param["opponent"]["ones"].success
    assert set(k for k in line if k.startswith("eval/opponent/")) == {"eval/opponent/ones", "eval/opponent/self"}
    assert plot_training(tmp_path / "run" / "metrics.jsonl", tmp_path / "plots").stat().st_size > 0


def test_bad_multiagent_config_fails_before_training(tmp_path):
    from agentgym.config import ConfigError, load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'r'}",
            "model.name=tiny",
            "env.id=test/ma-nim-v0",
            "multiagent.eval_opponents=[optimal]",
        ],
    )
    with pytest.raises(ConfigError, match="no scripted player \\['optimal'\\]"):
        GRPOTrainer(cfg, quiet=True)


def test_random_scripted_games_never_deadlock():
    rng = np.random.default_rng(0)
    for seed in range(50):
        env = ToyNim(max_turns=12)
        env.reset(options={"task": nim_task(int(rng.integers(1, 10)), seed=seed)})
        moves = 0
        while not all(env.terminations[a] or env.truncations[a] for a in env.agents):
            env.step(env.scripted_action(env.agent_selection, "random", rng))
            moves += 1
        assert moves <= 12
        # It ended for a reason: the heap was emptied, someone forfeited, or the move limit.
        forfeit = any("forfeit" in env.infos[a]["reward_parts"] for a in env.agents)
        assert env.heap == 0 or forfeit or (moves == 12 and all(env.truncations.values()))


def test_a_teacher_chooses_the_opponent_like_any_other_parameter(tmp_path):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=test/ma-nim-v0",
            "env.kwargs={max_turns: 6}",
            "env.params={opponent: [self, ones]}",
            "teacher.name=bandit",
            "teacher.options={arm_dims: [opponent]}",
            "rollout.tasks_per_step=4",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.max_episode_tokens=256",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
        ],
    )
    trainer = GRPOTrainer(cfg, quiet=True)
    played = []
    run = trainer.runner.run

    def recording(env_id, tasks, **kwargs):
        played.extend(t.params["opponent"] for t in tasks)
        return run(env_id, tasks, **kwargs)

    trainer.runner.run = recording
    heard = []
    update = trainer.teacher.update
    trainer.teacher.update = lambda results: (heard.extend(results), update(results))
    try:
        recs = [trainer.train_step() for _ in range(3)]
    finally:
        trainer.close()
    assert set(played) == {"self", "ones"} and len(played) == 12
    assert {"teacher/arm[opponent=self]/n", "teacher/arm[opponent=ones]/n"} <= set(recs[-1])
    # The teacher hears one group per (task, seat) the policy played: in self-play both seats.
    assert recs[-1]["teacher/arm[opponent=self]/n"] + recs[-1]["teacher/arm[opponent=ones]/n"] == len(heard)
    assert all(r.agent for r in heard) and len({(id(r.task), r.agent) for r in heard}) == len(heard)


def _seats_trainer(tmp_path, *extra):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    over = [
        f"run_dir={tmp_path / 'run'}",
        "model.name=tiny",
        "env.id=test/ma-seats-v0",
        "rollout.tasks_per_step=2",
        "rollout.group_size=4",
        "rollout.max_new_tokens=4",
        "rollout.temperature=1.0",
        "grpo.mask_truncated=false",
        "train.eval_tasks=1",
        "train.eval_max_new_tokens=2",
        "train.report_to=[]",
        *extra,
    ]
    return GRPOTrainer(load_config(None, over), quiet=True)


def test_the_trainer_computes_advantages_per_seat(tmp_path, monkeypatch):
    """In a self-play step each seat's episodes are compared with the same seat's in the
    same task: player_0's constant lead over player_1 gives no advantage. Pooled over
    seats, player_0 would be pushed up and player_1 down whatever they replied."""
    from agentgym.grpo import trainer as trainer_mod

    seen = []
    real = trainer_mod.collate
    monkeypatch.setattr(
        trainer_mod, "collate", lambda eps, adv, *a, **k: (seen.append((eps, adv)), real(eps, adv, *a, **k))[1]
    )
    trainer = _seats_trainer(tmp_path, "env.params={spread: [true]}", "multiagent.advantages=role")
    try:
        trainer.train_step()
    finally:
        trainer.close()
    [(eps, adv)] = seen
    assert {e.agent for e in eps} == {"player_0", "player_1"} and len(eps) == 2 * 4 * 2
    rewards = [e.reward for e in eps]
    by_hand = []
    for e in eps:
        mates = [f.reward for f in eps if (f.group, f.agent) == (e.group, e.agent)]
        mean, std = float(np.mean(mates)), float(np.std(mates))
        by_hand.append(0.0 if std == 0 else (e.reward - mean) / (std + 1e-6))
    assert adv == pytest.approx(by_hand, abs=1e-9)
    assert any(a != 0 for a in adv)  # the odd-length bonus gave some signal
    pooled = group_advantages(rewards, [e.group for e in eps]).tolist()
    assert pooled != pytest.approx(adv, abs=1e-3)


def test_dynamic_sampling_judges_each_seat_on_its_own(tmp_path):
    """Without the bonus every seat's group is tied (player_0 all 1, player_1 all 0; the
    filter reads the reward, teacher.outcome=reward): dynamic sampling drops every group
    and the step trains on nothing. Judged over both seats together the task would look
    informative and be kept."""
    trainer = _seats_trainer(
        tmp_path,
        "env.params={spread: [false]}",
        "teacher.outcome=reward",
        "grpo.dynamic_sampling=true",
        "grpo.max_refill_rounds=1",
    )
    try:
        record = trainer.train_step()
    finally:
        trainer.close()
    # 2 rounds of 2 tasks x 2 seats x 4 episodes, every one dropped.
    assert record["rollout/spent"] == record["rollout/dropped"] == 2 * 2 * 2 * 4
    assert record["train/skipped"] == 1.0
