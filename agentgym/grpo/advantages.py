"""Group-relative advantages (GRPO).

For each task q, G episodes with returns R_1..R_G get A_i = R_i - mean(R), divided by
(std(R) + eps) when ``scale_std`` (the original GRPO; Dr. GRPO turns it off). The std is
the population std over the group. A group with one member or all-equal returns gives
A = 0 for its members, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
