"""The correctness tests of ../shared/notes/grpo.md, on real tensors, numbers by hand."""

import math

import numpy as np
import pytest
import torch

from agentgym.grpo.advantages import group_advantages
from agentgym.grpo.loss import (
    Normalizer,
    clipped_token_loss,
    kl_estimate,
    micro_batch_loss,
    truncated_importance_weight,
)

# Two sequences of 5 positions. Row 0: prompt, prompt, policy, env, policy.
# Row 1: prompt, policy, policy, policy, pad.
MASK = torch.tensor([[0, 0, 1, 0, 1], [0, 1, 1, 1, 0]], dtype=torch.float32)
ADV = torch.tensor([[2.0], [-1.0]])


def leaf(values):
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


def step_loss(logp, old, mask=MASK, adv=ADV, agg="token_mean", max_tokens=4):
    tl, _ = clipped_token_loss(logp, old, adv)
    norm = Normalizer(int(mask.sum()), mask.shape[0], max_tokens)
    return micro_batch_loss(tl, mask, agg, norm)


# 6. advantages by hand ---------------------------------------------------------------
def test_advantages_by_hand():
    # group 0: [1, 0, 0, 1] -> mean 0.5, population std 0.5 -> +-1
    # group 1: [3, 1] -> mean 2, std 1 -> [1, -1]; without std scaling [1, -1] as well
    # group 2: [0.5, 0.5, 0.5] all equal -> 0; group 3: a single sample -> 0
    r = [1, 0, 0, 1, 3, 1, 0.5, 0.5, 0.5, 7]
    g = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3]
    a = group_advantages(r, g, eps=0.0)
    assert a.tolist() == [1, -1, -1, 1, 1, -1, 0, 0, 0, 0]
    b = group_advantages(r, g, scale_std=False)
    assert b.tolist() == [0.5, -0.5, -0.5, 0.5, 1, -1, 0, 0, 0, 0]
    c = group_advantages([1, 0, 0, 0], [0, 0, 0, 0], eps=0.0)
    # mean 0.25, std sqrt(0.1875) = 0.4330
    assert c == pytest.approx([0.75 / 0.4330127, -0.25 / 0.4330127, -0.25 / 0.4330127, -0.25 / 0.4330127], rel=1e-6)
    assert not np.isnan(group_advantages([5.0], [0])).any()
    with pytest.raises(ValueError):
        group_advantages([1.0, float("nan")], [0, 0])


# 3. on-policy ratio is 1 and the gradient is -A * grad(logp) / normalizer -------------
def test_on_policy_ratio_one_and_gradient_by_hand():
    logp = leaf([[-1.0, -2.0, -0.5, -3.0, -1.5], [-0.1, -0.7, -0.2, -0.9, -4.0]])
    old = logp.detach()
    ratio = torch.exp(logp - old)
    assert torch.equal(ratio, torch.ones_like(ratio))
    loss = step_loss(logp, old)
    # loss = -(2 + 2 - 1 - 1 - 1) / 5 tokens = -0.2 ; d loss / d logp_t = -A_i * m_t / 5
    assert loss.item() == pytest.approx(-0.2)
    loss.backward()
    expected = torch.tensor([[0, 0, -0.4, 0, -0.4], [0, 0.2, 0.2, 0.2, 0]])
    assert torch.allclose(logp.grad, expected)


# 1. environment / tool tokens are out of the loss ------------------------------------
def test_env_token_logprobs_change_neither_loss_nor_gradient():
    base = [[-1.0, -2.0, -0.5, -3.0, -1.5], [-0.1, -0.7, -0.2, -0.9, -4.0]]
    a = leaf(base)
    changed = [row[:] for row in base]
    changed[0][3] = -20.0  # the env token of row 0
    changed[0][0] = -9.0  # a prompt token
    changed[1][4] = 5.0  # padding
    b = leaf(changed)
    old_a = a.detach() + 0.1  # off-policy, so the ratio matters too
    old_b = old_a.clone()
    old_b[0][3] = 3.0
    la, lb = step_loss(a, old_a), step_loss(b, old_b)
    la.backward()
    lb.backward()
    assert la.item() == pytest.approx(lb.item())
    assert torch.allclose(a.grad, b.grad)
    assert torch.all(a.grad[MASK == 0] == 0)


# 4. clipping ---------------------------------------------------------------------------
def test_clipping_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(1, 4)
    # ratios 1.5 (A>0, above 1+0.28: clipped), 1.1 (A>0: inside), 0.5 (A<0, below 1-0.2: clipped), 0.9 (A<0: inside)
    logp = leaf([[math.log(1.5), math.log(1.1), math.log(0.5), math.log(0.9)]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    tl, clipped = clipped_token_loss(logp, old, adv, eps_low=0.2, eps_high=0.28)
    assert tl.detach().tolist()[0] == pytest.approx([-1.28, -1.1, 0.8, 0.9])
    assert clipped.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    tl.sum().backward()
    # d/dlogp of -rho*A = -A*rho where unclipped
    assert logp.grad.tolist()[0] == pytest.approx([0.0, -1.1, 0.0, 0.9])


def test_clipping_keeps_the_gradient_when_the_ratio_moves_against_the_advantage():
    old = torch.zeros(1, 2)
    logp = leaf([[math.log(0.5), math.log(1.5)]])  # A>0 with rho<1-eps, A<0 with rho>1+eps
    adv = torch.tensor([[1.0, -1.0]])
    tl, clipped = clipped_token_loss(logp, old, adv)
    tl.sum().backward()
    assert clipped.tolist() == [[0.0, 0.0]]
    assert logp.grad.tolist()[0] == pytest.approx([-0.5, 1.5])


# 5. KL estimators -----------------------------------------------------------------------
def test_kl_estimators_exact():
    logp = torch.tensor([-1.0, -0.5])
    ref = torch.tensor([-2.0, -0.5])
    # log(ref/pi) = -1 and 0
    assert kl_estimate(logp, ref, "k1").tolist() == pytest.approx([1.0, 0.0])
    assert kl_estimate(logp, ref, "k2").tolist() == pytest.approx([0.5, 0.0])
    assert kl_estimate(logp, ref, "k3").tolist() == pytest.approx([math.exp(-1) + 1 - 1, 0.0])
    assert kl_estimate(logp, logp, "k3").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        kl_estimate(logp, ref, "k4")


# 7. the global token mean does not depend on the micro-batch split --------------------
@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "dr_grpo"])
def test_micro_batch_split_gives_the_full_batch_loss_and_gradient(agg):
    g = torch.Generator().manual_seed(0)
    B, L = 6, 9
    base = -torch.rand(B, L, generator=g) * 3
    old = base + 0.3 * torch.randn(B, L, generator=g)
    lengths = [1, 8, 3, 5, 2, 7]  # very different sequence lengths
    mask = torch.zeros(B, L)
    for i, n in enumerate(lengths):
        mask[i, 1 : 1 + n] = 1
    adv = torch.randn(B, 1, generator=g)
    norm = Normalizer(int(mask.sum()), B, max_tokens=8)

    full = base.clone().requires_grad_(True)
    tl, _ = clipped_token_loss(full, old, adv)
    full_loss = micro_batch_loss(tl, mask, agg, norm)
    full_loss.backward()

    for split in ([0, 6], [0, 1, 6], [0, 2, 4, 6], [0, 1, 2, 3, 4, 5, 6]):
        acc = base.clone().requires_grad_(True)
        total = 0.0
        for s, e in zip(split[:-1], split[1:]):
            tl_mb, _ = clipped_token_loss(acc[s:e], old[s:e], adv[s:e])
            part = micro_batch_loss(tl_mb, mask[s:e], agg, norm)
            part.backward()
            total += part.item()
        assert total == pytest.approx(full_loss.item(), abs=1e-6)
        assert torch.allclose(acc.grad, full.grad, atol=1e-7)

    if agg == "token_mean":
        # The common bug: normalizing each micro-batch by its own token count.
        naive = 0.0
        for s, e in ((0, 1), (1, 6)):
            tl_mb, _ = clipped_token_loss(base[s:e], old[s:e], adv[s:e])
            naive += (tl_mb * mask[s:e]).sum().item() / mask[s:e].sum().item() / 2
        assert abs(naive - full_loss.item()) > 1e-3


# 8. Dr. GRPO's normalizer is a constant ----------------------------------------------
def test_dr_grpo_normalizer_is_constant():
    logp = leaf([[0.0, -1.0, -1.0, -1.0, -1.0], [0.0, -1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 1, 1], [0, 1, 0, 0, 0]], dtype=torch.float32)
    adv = torch.tensor([[1.0], [1.0]])
    loss = step_loss(logp, logp.detach(), mask, adv, agg="dr_grpo", max_tokens=10)
    # sum of -A over 5 policy tokens / (2 sequences * 10) = -0.25, whatever the lengths
    assert loss.item() == pytest.approx(-5 / 20)
    loss.backward()
    assert torch.allclose(logp.grad[mask == 1], torch.full((5,), -1 / 20))
    # token_mean would give the short sequence's token the same weight as each long one;
    # seq_mean_token_mean gives it 4x the weight of each long-sequence token.
    logp.grad = None
    step_loss(logp, logp.detach(), mask, adv, agg="seq_mean_token_mean").backward()
    assert logp.grad[1, 1].item() == pytest.approx(4 * logp.grad[0, 1].item())


def test_rows_without_loss_tokens_count_in_no_denominator():
    """A fully masked row (cut and masked, or a seat that never moved) is no sequence of the
    mean and has no token budget: seq_mean_token_mean and dr_grpo divide by the others'."""
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.float32)
    norm = Normalizer.of_rows(mask, torch.tensor([8.0, 8.0, 4.0]))
    assert (norm.total_tokens, norm.total_sequences, norm.token_budget) == (3, 2, 12.0)
    assert norm.dr_grpo_denominator == 12.0


# 9. truncation masking, including a batch where everything is masked ----------------
def test_all_masked_step_is_zero_not_nan():
    logp = leaf([[-1.0, -2.0], [-0.5, -0.1]])
    zero = torch.zeros(2, 2)
    for agg in ("token_mean", "seq_mean_token_mean", "dr_grpo"):
        logp.grad = None
        loss = step_loss(logp, logp.detach(), zero, torch.tensor([[1.0], [-1.0]]), agg=agg)
        loss.backward()
        assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros(2, 2))


# 10. importance weight is 1 when sampler and trainer agree -------------------------
def test_truncated_importance_weight():
    old = torch.tensor([-1.0, -1.0, -1.0])
    sampler = torch.tensor([-1.0, -2.0, -0.5])
    w = truncated_importance_weight(old, sampler, cap=2.0)
    assert w.tolist() == pytest.approx([1.0, 2.0, math.exp(-0.5)])  # e^1 = 2.72 capped to 2
    assert truncated_importance_weight(old, old).tolist() == [1.0, 1.0, 1.0]
    # A constant of the loss: no gradient flows through it, even from log-probs that have one.
    assert not truncated_importance_weight(leaf([-1.0, -1.5]), torch.tensor([-1.0, -2.0])).requires_grad


def test_unknown_aggregation_is_an_error():
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        micro_batch_loss(torch.zeros(1, 1), torch.ones(1, 1), "mean", Normalizer(1, 1))


def test_skipping_rows_without_loss_tokens_changes_nothing():
    """The trainer skips rows whose mask is all zero; with the step-wide normalizer the
    loss and gradient are the same as over the full batch, for every aggregation."""
    from agentgym.grpo.batch import TokenBatch

    g = torch.Generator().manual_seed(1)
    B, L = 5, 7
    mask = torch.zeros(B, L)
    mask[0, 2:6] = 1
    mask[2, 1:3] = 1
    mask[4, 3:7] = 1  # rows 1 and 3 were truncated and masked out
    batch = TokenBatch(
        torch.randint(0, 50, (B, L), generator=g),
        torch.ones(B, L, dtype=torch.long),
        mask,
        torch.zeros(B, L),
        torch.randn(B, 1, generator=g),
    )
    assert batch.trainable_rows() == [0, 2, 4]
    base = -torch.rand(B, L, generator=g)
    for agg in ("token_mean", "seq_mean_token_mean", "dr_grpo"):
        norm = Normalizer(int(mask.sum()), B, max_tokens=6)
        full = base.clone().requires_grad_(True)
        tl, _ = clipped_token_loss(full, full.detach() + 0.1, batch.advantages)
        ref = micro_batch_loss(tl, mask, agg, norm)
        ref.backward()
        part = base.clone().requires_grad_(True)
        sub = batch.select(batch.trainable_rows())
        rows = torch.tensor(batch.trainable_rows())
        tl2, _ = clipped_token_loss(part[rows], part[rows].detach() + 0.1, sub.advantages)
        loss = micro_batch_loss(tl2, sub.loss_mask, agg, norm)
        loss.backward()
        assert loss.item() == pytest.approx(ref.item())
        assert torch.allclose(part.grad, full.grad)
