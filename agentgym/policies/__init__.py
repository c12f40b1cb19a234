"""Policies: the Policy protocol, generation backends and model resolution."""

from agentgym.policies.base import ChatFormat, Completion, Policy, SamplingParams
from agentgym.policies.scripted import RandomPolicy, ScriptedPolicy

__all__ = ["ChatFormat", "Completion", "Policy", "RandomPolicy", "SamplingParams", "ScriptedPolicy", "make_policy"]


def make_policy(name: str, *, seed: int = 0, **kwargs):
    """A policy by name: ``random`` (needs the default tokenizer) or a model name/path."""
    from agentgym.policies.models import load_tokenizer

    if name == "random":
        return RandomPolicy(ChatFormat(load_tokenizer()), seed=seed)
    if name.startswith("openai:"):  # a model behind an OpenAI-compatible server (evaluation, opponents)
        from agentgym.policies.openai_policy import OpenAIPolicy

        return OpenAIPolicy.from_spec(name, seed=seed)
    from agentgym.policies.transformers_policy import TransformersPolicy

    return TransformersPolicy.from_name(name, seed=seed, **kwargs)
