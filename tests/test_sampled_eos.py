"""A sampled eos is trained on, once per move: the tiny model with its eos logit raised
(a hook on the output head, seen by sampling and by the trainer alike) ends most replies
itself, so the path from the sampler's eos to the loss mask runs as with a real model."""

from __future__ import annotations

import pytest
import torch

import tests.test_multiagent_core  # noqa: F401  (registers test/ma-guess-v0)
from agentgym.grpo.batch import collate, policy_logprobs
from agentgym.policies.base import SamplingParams
from agentgym.policies.models import load_model
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.rollout.runner import RolloutRunner
from agentgym.tasks import TaskSpec

#: Added to the eos logit: about a third of replies of 4 tokens end with eos.
EOS_BIAS = 12.0


@pytest.fixture(scope="module")
def eos_policy():
    model, tok = load_model("tiny", seed=0)  # its own copy: the hook stays on it
    policy = TransformersPolicy(model, tok, seed=0)
    eos = min(policy.chat.eos_token_ids)

    def raise_eos(module, inputs, logits):
        logits = logits.clone()
        logits[..., eos] += EOS_BIAS
        return logits

    model.get_output_embeddings().register_forward_hook(raise_eos)
    return policy


def _moves(episode):
    """[start, end) of each run of loss-mask 1s: one per sampled reply."""
    runs, start = [], None
    for i, m in enumerate([*episode.loss_mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _check_eos_trained_once(episodes, policy):
    eos_ids = policy.chat.eos_token_ids
    ended = cut = 0
    for e in episodes:
        moves = _moves(e)
        assert len(moves) == e.num_turns
        for start, end in moves:
            move = e.token_ids[start:end]
            assert not any(t in eos_ids for t in move[:-1])  # generation stops at eos
            after = e.token_ids[end] if end < len(e.token_ids) else None
            if move[-1] in eos_ids:
                ended += 1
                # The template's close after the reply does not hold the eos again (mask 0).
                assert after not in eos_ids, e.token_ids[start : end + 1]
            else:  # cut at max_new_tokens: the template closes the turn with eos, untrained
                cut += 1
                assert after is None or after in eos_ids
    assert ended >= 5 and cut >= 5  # both kinds of move were seen
    # In the update's batch each sampled eos is a loss token, with the sampler's log-prob,
    # and the trainer's log-prob of it is the sampler's (the same biased head).
    batch = collate(episodes, [1.0] * len(episodes), policy.chat.pad_token_id)
    at_eos = (batch.loss_mask > 0) & torch.isin(batch.input_ids, torch.tensor(sorted(eos_ids)))
    assert int(at_eos.sum()) == ended
    assert bool((batch.sampler_logp[at_eos] < 0).all())
    with torch.no_grad():
        logp, _ = policy_logprobs(policy.model, batch, temperature=1.0)
    torch.testing.assert_close(logp[at_eos], batch.sampler_logp[at_eos], rtol=0, atol=1e-4)
    # Each eos was a likely choice under the biased head, an unlikely one without it.
    assert float(batch.sampler_logp[at_eos].mean()) > -3.0


def test_sampled_eos_is_in_the_loss_mask_once_per_move(eos_policy):
    runner = RolloutRunner(eos_policy, SamplingParams(max_new_tokens=4, temperature=1.0))
    tasks = [TaskSpec({"high": 50, "hint": False}, s) for s in range(3)]
    episodes = runner.run("test/guess-v0", tasks, group_size=4, seeds=[1, 2, 3])
    assert all(e.num_turns > 1 for e in episodes)  # moves after an eos are laid out too
    assert any(not e.hit_length_limit for e in episodes)
    _check_eos_trained_once(episodes, eos_policy)


def test_sampled_eos_is_in_the_loss_mask_once_per_move_in_a_game(eos_policy):
    """Both seats of a simultaneous-move game (each its own episode, mask on its own moves)."""
    runner = RolloutRunner(eos_policy, SamplingParams(max_new_tokens=4, temperature=1.0), seed=0)
    tasks = [TaskSpec({"n": 5}, s) for s in range(2)]
    episodes = runner.run("test/ma-guess-v0", tasks, group_size=3, seeds=[1, 2])
    assert {e.agent for e in episodes} == {"player_0", "player_1"}
    assert all(e.num_turns > 1 for e in episodes)
    _check_eos_trained_once(episodes, eos_policy)
