"""The trainer in its less common modes: games, interrupts, off-policy resume, LoRA dropout,
token budgets, and token-in/token-out checked against what the policy really sampled."""

from __future__ import annotations

import pytest

from agentgym import TaskSpec
from agentgym.config import load_config
from agentgym.curriculum import DynamicSampling, RandomTeacher, TrainingTasks
from agentgym.grpo.batch import collate
from agentgym.grpo.collect import Collector
from agentgym.grpo.trainer import GRPOTrainer
from agentgym.policies import SamplingParams, ScriptedPolicy
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.rollout import RolloutRunner


def _nim():
    pytest.importorskip("tests.test_multiagent_core")  # registers test/ma-nim-v0
    from tests.test_multiagent_core import ToyNim

    return ToyNim


# ----- bug 1: filters judge each (task, seat) group -------------------------------------------
def test_dynamic_sampling_judges_each_seat_group_not_the_pooled_task(chat):
    """Nim with one object left after each "1": player_0 always loses (-1), player_1 always
    wins (+1). Each seat's group has equal rewards (zero advantage), so both are dropped;
    pooled per task (the old rule) they looked varied and were kept."""
    nim = _nim()
    tasks = TrainingTasks(nim.param_space, nim.held_out, {"heap": [2], "opponent": ["self"]})
    runner = RolloutRunner(ScriptedPolicy(chat, lambda _: "1"), SamplingParams(max_new_tokens=4))
    col = Collector(
        runner,
        RandomTeacher(tasks, seed=0),
        [DynamicSampling()],
        env_id="test/ma-nim-v0",
        tasks_per_step=2,
        group_size=3,
        max_refill_rounds=0,
    )
    batch = col.collect()
    assert {r.agent for r in batch.results} == {"player_0", "player_1"}
    assert {tuple(r.rewards) for r in batch.results} == {(-1.0,) * 3, (1.0,) * 3}
    assert batch.episodes == [] and batch.stats["rollout/dropped"] == batch.stats["rollout/spent"] == 12


def test_each_seat_group_is_kept_or_dropped_on_its_own_rewards(chat):
    import numpy as np

    nim = _nim()
    tasks = TrainingTasks(nim.param_space, nim.held_out, {"heap": [2], "opponent": ["self"]})
    rng = np.random.default_rng(0)
    runner = RolloutRunner(ScriptedPolicy(chat, lambda _: str(rng.integers(1, 3))), SamplingParams(max_new_tokens=4))
    col = Collector(
        runner,
        RandomTeacher(tasks, seed=0),
        [DynamicSampling()],
        env_id="test/ma-nim-v0",
        tasks_per_step=3,
        group_size=4,
        max_refill_rounds=0,
    )
    batch = col.collect()
    kept = {(e.task.seed, e.agent) for e in batch.episodes}
    assert kept and len(kept) < len(batch.results)  # some seat groups kept, some dropped
    for r in batch.results:  # judged on the seat's outcomes (its successes), not its shaped rewards
        assert ((r.task.seed, r.agent) in kept) == (len(set(r.outcomes)) > 1)
    assert sorted({e.group for e in batch.episodes}) == list(range(len({e.task.seed for e in batch.episodes})))
    # The batch's renumbered episodes are copies: the played groups the teacher was told
    # about keep their own episodes, numbered by the order tasks were played this step.
    played = [e for r in batch.results for e in r.episodes]
    assert not {id(e) for e in played} & {id(e) for e in batch.episodes}
    serial = {r.task.seed: {e.group for e in r.episodes} for r in batch.results}
    assert [serial[r.task.seed] for r in batch.results[::2]] == [{i} for i in range(3)]


def test_demonstrations_are_new_episodes_marked_as_sampled_by_no_policy(chat, monkeypatch):
    from agentgym.rollout import demos
    from agentgym.rollout.runner import RolloutRunner

    played = []
    run = RolloutRunner.run
    monkeypatch.setattr(RolloutRunner, "run", lambda self, *a, **kw: played.extend(run(self, *a, **kw)) or played)
    keep, _ = demos.make_demos("test/no-e-v0", chat, 3)
    assert [e.policy_version for e in keep] == [-1] * 3
    assert [e.policy_version for e in played] == [0] * 3 and not {id(e) for e in played} & {id(e) for e in keep}


# ----- bug 7: a seat that never moved is not a training sample --------------------------------
def test_a_seat_opened_in_the_round_the_game_ends_on_the_budget_is_not_emitted(chat):
    _nim()
    sp = SamplingParams(max_new_tokens=4)
    task = TaskSpec({"heap": 5, "opponent": "self", "seat": 0}, 3)
    wide = RolloutRunner(ScriptedPolicy(chat, lambda _: "1"), sp, max_episode_tokens=4096)
    eps = wide.run("test/ma-nim-v0", [task])
    first = {e.agent: e.prompt_len for e in eps}
    # Room for player_0's first move only: player_1's opening (which holds that move) is longer.
    assert first["player_1"] > first["player_0"]
    tight = RolloutRunner(ScriptedPolicy(chat, lambda _: "1"), sp, max_episode_tokens=first["player_0"] + 4)
    eps = tight.run("test/ma-nim-v0", [task])
    assert [e.agent for e in eps] == ["player_0"] and eps[0].num_turns == 1
    assert all(e.num_policy_tokens > 0 for e in eps)
    # Evaluation still counts the seat (it never moved), with what it earned: nothing.
    shown = tight.run("test/ma-nim-v0", [task], idle_seats=True)
    idle = [e for e in shown if e.agent == "player_1"]
    assert len(idle) == 1 and idle[0].num_policy_tokens == 0 and idle[0].reward == 0.0


# ----- bug 6: Dr. GRPO budget per sample ---------------------------------------------------------
@pytest.mark.parametrize("mode, turns", [("role_turn", 1), ("role", None)])
def test_dr_grpo_budget_is_one_move_for_move_samples(tmp_path, monkeypatch, mode, turns):
    _nim()
    from agentgym.grpo import trainer as trainer_mod

    seen = []
    real = trainer_mod.update_policy
    monkeypatch.setattr(
        trainer_mod, "update_policy", lambda m, o, batch, s, **kw: (seen.append(batch), real(m, o, batch, s, **kw))[1]
    )
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=test/ma-nim-v0",
            "env.kwargs={max_turns: 6}",
            "env.params={opponent: [self], heap: [4]}",
            f"multiagent.advantages={mode}",
            "grpo.loss_agg=dr_grpo",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "grpo.mask_truncated=false",
            "rollout.max_episode_tokens=512",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
        ],
    )
    tr = GRPOTrainer(cfg, quiet=True)
    try:
        tr.train_step()
    finally:
        tr.close()
    # A whole episode holds one seat's moves: of the game's 6 moves in all, 3 are its own.
    expected = 4 * (turns or 3)
    assert tr.parts.env.max_turns == 6 and seen and set(seen[0].token_budget.tolist()) == {float(expected)}


def test_a_seat_moves_its_share_of_a_turn_based_game_and_every_round_of_a_simultaneous_one():
    """max_seat_moves, the move budget of one seat: max_turns counts every seat's moves in
    a turn-based game (odd limits round up: the first mover gets the extra one) and rounds
    in a simultaneous one."""
    from tests.test_multiagent_core import ToyGuess, ToyNim

    assert [ToyNim(max_turns=t).max_seat_moves for t in (1, 5, 6)] == [1, 3, 3]
    assert ToyNim(max_cycles=4).max_seat_moves == 4
    assert [ToyGuess(max_turns=t).max_seat_moves for t in (1, 5)] == [1, 5]


# ----- bug 8: LoRA dropout acts -----------------------------------------------------------------
def test_lora_dropout_acts_in_the_update_and_nowhere_else(tmp_path):
    def mismatch(dropout):
        cfg = load_config(
            None,
            [
                f"run_dir={tmp_path / str(dropout)}",
                "model.name=tiny",
                "env.id=test/no-e-v0",
                "model.lora.r=4",
                f"model.lora.dropout={dropout}",
                "rollout.tasks_per_step=2",
                "rollout.group_size=4",
                "rollout.max_new_tokens=4",
                "grpo.mask_truncated=false",
                "train.eval_tasks=2",
                "grpo.lr=1e-2",
            ],
        )
        tr = GRPOTrainer(cfg, quiet=True)
        try:
            assert tr.parts.update.train_mode is (dropout > 0)
            # LoRA's B starts at zero: only once a step has moved it does its branch (and dropout)
            # matter. A step whose groups all tied moves nothing, so step until B has moved.
            for _ in range(6):
                tr.train_step()
                if any(float(p.detach().abs().sum()) > 0 for n, p in tr.model.named_parameters() if "lora_B" in n):
                    break
            else:
                raise AssertionError("six steps never moved LoRA's B")
            rec = tr.train_step()
            assert not tr.model.training  # sampling and evaluation stay dropout-free
            return rec["logp_mismatch"]
        finally:
            tr.close()

    assert mismatch(0.0) < 1e-4  # the update recomputes exactly what was sampled
    assert mismatch(0.5) > 1e-3  # dropout changes the update's forward pass


# ----- token-in/token-out against the sampled ids ----------------------------------------------
def test_trained_ids_are_the_ids_the_policy_sampled(tiny):
    """The loss positions of the batch hold, in order, exactly the completions the policy
    returned (a runner that re-tokenized decoded text would change them: the random tiny
    model's tokens do not survive decode -> encode)."""
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=5)
    sampled: list[tuple[list, list[list[int]]]] = []
    real = pol.generate

    def spy(prompts, sampling):
        out = real(prompts, sampling)
        sampled.append(([list(p) for p in prompts], [list(c.token_ids) for c in out]))
        return out

    pol.generate = spy
    runner = RolloutRunner(pol, SamplingParams(max_new_tokens=6, temperature=1.0))
    tasks = [TaskSpec({"high": 50, "hint": False}, s) for s in range(3)]
    eps = runner.run("test/guess-v0", tasks, group_size=2)
    batch = collate(eps, [1.0] * len(eps), pol.chat.pad_token_id)
    completion_after: dict[tuple, list] = {}  # the members of a group share their first prompt
    for prompts, outs in sampled:
        for prompt, ids in zip(prompts, outs):
            completion_after.setdefault(tuple(prompt), []).append(ids)
    assert any(e.num_turns > 1 for e in eps)
    for i, e in enumerate(eps):
        ids = batch.input_ids[i, : len(e.token_ids)].tolist()
        mask = batch.loss_mask[i, : len(e.token_ids)].tolist()
        moves, t = [], 0
        while t < len(ids):  # each run of loss tokens is one move, sampled after ids[:t]
            if mask[t]:
                end = t
                while end < len(ids) and mask[end]:
                    end += 1
                assert ids[t:end] in completion_after[tuple(ids[:t])]
                moves.append(ids[t:end])
                t = end
            else:
                t += 1
        assert len(moves) == e.num_turns
    flat = [ids for _, outs in sampled for ids in outs]
    assert [pol.chat.encode(pol.chat.decode(ids)) for ids in flat] != flat  # re-tokenizing is not a no-op here
