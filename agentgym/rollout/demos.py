"""Demonstrations as Episodes: the record GRPO trains on, with the demonstrator's tokens in the loss.

Every built-in family ships a demonstrator: ``env.oracle()`` for single-agent envs (math,
tools, web, MiniGrid's BabyAI bot) and scripted players for games (``optimal``, or the
team games' ``oracle``). :func:`make_demos` plays training tasks with it through the same
runners that play the policy, so a demonstration is laid out token for token as a sampled
episode would be: the chat template's prompt ids, then each reply's ids closed by eos
(loss mask 1), then the env's answer (mask 0). Tasks come from :class:`TrainingTasks`,
so no held-out seed or region is ever demonstrated.

Datasets in the common chat form (``{"messages": [...], "tools": [...]}`` per line, as
TRL's SFTTrainer and verifiers read them) become Episodes too (:func:`chat_episode`), with
the loss on the assistant turns only. :func:`save_demos` / :func:`load_demos` keep them as
JSON lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from agentgym.policies.base import ChatFormat, Policy, SamplingParams
from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import InProcessPool
from agentgym.tasks import TaskSpec


@dataclass
class DemoStats:
    """What :func:`make_demos` played and kept."""

    tasks: int = 0
    episodes: int = 0
    kept: int = 0
    #: Demonstrations dropped because the demonstrator did not succeed.
    failed: int = 0


class _Silent:
    """The policy slot of a runner that only demonstrates (never asked to generate)."""

    version = 0

    def __init__(self, chat: ChatFormat):
        self.chat = chat

    def generate(self, prompts, sampling):  # pragma: no cover - a demonstrating runner never calls it
        raise RuntimeError("a demonstration runner does not generate")


def make_demos(
    env_id: str,
    chat: ChatFormat,
    n: int,
    *,
    restrict: dict[str, Any] | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    max_new_tokens: int = 256,
    max_episode_tokens: int = 4096,
    successful_only: bool = True,
) -> tuple[list[Episode], DemoStats]:
    """``n`` demonstrated training tasks of ``env_id`` (restricted like a config's ``env.params``).

    A single-agent demonstration that does not succeed is dropped (``successful_only``);
    a game's seats are all kept (an optimal player can still lose a hand of poker).
    """
    from agentgym.registry import spec
    from agentgym.rollout.runner import RolloutRunner

    cls = spec(env_id).family_class()
    tasks = cls.content_oracle(env_kwargs).training_tasks(restrict)  # never held-out content
    rng = np.random.default_rng(seed)
    specs = [tasks.spec(rng) for _ in range(n)]
    sampling = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    stats = DemoStats(tasks=len(specs))
    runner = RolloutRunner(
        cast(Policy, _Silent(chat)),
        sampling,
        max_episode_tokens=max_episode_tokens,
        env_kwargs=env_kwargs,
        pool=InProcessPool(),
        seed=seed,
    )
    try:
        eps = runner.run(env_id, specs, demonstrate=True)
    finally:
        runner.close()
    # A game's seats are kept win or lose (an optimal player can still lose a hand of poker).
    keep = [e for e in eps if e.num_policy_tokens > 0 and (e.success or e.agent or not successful_only)]
    stats.episodes = len(eps)
    stats.kept = len(keep)
    stats.failed = len(eps) - len(keep)
    return [replace(e, policy_version=-1) for e in keep], stats  # -1: sampled by no policy version


def chat_episode(row: dict[str, Any], chat: ChatFormat, env_id: str = "chat") -> Episode:
    """One ``{"messages": [...], "tools": [...]}`` row as an Episode, loss on assistant turns.

    ``tools`` (OpenAI function schemas), when present, are listed in the system message,
    which is how a chat template without tool support sees them.
    """
    messages = [dict(m) for m in row.get("messages", [])]
    if not messages or not any(m.get("role") == "assistant" for m in messages):
        raise ValueError("a chat demonstration needs 'messages' with at least one assistant turn")
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant", "tool") or not isinstance(m.get("content"), str):
            raise ValueError(f"each message needs a role (system/user/assistant/tool) and text content, got {m!r}")
    if row.get("tools"):
        listed = "You can call these tools:\n" + "\n".join(json.dumps(t) for t in row["tools"])
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + listed}
        else:
            messages.insert(0, {"role": "system", "content": listed})
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    ids = chat.prompt_ids(messages[:first])
    ep = Episode(
        env_id=env_id,
        task=TaskSpec({}, 0),
        token_ids=list(ids),
        loss_mask=[0] * len(ids),
        logprobs=[0.0] * len(ids),
        prompt_len=len(ids),
        messages=messages,
        policy_version=-1,
        success=True,
    )
    i = first
    while i < len(messages):
        reply = chat.encode(messages[i]["content"]) + [min(chat.eos_token_ids)]
        _extend(ep, reply, 1)
        ep.turn_rewards.append(0.0)
        j = i + 1
        while j < len(messages) and messages[j]["role"] != "assistant":
            j += 1
        if j < len(messages):  # what the env (user, tool) said before the next reply
            _extend(ep, chat.continuation_ids(messages[i + 1 : j], reply), 0)
        i = j
    return ep


def _extend(ep: Episode, ids: Sequence[int], mask: int) -> None:
    ep.token_ids.extend(ids)
    ep.loss_mask.extend([mask] * len(ids))
    ep.logprobs.extend([0.0] * len(ids))


def save_demos(path: str | Path, episodes: Iterable[Episode]) -> int:
    """Write Episodes as JSON lines; returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w") as fh:
        for e in episodes:
            fh.write(e.to_json() + "\n")
            n += 1
    return n


def load_demos(path: str | Path, chat: ChatFormat) -> list[Episode]:
    """Read JSON lines of Episodes (``token_ids``) or chat rows (``messages``); a bad line is
    an error naming it."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(Episode.from_dict(row) if "token_ids" in row else chat_episode(row, chat))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}:{lineno}: not a demonstration ({exc})") from None
    if not out:
        raise ValueError(f"{path} holds no demonstrations")
    return out
