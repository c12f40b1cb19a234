"""Subgoals proposed by an LLM, checked against the planner.

:func:`propose_subgoals` shows a policy (anything with the
:class:`agentgym.policies.Policy` interface) the mission and the first view, asks for
the subgoals one per line in the planner's instruction words, and compares the answer
with :func:`~agentgym_minigrid.subgoals.plan_subgoals`:

- each line is read as ``(verb, colour, object)`` ("pick up the yellow key" ->
  ``("pickup", "yellow", "key")``); lines that are not subgoals are ignored;
- the proposal is matched to the planner's list by the longest common subsequence;
  ``precision`` is the share of proposed subgoals the planner confirms, ``recall`` the
  share of the planner's subgoals proposed, ``exact`` whether both lists agree.

:func:`apply_proposal` then keeps, as the episode's subgoals (shown and rewarded), only
the planner's subgoals that the proposal named, in the planner's order: an LLM can
choose which milestones to reward, never invent one the true state does not support.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agentgym_minigrid.subgoals import Subgoal

PROMPT = (
    "Split the mission into subgoals, in order, one per line. Write each as one of: "
    "go to the <colour> <object>; pick up the <colour> <object>; open the <colour> door; "
    "drop the <colour> <object>; go next to the <colour> <object> with the <colour> <object>; "
    "put the <colour> <object> next to the <colour> <object>; step onto the green goal. "
    "Include the doors you must open on the way."
)
_COLORS = "red|green|blue|purple|yellow|grey"
_OBJ = rf"(?:the|a|an)\s+({_COLORS})\s+(key|ball|box|door|goal)"
_PATTERNS = (
    ("goto_next", re.compile(rf"go next to {_OBJ} with {_OBJ}")),
    ("put_next", re.compile(rf"put {_OBJ} next to {_OBJ}")),
    ("reach", re.compile(rf"(?:step onto|get to|go to) {_OBJ.replace('key|ball|box|door|goal', 'goal')}")),
    ("goto", re.compile(rf"go to {_OBJ}")),
    ("pickup", re.compile(rf"pick up {_OBJ}")),
    ("open", re.compile(rf"open {_OBJ}")),
    ("drop", re.compile(rf"drop {_OBJ}")),
)

Signature = tuple[str, str, str]


def signature(sg: Subgoal) -> Signature:
    """``(verb, colour, object)`` of a planner subgoal (the fixed object for put-next)."""
    return (sg.verb, sg.obj.color, sg.obj.type)


def parse_subgoals(text: str) -> list[Signature]:
    """The subgoals named in ``text``, one per line, as ``(verb, colour, object)``."""
    out: list[Signature] = []
    for line in str(text).lower().splitlines():
        line = " ".join(line.split())
        for verb, pattern in _PATTERNS:
            m = pattern.search(line)
            if m:
                g = m.groups()
                if verb in ("goto_next", "put_next"):
                    # "go next to FIXED with MOVING" / "put MOVING next to FIXED": sign by FIXED.
                    color, kind = (g[0], g[1]) if verb == "goto_next" else (g[2], g[3])
                else:
                    color, kind = g[0], g[1]
                out.append((verb, color, kind))
                break
    return out


def _lcs(a: list[Signature], b: list[Signature]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of ``a`` and ``b``."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


@dataclass
class Proposal:
    text: str
    proposed: list[Signature]
    planned: list[Signature]
    #: Indices (into the planner's list) of the planner subgoals the proposal named.
    confirmed: list[int]

    @property
    def precision(self) -> float:
        return len(self.confirmed) / len(self.proposed) if self.proposed else 0.0

    @property
    def recall(self) -> float:
        return len(self.confirmed) / len(self.planned) if self.planned else 1.0

    @property
    def exact(self) -> bool:
        return self.proposed == self.planned


def check_proposal(text: str, planned: list[Subgoal]) -> Proposal:
    """Compare proposed subgoal text with the planner's subgoals."""
    proposed = parse_subgoals(text)
    plan_sigs = [signature(sg) for sg in planned]
    pairs = _lcs(proposed, plan_sigs)
    return Proposal(text=text, proposed=proposed, planned=plan_sigs, confirmed=[j for _, j in pairs])


def propose_subgoals(policy: Any, env: Any, sampling: Any = None) -> Proposal:
    """Ask ``policy`` for the subgoals of ``env``'s current episode (after ``reset``)."""
    from agentgym.policies import SamplingParams

    env = env.unwrapped
    if env.minigrid is None:
        raise RuntimeError("call reset() before propose_subgoals()")
    messages = [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": f"Mission: {env.minigrid.mission}\n{env.view_text()}"},
    ]
    sampling = sampling or SamplingParams(max_new_tokens=128, temperature=0.0)
    completion = policy.generate([policy.chat.prompt_ids(messages)], sampling)[0]
    text = policy.chat.decode(completion.token_ids)
    return check_proposal(text, env.subgoals)


def apply_proposal(env: Any, proposal: Proposal) -> list[Subgoal]:
    """Keep only the planner subgoals the proposal confirmed (call before the first step)."""
    env = env.unwrapped
    if env.turn != 0:
        raise RuntimeError("apply a proposal right after reset(), before any step")
    env.subgoals = [env.subgoals[j] for j in proposal.confirmed]
    env.subgoal_index = 0
    env._advance_subgoals()  # as at reset: those already true are skipped, unpaid
    return env.subgoals
