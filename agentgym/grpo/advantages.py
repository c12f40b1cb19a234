"""Group-relative advantages (GRPO).

For each task q, G episodes with returns R_1..R_G get A_i = R_i - mean(R), divided by
(std(R) + eps) when ``scale_std`` (the original GRPO; Dr. GRPO turns it off). The std is
the population std over the group. A group with one member or all-equal returns gives
A = 0 for its members, never NaN.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from agentgym.rollout.episode import Episode


def group_advantages(
    rewards: Sequence[float],
    groups: Sequence[int],
    *,
    scale_std: bool = True,
    eps: float = 1e-6,
) -> np.ndarray:
    """Advantage of each episode relative to the other members of its group."""
    r = np.asarray(rewards, dtype=np.float64)
    g = np.asarray(groups)
    if r.shape != g.shape:
        raise ValueError(f"rewards and groups must have the same length, got {r.shape} and {g.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    adv = np.zeros_like(r)
    for key in np.unique(g):
        idx = np.flatnonzero(g == key)
        if len(idx) < 2:
            continue
        centred = r[idx] - r[idx].mean()
        std = r[idx].std()
        if std == 0.0:
            continue  # all equal: no signal, exactly zero
        adv[idx] = centred / (std + eps) if scale_std else centred
    return adv


def group_ids(keys: Sequence[Hashable]) -> list[int]:
    """Number distinct keys 0, 1, ... in order of first appearance (for :func:`group_advantages`)."""
    index: dict[Hashable, int] = {}
    return [index.setdefault(k, len(index)) for k in keys]


def seat_groups(episodes: Sequence[Episode]) -> list[int]:
    """Groups per task *and* seat: in a multi-agent game a seat's return is compared only
    with the same seat's returns in the other plays of the same task (a single-agent
    episode has seat "" so this is plain GRPO grouping)."""
    return group_ids([(e.group, e.agent) for e in episodes])


def split_moves(episodes: Sequence[Episode], eos_token_ids: set[int]) -> tuple[list[Episode], list[int]]:
    """Each sampled move of each episode as its own sample, and its group id.

    Move k of an episode keeps the ids up to the end of that move, with only that move's
    tokens in the loss; its reward is the return from move k on (the rewards of moves
    k, k+1, ...). Samples are grouped by (task group, seat, k), so a move is compared
    with the same seat's k-th move in the other plays of the task. A move that ends
    without an eos token counts as cut at the length limit.
    """
    samples: list[Episode] = []
    keys: list[tuple[int, str, int]] = []
    for e in episodes:
        runs = _loss_runs(e.loss_mask)
        if len(runs) != len(e.turn_rewards):
            raise ValueError(f"episode has {len(runs)} sampled moves but {len(e.turn_rewards)} turn rewards")
        for k, (start, end) in enumerate(runs):
            mask = [0] * end
            mask[start:end] = [1] * (end - start)
            samples.append(
                Episode(
                    env_id=e.env_id,
                    task=e.task,
                    token_ids=e.token_ids[:end],
                    loss_mask=mask,
                    logprobs=e.logprobs[:end],
                    prompt_len=start,
                    turn_rewards=[float(sum(e.turn_rewards[k:]))],
                    success=e.success,
                    reward_parts=e.reward_parts,
                    end_reason=e.end_reason,
                    hit_length_limit=e.token_ids[end - 1] not in eos_token_ids,
                    errors=e.errors,
                    policy_version=e.policy_version,
                    group=e.group,
                    agent=e.agent,
                )
            )
            keys.append((e.group, e.agent, k))
    return samples, group_ids(keys)


def _loss_runs(mask: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of 1s."""
    runs, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs
