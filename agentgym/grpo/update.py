"""The update pass: from a batch of scored episodes to new weights.

One generated batch is used for ``updates_per_batch`` passes (PPO epochs); each pass
splits the batch into ``mini_batches`` optimizer steps, and each optimizer step
accumulates gradients over micro-batches of ``micro_batch_size`` rows. The loss of
:mod:`agentgym.grpo.loss` is normalized over each optimizer step's rows, so how the rows
are cut into micro-batches never changes the gradient.

The PPO ratio's denominator ``old`` is the trainer's log-prob before the first pass,
computed once (without gradients) when the batch gets more than one optimizer step.
With one pass and one mini-batch (the defaults) ``old = logp.detach()``: the ratio is
exactly 1, clipping cannot act, and no extra forward pass is spent.

Across processes (``world``, see :mod:`~agentgym.grpo.distributed`) each rank holds some
of the step's rows: the normalizer's counts are summed over ranks, so each rank's loss is
its rows' share of the one step loss, and the gradients are summed before clipping. Every
rank takes the same number of optimizer steps, with or without rows of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from agentgym.grpo.batch import TokenBatch, policy_logprobs
from agentgym.grpo.distributed import World
from agentgym.grpo.fsdp import gathered, is_sharded, local_tensor
from agentgym.grpo.loss import (
    KLEstimator,
    LossAgg,
    Normalizer,
    clipped_token_loss,
    kl_estimate,
    micro_batch_loss,
    truncated_importance_weight,
)
from agentgym.placement import autocast


@dataclass(frozen=True)
class UpdateSettings:
    """Everything the update pass needs from a run config (``grpo.*``, ``rollout.temperature``)."""

    loss_agg: LossAgg = "token_mean"
    eps_low: float = 0.2
    eps_high: float = 0.28
    temperature: float = 1.0
    micro_batch_size: int = 8
    max_grad_norm: float = 1.0
    #: Multiply by min(pi_old / pi_sampler, is_cap): on when another engine sampled.
    importance_weights: bool = False
    is_cap: float = 3.0
    beta: float = 0.0
    kl_estimator: KLEstimator = "k3"
    updates_per_batch: int = 1
    mini_batches: int = 1
    #: Forward passes with gradients in train mode (LoRA dropout acts); else eval mode.
    train_mode: bool = False
    #: "grpo": the clipped policy-gradient loss above. "sft": supervised fine-tuning, the
    #: cross-entropy -log p(token) at temperature 1 on the loss tokens (advantages unused),
    #: aggregated and micro-batched the same way.
    objective: str = "grpo"
    #: Forward passes under autocast to this dtype ("bfloat16"; None: the weights' dtype).
    autocast: str | None = None
    #: Micro-batches hold rows of one prompt where they can, and the prompt tokens the
    #: rows share run through the decoder once (same loss and gradients, less compute).
    share_prefix: bool = True

    @property
    def optimizer_steps(self) -> int:
        return self.updates_per_batch * self.mini_batches


def update_policy(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: TokenBatch,
    s: UpdateSettings,
    *,
    ref_model: torch.nn.Module | None = None,
    roles: Sequence[str] | None = None,
    activate: Callable[[str], None] | None = None,
    world: World | None = None,
) -> dict[str, float]:
    """Train on ``batch``; returns the step's statistics (loss, grad norm, clip fraction, ...).

    With ``roles`` (one per row) and ``activate``, each micro-batch holds one role's rows
    and ``activate(role)`` runs before its forward pass (a LoRA adapter per role).
    """
    world = world or World()
    device = next(model.parameters()).device
    rows = batch.trainable_rows()
    stats = _Stats()
    n_rows = int(world.sum_ints(len(rows))[0])
    if not n_rows:
        return stats.result(s, Normalizer(0, 0), 0)
    plan = _Plan(rows, roles, s.micro_batch_size, batch.prompt_keys() if s.share_prefix else None)
    if s.optimizer_steps > 1 and batch.old_logp is None:
        t = time.perf_counter()
        with gathered(model), autocast(device, _dtype(s)):
            batch.old_logp = _logprobs_without_grad(
                model, batch, plan.micro_batches(rows), s.temperature, activate, s.share_prefix
            )
        stats.old_logp_s = time.perf_counter() - t
    step_norm = _normalizer(batch, rows, world)
    n_steps = 0
    params = [p for p in model.parameters() if p.requires_grad]
    sharded = is_sharded(model)
    for epoch in range(s.updates_per_batch):
        for part in plan.mini_batches(s.mini_batches, n_rows):
            norm = _normalizer(batch, part, world)
            optimizer.zero_grad(set_to_none=True)
            # Under FSDP: whole weights for this rank's micro-batches, gradients summed on exit.
            with gathered(model, reduce_grads=True):
                for role, chunk in plan.micro_batches(part):
                    if role is not None and activate is not None:
                        activate(role)
                    mb = batch.select(chunk).to(device)
                    with autocast(device, _dtype(s)):
                        result = _micro_batch(model, mb, norm, s, ref_model)
                    stats.add(result, mb.loss_mask, first_pass=epoch == 0)
            t = time.perf_counter()
            if not sharded:
                world.all_reduce_grads(params)  # every rank's share of the step loss, summed
            stats.grad_norms.append(clip_grad_norm(params, s.max_grad_norm, world if sharded else None))
            optimizer.step()
            stats.optimizer_s += time.perf_counter() - t
            n_steps += 1
    optimizer.zero_grad(set_to_none=True)
    stats.sum_over(world)
    return stats.result(s, step_norm, n_steps)


def clip_grad_norm(params: Sequence[torch.nn.Parameter], max_norm: float, shards: World | None = None) -> float:
    """Scale the gradients so their global L2 norm is at most ``max_norm``; returns the norm.

    The sum of squares is taken in float64, so the norm (and the clip factor) comes out
    the same whether each gradient is whole or cut into ``shards`` (FSDP: each rank sums
    its shards, then the ranks add up); in float32 the two summation orders differ in the
    last bits, and a clipped step would then drift from the one-process step.
    """
    grads = [local_tensor(p.grad) for p in params if p.grad is not None]
    sq = sum((float(torch.linalg.vector_norm(g, dtype=torch.float64)) ** 2 for g in grads), 0.0)
    if shards is not None:
        sq = shards.sum_ints(sq)[0]
    total = sq**0.5
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return total


def _dtype(s: UpdateSettings) -> torch.dtype | None:
    return None if s.autocast is None else getattr(torch, s.autocast)


def _normalizer(batch: TokenBatch, rows: Sequence[int], world: World) -> Normalizer:
    """The counts of ``rows`` on every rank together (this rank's alone in one process)."""
    if rows:
        here = Normalizer.of_rows(batch.loss_mask[list(rows)], _budget(batch, rows))
    else:
        here = Normalizer(0, 0, token_budget=None if batch.token_budget is None else 0.0)
    if not world.distributed:
        return here
    tokens, seqs, budget = world.sum_ints(here.total_tokens, here.total_sequences, here.token_budget or 0.0)
    return Normalizer(int(tokens), int(seqs), token_budget=None if batch.token_budget is None else budget)


@dataclass
class _MicroResult:
    loss: torch.Tensor
    clipped: torch.Tensor
    old: torch.Tensor
    sampler: torch.Tensor
    entropy: torch.Tensor | None
    forward_s: float = 0.0  # log-probs and loss
    backward_s: float = 0.0


def _micro_batch(model, mb: TokenBatch, norm: Normalizer, s: UpdateSettings, ref_model) -> _MicroResult:
    """Forward, loss and backward of one micro-batch (its share of the step loss)."""
    _train_mode(model, s.train_mode)
    try:
        return _micro_batch_loss(model, mb, norm, s, ref_model)
    finally:  # after backward: a checkpointed layer's recompute must see the same mode
        model.eval()


def _train_mode(model, dropout: bool) -> None:
    """Train mode where dropout is asked for; else eval mode, except that layers under
    gradient checkpointing get their own ``training`` flag on (transformers checkpoints a
    layer only in training mode), which leaves every dropout module in eval mode."""
    model.train(dropout)
    if dropout:
        return
    for m in model.modules():
        if getattr(m, "gradient_checkpointing", False) is True:
            m.training = True


def _micro_batch_loss(model, mb: TokenBatch, norm: Normalizer, s: UpdateSettings, ref_model) -> _MicroResult:
    t0 = time.perf_counter()
    sft = s.objective == "sft"
    logp, entropy = policy_logprobs(
        model, mb, 1.0 if sft else s.temperature, with_entropy=True, share_prefix=s.share_prefix
    )
    if sft:  # cross-entropy on the demonstrator's tokens
        loss = micro_batch_loss(-logp, mb.loss_mask, s.loss_agg, norm)
        t1 = time.perf_counter()
        loss.backward()
        d = logp.detach()
        return _MicroResult(loss.detach(), torch.zeros_like(d), d, d, entropy, t1 - t0, time.perf_counter() - t1)
    old = mb.old_logp if mb.old_logp is not None else logp.detach()
    # l_t = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) [* w_t] [+ beta KL_t]
    token_loss, clipped = clipped_token_loss(logp, old, mb.advantages, s.eps_low, s.eps_high)
    if s.importance_weights:
        token_loss = token_loss * truncated_importance_weight(old, mb.sampler_logp, s.is_cap)
    if ref_model is not None and s.beta > 0:
        with torch.no_grad():
            ref, _ = policy_logprobs(ref_model, mb, s.temperature, share_prefix=s.share_prefix)
        token_loss = token_loss + s.beta * kl_estimate(logp, ref, s.kl_estimator)
    loss = micro_batch_loss(token_loss, mb.loss_mask, s.loss_agg, norm)
    t1 = time.perf_counter()
    loss.backward()
    return _MicroResult(loss.detach(), clipped, old, mb.sampler_logp, entropy, t1 - t0, time.perf_counter() - t1)


def reference_logprobs(ref_model, batch: TokenBatch, rows: Sequence[int], s: UpdateSettings) -> torch.Tensor:
    """A frozen model's log-probs of ``rows`` at the sampling temperature, (B, L), no gradients."""
    device = next(ref_model.parameters()).device
    plan = _Plan(rows, None, s.micro_batch_size, batch.prompt_keys() if s.share_prefix else None)
    with autocast(device, _dtype(s)):
        return _logprobs_without_grad(ref_model, batch, plan.micro_batches(rows), s.temperature, None, s.share_prefix)


@torch.no_grad()
def _logprobs_without_grad(
    model, batch: TokenBatch, chunks, temperature: float, activate, share_prefix: bool = True
) -> torch.Tensor:
    """The trainer's log-probs of every trainable row before any update (PPO's pi_old)."""
    device = next(model.parameters()).device
    out = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    model.eval()
    for role, chunk in chunks:
        if role is not None and activate is not None:
            activate(role)
        mb = batch.select(chunk).to(device)
        logp, _ = policy_logprobs(model, mb, temperature, share_prefix=share_prefix)
        out[torch.as_tensor(chunk), : logp.shape[1]] = logp.cpu()
    return out


def _budget(batch: TokenBatch, rows: Sequence[int]) -> torch.Tensor | None:
    return None if batch.token_budget is None else batch.token_budget[list(rows)]


class _Plan:
    """How rows are cut: mini-batches (optimizer steps), then per-role micro-batches.

    With ``keys`` (one per row: its prompt) a micro-batch holds rows of one prompt where
    it can, so their common prompt runs through the decoder once: each prompt's rows are
    cut into chunks of ``size``; a last chunk of at least half ``size`` stays on its own,
    smaller ones are packed together (SFT demonstrations, each with its own prompt, then
    still fill whole micro-batches). The loss is normalized per optimizer step, so the cut
    never changes the gradient.
    """

    def __init__(
        self, rows: Sequence[int], roles: Sequence[str] | None, size: int, keys: Sequence[bytes] | None = None
    ):
        self.rows, self.roles, self.size, self.keys = list(rows), roles, size, keys

    def mini_batches(self, n: int, total_rows: int | None = None) -> list[list[int]]:
        # Every n-th row of the length-sorted list: each part gets long and short rows alike.
        # ``total_rows`` (over all ranks) fixes the count, so every rank takes as many steps.
        n = max(1, min(n, len(self.rows) if total_rows is None else total_rows))
        return [self.rows[k::n] for k in range(n)]

    def micro_batches(self, rows: Sequence[int]) -> list[tuple[str | None, list[int]]]:
        by_role: dict[str | None, list[int]] = {}
        for r in rows:
            by_role.setdefault(self.roles[r] if self.roles is not None else None, []).append(r)
        out: list[tuple[str | None, list[int]]] = []
        for role, rs in by_role.items():
            if self.keys is None:
                out += [(role, rs[i : i + self.size]) for i in range(0, len(rs), self.size)]
                continue
            by_prompt: dict[bytes, list[int]] = {}
            for r in rs:
                by_prompt.setdefault(self.keys[r], []).append(r)
            rest: list[int] = []
            for same in by_prompt.values():
                for i in range(0, len(same), self.size):
                    chunk = same[i : i + self.size]
                    if len(chunk) * 2 >= self.size and len(chunk) > 1:
                        out.append((role, chunk))
                    else:
                        rest += chunk
            order = {r: i for i, r in enumerate(rs)}
            rest.sort(key=order.__getitem__)  # longest first again: little padding
            out += [(role, rest[i : i + self.size]) for i in range(0, len(rest), self.size)]
        return out


class _Stats:
    """Sums over micro-batches; token-weighted means come out of :meth:`result`."""

    def __init__(self) -> None:
        self.loss = self.clip = self.clip_tokens = self.entropy = self.mismatch = 0.0
        self.micro = 0
        self.grad_norms: list[float] = []
        self.forward_s = self.backward_s = self.optimizer_s = self.old_logp_s = 0.0

    def add(self, r: _MicroResult, mask: torch.Tensor, first_pass: bool) -> None:
        self.loss += float(r.loss)
        self.clip += float((r.clipped * mask).sum())
        self.clip_tokens += float(mask.sum())
        self.micro += 1
        self.forward_s += r.forward_s
        self.backward_s += r.backward_s
        if first_pass:  # what the sampled batch looked like to the trainer before it changed
            self.mismatch += float(((r.old - r.sampler).abs() * mask).sum())
            self.entropy += float(r.entropy) * float(mask.sum()) if r.entropy is not None else 0.0

    def sum_over(self, world: World) -> None:
        """Every rank's sums (each rank's loss is its share of the step loss: they add up)."""
        if world.distributed:
            totals = world.sum_ints(self.loss, self.clip, self.clip_tokens, self.entropy, self.mismatch, self.micro)
            self.loss, self.clip, self.clip_tokens, self.entropy, self.mismatch, micro = totals
            self.micro = int(micro)

    def result(self, s: UpdateSettings, norm: Normalizer, n_steps: int) -> dict[str, float]:
        tokens = max(norm.total_tokens, 1)
        return {
            # The mean of the optimizer steps' losses (one step: exactly the step loss).
            "loss": self.loss / max(n_steps, 1),
            "grad_norm": sum(self.grad_norms) / max(len(self.grad_norms), 1),
            "entropy": self.entropy / tokens,
            "clip_frac": self.clip / max(self.clip_tokens, 1.0),
            "logp_mismatch": self.mismatch / tokens,
            "train/tokens": float(norm.total_tokens),
            "train/micro_batches": float(self.micro),
            "train/optimizer_steps": float(n_steps),
            # Where this rank's update time went (seconds).
            "time/forward_s": self.forward_s,
            "time/backward_s": self.backward_s,
            "time/optimizer_s": self.optimizer_s,
            "time/old_logp_s": self.old_logp_s,
        }
