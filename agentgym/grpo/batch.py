"""From Episodes to tensors, and the trainer-side log-probs of the sampled tokens.

Episodes are trained on exactly as sampled: their ``token_ids`` are right-padded into a
batch, never re-tokenized. Log-probs are computed only at policy positions: the decoder
runs over every position (it must), but the vocabulary projection, the largest matrix
of a small model, runs only where the loss mask is 1.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentgym.rollout.episode import Episode


@dataclass
class TokenBatch:
    """Right-padded tensors of a list of episodes (positions aligned to ``input_ids``)."""

    input_ids: torch.Tensor  # (B, L) long
    attention_mask: torch.Tensor  # (B, L) long
    loss_mask: torch.Tensor  # (B, L) float, 1 where the token was sampled by the policy
    sampler_logp: torch.Tensor  # (B, L) float, the sampler's log-probs (0 elsewhere)
    advantages: torch.Tensor  # (B, 1) float
    #: (B,) float: the most policy tokens each row could hold (Dr. GRPO's constant normalizer).
    token_budget: torch.Tensor | None = None
    #: (B, L) float: the trainer's log-probs before the first update pass (the PPO ratio's
    #: denominator); None when each batch gets one optimizer step (then old = current).
    old_logp: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, rows: Sequence[int]) -> TokenBatch:
        """These rows, in this order (right padding trimmed to the longest of them)."""
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        width = int(self.attention_mask[idx].sum(-1).max().item()) if len(idx) else 0
        return TokenBatch(
            self.input_ids[idx, :width],
            self.attention_mask[idx, :width],
            self.loss_mask[idx, :width],
            self.sampler_logp[idx, :width],
            self.advantages[idx],
            None if self.token_budget is None else self.token_budget[idx],
            None if self.old_logp is None else self.old_logp[idx, :width],
        )

    def to(self, device: torch.device | str) -> TokenBatch:
        """The same batch on ``device`` (itself when it is already there)."""
        if self.input_ids.device == torch.device(device):
            return self
        moved: dict[str, Any] = {}  # tensors, and None for an absent optional one
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            moved[f.name] = None if v is None else v.to(device)
        return TokenBatch(**moved)

    def prompt_keys(self) -> list[bytes]:
        """Each row's tokens before its first policy token, as bytes (rows of one GRPO
        group, which share their prompt, get equal keys)."""
        if self.loss_mask.numel() == 0:  # no rows, or rows of no tokens (a rank left idle)
            return [b""] * len(self)
        first = torch.where(self.loss_mask.any(-1), (self.loss_mask > 0).float().argmax(-1), 0)
        return [self.input_ids[i, : int(first[i])].cpu().numpy().tobytes() for i in range(len(self))]

    def trainable_rows(self) -> list[int]:
        """Rows with at least one policy token in the loss, longest first.

        Rows without any (truncated and masked, or zero-length) add exactly 0 to the
        loss and its gradient, so the trainer skips their forward pass; sorting by
        length keeps padding inside each micro-batch small.
        """
        counts = self.loss_mask.sum(-1)
        lengths = self.attention_mask.sum(-1)
        rows = [i for i in range(len(self)) if counts[i] > 0]
        return sorted(rows, key=lambda i: -int(lengths[i]))


def collate(
    episodes: Sequence[Episode],
    advantages: Sequence[float],
    pad_id: int,
    drop_truncated: bool = False,
    budgets: Sequence[int] | None = None,
) -> TokenBatch:
    """Pad episodes into a :class:`TokenBatch`; ``drop_truncated`` zeroes the mask of
    episodes that hit the token limit (they are kept so counts stay honest). ``budgets``
    is each episode's token budget (default: its own policy-token count)."""
    if len(episodes) != len(advantages):
        raise ValueError("one advantage per episode is needed")
    if budgets is not None and len(budgets) != len(episodes):
        raise ValueError("one token budget per episode is needed")
    width = max((len(e.token_ids) for e in episodes), default=0)
    n = len(episodes)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.float32)
    slp = torch.zeros((n, width), dtype=torch.float32)
    for i, e in enumerate(episodes):
        L = len(e.token_ids)
        ids[i, :L] = torch.as_tensor(e.token_ids, dtype=torch.long)
        attn[i, :L] = 1
        if not (drop_truncated and e.hit_length_limit):
            mask[i, :L] = torch.as_tensor(e.loss_mask, dtype=torch.float32)
        slp[i, :L] = torch.as_tensor(e.logprobs, dtype=torch.float32)
    if n and bool(mask[:, 0].any()):
        raise ValueError("the first token of an episode cannot be a policy token (nothing predicts it)")
    adv = torch.as_tensor(list(advantages), dtype=torch.float32).reshape(n, 1)
    own = [e.num_policy_tokens for e in episodes]
    budget = torch.as_tensor(list(budgets) if budgets is not None else own, dtype=torch.float32).reshape(n)
    return TokenBatch(ids, attn, mask, slp, adv, budget)


def _decoder_and_head(model):
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
    return base.get_decoder(), base.get_output_embeddings()


#: Shortest common prefix worth a separate forward pass (shorter ones run with the rows).
MIN_SHARED_PREFIX = 8


def shared_prefix_length(batch: TokenBatch) -> int:
    """Tokens at the start of every row that the decoder can run once per distinct
    prefix instead of once per row (0: none); see :func:`shared_prefixes`."""
    return shared_prefixes(batch)[0]


def shared_prefixes(batch: TokenBatch) -> tuple[int, torch.Tensor | None]:
    """``(q, index)``: the first ``q`` tokens of row ``r`` equal those of row
    ``index[r]`` (a row that is its own index heads a prefix group), hold no padding and
    no loss token's prediction, so the decoder runs them once per group and every row
    continues from its group's cache. ``(0, None)`` when nothing is worth sharing.

    Rows of one GRPO group share their prompt; a micro-batch may hold several groups.
    ``q`` stops one short of the first loss token of any row (its prediction is made at
    the position before it), so the shared pass never produces a log-prob itself. Of
    "the longest prefix common to all rows" and "every row's prompt cut at that stop,
    one pass per distinct one", the one that sends fewer tokens through the decoder wins.
    """
    n, width = batch.input_ids.shape
    if n < 2 or width == 0:
        return 0, None
    has_loss = (batch.loss_mask > 0).any(0).nonzero()
    cap = (int(has_loss[0]) if len(has_loss) else width) - 1
    unpadded = (batch.attention_mask > 0).all(0)
    cap = min(cap, int(unpadded.long().cumprod(0).sum()))
    if cap < MIN_SHARED_PREFIX:
        return 0, None
    same = (batch.input_ids == batch.input_ids[:1]).all(0)
    common = min(int(same.long().cumprod(0).sum()), cap)
    prefixes, inverse = torch.unique(batch.input_ids[:, :cap], dim=0, return_inverse=True)
    k = len(prefixes)
    # tokens the decoder sees before the rows part ways: one row's worth per pass
    cost_one = common + n * (width - common) if common >= MIN_SHARED_PREFIX else n * width
    cost_groups = k * cap + n * (width - cap) if k < n else n * width
    if cost_one <= cost_groups:
        return (common, torch.zeros(n, dtype=torch.long)) if common >= MIN_SHARED_PREFIX else (0, None)
    heads = torch.full((k,), n, dtype=torch.long).scatter_reduce(0, inverse.cpu(), torch.arange(n), reduce="amin")
    return cap, heads[inverse.cpu()]


def _expand_cache_rows(cache, index: torch.Tensor) -> None:
    """Every layer's keys and values of a cache of prefix rows, laid out as the batch's
    rows (row r takes prefix row ``index[r]``). One prefix is viewed, not copied; several
    are gathered. Either way each row's gradient adds up in its prefix row."""
    one = bool((index == 0).all())
    index = index.to(_cache_device(cache))

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t.expand(len(index), *t.shape[1:]) if one else t.index_select(0, index)

    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer in layers:
            layer.keys, layer.values = rows(layer.keys), rows(layer.values)
        return
    for i in range(len(cache.key_cache)):  # older transformers
        cache.key_cache[i], cache.value_cache[i] = rows(cache.key_cache[i]), rows(cache.value_cache[i])


def _cache_device(cache) -> torch.device:
    layers = getattr(cache, "layers", None)
    return layers[0].keys.device if layers else cache.key_cache[0].device


def _hidden_after(decoder, batch: TokenBatch, q: int, index: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden states (B, L - q, D) at positions q.. of every row; with ``q`` > 0 the
    first ``q`` tokens go through the decoder once per distinct prefix (the rows heading
    ``index``'s groups; one row when ``index`` is None), and every row continues from
    its prefix's cache."""
    if q == 0:
        return decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    from transformers import DynamicCache

    n, width = batch.input_ids.shape
    if index is None:
        index = torch.zeros(n, dtype=torch.long)
    heads, slot = torch.unique(index, return_inverse=True)  # prefix rows, and each row's one
    cache = DynamicCache()
    # transformers 5.x renamed the cache argument (``past_key_values`` goes in 5.40)
    arg = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    decoder(input_ids=batch.input_ids[heads.to(batch.input_ids.device), :q], use_cache=True, **{arg: cache})
    _expand_cache_rows(cache, slot)
    positions = torch.arange(q, width, device=batch.input_ids.device)
    return decoder(
        input_ids=batch.input_ids[:, q:],
        attention_mask=batch.attention_mask,
        position_ids=positions.expand(n, -1),
        cache_position=positions,
        use_cache=True,
        **{arg: cache},
    ).last_hidden_state


def _checkpointing(model) -> bool:
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # the newer name first
        for m in (model, getattr(model, "get_base_model", lambda: None)()):
            if m is not None and name in dir(type(m)):
                return bool(getattr(m, name))
    return False


def policy_logprobs(
    model,
    batch: TokenBatch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    share_prefix: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (B, L) of each policy token under ``model`` at ``temperature``; 0 elsewhere.

    Position t holds log p(token_t | tokens_<t). With ``with_entropy`` also returns the
    mean entropy of the sampling distribution over policy positions (detached). With
    ``share_prefix`` the tokens rows start with (a group's prompt) run through the
    decoder once per distinct prefix (:func:`shared_prefixes`); the result is the same up to float
    rounding, values and gradients alike (tested). Off under gradient checkpointing,
    which turns the decoder's cache off.
    """
    decoder, head = _decoder_and_head(model)
    q, index = shared_prefixes(batch) if share_prefix and not _checkpointing(model) else (0, None)
    hidden = _hidden_after(decoder, batch, q, index)
    sel = batch.loss_mask[:, q + 1 :] > 0
    logp = torch.zeros(batch.input_ids.shape, dtype=torch.float32, device=hidden.device)
    if not bool(sel.any()):
        # Keep the graph connected so backward() works on an all-masked batch.
        return logp + 0.0 * hidden.sum(), (torch.zeros(()) if with_entropy else None)
    h = hidden[:, :-1][sel]
    logits = head(h).float() / temperature
    lsm = torch.log_softmax(logits, -1)
    targets = batch.input_ids[:, q + 1 :][sel]
    picked = lsm.gather(-1, targets[:, None]).squeeze(-1)
    inner = logp[:, q + 1 :].masked_scatter(sel, picked)
    logp = torch.cat([logp[:, : q + 1], inner], dim=1)
    entropy = _mean_entropy(lsm.detach()) if with_entropy else None
    return logp, entropy


@torch.no_grad()
def _mean_entropy(lsm: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_v p log p, from log-probs (N, V). (A batched dot product
    per row was tried: 30% faster, but its float32 sum over a 49k vocabulary is off by
    3e-5 relative, where this elementwise sum is off by 1e-7.)"""
    return -(lsm.exp() * lsm).sum(-1).mean()
