"""The Policy protocol: token ids in, sampled token ids and their log-probs out.

A policy never sees chat text from the trainer's side: the rollout runner turns messages
into ids once (through :class:`ChatFormat`) and from then on only ids move, so the ids
trained on are exactly the ids sampled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

_PLACEHOLDER = "\x1fAGENTGYM\x1f"


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion per prompt.

    Log-probs returned by every backend are ``log_softmax(logits / temperature)`` at the
    sampled token (temperature 0 means greedy, log-probs then at temperature 1), the
    quantity a trainer recomputes. ``top_p``/``top_k`` restrict what is sampled but do not
    change the reported log-probs; leave them off for on-policy RL.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")


@dataclass
class Completion:
    """One sampled continuation."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: Literal["stop", "length"]


def checked_completion(ids: Any, logprobs: Any, finish_reason: Any, vocab_size: int, source: str) -> Completion:
    """A :class:`Completion` from what a server answered, or ValueError naming what is wrong:
    ids must be integers in ``[0, vocab_size)``, one log-prob (a finite number <= 0) per id,
    and the finish reason ``stop`` or ``length``. The trainer indexes embeddings with these ids."""
    if not isinstance(ids, list) or not isinstance(logprobs, list) or len(ids) != len(logprobs):
        raise ValueError(f"{source} answered a completion without one log-prob per token id")
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
            raise ValueError(
                f"{source} answered token id {t!r}, outside the tokenizer's {vocab_size} ids: "
                "is it serving the model this tokenizer belongs to?"
            )
    for v in logprobs:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -math.inf < v <= 1e-4:
            raise ValueError(f"{source} answered log-prob {v!r}: a log-probability is a finite number <= 0")
    if finish_reason not in ("stop", "length"):
        raise ValueError(f"{source} answered finish reason {finish_reason!r} (stop or length)")
    return Completion(list(ids), [float(v) for v in logprobs], finish_reason)


@runtime_checkable
class Policy(Protocol):
    """What the rollout runner needs from a policy."""

    #: Turns messages into ids and back; shared by the runner and the trainer.
    chat: ChatFormat
    #: Incremented each time the weights change (after every optimizer step).
    version: int

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        """Sample one completion for each prompt (a list of token ids).

        ``seeds`` (one per prompt, optional): each row samples from its own random stream
        seeded by that number, so what it samples does not depend on the rest of the batch.
        A backend that cannot seed per row may ignore it (the trainer's runs then differ
        from process count to process count, never in correctness)."""
        ...

    def sync_weights(self, weights: Iterable[tuple[str, Any]], version: int | None = None) -> None:
        """Take the trainer's weights (name, tensor) and the version they are; a policy that
        generates with the trained model itself has nothing to copy."""
        ...

    def sleep(self) -> None:
        """Free what generation holds (GPU memory) while the trainer updates."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def stream_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints and strings (the same tuple, the same seed, on any
    machine and process: no ``hash()`` randomisation)."""
    import hashlib

    digest = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def generate_seeded(
    policy: Any, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None
) -> list[Completion]:
    """``policy.generate`` with per-row ``seeds`` when there are any and the policy takes them
    (a third-party policy written against the two-argument protocol still works)."""
    return call_with_seeds(policy.generate, prompts, sampling, seeds=seeds)


def call_with_seeds(fn: Any, *args: Any, seeds: Any = None, **kwargs: Any) -> Any:
    """``fn(*args, seeds=seeds, **kwargs)``, leaving ``seeds`` out when it is None or ``fn``
    does not take it (a policy or runner written before per-row seeds)."""
    if seeds is not None and takes_keyword(fn, "seeds"):
        kwargs["seeds"] = seeds
    return fn(*args, **kwargs)


def takes_keyword(fn: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class PolicyBase:
    """The optional parts of :class:`Policy` with their do-nothing defaults, so callers never
    ask ``hasattr``: a policy without its own weights ignores syncs and has nothing to free."""

    version: int = 0

    def sync_weights(self, weights: Iterable[tuple[str, Any]], version: int | None = None) -> None:
        self.version = self.version + 1 if version is None else int(version)

    def sleep(self) -> None:
        return None

    def wake_up(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.version = int(state["version"])


class ChatFormat:
    """Chat template handling around a Hugging Face tokenizer.

    ``prompt_ids(messages)`` encodes the opening of a conversation with the generation
    prompt. ``continuation_ids(messages, completion)`` encodes what follows a sampled
    completion when the environment answers with ``messages``: the rest of the assistant
    turn's closing text (e.g. the newline after ``<|im_end|>``), the new messages, and
    the next generation prompt. It is computed from the template itself by rendering a
    placeholder conversation with and without the new messages, so earlier ids are never
    re-tokenized and the template's own formatting is respected.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        self.eos_token_ids: set[int] = {eos} if isinstance(eos, int) else set(eos or [])
        if not self.eos_token_ids:
            raise ValueError("the tokenizer has no eos token: cannot tell when a turn ends")
        self.pad_token_id: int = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_token_ids)
        )
        # Text the template puts after an assistant message's content.
        probe = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _PLACEHOLDER}]
        rendered = self._render(probe, add_generation_prompt=False)
        self._turn_close = rendered[rendered.rindex(_PLACEHOLDER) + len(_PLACEHOLDER) :]

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self.encode(self._render(messages, add_generation_prompt=True))

    def continuation_ids(self, messages: list[dict[str, str]], completion: Sequence[int]) -> list[int]:
        base = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _PLACEHOLDER}]
        before = self._render(base, add_generation_prompt=False)
        after = self._render(base + list(messages), add_generation_prompt=True)
        if not after.startswith(before):
            raise ValueError(
                "the chat template rewrites earlier turns; multi-turn token-in/token-out needs a template that only "
                "appends"
            )
        close = self._turn_close
        if completion and completion[-1] in self.eos_token_ids:
            eos_text = self.tokenizer.decode([completion[-1]])
            if close.startswith(eos_text):
                close = close[len(eos_text) :]
        return self.encode(close + after[len(before) :])
