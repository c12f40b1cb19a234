import pytest
import torch

from agentgym import TaskSpec
from agentgym.policies import RandomPolicy, SamplingParams, ScriptedPolicy
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.rollout import RolloutRunner


def full_forward_logprobs(model, prompt, completion, temperature=1.0):
    ids = torch.tensor([list(prompt) + list(completion)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    logp = torch.log_softmax(logits, -1)
    pos = torch.arange(len(prompt) - 1, len(prompt) + len(completion) - 1)
    return logp[pos, torch.tensor(completion)]


def prompts_of(chat):
    texts = ["What is 2+3?", "Hi", "Compute 17 * 23 and explain the steps in detail please."]
    return [chat.prompt_ids([{"role": "user", "content": t}]) for t in texts]


def test_sampler_logprobs_equal_a_full_forward_with_padding_and_early_stops(tiny):
    """Left padding, per-row positions and dropping finished rows from the KV cache must not
    change any log-prob: the importance weight against the trainer's recomputation is 1."""
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=1)
    # Make many tokens count as eos so rows finish at different steps.
    pol.chat.eos_token_ids = set(range(0, len(tok), 7))
    prompts = prompts_of(pol.chat)
    comps = pol.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0.8))
    lengths = sorted(len(c.token_ids) for c in comps)
    assert lengths[0] < lengths[-1], "the test needs rows that stop at different times"
    for p, c in zip(prompts, comps):
        assert c.finish_reason == ("stop" if c.token_ids[-1] in pol.chat.eos_token_ids else "length")
        ref = full_forward_logprobs(model, p, c.token_ids, temperature=0.8)
        assert torch.allclose(torch.tensor(c.logprobs), ref, atol=1e-4)


def test_greedy_matches_argmax_and_seeded_sampling_is_reproducible(tiny):
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=5)
    prompts = prompts_of(pol.chat)
    greedy = pol.generate(prompts, SamplingParams(max_new_tokens=6, temperature=0.0))
    for p, c in zip(prompts, greedy):
        ids = list(p)
        for t in c.token_ids:
            with torch.no_grad():
                nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            assert t == nxt
            ids.append(nxt)
    state = pol.state_dict()
    a = pol.generate(prompts, SamplingParams(max_new_tokens=8))
    pol.load_state_dict(state)
    b = pol.generate(prompts, SamplingParams(max_new_tokens=8))
    c = pol.generate(prompts, SamplingParams(max_new_tokens=8))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_top_k_one_is_greedy(tiny):
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=0)
    prompts = prompts_of(pol.chat)
    g = pol.generate(prompts, SamplingParams(max_new_tokens=5, temperature=0.0))
    k1 = pol.generate(prompts, SamplingParams(max_new_tokens=5, temperature=1.0, top_k=1))
    tiny_p = pol.generate(prompts, SamplingParams(max_new_tokens=5, temperature=1.0, top_p=1e-6))
    assert [c.token_ids for c in g] == [c.token_ids for c in k1] == [c.token_ids for c in tiny_p]


def test_bad_sampling_params_are_clear_errors():
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_multi_turn_token_in_token_out(chat):
    """Scripted wrong, wrong, right guesses. The episode's ids decode to exactly the chat
    template's rendering of the conversation, and the loss mask covers exactly the
    policy's sampled ids (the replies plus their eos), nothing the env said."""
    replies = {}

    def respond(text):
        n = text.count("<|im_start|>assistant")
        return ["I guess 1", "maybe 2?", str(replies["secret"])][min(n, 3) - 1]

    pol = ScriptedPolicy(chat, respond)
    runner = RolloutRunner(pol, SamplingParams(max_new_tokens=32))
    from agentgym import make

    probe = make("test/guess-v0")
    probe.reset(options={"task": TaskSpec({"high": 50, "hint": False}, 11)})
    replies["secret"] = probe.secret
    assert probe.secret not in (1, 2)
    [ep] = runner.run("test/guess-v0", [TaskSpec({"high": 50, "hint": False}, 11)])
    assert ep.success and ep.num_turns == 3 and ep.turn_rewards == [0.0, 0.0, 1.0]
    assert [m["role"] for m in ep.messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    rendered = chat.tokenizer.apply_chat_template(ep.messages, tokenize=False)
    decoded = chat.decode(ep.token_ids, skip_special_tokens=False)
    # The template closes the last assistant turn with "<|im_end|>\n"; the episode ends at eos.
    assert rendered == decoded + "\n"
    sampled = [t for t, m in zip(ep.token_ids, ep.loss_mask) if m]
    eos = min(chat.eos_token_ids)
    expected = []
    for r in ["I guess 1", "maybe 2?", str(probe.secret)]:
        expected += chat.encode(r) + [eos]
    assert sampled == expected
    assert ep.prompt_len == len(chat.prompt_ids(ep.messages[:1]))
    assert all(m == 0 for m in ep.loss_mask[: ep.prompt_len])


def test_runner_batches_groups_and_keeps_sampled_ids(tiny):
    model, tok = tiny
    pol = TransformersPolicy(model, tok, seed=0)
    seen = []
    real = pol.generate

    def spy(prompts, sp):
        out = real(prompts, sp)
        seen.append(out)
        return out

    pol.generate = spy
    runner = RolloutRunner(pol, SamplingParams(max_new_tokens=5))
    tasks = [TaskSpec({"high": 50, "hint": False}, s) for s in range(3)]
    eps = runner.run("test/guess-v0", tasks, group_size=2)
    assert len(eps) == 6 and [e.group for e in eps] == [0, 0, 1, 1, 2, 2]
    assert len(seen[0]) == 6  # one batched call for the first turn of every episode
    for e in eps:
        assert len(e.token_ids) == len(e.loss_mask) == len(e.logprobs)
        assert all(lp == 0.0 for lp, m in zip(e.logprobs, e.loss_mask) if not m)
        assert all(lp < 0.0 for lp, m in zip(e.logprobs, e.loss_mask) if m)
    # Every sampled completion appears, in order, at the mask=1 positions of its episode.
    total_sampled = sum(len(c.token_ids) for call in seen for c in call)
    assert total_sampled == sum(e.num_policy_tokens for e in eps)


def test_token_budget_ends_long_episodes(chat):
    pol = ScriptedPolicy(chat, lambda text: "no idea " * 3)
    runner = RolloutRunner(pol, SamplingParams(max_new_tokens=16), max_episode_tokens=120)
    [ep] = runner.run("test/guess-v0", [TaskSpec({"high": 50, "hint": False}, 1)])
    assert ep.end_reason == "token_budget" and not ep.success
    assert ep.errors and "no number" in ep.errors[0]


def test_random_policy_never_crashes_the_runner(chat):
    runner = RolloutRunner(RandomPolicy(chat, seed=0), SamplingParams(max_new_tokens=20))
    eps = runner.run("test/guess-v0", [TaskSpec({"high": 5, "hint": True}, s) for s in range(8)])
    assert len(eps) == 8 and runner.last_stats.dropped_env_errors == 0


def test_env_exceptions_drop_the_episode_and_are_counted(chat, monkeypatch):
    from tests.conftest import GuessEnv

    def boom(self, action):
        raise RuntimeError("worker died")

    monkeypatch.setattr(GuessEnv, "_step", boom)
    runner = RolloutRunner(ScriptedPolicy(chat, lambda t: "3"), SamplingParams(max_new_tokens=4))
    eps = runner.run("test/guess-v0", [TaskSpec({"high": 5, "hint": False}, 0)], group_size=3)
    assert eps == [] and runner.last_stats.dropped_env_errors == 3
    assert "worker died" in runner.last_stats.env_error_messages[0]


def test_a_cache_build_says_so_once(tmp_path, monkeypatch, capsys):
    """The default model's one-time GGUF conversion says what it does and where it caches;
    a cached build is silent."""
    from agentgym.policies import models

    monkeypatch.setenv("AGENTGYM_CACHE", str(tmp_path))
    built = []
    target = models.cache_dir() / "thing"
    for _ in range(2):
        models._atomic_build(target, lambda tmp: built.append((tmp / "f").write_text("x")))
    err = capsys.readouterr().err
    assert len(built) == 1 and err.count("building thing from the GGUF once; cached in") == 1
    assert (target / "f").read_text() == "x"
