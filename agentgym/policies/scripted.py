"""Policies without a neural network, for tests, benchmarks and baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from agentgym.policies.base import ChatFormat, Completion, PolicyBase, SamplingParams


class ScriptedPolicy(PolicyBase):
    """Answers with ``respond(conversation_text) -> reply_text``.

    The conversation so far is decoded from the prompt ids (special tokens kept), so a
    script can read the task and the environment's feedback. The reply is encoded and
    closed with the eos token; log-probs are 0 (the script is deterministic).
    """

    def __init__(self, chat: ChatFormat, respond: Callable[[str], str]):
        self.chat = chat
        self.respond = respond
        self.version = 0

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        eos = min(self.chat.eos_token_ids)
        out = []
        reason: Literal["stop", "length"]
        for p in prompts:
            ids = self.chat.encode(self.respond(self.chat.decode(p, skip_special_tokens=False)))
            if len(ids) >= sampling.max_new_tokens:
                ids, reason = ids[: sampling.max_new_tokens], "length"
            else:
                ids, reason = ids + [eos], "stop"
            out.append(Completion(ids, [0.0] * len(ids), reason))
        return out


class RandomPolicy(PolicyBase):
    """Uniformly random token ids (eos included), a floor for any learned policy."""

    def __init__(self, chat: ChatFormat, seed: int = 0):
        self.chat = chat
        self.version = 0
        self.rng = np.random.default_rng(seed)

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        vocab = self.chat.vocab_size
        lp = -float(np.log(vocab))
        out = []
        for r in range(len(prompts)):
            rng = self.rng if seeds is None else np.random.default_rng(int(seeds[r]) & 0x7FFF_FFFF_FFFF_FFFF)
            ids: list[int] = []
            reason: Literal["stop", "length"] = "length"
            while len(ids) < sampling.max_new_tokens:
                t = int(rng.integers(vocab))
                ids.append(t)
                if t in self.chat.eos_token_ids:
                    reason = "stop"
                    break
            out.append(Completion(ids, [lp] * len(ids), reason))
        return out
