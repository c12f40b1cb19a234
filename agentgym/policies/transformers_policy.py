"""Generation with a transformers causal LM on the CPU (or any torch device).

A plain sampling loop over a KV cache instead of ``model.generate``: it returns the exact
log-probs the trainer will recompute (``log_softmax(logits / T)`` at the sampled token),
samples from its own seeded ``torch.Generator`` (so a run can be resumed bit for bit),
and drops finished rows from the batch as they end.

A token is drawn by inverting the cumulative distribution at one uniform number per row
(``searchsorted`` over a float64 cumsum), which picks token i with exactly probability
p_i. ``torch.multinomial`` over a 49k vocabulary costs tens of milliseconds per call on
a CPU, as much as the forward pass of a 135M model; this costs well under one.

With ``seeds`` (one per prompt) each row draws its uniforms from its own generator,
seeded by that number: what a row samples then depends only on its prompt, its seed and
the weights, not on which other rows share the batch (up to float noise: left padding can
change a row's logits in the last bits, which moves a draw only when it falls within that
noise of a token boundary, rare unless the distribution is nearly flat). The trainer seeds every episode
turn this way, so a run splits its tasks over processes (``torchrun``) and refills
filtered groups without changing a single sampled token.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from agentgym import threads
from agentgym.placement import autocast
from agentgym.policies.base import ChatFormat, Completion, PolicyBase, SamplingParams


class TransformersPolicy(PolicyBase):
    """A :class:`~agentgym.policies.base.Policy` backed by a transformers model."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        seed: int = 0,
        max_batch_size: int = 64,
        autocast_dtype: torch.dtype | None = None,
    ):
        self.model = model
        #: Forward passes under autocast to this dtype (``train.precision: bf16-mixed``).
        self.autocast_dtype = autocast_dtype
        self.chat = ChatFormat(tokenizer)
        self.version = 0
        self.max_batch_size = max_batch_size
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        # transformers 5.x renamed the KV-cache argument (``past_key_values`` goes in 5.40).
        forward = getattr(getattr(model, "get_base_model", lambda: model)(), "forward", model.forward)
        self._cache_arg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"

    @classmethod
    def from_name(cls, name: str, *, seed: int = 0, **kwargs: Any) -> TransformersPolicy:
        from agentgym.policies.models import load_model

        model, tok = load_model(name, seed=seed)
        return cls(model, tok, seed=seed, **kwargs)

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        if not prompts:
            return []
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        # Similar lengths share a batch: less padding, fewer wasted positions.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch_size):
            idx = order[start : start + self.max_batch_size]
            streams = None if seeds is None else [_row_generator(seeds[i]) for i in idx]
            threads.tick()  # one thread while another process holds a core (agentgym.threads)
            with autocast(self.device, self.autocast_dtype):
                done = self._generate_batch([prompts[i] for i in idx], sampling, streams)
            for i, c in zip(idx, done):
                out[i] = c
        return out  # type: ignore[return-value]

    def _generate_batch(
        self, prompts: list[Sequence[int]], sp: SamplingParams, streams: list[torch.Generator] | None
    ) -> list[Completion]:
        model = self.model
        was_training = model.training
        model.eval()
        n = len(prompts)
        width = max(len(p) for p in prompts)
        if width == 0:
            raise ValueError("cannot generate from an empty prompt")
        ids = torch.full((n, width), self.chat.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding
            ids[r, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            mask[r, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        eos = torch.tensor(sorted(self.chat.eos_token_ids), device=self.device)

        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        finish = ["length"] * n
        alive = torch.arange(n, device=self.device)  # rows of the original batch still going
        from transformers import DynamicCache

        # A group's rows have one prompt: prefill each distinct prompt once, then give
        # every row its prompt's cache and last logits.
        first: dict[tuple[int, ...], int] = {}  # prompt -> the first row that has it
        reps = [first.setdefault(tuple(p), r) for r, p in enumerate(prompts)]
        distinct = sorted(set(reps))
        uniq = torch.as_tensor(distinct, device=self.device)
        cache = DynamicCache()
        logits = (
            model(
                input_ids=ids[uniq],
                attention_mask=mask[uniq],
                position_ids=positions[uniq],
                **{self._cache_arg: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            .logits[:, -1, :]
            .float()
        )
        if len(distinct) < n:
            slot = {r: i for i, r in enumerate(distinct)}
            rows = torch.as_tensor([slot[r] for r in reps], device=self.device)
            _select_cache_rows(cache, rows)
            logits = logits[rows]
        last_pos = positions[:, -1:]
        for _ in range(sp.max_new_tokens):
            tok, lp = self._sample(logits, sp, streams)
            done_now = torch.isin(tok, eos)
            for j, row in enumerate(alive.tolist()):
                tokens[row].append(int(tok[j]))
                logps[row].append(float(lp[j]))
                if done_now[j]:
                    finish[row] = "stop"
            keep = ~done_now
            if not bool(keep.any()):
                break
            if not bool(keep.all()):
                sel = keep.nonzero().squeeze(-1)
                alive, tok, mask, last_pos = alive[sel], tok[sel], mask[sel], last_pos[sel]
                if streams is not None:
                    streams = [streams[j] for j in sel.tolist()]
                _select_cache_rows(cache, sel)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            last_pos = last_pos + 1
            logits = (
                model(
                    input_ids=tok[:, None],
                    attention_mask=mask,
                    position_ids=last_pos,
                    **{self._cache_arg: cache},
                    use_cache=True,
                )
                .logits[:, -1, :]
                .float()
            )
        if was_training:
            model.train()
        return [Completion(tokens[r], logps[r], finish[r]) for r in range(n)]  # type: ignore[arg-type]

    def _sample(
        self, logits: torch.Tensor, sp: SamplingParams, streams: list[torch.Generator] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if sp.temperature == 0:
            tok = logits.argmax(-1)
            return tok, torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
        scaled = logits / sp.temperature
        logp = torch.log_softmax(scaled, -1)
        weights = logp
        if sp.top_k > 0:
            kth = torch.topk(weights, min(sp.top_k, weights.shape[-1]), dim=-1).values[:, -1:]
            weights = weights.masked_fill(weights < kth, float("-inf"))
        if sp.top_p < 1.0:
            sorted_w, sorted_i = torch.sort(weights, descending=True, dim=-1)
            cum = torch.softmax(sorted_w, -1).cumsum(-1)
            drop = cum - torch.softmax(sorted_w, -1) > sp.top_p  # keep the token that crosses p
            sorted_w = sorted_w.masked_fill(drop, float("-inf"))
            weights = torch.full_like(weights, float("-inf")).scatter(-1, sorted_i, sorted_w)
        if streams is None:
            u = torch.rand(logits.shape[0], generator=self.generator, dtype=torch.float64)
        else:
            u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in streams])
        tok = inverse_cdf_sample(torch.softmax(weights, -1), u.to(logits.device))
        return tok, logp.gather(-1, tok[:, None]).squeeze(-1)

    @torch.no_grad()
    def sync_weights(self, weights: Iterable[tuple[str, Any]], version: int | None = None) -> None:
        """Copy the trainer's weights into this policy's model; tensors the model already
        shares (the policy generates with the trained model) are left alone."""
        own = self.model.state_dict()
        for name, tensor in weights:
            mine = own[name]
            if mine.data_ptr() != tensor.data_ptr():
                mine.copy_(tensor)
        super().sync_weights((), version)

    def state_dict(self) -> dict[str, Any]:
        return {"version": self.version, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.version = int(state["version"])
        self.generator.set_state(state["generator"])


def inverse_cdf_sample(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token ids (R,) drawn from ``probs`` (R, V) with the uniforms ``u`` (R,) in [0, 1).

    Row r gets the first token whose cumulative probability exceeds ``u[r]`` times the
    row's total, so token i has probability exactly ``p_i`` (a zero-probability token can
    never be picked: its cumulative sum does not rise above its neighbour's).
    """
    cdf = probs.to(torch.float64).cumsum(-1)
    target = (u.to(torch.float64) * cdf[:, -1]).unsqueeze(-1)
    tok = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return tok.clamp_(max=probs.shape[-1] - 1)


def _row_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)


def _select_cache_rows(cache: Any, rows: torch.Tensor) -> None:
    """Keep only ``rows`` of every layer's keys and values (finished rows leave the batch)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer in layers:
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.keys = layer.keys.index_select(0, rows)
                layer.values = layer.values.index_select(0, rows)
        return
    for i in range(len(cache.key_cache)):  # older transformers
        cache.key_cache[i] = cache.key_cache[i].index_select(0, rows)
        cache.value_cache[i] = cache.value_cache[i].index_select(0, rows)
