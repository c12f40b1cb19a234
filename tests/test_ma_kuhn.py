"""Kuhn poker: exact values, equilibrium, exploitability, and the text game against them."""

from __future__ import annotations

import itertools
import math

import pytest

pytest.importorskip("agentgym_multiagent")

import numpy as np
from agentgym_multiagent import kuhn
from agentgym_multiagent.kuhn import (
    CARDS,
    GAME_VALUE,
    INFOSETS,
    best_response_value,
    chips_won,
    expected_value,
    exploitability,
    legal_actions,
    nash_conv,
    nash_strategy,
    uniform_strategy,
)
from agentgym_multiagent.parsing import choose_word

import agentgym
from agentgym import TaskSpec

ENV_ID = "multiagent/kuhn-poker-v0"
SELF_PLAY = {"opponent": "self", "seat": 0}


def test_twelve_infosets():
    assert len(INFOSETS) == 12
    assert list(INFOSETS)[:6] == ["J", "Q", "K", "Jcb", "Qcb", "Kcb"]
    assert sorted(INFOSETS)[:3] == ["J", "Jb", "Jc"]
    for s in INFOSETS.values():
        assert s.actions == legal_actions(s.history)
        assert s.messages[0]["role"] == "system" and f"Your card is {s.card}." in s.messages[0]["content"]
        last = s.messages[-1]["content"]
        assert last.endswith("check or bet.") if s.actions == ("check", "bet") else last.endswith("call or fold.")
        assert s.agent == ("player_0" if s.player == 0 else "player_1")


def test_payoffs_by_hand():
    assert chips_won(("K", "J"), ("check", "check")) == 1
    assert chips_won(("J", "K"), ("check", "check")) == -1
    assert chips_won(("J", "K"), ("bet", "fold")) == 1  # a bluff that works
    assert chips_won(("Q", "K"), ("bet", "call")) == -2
    assert chips_won(("K", "Q"), ("check", "bet", "call")) == 2
    assert chips_won(("K", "Q"), ("check", "bet", "fold")) == -1
    with pytest.raises(ValueError):
        chips_won(("K", "Q"), ("check",))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.2, 1 / 3])
def test_nash_family_value_and_zero_exploitability(alpha):
    s = nash_strategy(alpha)
    assert expected_value(s, s) == pytest.approx(-1 / 18, abs=1e-12)
    assert best_response_value(s, 0) == pytest.approx(-1 / 18, abs=1e-12)
    assert best_response_value(s, 1) == pytest.approx(1 / 18, abs=1e-12)
    assert exploitability(s) == pytest.approx(0.0, abs=1e-12)


def test_exploitability_of_uniform_play_by_hand():
    # Against a uniform second player the first player's best response is: bet K (1.5,
    # same as checking then calling), bet Q (0.5: +1 when it folds, 0 on average at a
    # showdown), bet J (-0.5, better than checking: -1): (1.5 + 0.5 - 0.5) / 3 = 1/2.
    # Against a uniform first player the second's best response calls/bets K (0.5*2 +
    # 0.5*1.5 = 1.75), calls Q and bets Q after a check (0.25), folds J and bets J after
    # a check (-0.75): (1.75 + 0.25 - 0.75) / 3 = 5/12.
    u = uniform_strategy()
    assert best_response_value(u, 0) == pytest.approx(1 / 2)
    assert best_response_value(u, 1) == pytest.approx(5 / 12)
    # NashConv 11/12 and exploitability 11/24: the literature value (OpenSpiel's tests).
    assert nash_conv(u) == pytest.approx(11 / 12)
    assert exploitability(u) == pytest.approx(11 / 24)
    # Always check/fold: the other player bets everything and wins 1 chip a hand.
    passive = {k: 0.0 for k in INFOSETS}
    assert nash_conv(passive) == pytest.approx(2.0)


def test_strategy_checks():
    s = nash_strategy()
    del s["Kb"]
    with pytest.raises(ValueError, match="Kb"):
        exploitability(s)
    with pytest.raises(ValueError):
        expected_value({**uniform_strategy(), "J": 1.5}, uniform_strategy())
    with pytest.raises(ValueError):
        nash_strategy(0.5)
    with pytest.raises(ValueError):
        best_response_value(uniform_strategy(), 2)
    # A one-player strategy is enough for that player's side.
    p0 = {k: 0.5 for k in kuhn.PLAYER_KEYS[0]}
    assert expected_value(p0, uniform_strategy()) == pytest.approx(
        expected_value(uniform_strategy(), uniform_strategy())
    )


def test_optimal_vs_random_exact_values():
    n, u = nash_strategy(1 / 3), uniform_strategy()
    assert expected_value(n, u) == pytest.approx(1 / 6)
    assert expected_value(u, n) == pytest.approx(-1 / 6)
    # Random vs random: showdowns cancel over the deals; folds do not: the second player
    # folds to a bet 1/4 of the time (+1), the first after check-bet 1/8 (-1): 1/8.
    assert expected_value(u, u) == pytest.approx(1 / 8)


def _simulate_logic(s0, s1, hands, rng):
    """Hands played from the game logic alone (no text): the first player's mean chips and its s.e."""
    deals = list(itertools.permutations(CARDS, 2))
    picks, draws = rng.integers(6, size=hands).tolist(), rng.random((hands, 3)).tolist()
    chips = []
    for pick, u in zip(picks, draws):
        cards, history = deals[pick], ()
        while history not in kuhn.TERMINALS:
            p = len(history) % 2
            q = (s0, s1)[p][kuhn.infoset_key(cards[p], history)]
            passive, aggressive = legal_actions(history)
            history += (aggressive if u[len(history)] < q else passive,)
        chips.append(chips_won(cards, history))
    x = np.array(chips, dtype=float)
    return x.mean(), x.std(ddof=1) / math.sqrt(hands)


def _simulate_env(kinds, hands, seed):
    """Hands played through the text env with scripted players: the first player's chips."""
    env = agentgym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    chips = []
    for i in range(hands):
        env.reset(options={"task": TaskSpec(SELF_PLAY, seed * 100_000 + i)})
        total = 0.0
        while not any(env.terminations.values()):
            agent = env.agent_selection
            env.step(env.scripted_action(agent, kinds[agent], rng))
            assert env.infos[agent]["error"] is None
            total += env.rewards["player_0"]
        assert env.rewards["player_0"] == -env.rewards["player_1"]
        chips.append(total)
    x = np.array(chips)
    return x.mean(), x.std(ddof=1) / math.sqrt(len(x))


def test_optimal_vs_optimal_value_in_simulation():
    n = nash_strategy()
    mean, se = _simulate_logic(n, n, 100_000, np.random.default_rng(0))
    assert abs(mean - GAME_VALUE) < 3 * se
    mean, se = _simulate_env({"player_0": "optimal", "player_1": "optimal"}, 3000, seed=1)
    assert abs(mean - GAME_VALUE) < 3 * se


@pytest.mark.parametrize("kinds", [("optimal", "random"), ("random", "optimal")])
def test_optimal_vs_random_matches_enumeration(kinds):
    strategies = {"optimal": nash_strategy(), "random": uniform_strategy()}
    exact = expected_value(strategies[kinds[0]], strategies[kinds[1]])
    mean, se = _simulate_env({"player_0": kinds[0], "player_1": kinds[1]}, 2500, seed=2)
    assert abs(mean - exact) < 3 * se


def test_env_alpha_changes_the_first_player_only():
    env = agentgym.make(ENV_ID, alpha=0.0)
    assert env.strategy == nash_strategy(0.0)
    env.reset(options={"task": TaskSpec(SELF_PLAY, 0)})
    with pytest.raises(ValueError):
        env.scripted_action("player_0", "nash", np.random.default_rng(0))


def test_env_conversation_equals_infoset_messages():
    # Every line of play for every deal: what each agent saw before each of its moves is
    # exactly its INFOSETS entry (the evaluator's prompts are the game's prompts).
    env = agentgym.make(ENV_ID)
    seen = set()
    for seed in range(40):
        for line in (
            ("check", "check"),
            ("check", "bet", "call"),
            ("check", "bet", "fold"),
            ("bet", "call"),
            ("bet", "fold"),
        ):
            env.reset(options={"task": TaskSpec(SELF_PLAY, seed)})
            convo = {a: [] for a in env.possible_agents}
            for move in line:
                agent = env.agent_selection
                convo[agent] += env.observe(agent)["messages"]
                p = env.possible_agents.index(agent)
                key = kuhn.infoset_key(env.cards[p], env.history)
                assert convo[agent] == list(INFOSETS[key].messages)
                seen.add(key)
                env.step(move)
                convo[agent].append({"role": "assistant", "content": move})
            assert all(env.terminations.values())
            net = chips_won(env.cards, line)
            assert env.rewards == {"player_0": float(net), "player_1": float(-net)}
            assert env.infos["player_0"]["success"] == (net > 0)
            assert env.infos["player_1"]["success"] == (net < 0)
            assert env.infos["player_0"]["reward_parts"] == {"chips": float(net)}
    assert seen == set(INFOSETS)


def test_chip_scale_and_deal_distribution():
    env = agentgym.make(ENV_ID, chip_scale=0.5)
    deals = {}
    for seed in range(600):
        env.reset(options={"task": TaskSpec(SELF_PLAY, seed)})
        deals[env.cards] = deals.get(env.cards, 0) + 1
    assert len(deals) == 6 and min(deals.values()) > 60
    env.step("bet")
    env.step("fold")
    assert env.rewards == {"player_0": 0.5, "player_1": -0.5}


@pytest.mark.parametrize(
    "text, legal, word",
    [
        ("bet", ("check", "bet"), "bet"),
        ("  BET. ", ("check", "bet"), "bet"),
        ("I will check this time.", ("check", "bet"), "check"),
        ("Bet bet bet", ("check", "bet"), "bet"),
        ("Call!", ("fold", "call"), "call"),
    ],
)
def test_move_parser_accepts(text, legal, word):
    assert choose_word(text, legal, kuhn.VOCABULARY) == (word, None)


@pytest.mark.parametrize(
    "text, legal, says",
    [
        ("", ("check", "bet"), "no move found"),
        ("betting is fun", ("check", "bet"), "no move found"),
        ("I check, no wait, bet", ("check", "bet"), "several moves"),
        ("fold", ("check", "bet"), "not a legal move"),
        ("check", ("fold", "call"), "not a legal move"),
        ("bet " + "x" * 400, ("check", "bet"), "too long"),
    ],
)
def test_move_parser_refuses_with_legal_moves(text, legal, says):
    word, error = choose_word(text, legal, kuhn.VOCABULARY)
    assert word is None and says in error
    assert f"{legal[0]} or {legal[1]}" in error


# ----- a language model's strategy, read from its log-probs -----------------------------------
def test_model_strategy_is_the_normalised_probability_of_the_move_replies(tiny):
    import torch

    model, tok = tiny
    from agentgym.policies.base import ChatFormat

    chat = ChatFormat(tok)
    ms = kuhn.model_strategy(model, chat)
    assert set(ms.strategy) == set(kuhn.INFOSETS) == set(ms.legal_mass)
    assert all(0.0 <= p <= 1.0 for p in ms.strategy.values())
    assert all(0.0 < m < 1.0 for m in ms.legal_mass.values())
    assert ms.exploitability == pytest.approx(exploitability(ms.strategy))
    # One infoset by hand: a plain forward pass over prompt + reply + eos for every form.
    info = kuhn.INFOSETS["Qcb"]
    prompt = chat.prompt_ids(list(info.messages))
    eos = min(chat.eos_token_ids)

    def prob(text):
        ids = prompt + chat.encode(text) + [eos]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        lsm = torch.log_softmax(logits[:-1], -1)
        return math.exp(sum(lsm[t - 1, ids[t]].item() for t in range(len(prompt), len(ids))))

    fold = sum(prob(t) for t in ("fold", "Fold", "fold.", "Fold."))
    call = sum(prob(t) for t in ("call", "Call", "call.", "Call."))
    assert ms.legal_mass["Qcb"] == pytest.approx(fold + call, rel=1e-3)
    assert ms.strategy["Qcb"] == pytest.approx(call / (fold + call), rel=1e-3)
    # The value against a strategy is the seat average of the exact expected values.
    u = kuhn.uniform_strategy()
    want = (kuhn.expected_value(ms.strategy, u) - kuhn.expected_value(u, ms.strategy)) / 2
    assert ms.value_against(u) == pytest.approx(want)
