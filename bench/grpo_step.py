"""Seconds per GRPO step, side by side in one run: agentgym vs TRL's GRPOTrainer vs the floor.

All three use the same model (the embedded SmolLM2-135M-Instruct), the same prompts
(math/arithmetic-v0 training tasks), the same group size and the same token budget:
every completion is exactly ``--max-new-tokens`` long (eos is suppressed everywhere), so
each engine samples and trains on the same number of tokens.

- agentgym: ``GRPOTrainer.train_step()`` (rollout with the env, advantages, loss, AdamW).
- TRL: ``trl.GRPOTrainer`` on the CPU (install it for this benchmark only: ``pip install trl``).
- floor: transformers' ``generate`` for the same completions, then one forward and backward
  over all their tokens and one AdamW step: the work any GRPO step must do.

    python bench/grpo_step.py [--steps 3] [--tasks 4] [--group 8] [--max-new-tokens 48]

Prints a table and writes ``bench/results/grpo_step.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from common import add_out, write_report  # noqa: E402  (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent


def make_prompts(n: int, seed: int = 0):
    import agentgym

    env = agentgym.make("math/arithmetic-v0")
    tt = env.training_tasks({"digits": [1], "n_operands": [2]})
    rng = np.random.default_rng(seed)
    tasks = [tt.spec(rng) for _ in range(n)]
    prompts = [env.reset(options={"task": t})[0] for t in tasks]
    return tasks, prompts


def math_reward(tasks):
    """A reward function in TRL's shape, scoring with the agentgym env."""
    import agentgym

    env = agentgym.make("math/arithmetic-v0")
    by_prompt = {}
    for t in tasks:
        msgs, _ = env.reset(options={"task": t})
        by_prompt[msgs[-1]["content"]] = t

    def reward(prompts, completions, **_):
        out = []
        for p, c in zip(prompts, completions):
            env.reset(options={"task": by_prompt[p[-1]["content"]]})
            text = c[-1]["content"] if isinstance(c, list) else c
            out.append(env.step(text)[1])
        return out

    return reward


def bench_agentgym(args, times: list[float]) -> dict:
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(
            None,
            [
                f"run_dir={d}/run",
                "model.name=smollm2-135m",
                "env.id=math/arithmetic-v0",
                "env.params={digits: [1], n_operands: [2]}",
                f"rollout.tasks_per_step={args.tasks}",
                f"rollout.group_size={args.group}",
                f"rollout.max_new_tokens={args.max_new_tokens}",
                "rollout.temperature=1.0",
                "grpo.lr=1e-6",
                "grpo.mask_truncated=false",
                f"grpo.micro_batch_size={args.tasks * args.group}",
                "train.eval_tasks=1",
            ],
        )
        tr = GRPOTrainer(cfg, quiet=True)
        tr.policy.chat.eos_token_ids = {-1}  # never stop early: fixed-length completions
        parts: dict[str, list[float]] = {k: [] for k in BREAKDOWN}
        tokens = []
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            rec = tr.train_step()
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times.append(dt)
                for k in BREAKDOWN:
                    parts[k].append(rec[f"time/{k}"])
                tokens.append(rec["train/tokens"])
    out = {k: statistics.mean(v) for k, v in parts.items()}
    return {**out, "tokens": statistics.mean(tokens)}


#: The step's parts as the trainer records them (``time/...`` in metrics.jsonl).
BREAKDOWN = ("generate_s", "sample_s", "env_s", "train_s", "forward_s", "backward_s", "optimizer_s")


def bench_trl(args, times: list[float]) -> dict:
    try:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer
    except ImportError as exc:
        return {"skipped": f"TRL is not installed ({exc}); pip install trl"}
    from agentgym.policies.models import smollm2_model_dir

    path = str(smollm2_model_dir())
    tasks, prompts = make_prompts(args.tasks * (args.warmup + args.steps))
    ds = Dataset.from_list([{"prompt": p} for p in prompts])
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            stamps.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as d:
        kwargs = dict(
            output_dir=d,
            use_cpu=True,
            per_device_train_batch_size=args.tasks * args.group,
            num_generations=args.group,
            max_completion_length=args.max_new_tokens,
            generation_kwargs={"min_new_tokens": args.max_new_tokens},
            temperature=1.0,
            learning_rate=1e-6,
            beta=0.0,
            loss_type="dapo",
            max_steps=args.warmup + args.steps,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            seed=0,
            gradient_accumulation_steps=1,
            disable_tqdm=True,
            # Memory is not the constraint here: give TRL its fastest setting, as agentgym has.
            gradient_checkpointing=False,
            # GRPOConfig defaults to bf16=True; on a CPU that is bf16 autocast around every
            # matmul, and agentgym and the floor run float32, so TRL gets float32 too.
            bf16=False,
        )
        conf = GRPOConfig(**{**kwargs, **args.trl_overrides})
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(path)
        tok.padding_side = "left"
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=math_reward(tasks),
            args=conf,
            train_dataset=ds,
            processing_class=tok,
            callbacks=[Clock()],
        )
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(trainer.train)
            stats = pstats.Stats(prof)
            stats.sort_stats("cumulative").print_stats(45)
            prof.dump_stats(str(Path(args.out).with_suffix(".trl.prof")))
        else:
            trainer.train()
    steps = [stamps[i + 1] - stamps[i] for i in range(0, len(stamps) - 1, 2)]
    times.extend(steps[args.warmup :])
    return {}


def bench_floor(args, times: list[float]) -> dict:
    from agentgym.policies.models import load_model

    model, tok = load_model("smollm2-135m")
    _, prompts = make_prompts(args.tasks)
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    tok.padding_side = "left"
    enc = tok(
        [t for t in texts for _ in range(args.group)], return_tensors="pt", add_special_tokens=False, padding=True
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    gen, train = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=args.max_new_tokens,
                min_new_tokens=args.max_new_tokens,
                pad_token_id=tok.pad_token_id,
            )
        t1 = time.perf_counter()
        attn = torch.cat(
            [
                enc["attention_mask"],
                torch.ones(out.shape[0], out.shape[1] - enc["input_ids"].shape[1], dtype=torch.long),
            ],
            1,
        )
        logits = model(input_ids=out, attention_mask=attn).logits[:, enc["input_ids"].shape[1] - 1 : -1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, out[:, enc["input_ids"].shape[1] :, None]).squeeze(-1)
        (-logp.mean()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if i >= args.warmup:
            times.append(t2 - t0)
            gen.append(t1 - t0)
            train.append(t2 - t1)
    return {"generate_s": statistics.mean(gen), "train_s": statistics.mean(train)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--only", choices=["agentgym", "trl", "floor"], action="append")
    ap.add_argument(
        "--trl",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a GRPOConfig field for TRL (value parsed as YAML), e.g. --trl bf16=true",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile TRL's training and print where its time goes")
    add_out(ap, "grpo_step")
    args = ap.parse_args()
    args.trl_overrides = {}
    for item in args.trl:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--trl wants KEY=VALUE, got {item!r}")
        args.trl_overrides[key] = yaml.safe_load(value)
    sys.path.insert(0, str(ROOT))

    results = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, fn in (("floor", bench_floor), ("agentgym", bench_agentgym), ("trl", bench_trl)):
        if args.only and name not in args.only:
            continue
        times: list[float] = []
        print(f"running {name} ...", flush=True)
        extra = fn(args, times)
        results[name] = {"step_s": statistics.mean(times) if times else None, "step_s_all": times, **extra}
        print(f"  {name}: {results[name]['step_s']} s/step ({[round(t, 1) for t in times]})", flush=True)
        # Written after each engine, so a slow or killed engine loses only its own numbers.
        write_report(out, {"args": vars(args), "results": results})

    print(
        f"\nGRPO step, {args.tasks} prompts x {args.group} completions x {args.max_new_tokens} tokens, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'engine':<10} {'s/step':>8} {'median':>7} {'min':>6} {'generate s':>11} {'train s':>9} "
        f"{'vs floor':>9} {'vs agentgym':>12}   (ratios of medians)"
    )
    med = {k: statistics.median(r["step_s_all"]) for k, r in results.items() if r.get("step_s_all")}
    floor, ours = med.get("floor"), med.get("agentgym")
    for name, r in results.items():
        s = r.get("step_s")
        if s is None:
            print(f"{name:<10} {'-':>8}   {r.get('skipped', '')}")
            continue
        m = med[name]
        vf = f"{m / floor:.2f}x" if floor else "-"
        va = f"{m / ours:.2f}x" if ours else "-"
        g = f"{r['generate_s']:.1f}" if "generate_s" in r else "-"
        t = f"{r['train_s']:.1f}" if "train_s" in r else "-"
        print(f"{name:<10} {s:>8.1f} {m:>7.1f} {min(r['step_s_all']):>6.1f} {g:>11} {t:>9} {vf:>9} {va:>12}")
    ag = results.get("agentgym") or {}
    if "forward_s" in ag:
        print("\nagentgym's step, mean seconds: " + ", ".join(f"{k[:-2]} {ag[k]:.2f}" for k in BREAKDOWN))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
