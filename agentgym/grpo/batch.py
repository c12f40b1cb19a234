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
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return TokenBatch(**{k: None if v is None else v.to(device) for k, v in moved.items()})

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
    """Tokens at the start that every row of ``batch`` has in common and that hold no
    loss token's prediction: the decoder can run them once for all rows (0: none).

    Rows of one GRPO group share their prompt. The count stops one short of the first
    loss token (its prediction is made at the position before it), so the shared pass
    never produces a log-prob itself.
    """
    n, width = batch.input_ids.shape
    if n < 2 or width == 0:
        return 0
    same = (batch.input_ids == batch.input_ids[:1]).all(0) & (batch.attention_mask > 0).all(0)
    common = int(same.long().cumprod(0).sum())
    has_loss = (batch.loss_mask > 0).any(0).nonzero()
    first_loss = int(has_loss[0]) if len(has_loss) else width
    q = min(common, first_loss - 1)
    return q if q >= MIN_SHARED_PREFIX else 0


def _expand_cache_rows(cache, n: int) -> None:
    """Every layer's keys and values of a one-row cache, viewed as ``n`` rows (no copy;
    the gradients of the n rows add up in the one row)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer in layers:
            layer.keys = layer.keys.expand(n, *layer.keys.shape[1:])
            layer.values = layer.values.expand(n, *layer.values.shape[1:])
        return
    for i in range(len(cache.key_cache)):  # older transformers
        cache.key_cache[i] = cache.key_cache[i].expand(n, *cache.key_cache[i].shape[1:])
        cache.value_cache[i] = cache.value_cache[i].expand(n, *cache.value_cache[i].shape[1:])


def _hidden_after(decoder, batch: TokenBatch, q: int) -> torch.Tensor:
    """Last hidden states (B, L - q, D) at positions q.. of every row; with ``q`` > 0 the
    first ``q`` tokens (common to all rows) go through the decoder once, and the rows
    continue from that one cache."""
    if q == 0:
        return decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    from transformers import DynamicCache

    n, width = batch.input_ids.shape
    cache = DynamicCache()
    # transformers 5.x renamed the cache argument (``past_key_values`` goes in 5.40)
    arg = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    decoder(input_ids=batch.input_ids[:1, :q], use_cache=True, **{arg: cache})
    _expand_cache_rows(cache, n)
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
    ``share_prefix`` the tokens every row starts with (a group's prompt) run through the
    decoder once (:func:`shared_prefix_length`); the result is the same up to float
    rounding, values and gradients alike (tested). Off under gradient checkpointing,
    which turns the decoder's cache off.
    """
    decoder, head = _decoder_and_head(model)
    q = shared_prefix_length(batch) if share_prefix and not _checkpointing(model) else 0
    hidden = _hidden_after(decoder, batch, q)
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
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(lsm.exp() * lsm).sum(-1).mean()
    return logp, entropy
