"""Sampling by inverse CDF, and per-row seeded streams: what a row samples depends only on
its prompt, its seed and the weights, never on the other rows of its batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agentgym.policies import SamplingParams
from agentgym.policies.base import call_with_seeds, stream_seed
from agentgym.policies.transformers_policy import TransformersPolicy, inverse_cdf_sample
from agentgym.rollout import RolloutRunner
from agentgym.tasks import TaskSpec


def test_inverse_cdf_draws_each_token_with_its_probability():
    p = torch.tensor([[0.5, 0.0, 0.2, 0.3, 0.0]])
    g = torch.Generator().manual_seed(0)
    n = 40_000
    u = torch.rand(n, generator=g, dtype=torch.float64)
    tok = inverse_cdf_sample(p.expand(n, -1), u)
    freq = np.bincount(tok.numpy(), minlength=5) / n
    # Zero-probability tokens are never drawn; the others within 4 standard errors.
    assert freq[1] == 0 and freq[4] == 0
    se = np.sqrt(p[0].numpy() * (1 - p[0].numpy()) / n)
    assert np.all(np.abs(freq - p[0].numpy()) <= 4 * se + 1e-12)
    # Unnormalised weights give the same draws (the total is read off the cumulative sum).
    assert torch.equal(inverse_cdf_sample(3 * p.expand(n, -1), u), tok)
    # The edges: u = 0 gives the first token of positive probability.
    assert int(inverse_cdf_sample(torch.tensor([[0.0, 0.0, 1.0]]), torch.zeros(1, dtype=torch.float64))) == 2


def test_stream_seed_is_stable_and_distinct():
    assert stream_seed(0, "rollout", 3, 7) == stream_seed(0, "rollout", 3, 7)
    seeds = {stream_seed(0, "rollout", v, i) for v in range(20) for i in range(50)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)


@pytest.fixture(scope="module")
def policy(tiny):
    model, tok = tiny
    return TransformersPolicy(model, tok, seed=0)


def _prompt(policy, text):
    return policy.chat.prompt_ids([{"role": "user", "content": text}])


def test_a_seeded_row_samples_the_same_alone_or_in_any_batch(policy):
    sp = SamplingParams(max_new_tokens=12, temperature=1.0)
    a, b, c = _prompt(policy, "alpha"), _prompt(policy, "a much longer prompt than the others"), _prompt(policy, "c")
    alone = policy.generate([a], sp, seeds=[11])[0]
    batch = policy.generate([b, a, c, a], sp, seeds=[5, 11, 6, 12])
    assert batch[1].token_ids == alone.token_ids
    assert batch[1].logprobs == pytest.approx(alone.logprobs, abs=1e-4)
    # Another seed for the same prompt: another sample (12 tokens from a 49k vocabulary).
    assert batch[3].token_ids != alone.token_ids
    # Unseeded generation still draws from the policy's own generator, and advances it.
    s1 = policy.generator.get_state()
    policy.generate([a], sp)
    assert not torch.equal(s1, policy.generator.get_state())


def test_a_repeated_prompt_is_prefilled_once_and_every_row_keeps_its_own_cache(policy, monkeypatch):
    """A group repeats its prompt: the prefill runs on the distinct prompts only, and
    each row continues from its own prompt's cache (a wrong row mapping would give row 1
    the cache of prompt a)."""
    sp = SamplingParams(max_new_tokens=10, temperature=1.0)
    a, b = _prompt(policy, "first prompt here"), _prompt(policy, "second prompt, other words")
    widths = []
    real = policy.model.forward

    def spy(*args, **kw):
        widths.append(kw["input_ids"].shape)
        return real(*args, **kw)

    monkeypatch.setattr(policy.model, "forward", spy)
    mixed = policy.generate([a, b, a, b, a], sp, seeds=[1, 2, 3, 4, 5])
    assert widths[0][0] == 2  # the prefill: two distinct prompts for five rows
    monkeypatch.setattr(policy.model, "forward", real)
    ref = policy.generate([a, b], sp, seeds=[1, 2]) + policy.generate([a, b], sp, seeds=[3, 4])
    ref += policy.generate([a], sp, seeds=[5])
    assert [c.token_ids for c in mixed] == [c.token_ids for c in ref]
    for m, r in zip(mixed, ref):
        assert m.logprobs == pytest.approx(r.logprobs, abs=1e-4)


def test_seeded_sampling_follows_the_model_distribution(policy):
    """First tokens of 3000 seeded rows of one prompt match softmax(logits / T) (the tiny
    model's distribution is broad: compare the top tokens' frequencies)."""
    prompt = _prompt(policy, "x")
    sp = SamplingParams(max_new_tokens=1, temperature=1.0)
    n = 3000
    outs = policy.generate([prompt] * n, sp, seeds=list(range(n)))
    with torch.no_grad():
        probs = torch.softmax(policy.model(input_ids=torch.tensor([prompt])).logits[0, -1].float(), -1)
    top = torch.topk(probs, 5).indices.tolist()
    counts = np.bincount([o.token_ids[0] for o in outs], minlength=probs.numel())
    for t in top:
        p = float(probs[t])
        assert abs(counts[t] / n - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-3
    # The reported log-prob is the model's own at the sampled token.
    o = outs[0]
    assert o.logprobs[0] == pytest.approx(float(torch.log(probs[o.token_ids[0]])), abs=1e-4)


def test_runner_seeds_make_a_task_independent_of_its_batch(policy):
    """The trainer's per-task streams: a task's episodes are the same whether it is played
    with other tasks or alone (as on another rank, or in a refill round).

    Up to float noise: with left padding a row's logits can differ in the last bits with
    its batch, and in the random tiny model's near-flat distribution over 49k tokens that
    is enough to move a draw across a token boundary now and then; at temperature 0.5 the
    distribution is peaked like a trained model's."""
    sp = SamplingParams(max_new_tokens=6, temperature=0.5)
    runner = RolloutRunner(policy, sp, max_episode_tokens=256)
    t1, t2, t3 = (TaskSpec({"high": h, "hint": False}, seed=s) for h, s in ((9, 1), (20, 2), (5, 3)))
    together = runner.run("test/guess-v0", [t1, t2, t3], group_size=3, seeds=[101, 102, 103])
    alone = runner.run("test/guess-v0", [t2], group_size=3, seeds=[102])
    mine = [e for e in together if e.group == 1]
    assert [e.token_ids for e in mine] == [e.token_ids for e in alone]
    # The three members of a group draw from three streams: not three copies of one episode.
    assert len({tuple(e.token_ids) for e in alone}) > 1
    runner.close()


def test_callers_without_the_seeds_keyword_still_work():
    def old_style(prompts, sampling):
        return ("old", len(prompts))

    def new_style(prompts, sampling, seeds=None):
        return ("new", seeds)

    assert call_with_seeds(old_style, [1], None, seeds=[3]) == ("old", 1)
    assert call_with_seeds(new_style, [1], None, seeds=[3]) == ("new", [3])
    assert call_with_seeds(new_style, [1], None) == ("new", None)
