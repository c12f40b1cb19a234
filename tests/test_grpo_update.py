"""The update pass checked against gradients computed by hand.

Each test runs :func:`update_policy` with plain SGD (lr 1, no gradient clipping), so the
weight change is exactly minus the gradient the pass produced, and compares it with the
gradient of the objective written out in the test itself. A wrong loss aggregation, a
dropped or flipped KL term, an importance weight forced to 1 or clipping that never
acts each give a different gradient.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from agentgym.grpo.batch import TokenBatch, policy_logprobs
from agentgym.grpo.loss import kl_estimate
from agentgym.grpo.update import UpdateSettings, update_policy

T = 0.9  # a temperature other than 1, applied on both sides


def _batch(tiny_model) -> TokenBatch:
    """Four rows of different lengths: 5, 3 and 2 policy tokens, and one fully masked row."""
    g = torch.Generator().manual_seed(0)
    vocab = tiny_model.config.vocab_size
    L = 12
    ids = torch.randint(0, vocab, (4, L), generator=g)
    attn = torch.ones(4, L, dtype=torch.long)
    attn[1, 9:] = 0
    attn[2, 7:] = 0
    mask = torch.zeros(4, L)
    mask[0, 5:10] = 1
    mask[1, 6:9] = 1
    mask[2, 5:7] = 1
    adv = torch.tensor([[1.0], [-0.5], [2.0], [3.0]])
    budget = torch.tensor([8.0, 8.0, 8.0, 8.0])
    with torch.no_grad():
        logp, _ = policy_logprobs(tiny_model, TokenBatch(ids, attn, mask, torch.zeros(4, L), adv), T)
    return TokenBatch(ids, attn, mask, logp.clone(), adv, budget)


def _sgd_delta(model, batch, settings, **kw):
    """-(gradient the pass applied), read off a plain SGD step with lr 1."""
    m = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    stats = update_policy(m, opt, copy.deepcopy(batch), settings, **kw)
    return {n: p.detach() - before[n] for n, p in m.named_parameters()}, stats


def _grad_of(model, fn):
    m = copy.deepcopy(model)
    m.zero_grad(set_to_none=True)
    fn(m).backward()
    return {n: (-p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in m.named_parameters()}


def _close(a, b, tol=1e-4):
    worst = max(float((a[n] - b[n]).abs().max()) for n in a)
    scale = max(float(b[n].abs().max()) for n in b)
    assert scale > 0, "the expected gradient is zero: the test would not discriminate"
    assert worst <= tol * max(scale, 1.0), (worst, scale)


def _settings(**kw):
    base = dict(temperature=T, micro_batch_size=2, max_grad_norm=1e9)
    return UpdateSettings(**{**base, **kw})


def _surrogate(m, batch, weight=None):
    """sum_t m_t * (-A_i * w_t * logp_t) per row: the on-policy GRPO gradient's integrand."""
    logp, _ = policy_logprobs(m, batch, T)
    w = 1.0 if weight is None else weight
    return (-(batch.advantages * w * logp) * batch.loss_mask).sum(-1)


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "dr_grpo"])
def test_gradient_equals_the_objective_of_each_loss_aggregation(tiny, agg):
    model, _ = tiny
    batch = _batch(model)
    live = batch.loss_mask.sum(-1) > 0  # the fully masked row takes no part (bug 6)

    def objective(m):
        per_row = _surrogate(m, batch)
        if agg == "token_mean":
            return per_row.sum() / batch.loss_mask.sum()
        if agg == "seq_mean_token_mean":
            return (per_row[live] / batch.loss_mask.sum(-1)[live]).sum() / live.sum()
        return per_row.sum() / batch.token_budget[live].sum()  # Dr. GRPO: a constant per row

    delta, stats = _sgd_delta(model, batch, _settings(loss_agg=agg))
    _close(delta, _grad_of(model, objective))
    assert stats["train/optimizer_steps"] == 1 and stats["clip_frac"] == 0.0


def test_the_three_aggregations_give_three_different_gradients(tiny):
    model, _ = tiny
    batch = _batch(model)
    deltas = [
        _sgd_delta(model, batch, _settings(loss_agg=a))[0] for a in ("token_mean", "seq_mean_token_mean", "dr_grpo")
    ]
    name = next(iter(deltas[0]))
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(deltas[i][name], deltas[j][name], atol=1e-7)


def test_kl_term_pulls_the_policy_toward_the_reference_with_the_right_sign(tiny):
    model, _ = tiny
    batch = _batch(model)
    batch.advantages.zero_()  # only the KL term has a gradient
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.sin(p * 7 + 1))  # a reference a little way off
    beta = 0.5

    def objective(m):
        logp, _ = policy_logprobs(m, batch, T)
        with torch.no_grad():
            r, _ = policy_logprobs(ref, batch, T)
        return (beta * kl_estimate(logp, r, "k3") * batch.loss_mask).sum() / batch.loss_mask.sum()

    delta, _ = _sgd_delta(model, batch, _settings(beta=beta, kl_estimator="k3"), ref_model=ref)
    _close(delta, _grad_of(model, objective))

    # A small step along the update lowers the KL estimate (removing the term: no step;
    # flipping its sign: the KL rises).
    def kl_after(scale):
        m = copy.deepcopy(model)
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.add_(scale * delta[n])
        return float(objective(m))

    assert kl_after(1e-4) < kl_after(0.0)


def test_importance_weight_scales_each_token_and_is_capped(tiny):
    model, _ = tiny
    batch = _batch(model)
    # Row 0 was sampled half as likely as the trainer sees it (w = 2), row 1 ten times
    # less likely (w = 10, capped at 3); row 2 as the trainer sees it (w = 1).
    batch.sampler_logp[0] -= math.log(2.0) * batch.loss_mask[0]
    batch.sampler_logp[1] -= math.log(10.0) * batch.loss_mask[1]
    w = torch.ones_like(batch.loss_mask)
    w[0] = 2.0
    w[1] = 3.0

    def objective(m):
        return _surrogate(m, batch, weight=w).sum() / batch.loss_mask.sum()

    delta, stats = _sgd_delta(model, batch, _settings(importance_weights=True, is_cap=3.0))
    _close(delta, _grad_of(model, objective), tol=1e-4)
    assert stats["logp_mismatch"] > 0.5
    plain, _ = _sgd_delta(model, batch, _settings(importance_weights=False))
    name = next(iter(plain))
    assert not torch.allclose(plain[name], delta[name], atol=1e-7)


def test_clipped_tokens_get_no_gradient(tiny):
    """Grpo test 4: rho > 1 + eps_high with A > 0 (row 0) and rho < 1 - eps_low with A < 0
    (row 1) take no part in the gradient; row 2, inside the clip range, does."""
    model, _ = tiny
    batch = _batch(model)
    with torch.no_grad():
        cur, _ = policy_logprobs(model, batch, T)
    old = cur.clone()
    old[0] -= 1.0 * batch.loss_mask[0]  # rho = e > 1.28, A = +1
    old[1] += 1.0 * batch.loss_mask[1]  # rho = 1/e < 0.8, A = -0.5
    old[2] -= 0.1 * batch.loss_mask[2]  # rho = 1.105 in range, A = +2
    batch.old_logp = old

    def objective(m):  # only row 2 is left, with its ratio rho = exp(logp - old)
        logp, _ = policy_logprobs(m, batch, T)
        rho = torch.exp(logp - old)
        return (-(batch.advantages * rho) * batch.loss_mask)[2].sum() / batch.loss_mask.sum()

    delta, stats = _sgd_delta(model, batch, _settings())
    _close(delta, _grad_of(model, objective), tol=1e-4)
    assert stats["clip_frac"] == pytest.approx(8 / 10)  # rows 0 and 1: 5 + 3 of 10 tokens


def test_several_passes_reuse_the_old_logprobs_and_clip(tiny):
    """updates_per_batch=2 with a large step: the second pass sees rho != 1 and clips;
    the old log-probs are computed once, before the first pass."""
    model, _ = tiny
    batch = _batch(model)
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    stats = update_policy(m, opt, batch, _settings(updates_per_batch=2, mini_batches=2, eps_low=0.01, eps_high=0.01))
    assert stats["train/optimizer_steps"] == 4
    assert stats["clip_frac"] > 0
    with torch.no_grad():
        start, _ = policy_logprobs(model, batch, T)
    assert torch.allclose(batch.old_logp * batch.loss_mask, start * batch.loss_mask, atol=1e-6)


def test_one_pass_one_mini_batch_spends_no_extra_forward(tiny, monkeypatch):
    from agentgym.grpo import update as update_mod

    model, _ = tiny
    calls = []
    real = update_mod.policy_logprobs
    monkeypatch.setattr(update_mod, "policy_logprobs", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    batch = _batch(model)
    m = copy.deepcopy(model)
    update_policy(m, torch.optim.SGD(m.parameters(), lr=0.0), batch, _settings(micro_batch_size=8))
    assert len(calls) == 1 and batch.old_logp is None


def test_gradient_norm_clipping_scales_the_step_to_max_grad_norm(tiny):
    """grpo.max_grad_norm below the gradient's norm: the step is the gradient scaled to
    exactly that norm (direction kept); above it the step is the gradient itself. The
    reported grad_norm is the norm before clipping."""
    model, _ = tiny
    batch = _batch(model)

    def objective(m):
        return _surrogate(m, batch).sum() / batch.loss_mask.sum()

    grad = _grad_of(model, objective)
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grad.values()))
    assert norm > 0.1
    max_norm = norm / 7
    delta, stats = _sgd_delta(model, batch, _settings(max_grad_norm=max_norm))
    assert stats["grad_norm"] == pytest.approx(norm, rel=1e-4)
    step = math.sqrt(sum(float((d.double() ** 2).sum()) for d in delta.values()))
    assert step == pytest.approx(max_norm, rel=1e-3)
    _close(delta, {n: g / 7 for n, g in grad.items()})
    delta, stats = _sgd_delta(model, batch, _settings(max_grad_norm=norm * 1.5))
    _close(delta, grad)


def test_later_passes_weight_tokens_by_the_old_log_probs_not_the_current_ones(tiny):
    """Two passes over one batch with importance weights: the second optimizer step's
    gradient is that of the clipped surrogate with ratio pi / pi_old and weight
    min(pi_old / pi_sampler, cap), pi_old the log-probs before the first pass. A weight
    taken from the current log-probs equals it in the first pass only."""
    model, _ = tiny
    batch = _batch(model)
    batch.sampler_logp[0] -= math.log(2.0) * batch.loss_mask[0]  # w = 2 on row 0
    batch.sampler_logp[1] += 0.3 * batch.loss_mask[1]  # w = e^-0.3 on row 1
    m = copy.deepcopy(model)
    grads, weights = [], []
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    step = opt.step

    def recording_step(*args, **kwargs):
        grads.append({n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None})
        weights.append({n: p.detach().clone() for n, p in m.named_parameters()})
        return step(*args, **kwargs)

    opt.step = recording_step
    s = _settings(updates_per_batch=2, importance_weights=True, is_cap=3.0)
    update_policy(m, opt, batch, s)
    assert len(grads) == 2
    old = batch.old_logp
    w = torch.clamp(torch.exp(old - batch.sampler_logp), max=3.0)
    after_one = copy.deepcopy(model)  # the weights the second pass started from
    with torch.no_grad():
        for n, p in after_one.named_parameters():
            p.copy_(weights[1][n])

    def objective(net):
        logp, _ = policy_logprobs(net, batch, T)
        rho = torch.exp(logp - old)
        clipped = torch.clamp(rho, 1 - s.eps_low, 1 + s.eps_high)
        loss = -torch.minimum(rho * batch.advantages, clipped * batch.advantages) * w
        return (loss * batch.loss_mask).sum() / batch.loss_mask.sum()

    expected = {n: -g for n, g in _grad_of(after_one, objective).items()}
    _close(grads[1], {n: expected[n] for n in grads[1]})
    # The policy moved between the passes, so the current log-probs are not the old ones.
    with torch.no_grad():
        now, _ = policy_logprobs(after_one, batch, T)
    assert float(((now - old).abs() * batch.loss_mask).max()) > 0.05
