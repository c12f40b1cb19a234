"""Kuhn poker: the game as text (:class:`KuhnPokerEnv`) and its exact solution.

The rules (Kuhn, 1950): a deck of three cards J < Q < K; both players ante 1 chip and get
one card. The first player checks or bets 1 chip. After a check the second player checks
(showdown for the 2-chip pot) or bets; facing a bet a player calls (showdown for the
4-chip pot) or folds (the bettor takes the pot). A player wins or loses 1 or 2 chips.

A behavioural strategy is a dict ``{infoset key: probability of the aggressive move}``
over the 12 information sets of :data:`INFOSETS` (bet at ``""``/``"c"``, call at
``"b"``/``"cb"``). Keys are the card then the moves so far, ``c`` = check and ``b`` = bet:
``"K"`` (first player holds K, nothing happened yet), ``"Jcb"`` (first player holds J,
checked, was bet into), ``"Qb"`` and ``"Qc"`` (second player holds Q, facing a bet or a
check). Each :class:`InfoSet` carries the exact messages the env shows that agent there,
so an evaluator can read an LLM's probability of each move at each one.

:func:`expected_value`, :func:`best_response_value` and :func:`exploitability` are exact
(they enumerate the 6 deals; a best response is the best of a player's 64 pure
strategies). The value of the game for the first player is -1/18; :func:`nash_strategy`
gives Kuhn's equilibrium family (``alpha`` in [0, 1/3] for the first player).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agentgym.env import Message
from agentgym.multiagent import Outcome, TextAECEnv
from agentgym.spaces import Categorical, HeldOut, Integer, Params, ParamSpace
from agentgym_multiagent.parsing import choose_word

CARDS = ("J", "Q", "K")
_RANK = {c: i for i, c in enumerate(CARDS)}
PLAYERS = ("player_0", "player_1")
VOCABULARY = ("check", "bet", "call", "fold")
#: Histories (moves so far) at which someone must act, and those that end the hand.
DECISIONS: tuple[tuple[str, ...], ...] = ((), ("check",), ("bet",), ("check", "bet"))
TERMINALS = frozenset(
    {("check", "check"), ("bet", "fold"), ("bet", "call"), ("check", "bet", "fold"), ("check", "bet", "call")}
)
#: The value of Kuhn poker to the first player (Kuhn, 1950).
GAME_VALUE = -1 / 18

RULES = (
    "Rules: the deck has 3 cards, J < Q < K. Each player puts 1 chip in the pot and gets one card. "
    "The first player checks or bets 1 chip. After a check, the second player checks (then showdown) "
    "or bets 1 chip. Facing a bet, you call (add 1 chip, then showdown) or fold (the bettor takes the pot). "
    "At showdown the higher card takes the pot."
)


def legal_actions(history: tuple[str, ...]) -> tuple[str, str]:
    """The two moves at a decision: ``(passive, aggressive)``."""
    return ("check", "bet") if tuple(history) in ((), ("check",)) else ("fold", "call")


def _said(history: tuple[str, ...]) -> tuple[str, str]:
    """The two moves in the order a prompt names them."""
    return ("check", "bet") if tuple(history) in ((), ("check",)) else ("call", "fold")


def chips_won(cards: tuple[str, str], history: tuple[str, ...]) -> int:
    """Net chips the first player wins at a terminal ``history`` (the second wins minus that)."""
    h = tuple(history)
    if h not in TERMINALS:
        raise ValueError(f"{h} is not the end of a hand")
    if h[-1] == "fold":
        return 1 if (len(h) - 1) % 2 == 1 else -1
    stake = 2 if "bet" in h else 1
    return stake if _RANK[cards[0]] > _RANK[cards[1]] else -stake


def infoset_key(card: str, history: tuple[str, ...]) -> str:
    """``card`` plus the moves so far (``c`` check, ``b`` bet): ``"Qcb"``."""
    return card + "".join(a[0] for a in history)


# ----- prompts (the env and INFOSETS share them) -----------------------------------------
def _opening(player: int, card: str) -> list[Message]:
    who = "first" if player == 0 else "second"
    msgs = [
        {
            "role": "system",
            "content": f"You play Kuhn poker as the {who} player against one opponent. {RULES} Your card is {card}.",
        }
    ]
    if player == 0:
        msgs.append({"role": "user", "content": "You act first. Reply with exactly one word: check or bet."})
    return msgs


def _your_turn(history: tuple[str, ...]) -> str:
    """What the player to move is told after the other player's last move."""
    last = history[-1]
    who = "first" if len(history) % 2 == 1 else "second"
    did = "checks" if last == "check" else "bets 1 chip"
    a, b = _said(history)
    return f"The {who} player {did}. Reply with exactly one word: {a} or {b}."


@dataclass(frozen=True)
class InfoSet:
    """One information set: who acts, with what card, after which moves, and what it sees."""

    key: str
    player: int
    card: str
    history: tuple[str, ...]
    #: ``(passive, aggressive)``: a strategy gives the probability of the second.
    actions: tuple[str, str]
    #: The whole conversation of that agent up to this decision (its own earlier move
    #: written as the bare word).
    messages: tuple[Message, ...]

    @property
    def agent(self) -> str:
        return PLAYERS[self.player]


def _build_infosets() -> dict[str, InfoSet]:
    out: dict[str, InfoSet] = {}
    # The first player's six, then the second player's.
    for history in sorted(DECISIONS, key=lambda h: (len(h) % 2, len(h))):
        player = len(history) % 2
        for card in CARDS:
            msgs = _opening(player, card)
            if player == 0 and history:
                msgs += [{"role": "assistant", "content": history[0]}, {"role": "user", "content": _your_turn(history)}]
            elif player == 1:
                msgs.append({"role": "user", "content": _your_turn(history)})
            key = infoset_key(card, history)
            out[key] = InfoSet(key, player, card, history, legal_actions(history), tuple(msgs))
    return out


#: The 12 information sets, first player's six then the second player's.
INFOSETS: dict[str, InfoSet] = _build_infosets()
PLAYER_KEYS: tuple[tuple[str, ...], tuple[str, ...]] = (
    tuple(k for k, s in INFOSETS.items() if s.player == 0),
    tuple(k for k, s in INFOSETS.items() if s.player == 1),
)


# ----- exact strategy maths --------------------------------------------------------------
Strategy = Mapping[str, float]


def nash_strategy(alpha: float = 1 / 3) -> dict[str, float]:
    """Kuhn's equilibrium: the first player's family member ``alpha`` and the second's unique one.

    First player: bet J with ``alpha``, never bet Q, bet K with ``3 alpha``; after checking
    and facing a bet, fold J, call Q with ``alpha + 1/3``, call K. Second player: facing a
    bet, fold J, call Q with 1/3, call K; after a check, bet J with 1/3, check Q, bet K.
    """
    if not 0.0 <= alpha <= 1 / 3 + 1e-12:
        raise ValueError(f"alpha must lie in [0, 1/3], got {alpha}")
    alpha = min(float(alpha), 1 / 3)
    return {
        "J": alpha,
        "Q": 0.0,
        "K": min(3 * alpha, 1.0),
        "Jcb": 0.0,
        "Qcb": alpha + 1 / 3,
        "Kcb": 1.0,
        "Jc": 1 / 3,
        "Qc": 0.0,
        "Kc": 1.0,
        "Jb": 0.0,
        "Qb": 1 / 3,
        "Kb": 1.0,
    }


def uniform_strategy() -> dict[str, float]:
    """Both moves equally likely everywhere."""
    return {k: 0.5 for k in INFOSETS}


def _probabilities(strategy: Strategy, player: int) -> dict[str, float]:
    """``player``'s part of ``strategy``, checked (every key present, probabilities in [0, 1])."""
    missing = [k for k in PLAYER_KEYS[player] if k not in strategy]
    if missing:
        raise ValueError(f"the strategy has no probability for {PLAYERS[player]}'s infosets {missing}")
    out = {}
    for k in PLAYER_KEYS[player]:
        p = float(strategy[k])
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ValueError(f"probability of infoset {k!r} must lie in [0, 1], got {strategy[k]!r}")
        out[k] = p
    return out


def _value(cards: tuple[str, str], history: tuple[str, ...], probs: tuple[dict[str, float], dict[str, float]]) -> float:
    if history in TERMINALS:
        return float(chips_won(cards, history))
    player = len(history) % 2
    q = probs[player][infoset_key(cards[player], history)]
    passive, aggressive = legal_actions(history)
    v = 0.0
    if q < 1.0:
        v += (1.0 - q) * _value(cards, history + (passive,), probs)
    if q > 0.0:
        v += q * _value(cards, history + (aggressive,), probs)
    return v


def expected_value(strategy0: Strategy, strategy1: Strategy) -> float:
    """Exact expected chips of the first player when it plays ``strategy0`` and the second ``strategy1``.

    Each argument needs only its own player's six keys (a full 12-key strategy works).
    """
    probs = (_probabilities(strategy0, 0), _probabilities(strategy1, 1))
    return sum(_value(deal, (), probs) for deal in itertools.permutations(CARDS, 2)) / 6.0


def best_response_value(strategy: Strategy, player: int) -> float:
    """What ``player`` (0 or 1) wins on average by best-responding to the other player's part of ``strategy``."""
    if player not in (0, 1):
        raise ValueError(f"player must be 0 or 1, got {player!r}")
    other = _probabilities(strategy, 1 - player)
    best = -math.inf
    # Some pure strategy is a best response, and a player has only 2^6 of them.
    for bits in itertools.product((0.0, 1.0), repeat=6):
        pure = dict(zip(PLAYER_KEYS[player], bits))
        ev = expected_value(pure, other) if player == 0 else -expected_value(other, pure)
        best = max(best, ev)
    return best


def nash_conv(strategy: Strategy) -> float:
    """Sum over both players of what a best response gains: 0 exactly at an equilibrium."""
    return best_response_value(strategy, 0) + best_response_value(strategy, 1)


def exploitability(strategy: Strategy) -> float:
    """``nash_conv / 2`` (OpenSpiel's convention): 0 for an equilibrium, 11/24 for uniform play."""
    return nash_conv(strategy) / 2.0


#: The replies that count as each move when a model's strategy is read from its
#: log-probs: the bare word, capitalised, and either with a full stop (then end of turn).
MOVE_FORMS = ("{w}", "{W}", "{w}.", "{W}.")


@dataclass(frozen=True)
class ModelStrategy:
    """A language model's Kuhn strategy, read from its probabilities at the 12 infosets.

    ``strategy[key]`` is the probability of the aggressive move (bet/call) given that the
    reply is one of the two moves (:data:`MOVE_FORMS`); ``legal_mass[key]`` is how much of
    the model's probability those replies hold at all (the rest is text that is no move).
    """

    strategy: dict[str, float]
    legal_mass: dict[str, float]

    @property
    def exploitability(self) -> float:
        return exploitability(self.strategy)

    def value_against(self, other: Strategy) -> float:
        """Mean chips per hand over both seats against ``other`` (e.g. :func:`uniform_strategy`)."""
        return (expected_value(self.strategy, other) - expected_value(other, self.strategy)) / 2.0


def model_strategy(model: Any, chat: Any, *, temperature: float = 1.0) -> ModelStrategy:
    """Read a causal LM's behavioural strategy from its log-probs of each move's replies.

    ``model`` is a transformers causal LM (the trainer's), ``chat`` its
    :class:`~agentgym.policies.base.ChatFormat`. Each infoset's prompt is exactly what the
    env shows that agent there; each candidate reply is scored as the ids the policy would
    sample (the text, then an end-of-turn token) at ``temperature``.
    """
    import torch

    from agentgym.env import TaskSpec
    from agentgym.grpo.batch import collate, policy_logprobs
    from agentgym.rollout.episode import Episode

    eos = min(chat.eos_token_ids)
    rows: list[tuple[str, int, Episode]] = []  # (infoset, 0 passive / 1 aggressive, scored ids)
    for key, info in INFOSETS.items():
        prompt = chat.prompt_ids(list(info.messages))
        for side, word in enumerate(info.actions):
            for form in MOVE_FORMS:
                reply = chat.encode(form.format(w=word, W=word.capitalize())) + [eos]
                ids = prompt + reply
                mask = [0] * len(prompt) + [1] * len(reply)
                rows.append((key, side, Episode("kuhn", TaskSpec({}, 0), ids, mask, [0.0] * len(ids), len(prompt))))
    mass: dict[str, list[float]] = {k: [0.0, 0.0] for k in INFOSETS}
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(rows), 16):
            part = rows[start : start + 16]
            batch = collate([r[2] for r in part], [0.0] * len(part), chat.pad_token_id).to(device)
            logp, _ = policy_logprobs(model, batch, temperature)
            for (key, side, _), total in zip(part, logp.sum(-1).tolist()):
                mass[key][side] += math.exp(total)
    strategy = {k: (m[1] / (m[0] + m[1]) if m[0] + m[1] > 0 else 0.5) for k, m in mass.items()}
    return ModelStrategy(strategy, {k: m[0] + m[1] for k, m in mass.items()})


# ----- the text game ---------------------------------------------------------------------
class KuhnPokerEnv(TextAECEnv):
    """One hand of Kuhn poker between ``player_0`` (acts first) and ``player_1``.

    Moves are the words check/bet (first decision) and call/fold (facing a bet), read
    leniently (:func:`~agentgym_multiagent.parsing.choose_word`). At the end both agents
    get ``reward_parts["chips"]`` = chips won (negative when lost) times ``chip_scale``;
    ``success`` is winning chips. Scripted players: ``"random"`` (each legal move with
    probability 1/2) and ``"optimal"`` (:func:`nash_strategy` with the env's ``alpha``).
    """

    metadata: ClassVar[dict[str, Any]] = {**TextAECEnv.metadata, "name": "kuhn_poker_v0"}
    agent_names = PLAYERS
    scripted_kinds = ("random", "optimal")
    param_space = ParamSpace(
        [
            Categorical(
                "opponent", ("self", "random", "optimal"), description="who plays the other seat ('self': self-play)"
            ),
            Integer("seat", 0, 1, description="the learner's seat when the opponent is scripted (0 acts first)"),
        ]
    )
    # Every task is one of 6 deals with some opponent: only seeds are held out.
    held_out = HeldOut()

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        chip_scale: float = 1.0,
        alpha: float = 1 / 3,
        max_turns: int = 16,
        **kwargs: Any,
    ):
        super().__init__(render_mode, max_turns=max_turns, **kwargs)
        self.chip_scale = float(chip_scale)
        self.strategy = nash_strategy(alpha)
        self.cards: tuple[str, str] = ("J", "Q")
        self.history: tuple[str, ...] = ()

    def _reset(self, params: Params, rng: np.random.Generator) -> dict[str, list[Message]]:
        order = rng.permutation(len(CARDS))
        self.cards = (CARDS[order[0]], CARDS[order[1]])
        self.history = ()
        return {PLAYERS[p]: _opening(p, self.cards[p]) for p in (0, 1)}

    def _next_agent(self) -> str:
        return PLAYERS[len(self.history) % 2]

    def _play(self, agent: str, text: str) -> Outcome:
        me = PLAYERS.index(agent)
        word, error = choose_word(text, legal_actions(self.history), VOCABULARY)
        if error is not None:
            return Outcome(errors={agent: error})
        self.history += (word,)
        other = PLAYERS[1 - me]
        if self.history not in TERMINALS:
            return Outcome(messages={other: [{"role": "user", "content": _your_turn(self.history)}]})
        net = chips_won(self.cards, self.history)
        out = Outcome(done=True)
        for p, name in enumerate(PLAYERS):
            mine = net if p == 0 else -net
            if word == "fold":
                event = "You fold." if p == me else f"The {('first', 'second')[me]} player folds."
            else:
                said = "" if p == me else f"The {('first', 'second')[me]} player {word}s. "
                event = f"{said}Showdown: your {self.cards[p]} against the other player's {self.cards[1 - p]}."
            result = f"You {'win' if mine > 0 else 'lose'} {abs(mine)} chip{'s' if abs(mine) > 1 else ''}."
            out.messages[name] = [{"role": "user", "content": f"{event} {result}"}]
            out.rewards[name] = {"chips": mine * self.chip_scale}
            out.success[name] = mine > 0
        return out

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        """The move of a scripted player: ``"random"`` or ``"optimal"`` (a Nash strategy)."""
        if self.history in TERMINALS:
            return "check"  # the hand is over: any word (a dead step ignores it)
        passive, aggressive = legal_actions(self.history)
        me = PLAYERS.index(agent)
        p = 0.5 if kind == "random" else self.strategy[infoset_key(self.cards[me], self.history)]
        return aggressive if rng.random() < p else passive
