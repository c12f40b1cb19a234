"""Policies: the Policy protocol, generation backends and model resolution."""

from agentgym.policies.base import ChatFormat, Completion, Policy, SamplingParams
from agentgym.policies.scripted import RandomPolicy, ScriptedPolicy

__all__ = [
    "ChatFormat",
    "Completion",
    "Policy",
    "RandomPolicy",
    "SamplingParams",
    "ScriptedPolicy",
    "check_policy_name",
    "make_policy",
]


def check_policy_name(name: str) -> None:
    """Raise :class:`~agentgym.policies.models.ModelNotAvailable` at once for a policy name that
    cannot load here (see :func:`~agentgym.policies.models.check_model_name`); no network."""
    from agentgym.policies.models import ModelNotAvailable, check_model_name

    if name == "random" or name.startswith("openai:"):
        return
    try:
        check_model_name(name)
    except ModelNotAvailable as exc:
        raise ModelNotAvailable(f"{exc}. A policy may also be random or openai:http://HOST:PORT/MODEL") from None


def make_policy(name: str, *, seed: int = 0, **kwargs):
    """A policy by name: ``random`` (needs the default tokenizer) or a model name/path."""
    from agentgym.policies.models import load_tokenizer

    check_policy_name(name)
    if name == "random":
        return RandomPolicy(ChatFormat(load_tokenizer()), seed=seed)
    if name.startswith("openai:"):  # a model behind an OpenAI-compatible server (evaluation, opponents)
        from agentgym.policies.openai_policy import OpenAIPolicy

        return OpenAIPolicy.from_spec(name, seed=seed)
    from agentgym.policies.transformers_policy import TransformersPolicy

    return TransformersPolicy.from_name(name, seed=seed, **kwargs)
