"""The GRPO objective as pure functions of tensors.

Per policy token t of episode i (mask m_t = 1; prompt and environment tokens have 0):

    rho_t = exp(logp_t - logp_old_t)
    l_t   = -min(rho_t * A_i, clip(rho_t, 1 - eps_low, 1 + eps_high) * A_i)
            * w_t                                   # truncated importance weight (optional)
            + beta * KL_t(logp_t, logp_ref_t)       # k1 / k2 / k3 estimator (optional)
    w_t   = min(exp(logp_old_t - logp_sampler_t), C)   # when another engine sampled

Aggregation over the *whole optimizer step* (all micro-batches together):

    token_mean          sum(m * l) / sum(m)                            (DAPO; default)
    seq_mean_token_mean mean_i( sum_t(m * l) / sum_t(m) )              (original GRPO)
    dr_grpo             sum(m * l) / (n_sequences * max_tokens)        (Dr. GRPO)

:func:`micro_batch_loss` returns one micro-batch's share of that step loss, so summing
the shares over micro-batches (gradient accumulation) gives exactly the full-batch loss
and gradient, whatever the split. Several public trainers divide by the micro-batch's own
token count instead, which weights tokens differently depending on how the batch was cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

LossAgg = Literal["token_mean", "seq_mean_token_mean", "dr_grpo"]
KLEstimator = Literal["k1", "k2", "k3"]


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLEstimator = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi (Schulman's k1, k2, k3)."""
    log_ratio = ref_logp - logp  # log(pi_ref / pi)
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    if kind == "k3":
        return torch.exp(log_ratio) - log_ratio - 1.0
    raise ValueError(f"unknown KL estimator {kind!r}; use k1, k2 or k3")


def clipped_token_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate loss and a 0/1 tensor of where clipping was active.

    ``advantages`` broadcasts against ``logp`` (shape (B, 1) for per-sequence values).
    """
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped)
    was_clipped = (clipped < unclipped).to(logp.dtype)
    return loss, was_clipped


def truncated_importance_weight(old_logp: torch.Tensor, sampler_logp: torch.Tensor, cap: float = 3.0) -> torch.Tensor:
    """min(pi_old / pi_sampler, cap), detached: corrects for tokens sampled by another engine."""
    return torch.clamp(torch.exp(old_logp - sampler_logp), max=cap).detach()


@dataclass(frozen=True)
class Normalizer:
    """Counts over one optimizer step's rows that fix the denominator across micro-batches.

    ``total_sequences`` counts rows with at least one loss token (a fully masked row
    takes no part in the mean). Dr. GRPO divides by ``token_budget`` when it is given (the
    sum of each row's most possible policy tokens: ``max_new_tokens`` for one move,
    ``max_new_tokens * max_turns`` for a whole multi-turn episode, in a game times its
    own seat's moves, ``max_seat_moves``), else by
    ``total_sequences * max_tokens``.
    """

    total_tokens: int
    total_sequences: int
    max_tokens: int = 1
    token_budget: float | None = None

    def __post_init__(self) -> None:
        if self.total_sequences < 0 or self.total_tokens < 0 or (self.token_budget or 0) < 0:
            raise ValueError("counts must be non-negative")

    @classmethod
    def of_rows(cls, loss_mask: torch.Tensor, token_budget: torch.Tensor | None = None) -> Normalizer:
        """The counts of these rows: ``loss_mask`` (R, L), ``token_budget`` (R,)."""
        per_row = loss_mask.sum(-1)
        live = per_row > 0
        budget = None if token_budget is None else float(token_budget[live].sum())
        return cls(int(per_row.sum().item()), int(live.sum().item()), token_budget=budget)

    @property
    def dr_grpo_denominator(self) -> float:
        if self.token_budget is not None:
            return self.token_budget
        return float(self.total_sequences * self.max_tokens)


def micro_batch_loss(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    agg: LossAgg,
    norm: Normalizer,
) -> torch.Tensor:
    """This micro-batch's share of the step loss (see module doc).

    A step in which every token is masked out gives a loss of exactly 0 with zero
    gradient, not NaN.
    """
    mask = mask.to(token_loss.dtype)
    masked = token_loss * mask
    if agg == "token_mean":
        return masked.sum() / max(norm.total_tokens, 1)
    if agg == "seq_mean_token_mean":
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_seq.sum() / max(norm.total_sequences, 1)
    if agg == "dr_grpo":
        return masked.sum() / max(norm.dr_grpo_denominator, 1.0)
    raise ValueError(f"unknown loss aggregation {agg!r}; use token_mean, seq_mean_token_mean or dr_grpo")
