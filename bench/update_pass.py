"""The update pass with and without the shared-prompt forward, side by side in one process.

    python bench/update_pass.py [--model smollm2-135m] [--tasks 4] [--group 8] [--reply 48] [--reps 3]

A GRPO batch as the trainer builds it: ``--tasks`` prompts of ``--env`` (the chat
template's ids, as the runner renders them), ``--group`` rows each with replies of
random lengths up to ``--reply`` tokens. One update step (forward, loss, backward,
optimizer) with ``grpo.share_prefix`` off and on, alternating, ``--reps`` times each,
after one warm-up of each; the report gives min/median per mode, the ratio of medians,
and the largest difference of the resulting weights (it should be float rounding).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import add_out, write_report

ROOT = Path(__file__).resolve().parent.parent


def build_batch(tok_chat, env_id: str, tasks: int, group: int, reply: int, seed: int):
    import agentgym
    from agentgym.grpo.batch import TokenBatch

    cls = agentgym.spec(env_id).load_class()
    rng = np.random.default_rng(seed)
    env = agentgym.make(env_id)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(tasks):
        messages, _ = env.reset(options={"task": cls.sample_train_task(rng)})
        prompt = list(tok_chat.prompt_ids(messages))
        for _ in range(group):
            n = int(rng.integers(reply // 3, reply + 1))
            rows.append((prompt, torch.randint(0, 49152, (n,), generator=g).tolist()))
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attn = torch.zeros_like(ids)
    mask = torch.zeros(len(rows), width)
    for i, (p, r) in enumerate(rows):
        ids[i, : len(p) + len(r)] = torch.as_tensor(p + r)
        attn[i, : len(p) + len(r)] = 1
        mask[i, len(p) : len(p) + len(r)] = 1
    adv = torch.randn(len(rows), 1, generator=g)
    return TokenBatch(ids, attn, mask, torch.zeros(ids.shape), adv), np.mean([len(p) for p, _ in rows])


#: The update's parts as ``update_policy`` reports them (median seconds in the table).
PARTS = ("forward_s", "backward_s", "optimizer_s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--env", default="math/arithmetic-v0")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--reply", type=int, default=48)
    ap.add_argument("--micro-batch-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    add_out(ap, "update_pass")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from agentgym.grpo.update import UpdateSettings, update_policy
    from agentgym.policies.base import ChatFormat
    from agentgym.policies.models import load_model

    model, tok = load_model(args.model)
    batch, prompt_len = build_batch(ChatFormat(tok), args.env, args.tasks, args.group, args.reply, 0)
    start = copy.deepcopy(model.state_dict())
    times: dict[bool, list[float]] = {False: [], True: []}
    parts: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    weights: dict[bool, dict[str, torch.Tensor]] = {}
    for rep in range(args.reps + 1):
        for share in (False, True):
            model.load_state_dict(start)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
            s = UpdateSettings(micro_batch_size=args.micro_batch_size, share_prefix=share, temperature=0.8)
            t = time.perf_counter()
            rec = update_policy(model, opt, copy.deepcopy(batch), s)
            dt = time.perf_counter() - t
            if rep:  # the first round warms both up
                times[share].append(dt)
                for k in PARTS:
                    parts[share].setdefault(k, []).append(rec[f"time/{k}"])
            weights[share] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            print(f"  rep {rep} share_prefix={share}: {dt:.2f} s", file=sys.stderr, flush=True)
    diff = max(float((weights[True][k] - weights[False][k]).abs().max()) for k in weights[True])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\nUpdate pass, {args.model}, {args.tasks} prompts x {args.group} rows, prompt {prompt_len:.0f} tokens, "
        f"replies up to {args.reply}, micro-batch {args.micro_batch_size}"
    )
    print(f"{'share_prefix':>12} {'min s':>8} {'median s':>9} " + " ".join(f"{p[:-2]:>9}" for p in PARTS))
    for k in (False, True):
        cells = " ".join(f"{statistics.median(parts[k][p]):9.2f}" for p in PARTS)
        print(f"{str(k):>12} {min(times[k]):8.2f} {med[k]:9.2f} {cells}")
    print(f"ratio (on / off, medians): {med[True] / med[False]:.2f}; largest weight difference: {diff:.2e}")
    write_report(
        args.out,
        {
            "benchmark": "update_pass",
            "args": vars(args) | {"out": str(args.out)},
            "prompt_tokens_mean": prompt_len,
            "seconds": {str(k): v for k, v in times.items()},
            "parts_seconds": {str(k): v for k, v in parts.items()},
            "ratio_median": med[True] / med[False],
            "max_weight_difference": diff,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
