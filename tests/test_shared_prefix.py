"""Shared-prompt forward passes: a GRPO group's rows share their prompt, so the trainer
runs the prompt through the decoder once and continues every row from that one cache.
The log-probs, the entropy and the gradients must equal the plain per-row pass (a wrong
position id, a cache row that is copied instead of shared, an off-by-one at the first
policy token all show up here), and the micro-batch plan must put a prompt's rows
together (else nothing is shared) without leaving SFT demonstrations one per pass.
"""

from __future__ import annotations

import copy

import pytest
import torch

from agentgym.grpo.batch import (
    MIN_SHARED_PREFIX,
    TokenBatch,
    policy_logprobs,
    shared_prefix_length,
    shared_prefixes,
)
from agentgym.grpo.update import UpdateSettings, _Plan, update_policy


@pytest.fixture
def tiny_model(tiny):
    """A fresh copy of the tiny random Llama (tests train it)."""
    return copy.deepcopy(tiny[0])


def _group(model, n=5, prompt=20, reply=9, seed=0, prompt_ids=None) -> TokenBatch:
    """``n`` rows with one prompt and replies of different lengths (right padding)."""
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    p = prompt_ids if prompt_ids is not None else torch.randint(0, vocab, (prompt,), generator=g)
    ids = torch.cat([p.expand(n, -1), torch.randint(0, vocab, (n, reply), generator=g)], 1)
    attn = torch.ones_like(ids)
    for i in range(n):
        attn[i, len(p) + reply - i :] = 0
    ids = ids * attn
    mask = torch.zeros(ids.shape)
    mask[:, len(p) :] = 1
    mask = mask * attn
    adv = torch.randn(n, 1, generator=g)
    return TokenBatch(ids, attn, mask, torch.zeros(ids.shape), adv)


def _cat(*batches: TokenBatch) -> TokenBatch:
    width = max(b.input_ids.shape[1] for b in batches)

    def pad(t, w):
        return torch.nn.functional.pad(t, (0, w - t.shape[1]))

    return TokenBatch(
        torch.cat([pad(b.input_ids, width) for b in batches]),
        torch.cat([pad(b.attention_mask, width) for b in batches]),
        torch.cat([pad(b.loss_mask, width) for b in batches]),
        torch.cat([pad(b.sampler_logp, width) for b in batches]),
        torch.cat([b.advantages for b in batches]),
    )


def test_shared_length_stops_before_the_first_policy_token(tiny_model):
    b = _group(tiny_model, prompt=20)
    assert shared_prefix_length(b) == 19  # position 19 predicts token 20, the first policy token
    b.loss_mask[2, 12] = 1.0  # one row's policy tokens start earlier
    assert shared_prefix_length(b) == 11
    b = _group(tiny_model, prompt=20)
    b.input_ids[3, 15] += 1  # rows differ from token 15 on
    assert shared_prefix_length(b) == 15
    b = _group(tiny_model, prompt=MIN_SHARED_PREFIX)  # too short to be worth a pass
    assert shared_prefix_length(b) == 0
    assert shared_prefix_length(_group(tiny_model, n=1)) == 0
    two = _cat(_group(tiny_model, seed=1), _group(tiny_model, seed=2))  # two prompts: one pass each
    q, index = shared_prefixes(two)
    assert q == 19 and index.tolist() == [0] * 5 + [5] * 5
    alone = _cat(*(_group(tiny_model, n=1, seed=i) for i in range(4)))  # every prompt its own: nothing shared
    assert shared_prefixes(alone) == (0, None)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_pass_gives_the_same_logprobs_entropy_and_gradients(tiny_model, temperature):
    b = _group(tiny_model, n=6, prompt=24, reply=11)
    assert shared_prefix_length(b) == 23
    out = {}
    for share in (False, True):
        m = copy.deepcopy(tiny_model)
        logp, ent = policy_logprobs(m, b, temperature, with_entropy=True, share_prefix=share)
        (logp * b.loss_mask * b.advantages).sum().backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        out[share] = (logp.detach(), ent, grads)
    (l0, e0, g0), (l1, e1, g1) = out[False], out[True]
    assert (l0 != 0).sum() == b.loss_mask.sum()  # log-probs exactly at the policy tokens
    torch.testing.assert_close(l1, l0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(e1, e0, atol=1e-4, rtol=1e-4)
    assert g1.keys() == g0.keys()
    for name in g0:  # float rounding only: within 1e-5 of each gradient's largest entry
        worst, scale = float((g1[name] - g0[name]).abs().max()), float(g0[name].abs().max())
        assert worst <= 1e-5 * scale + 1e-8, (name, worst, scale)
    # the shared part carries gradient: the embeddings of prompt tokens are trained too
    emb = tiny_model.get_input_embeddings().weight.shape
    assert any(g.shape == emb and g.abs().sum() > 0 for g in g1.values())


def test_several_prompts_in_one_micro_batch_share_per_prompt_with_the_same_results(tiny_model):
    """Two groups with prompts of different lengths and a lone demonstration in one
    micro-batch: each prompt runs once, the rows gather their own prefix's cache (a row
    given another group's cache, or the longer prompt cut wrongly, changes log-probs)."""
    vocab = tiny_model.config.vocab_size
    g = torch.Generator().manual_seed(7)
    a = _group(tiny_model, n=4, seed=3, prompt_ids=torch.randint(0, vocab, (18,), generator=g))
    b = _group(tiny_model, n=3, seed=4, prompt_ids=torch.randint(0, vocab, (13,), generator=g))
    lone = _group(tiny_model, n=1, seed=5, prompt=16)
    batch = _cat(b, a, lone)
    q, index = shared_prefixes(batch)
    assert q == 12 and index.tolist() == [0, 0, 0, 3, 3, 3, 3, 7]
    out = {}
    for share in (False, True):
        m = copy.deepcopy(tiny_model)
        logp, ent = policy_logprobs(m, batch, 0.8, with_entropy=True, share_prefix=share)
        (logp * batch.loss_mask * batch.advantages).sum().backward()
        out[share] = (logp.detach(), ent, {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    (l0, e0, g0), (l1, e1, g1) = out[False], out[True]
    assert (l0 != 0).sum() == batch.loss_mask.sum()
    torch.testing.assert_close(l1, l0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(e1, e0, atol=1e-4, rtol=1e-4)
    for name in g0:
        worst, scale = float((g1[name] - g0[name]).abs().max()), float(g0[name].abs().max())
        assert worst <= 1e-5 * scale + 1e-8, (name, worst, scale)


def test_plan_keeps_a_prompts_rows_together_and_packs_the_rest():
    # rows 0-5: prompt a, 6-8: prompt b, 9-11: three single-row prompts (SFT demos)
    keys = [b"a"] * 6 + [b"b"] * 3 + [b"c", b"d", b"e"]
    rows = [0, 6, 9, 1, 7, 10, 2, 8, 11, 3, 4, 5]  # as trainable_rows sorts them (length)
    plan = _Plan(rows, None, 4, keys)
    chunks = [c for _, c in plan.micro_batches(rows)]
    assert sorted(r for c in chunks for r in c) == sorted(rows)  # every row once
    assert [0, 1, 2, 3] in chunks and [6, 7, 8] in chunks  # whole chunks of one prompt
    assert all(len(c) <= 4 for c in chunks)
    # prompt a's last 2 rows (half of 4) stay apart; the single demos are packed together
    packed = [c for c in chunks if 9 in c][0]
    assert {10, 11} <= set(packed)
    no_keys = [c for _, c in _Plan(rows, None, 4).micro_batches(rows)]
    assert no_keys == [rows[0:4], rows[4:8], rows[8:12]]


def test_one_update_step_is_the_same_with_and_without_sharing(tiny_model):
    """Two groups interleaved, as length sorting leaves them: the plan regroups them,
    the shared pass runs, and the SGD step equals the unshared one."""
    vocab = tiny_model.config.vocab_size
    g = torch.Generator().manual_seed(5)
    a = _group(tiny_model, n=4, seed=3, prompt_ids=torch.randint(0, vocab, (18,), generator=g))
    b = _group(tiny_model, n=4, seed=4, prompt_ids=torch.randint(0, vocab, (14,), generator=g))
    batch = _cat(a, b)
    with torch.no_grad():
        logp, _ = policy_logprobs(tiny_model, batch, 0.9, share_prefix=False)
    batch.sampler_logp = logp
    deltas = {}
    for share in (False, True):
        m = copy.deepcopy(tiny_model)
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        s = UpdateSettings(temperature=0.9, micro_batch_size=4, max_grad_norm=1e9, share_prefix=share)
        stats = update_policy(m, torch.optim.SGD(m.parameters(), lr=1.0), copy.deepcopy(batch), s)
        deltas[share] = ({n: p.detach() - before[n] for n, p in m.named_parameters()}, stats)
    (d0, s0), (d1, s1) = deltas[False], deltas[True]
    assert s0["train/micro_batches"] == s1["train/micro_batches"] == 2
    assert s1["loss"] == pytest.approx(s0["loss"], rel=1e-4, abs=1e-6)
    scale = max(float(v.abs().max()) for v in d0.values())
    assert scale > 0
    for n in d0:
        torch.testing.assert_close(d1[n], d0[n], atol=1e-5 * max(scale, 1.0), rtol=1e-3, msg=n)


def test_prompt_keys_group_rows_by_prompt_and_an_empty_batch_has_none(tiny_model):
    from agentgym.grpo.batch import collate

    a, b = _group(tiny_model, n=3, seed=1), _group(tiny_model, n=2, seed=2)
    keys = _cat(a, b).prompt_keys()
    assert keys[0] == keys[1] == keys[2] != keys[3] == keys[4]
    assert len(keys[0]) == 20 * 8  # the 20 prompt ids, as int64 bytes
    # a rank left without rows under torchrun still runs the update pass with them
    assert collate([], [], 0).prompt_keys() == []


def test_entropy_is_the_mean_over_policy_positions_of_the_sampling_distribution(tiny_model):
    """Against the definition, from the model's own logits, at the temperature, over the
    policy positions only; and accurate in float32 over a 49k vocabulary."""
    from agentgym.grpo import batch as batch_mod

    b = _group(tiny_model, n=6, prompt=12, reply=9)
    temperature = 0.7
    with torch.no_grad():
        logits = tiny_model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits[:, :-1] / temperature
        lsm = torch.log_softmax(logits.float(), -1)
        per_pos = -(lsm.exp() * lsm).sum(-1)
        want = per_pos[b.loss_mask[:, 1:] > 0].mean()
    _, got = policy_logprobs(tiny_model, b, temperature, with_entropy=True, share_prefix=False)
    assert torch.allclose(got, want, atol=1e-5)
    wide = torch.log_softmax(torch.randn(54, 49152, dtype=torch.float64) * 3, -1)  # the real vocabulary
    want = -(wide.exp() * wide).sum(-1).mean()
    assert abs(float(batch_mod._mean_entropy(wide.float())) - float(want)) < 1e-5 * float(want)
