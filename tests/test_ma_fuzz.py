"""Fuzzing the multi-agent games with bad actions: each one gets an error and the penalty,
nothing raises, and every game ends within ``max_turns``."""

from __future__ import annotations

import pytest

pytest.importorskip("agentgym_multiagent")

import numpy as np

import agentgym
from agentgym.multiagent import TextAECEnv

PENALTY = -0.25
PER_GAME = 250
GAMES = [
    "multiagent/kuhn-poker-v0",
    "multiagent/nim-v0",
    "multiagent/negotiation-v0",
    "multiagent/pioneer-observer-v0",
    "multiagent/solver-critic-v0",
]
#: Seats whose text is an answer: any string is a (possibly wrong) answer, not an error.
ANSWER_SEATS = {"pioneer", "observer", "solver"}
NO_LETTERS = np.array(list("0123456789 .,;:!?-+*/=()[]{}<>#@%&_\"'\\\t\n") + ["♠", "🃏", "下注", "é", "\u200b"])


def _noise(rng, n):
    """Text without a single ASCII letter: it can name no move of any game."""
    return "".join(NO_LETTERS[rng.integers(len(NO_LETTERS), size=n)].tolist())


def _letters(rng, n):
    return "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz  "), size=n).tolist())


def bad_action(env, agent, rng):
    """A bad action for ``agent`` now: ``(action, must_fail)``; some texts may happen to be
    usable (random letters, or any text from an answering seat) and count only if refused."""
    limit = env.max_action_chars
    always = [
        lambda: None,
        lambda: b"bet",
        lambda: 7,
        lambda: 3.5,
        lambda: True,
        lambda: ["bet"],
        lambda: {"move": "check"},
        lambda: "x" * (limit + 1),
        lambda: "🃏" * (limit + 1),
        lambda: "a" * 1_000_000,
    ]
    textual = [
        lambda: "",
        lambda: "   ",
        lambda: _noise(rng, int(rng.integers(1, 60))),
        lambda: "\x00\x01\x02",
        lambda: "ｂｅｔ",
        lambda: "🂡🂢🂣",
        lambda: "check " + "z" * 400,
        lambda: _noise(rng, 3000),
    ]
    r = rng.random()
    if r < 0.35:
        return always[int(rng.integers(len(always)))](), True
    if r < 0.55:
        return _letters(rng, int(rng.integers(0, 40))), False
    illegal = _illegal(env, agent)
    if r < 0.8 or not illegal:
        return textual[int(rng.integers(len(textual)))](), agent not in ANSWER_SEATS
    return illegal[int(rng.integers(len(illegal)))], True


def _illegal(env, agent):
    """Well-formed but illegal moves of each game at its current state."""
    name = env.metadata["name"]
    if name == "kuhn_poker_v0":
        from agentgym_multiagent.kuhn import legal_actions

        wrong = [w for w in ("check", "bet", "call", "fold") if w not in legal_actions(env.history)]
        return wrong + ["check and bet", "I call or fold", "BET CALL"]
    if name == "nim_v0":
        out = [
            f"take 1 from heap {len(env.heaps) + 1}",
            "take 0 from heap 1",
            "take 1 from heap 0",
            "take 1 from heap 1 and take 1 from heap 2",
        ]
        if len(env.heaps) > 1:
            out.append("heap 1 take 1")  # with one heap, "take 1" alone is a move
        out += [f"take {h + 1} from heap {i + 1}" for i, h in enumerate(env.heaps)]
        out += [f"take 1 from heap {i + 1}" for i, h in enumerate(env.heaps) if h == 0]  # empty heaps
        return out
    if name == "negotiation_v0":
        n = len(env.counts)
        names = ("books", "hats", "balls")[:n]
        return [
            " ".join(f"{k}={c + 1}" for k, c in zip(names, env.counts)),  # more than the table
            " ".join(f"{k}=99" for k in names),
            " ".join(f"{k}=-1" for k in names),
            f"{names[0]}=0",
            "cars=1 " + " ".join(f"{k}=0" for k in names),
            f"{names[0]}=0 {names[0]}=1",
        ]
    if agent == "critic":
        return ["yes", "no", "maybe", "correctly?", "I agree with the solver"]
    return []


def _check_refused(env, agent, info, reward, penalty_seen):
    assert info["error"], f"no error for agent {agent}"
    parts = info["reward_parts"]
    assert parts["invalid_action"] == PENALTY
    assert set(parts) <= {"invalid_action", "forfeit"} | penalty_seen
    assert reward == pytest.approx(sum(parts.values()))


def _fuzz_aec(env, rng):
    refused = 0
    kind = env.scripted_kinds[0]
    while refused < PER_GAME:
        env.reset(options={"task": env.sample_train_task(rng)})
        moves = 0
        for agent in env.agent_iter():
            _, _, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            if rng.random() < 0.6:
                action, must_fail = bad_action(env, agent, rng)
            else:
                action, must_fail = env.scripted_action(agent, kind, rng), False
            env.step(action)
            moves += 1
            assert moves <= env.max_turns and env.turn <= env.max_turns
            info = env.infos[agent]
            if must_fail or info["error"]:
                _check_refused(env, agent, info, env.rewards[agent], set())
                refused += 1
            for other in env.agents:
                if other != agent:
                    assert env.infos[other]["error"] is None
    return refused


def _fuzz_parallel(env, rng):
    refused = 0
    kind = env.scripted_kinds[0]
    while refused < PER_GAME:
        env.reset(options={"task": env.sample_train_task(rng)})
        rounds = 0
        while env.agents:
            actions, must = {}, {}
            for agent in env.agents:
                if rng.random() < 0.6:
                    actions[agent], must[agent] = bad_action(env, agent, rng)
                else:
                    actions[agent], must[agent] = env.scripted_action(agent, kind, rng), False
            if rng.random() < 0.05:
                gone = env.agents[int(rng.integers(len(env.agents)))]
                del actions[gone]  # a missing action counts as an unusable one
                must[gone] = True
            _, rewards, terms, truncs, infos = env.step(actions)
            rounds += 1
            assert rounds <= env.max_turns
            for agent, info in infos.items():
                if must[agent] or info["error"]:
                    _check_refused(env, agent, info, rewards[agent], {"deal"})
                    refused += 1
    return refused


def test_fuzzed_bad_actions_across_all_games():
    total = 0
    for i, env_id in enumerate(GAMES):
        env = agentgym.make(env_id, invalid_action_penalty=PENALTY)
        rng = np.random.default_rng(i)
        total += _fuzz_aec(env, rng) if isinstance(env, TextAECEnv) else _fuzz_parallel(env, rng)
    assert total >= 1000


@pytest.mark.parametrize("env_id", GAMES)
def test_only_bad_actions_end_in_a_forfeit_or_the_move_limit(env_id):
    # A player that never says anything usable cannot stall a game.
    env = agentgym.make(env_id, max_invalid=2)
    for seed in range(5):
        if isinstance(env, TextAECEnv):
            env.reset(seed=seed)
            steps = 0
            for _agent in env.agent_iter():
                _, _, term, trunc, _ = env.last()
                env.step(None if term or trunc else 12345)
                steps += 1
                assert steps <= env.max_turns + len(env.possible_agents)
            assert env.agents == []
        else:
            task = env.sample_train_task(np.random.default_rng(seed))
            env.reset(options={"task": {"params": {**task.params, "max_rounds": 6}, "seed": seed}})
            obs, rewards, terms, truncs, infos = env.step({a: None for a in env.agents})
            obs, rewards, terms, truncs, infos = env.step({a: None for a in env.agents})
            assert env.agents == [] and all(terms.values())
            assert all(info["reward_parts"]["forfeit"] == env.forfeit_penalty for info in infos.values())
