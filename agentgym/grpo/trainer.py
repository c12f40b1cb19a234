"""The GRPO training loop: it only wires the parts together.

Each step: the teacher picks tasks -> the runner plays G episodes per task with the
current weights -> (optional) dynamic sampling drops all-equal groups and refills ->
group advantages -> the clipped loss over policy tokens, accumulated over micro-batches
with one step-wide normalizer -> one optimizer step -> the policy version increments.
With ``model.backend: transformers`` generation uses the trained model itself, so there
is no weight sync to forget; with ``vllm`` a vLLM engine samples and receives the weights
after every step (it sleeps while the trainer updates). Envs run in this process or in
Ray workers (``rollout.backend``); either way the Episodes are the same.

With ``rollout.off_policy_steps: 1`` the episodes of step n+1 are generated in a
background thread while step n's update runs. The sampler is then a copy of the weights
(or the vLLM engine, which stays awake) synced at the start of every step, so each batch
is exactly one update old (the first batch, and the first after a resume, are fresh); the
truncated importance weight min(pi_trainer / pi_sampler, is_cap) is always applied then.
The teacher is updated with step n's results before step n+1's tasks are drawn, so it
does not lag and a seeded run is reproducible.

Run folder: ``config.yaml``, ``metrics.jsonl`` (one JSON line per step, plus eval
lines), ``teacher.jsonl`` (the tasks played each step and their success), ``tb/`` (TensorBoard), ``checkpoints/``, ``evals/``, ``plots/``, ``final/``
(a loadable model), ``summary.json``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentgym.config import ConfigError, RunConfig, check_backends, dump_config, load_config
from agentgym.curriculum import (
    DynamicSampling,
    GroupResult,
    PassRateBand,
    TrainingTasks,
    make_teacher,
)
from agentgym.eval.heldout import EnvReport, evaluate_env, write_json
from agentgym.grpo.advantages import group_advantages, seat_groups, split_moves
from agentgym.grpo.batch import collate, policy_logprobs
from agentgym.grpo.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from agentgym.grpo.loss import (
    Normalizer,
    clipped_token_loss,
    kl_estimate,
    micro_batch_loss,
    truncated_importance_weight,
)
from agentgym.policies.base import SamplingParams
from agentgym.policies.models import load_model
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.registry import make
from agentgym.registry import spec as env_spec
from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import make_pool
from agentgym.rollout.runner import RolloutRunner

EVAL_SEED = 1234


@dataclass
class TrainResult:
    run_dir: Path
    steps_done: int
    evals: dict[int, float] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


class GRPOTrainer:
    """Owns the model, optimizer, teacher and run folder of one training run."""

    def __init__(self, cfg: RunConfig, *, resume: bool = False, quiet: bool = False):
        self.cfg = cfg
        self.quiet = quiet
        self.run_dir = Path(cfg.run_dir)
        if cfg.model.threads:
            torch.set_num_threads(cfg.model.threads)
        env_cls = env_spec(cfg.env.id).load_class()  # a wrong env id fails before the model loads
        self.tasks = TrainingTasks(env_cls.param_space, env_cls.held_out, cfg.env.params)
        probe = make(cfg.env.id, **cfg.env.kwargs)
        self.max_turns = int(getattr(probe, "max_turns", 1))
        from agentgym.multiagent import is_multiagent

        #: A multi-agent game: one shared policy plays every seat it controls.
        self.multi = is_multiagent(probe)
        #: Seats with their own LoRA adapter (multiagent.adapters: per_role), else ().
        self.roles: tuple[str, ...] = ()
        if cfg.multiagent.adapters == "per_role":
            if not self.multi:
                raise ConfigError(f"multiagent.adapters=per_role needs a multi-agent game; {cfg.env.id} has one agent")
            self.roles = tuple(probe.possible_agents)
        if self.multi:
            try:
                probe.check_players(cfg.multiagent.controllers, cfg.multiagent.eval_opponents)
            except ValueError as exc:
                raise ConfigError(f"multiagent: {exc}") from None
            if cfg.rollout.backend != "inprocess":
                raise ConfigError("multiagent games run in-process for now: set rollout.backend: inprocess")
        probe.close()
        if not resume:
            if (self.run_dir / "metrics.jsonl").exists():
                raise FileExistsError(f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir} or choose another run_dir")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))

        options = dict(cfg.teacher.options)
        if cfg.teacher.name == "schedule":
            options.setdefault("total_steps", cfg.train.steps)
        try:  # a wrong teacher option fails before the model loads
            self.teacher = make_teacher(cfg.teacher.name, self.tasks, seed=cfg.seed, **options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"teacher: {exc}") from None
        check_backends(cfg)  # a missing Ray, vLLM or GPU is named before the model loads
        self.filters: list[Any] = []
        if cfg.grpo.dynamic_sampling:
            self.filters.append(DynamicSampling())
        if cfg.teacher.pass_rate_band is not None:
            self.filters.append(PassRateBand(*cfg.teacher.pass_rate_band))

        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        model, tok = load_model(cfg.model.name, seed=cfg.seed)
        self.tokenizer = tok
        self.adapters = None
        if cfg.model.lora is not None:
            from peft import LoraConfig, get_peft_model

            lc = cfg.model.lora
            lora = LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                              target_modules=lc.target_modules, task_type="CAUSAL_LM")
            if self.roles:
                from agentgym.policies.roles import RoleAdapters

                self.adapters = RoleAdapters(model, self.roles, lora)
                model = self.adapters.model
            else:
                model = get_peft_model(model, lora)
        self.model = model
        self.model.eval()  # no dropout: trainer log-probs must equal the sampler's
        self.ref_model = None
        if cfg.grpo.beta > 0:
            self.ref_model, _ = load_model(cfg.model.name, seed=cfg.seed)
            self.ref_model.requires_grad_(False)
        if cfg.model.backend == "vllm":
            from agentgym.policies.vllm_policy import VLLMPolicy, vllm_model_path

            self.model.to("cuda")
            if self.ref_model is not None:
                self.ref_model.to("cuda")
            vo = cfg.model.vllm
            self.policy = VLLMPolicy(vllm_model_path(cfg.model.name, seed=cfg.seed), tok, seed=cfg.seed,
                                     gpu_memory_utilization=vo.gpu_memory_utilization,
                                     enable_sleep_mode=vo.enable_sleep_mode, dtype=vo.dtype,
                                     max_model_len=vo.max_model_len, tensor_parallel_size=vo.tensor_parallel_size)
        else:
            self.policy = TransformersPolicy(self.model, tok, seed=cfg.seed)
        if self.adapters is not None:
            from agentgym.policies.roles import RolePolicy

            self.policy = RolePolicy(self.policy, self.adapters)
        #: Off-policy mode: a sampler generates the next batch during the update. With
        #: transformers it is a frozen copy of the model; a vLLM engine is its own copy.
        self.off_policy = cfg.rollout.off_policy_steps > 0
        self.sampler = self.policy
        if self.off_policy and cfg.model.backend == "transformers":
            sampler_model = copy.deepcopy(self.model).requires_grad_(False)
            self.sampler = TransformersPolicy(sampler_model, tok, seed=cfg.seed)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._stop = threading.Event()  # set by close(): a rollout in flight stops at its next round
        self.device = next(self.model.parameters()).device
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.grpo.lr, betas=tuple(cfg.grpo.betas), weight_decay=cfg.grpo.weight_decay)
        self.sampling = SamplingParams(max_new_tokens=cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature)
        ro = cfg.rollout
        self.pool = make_pool(ro.backend, num_workers=ro.ray.num_workers, address=ro.ray.address,
                              num_cpus_per_worker=ro.ray.num_cpus_per_worker)
        self.runner = RolloutRunner(self.sampler, self.sampling, max_episode_tokens=cfg.rollout.max_episode_tokens,
                                    env_kwargs=cfg.env.kwargs, pool=self.pool)
        if self.multi:
            from agentgym.rollout.multi import MultiAgentRunner

            self.game_runner = MultiAgentRunner(self.sampler, self.sampling, env_kwargs=cfg.env.kwargs, seed=cfg.seed,
                                                max_episode_tokens=cfg.rollout.max_episode_tokens)
        self.eval_tasks = self.tasks.held_out_specs(cfg.train.eval_tasks, seed=EVAL_SEED)
        self.step = 0
        self.tb: Any = None  # TensorBoard writer while train() runs
        self.evals: dict[int, float] = {}
        if resume:
            self._restore()

    # ----- persistence ---------------------------------------------------------------
    def _restore(self) -> None:
        ck = latest_checkpoint(self.run_dir / "checkpoints")
        if ck is not None:
            state = load_checkpoint(ck, self.model, self.optimizer)
            self.step = int(state["step"])
            self.policy.load_state_dict(state["policy"])
            if self.sampler is not self.policy and "sampler" in state:
                self.sampler.load_state_dict(state["sampler"])
            if hasattr(self.policy, "sync_weights"):  # a separate engine: give it the restored weights
                version = self.policy.version
                self.policy.sync_weights(self.model.state_dict().items())
                self.policy.version = version
            self.teacher.load_state_dict(state["teacher"])
            self.evals = {int(k): float(v) for k, v in state.get("evals", {}).items()}
        # Drop what the killed process logged after its last checkpoint: no gaps, no duplicates.
        for name in ("metrics.jsonl", "teacher.jsonl"):
            path = self.run_dir / name
            if path.exists():
                lines = path.read_text().splitlines() if ck is not None else []
                kept = [ln for ln in lines if ln.strip() and _line_step(ln) <= self.step]
                _atomic_write(path, "".join(ln + "\n" for ln in kept))
        if not self.quiet:
            where = f"step {self.step} ({ck.name})" if ck is not None else "the start (no checkpoint yet)"
            print(f"resuming {self.run_dir} from {where}")

    def _save(self) -> None:
        self._wait_pending()  # the sampler's generator and the teacher are not read mid-rollout
        state = {"policy": self.policy.state_dict(), "teacher": self.teacher.state_dict(), "evals": self.evals}
        if self.sampler is not self.policy:
            state["sampler"] = self.sampler.state_dict()
        save_checkpoint(self.run_dir / "checkpoints", self.step, self.model, self.optimizer, state,
                        keep=self.cfg.train.keep_checkpoints)

    def _log(self, record: dict[str, Any], file: str = "metrics.jsonl") -> None:
        with open(self.run_dir / file, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if self.tb is not None and file == "metrics.jsonl":
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step" and math.isfinite(v):
                    self.tb.add_scalar(k, v, record["step"])

    # ----- evaluation ----------------------------------------------------------------
    def evaluate(self) -> EnvReport:
        self._wait_pending()  # the env pool is not shared with a rollout in flight
        if self.off_policy and self.sampler is self.policy:
            self._sync_sampler()  # a vLLM engine evaluates the weights just trained
        sp = SamplingParams(max_new_tokens=self.cfg.train.eval_max_new_tokens, temperature=0.0)
        if self.multi:
            from agentgym.eval.games import evaluate_games

            rep = evaluate_games(self.policy, self.cfg.env.id, opponents=self.cfg.multiagent.eval_opponents,
                                 tasks=self.eval_tasks, sampling=sp, env_kwargs=self.cfg.env.kwargs, seed=self.cfg.seed)
        else:
            rep = evaluate_env(self.policy, self.cfg.env.id, tasks=self.eval_tasks, k=1, sampling=sp,
                               env_kwargs=self.cfg.env.kwargs, pool=self.pool)
        write_json([rep], self.run_dir / "evals" / f"step_{self.step:06d}.json", meta={"step": self.step})
        self.evals[self.step] = rep.overall.success
        self._log({"step": self.step, "kind": "eval", "eval/success": rep.overall.success,
                   "eval/mean_reward": rep.overall.mean_reward, "eval/no_answer": rep.overall.format_errors,
                   **{f"eval/success[{k}]": r.success for k, r in rep.by_region.items()},
                   **({f"eval/opponent/{o}": r.success for o, r in rep.by_param.get("opponent", {}).items()}
                      if self.multi else {}),
                   **{f"eval/reward/{k}": v for k, v in rep.overall.reward_parts.items()}})
        return rep

    # ----- one GRPO step -------------------------------------------------------------
    def _rollouts(self) -> tuple[list[Episode], list[GroupResult], dict[str, float]]:
        cfg = self.cfg
        want = cfg.rollout.tasks_per_step
        kept: list[list[Episode]] = []
        results: list[GroupResult] = []
        spent = dropped = rounds = env_errors = restarts = replayed = 0
        while True:
            tasks = self.teacher.sample(want - len(kept))
            if self.multi:
                eps = self.game_runner.run(cfg.env.id, tasks, group_size=cfg.rollout.group_size,
                                           controllers=cfg.multiagent.controllers or None, on_round=self._check_stop)
            else:
                eps = self.runner.run(cfg.env.id, tasks, group_size=cfg.rollout.group_size, on_round=self._check_stop)
                st = self.runner.last_stats
                env_errors += st.dropped_env_errors
                restarts += st.worker_restarts
                replayed += st.replayed_episodes
            rounds += 1
            spent += len(eps)
            groups: dict[int, list[Episode]] = {}
            for e in eps:
                groups.setdefault(e.group, []).append(e)
            flat = [e for g in groups.values() for e in g]
            # Per task and seat: in a game, a seat is compared only with the same seat.
            adv = group_advantages([e.reward for e in flat], seat_groups(flat), scale_std=cfg.grpo.scale_std)
            for g, members in groups.items():
                a = [abs(x) for x, e in zip(adv, flat) if e.group == g]
                result = GroupResult(members[0].task, [e.reward for e in members], [e.success for e in members],
                                     float(np.mean(a)) if a else 0.0)
                results.append(result)
                if not all(f.keep(result) for f in self.filters):
                    dropped += len(members)
                    continue
                kept.append(members)
            if not self.filters or len(kept) >= want or rounds > cfg.grpo.max_refill_rounds:
                break
        kept = kept[:want]
        episodes = []
        for new_gid, members in enumerate(kept):
            for e in members:
                e.group = new_gid
                episodes.append(e)
        return episodes, results, {"rollout/spent": float(spent), "rollout/dropped": float(dropped), "rollout/rounds": float(rounds),
                                   "rollout/env_errors": float(env_errors), "rollout/worker_restarts": float(restarts),
                                   "rollout/replayed_episodes": float(replayed)}

    # ----- off-policy overlap ---------------------------------------------------------
    def _sync_sampler(self) -> None:
        """Give the sampler (off-policy only) the trainer's current weights; its version becomes the step."""
        if hasattr(self.sampler, "sync_weights"):
            self.sampler.sync_weights(self.model.state_dict().items())
        else:
            self.sampler.model.load_state_dict(self.model.state_dict())
        self.sampler.version = self.step

    def _check_stop(self, rounds: int, live: int) -> None:
        if self._stop.is_set():
            raise RolloutCancelled("the trainer is closing")

    def _wait_pending(self) -> None:
        """Block until the rollout in flight (if any) is done; its result is kept."""
        if self._pending is not None:
            wait_futures([self._pending])

    def _next_batch(self) -> tuple[list[Episode], list[GroupResult], dict[str, float]]:
        """This step's episodes: the batch generated during the last update, else fresh ones."""
        if self._pending is not None:
            result = self._pending.result()  # an exception in the rollout thread is raised here
            self._pending = None  # only now: a Ctrl-C while waiting leaves it for _save to wait on
            return result
        if self.off_policy:
            self._sync_sampler()
        return self._rollouts()

    def _start_next_batch(self) -> None:
        """Generate step n+1's episodes in the background with the weights of step n."""
        self._sync_sampler()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentgym-rollout")
        self._pending = self._executor.submit(self._rollouts)

    def _rotate_roles(self) -> int:
        """Role exchange (multiagent.swap_every): which adapters play which seats this step."""
        k = (self.step // self.cfg.multiagent.swap_every) % len(self.roles) if self.cfg.multiagent.swap_every else 0
        if self.adapters is not None:
            self.adapters.rotate(k)
        return k

    def train_step(self) -> dict[str, Any]:
        cfg, g = self.cfg, self.cfg.grpo
        rotation = self._rotate_roles()
        t0 = time.perf_counter()
        episodes, results, roll_stats = self._next_batch()
        t_gen = time.perf_counter() - t0
        staleness = [self.step - e.policy_version for e in episodes]
        if staleness and max(staleness) > cfg.rollout.off_policy_steps:
            raise RuntimeError(f"episodes {max(staleness)} updates old exceed rollout.off_policy_steps="
                               f"{cfg.rollout.off_policy_steps} (a sampler sync was missed)")
        self.teacher.update(results)
        teacher_metrics = self.teacher.metrics()
        if self.off_policy and self.step + 1 < cfg.train.steps:
            self._start_next_batch()  # overlaps the update below
        elif hasattr(self.policy, "sleep"):  # a vLLM engine frees the GPU for the update
            self.policy.sleep()
        # What the teacher chose and how it went, for the curriculum plots.
        self._pending_groups = [{"params": r.task.params, "success": r.success_rate,
                                 "reward": float(np.mean(r.rewards)) if r.rewards else 0.0,
                                 "abs_adv": r.mean_abs_advantage} for r in results]
        record: dict[str, Any] = {"step": self.step + 1, "kind": "train", **roll_stats}
        record["rollout/staleness"] = float(max(staleness)) if staleness else 0.0
        if self.adapters is not None:
            record["multiagent/rotation"] = float(rotation)
        # Every group played counts here, the ones dynamic sampling dropped included.
        rewards = [x for r in results for x in r.rewards]
        record["reward/mean"] = float(np.mean(rewards)) if rewards else 0.0
        record["success/mean"] = float(np.mean([s for r in results for s in r.successes])) if rewards else 0.0
        for k in sorted({k for e in episodes for k in e.reward_parts}):
            record[f"reward/{k}"] = float(np.mean([e.reward_parts.get(k, 0.0) for e in episodes]))
        for seat in sorted({e.agent for e in episodes if e.agent}):
            mine = [e for e in episodes if e.agent == seat]
            record[f"reward/seat/{seat}"] = float(np.mean([e.reward for e in mine]))
            record[f"success/seat/{seat}"] = float(np.mean([e.success for e in mine]))
        t1 = time.perf_counter()
        if episodes:
            samples, gids = episodes, seat_groups(episodes)
            if self.multi and cfg.multiagent.advantages == "role_turn":
                samples, gids = split_moves(episodes, self.policy.chat.eos_token_ids)
            adv = group_advantages([e.reward for e in samples], gids, scale_std=g.scale_std)
            batch = collate(samples, adv.tolist(), self.policy.chat.pad_token_id, drop_truncated=g.mask_truncated)
            norm = Normalizer(int(batch.loss_mask.sum().item()), len(batch), cfg.rollout.max_new_tokens * self.max_turns)
            stats = self._optimize(batch, norm, [e.agent for e in samples])
            record.update(stats)
            record["adv/abs_mean"] = float(np.abs(adv).mean())
            record["response/tokens_mean"] = float(np.mean([e.num_policy_tokens for e in episodes]))
            record["response/truncated_frac"] = float(np.mean([e.hit_length_limit for e in episodes]))
            record["response/turns_mean"] = float(np.mean([e.num_turns for e in episodes]))
        else:
            record["train/skipped"] = 1.0
        self.step += 1
        if self.off_policy:
            if self.sampler is not self.policy:  # (a vLLM sampler is the policy: it is versioned at each sync)
                self.policy.version = self.step
        elif hasattr(self.policy, "sync_weights"):
            self.policy.sync_weights(self.model.state_dict().items())  # bumps the version
        else:
            self.policy.version += 1
        record["policy_version"] = self.step
        record["time/generate_s"] = t_gen
        record["time/train_s"] = time.perf_counter() - t1
        record["time/step_s"] = time.perf_counter() - t0
        record.update(teacher_metrics)
        return record

    def _optimize(self, batch, norm: Normalizer, agents: list[str] | None = None) -> dict[str, float]:
        g = self.cfg.grpo
        self.model.eval()
        self.optimizer.zero_grad(set_to_none=True)
        total_loss = clip_sum = ent_sum = mismatch_sum = 0.0
        n_mb = 0
        # The normalizer was fixed on the whole batch; rows with no loss tokens add 0.
        # With an adapter per role, each role's rows go in their own micro-batches, run
        # through that role's adapter; otherwise all rows form one group.
        groups: dict[str | None, list[int]] = {}
        for r in batch.trainable_rows():
            groups.setdefault(agents[r] if self.adapters is not None and agents else None, []).append(r)
        mbs = g.micro_batch_size
        for role, chunk in ((role, rs[i:i + mbs]) for role, rs in groups.items() for i in range(0, len(rs), mbs)):
            if role is not None:
                self.adapters.activate_seat(role)
            mb = batch.select(chunk).to(self.device)
            logp, entropy = policy_logprobs(self.model, mb, self.cfg.rollout.temperature, with_entropy=True)
            old = logp.detach()  # one optimizer pass per batch: rho = 1, the gradient is not 0
            tl, clipped = clipped_token_loss(logp, old, mb.advantages, g.eps_low, g.eps_high)
            if g.importance_weights or self.off_policy:
                tl = tl * truncated_importance_weight(old, mb.sampler_logp, g.is_cap)
            if self.ref_model is not None:
                with torch.no_grad():
                    ref, _ = policy_logprobs(self.ref_model, mb, self.cfg.rollout.temperature)
                tl = tl + g.beta * kl_estimate(logp, ref, g.kl_estimator)
            loss = micro_batch_loss(tl, mb.loss_mask, g.loss_agg, norm)
            loss.backward()
            m = mb.loss_mask
            total_loss += float(loss.detach())
            clip_sum += float((clipped * m).sum())
            mismatch_sum += float(((old - mb.sampler_logp).abs() * m).sum())
            ent_sum += float(entropy) * float(m.sum()) if entropy is not None else 0.0
            n_mb += 1
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, g.max_grad_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = max(norm.total_tokens, 1)
        return {
            "loss": total_loss,
            "grad_norm": grad_norm,
            "entropy": ent_sum / tokens,
            "clip_frac": clip_sum / tokens,
            "logp_mismatch": mismatch_sum / tokens,
            "train/tokens": float(norm.total_tokens),
            "train/micro_batches": float(n_mb),
        }

    # ----- the loop ------------------------------------------------------------------
    def train(self) -> TrainResult:
        from tqdm import tqdm

        cfg = self.cfg
        t_start = time.perf_counter()
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if self.step else None)
        except Exception:  # tensorboard missing: JSONL and plots still work
            self.tb = None
        interrupted = False
        previous = signal.getsignal(signal.SIGINT)
        bar = tqdm(total=cfg.train.steps, initial=self.step, desc="GRPO", unit="step", disable=self.quiet, dynamic_ncols=True)
        try:
            if self.step == 0 and 0 not in self.evals:
                bar.set_description("GRPO (held-out eval)")
                self.evaluate()
                bar.set_description("GRPO")
            while self.step < cfg.train.steps:
                record = self.train_step()
                self._log(record)
                self._log({"step": self.step, "groups": self._pending_groups}, file="teacher.jsonl")
                last_eval = self.evals[max(self.evals)] if self.evals else float("nan")
                due_eval = self.step == cfg.train.steps or (cfg.train.eval_every and self.step % cfg.train.eval_every == 0)
                if due_eval:
                    bar.set_description("GRPO (held-out eval)")
                    last_eval = self.evaluate().overall.success
                    bar.set_description("GRPO")
                if self.step % cfg.train.save_every == 0 or self.step == cfg.train.steps:
                    self._save()
                bar.update(1)
                bar.set_postfix(reward=f"{record['reward/mean']:.2f}", heldout=f"{last_eval:.1%}",
                                s_step=f"{record['time/step_s']:.1f}")
        except KeyboardInterrupt:
            interrupted = True
            if not self.quiet:
                print(f"\ninterrupted: saving step {self.step} and exiting")
            if self.step > 0:
                self._save()
        finally:
            bar.close()
            signal.signal(signal.SIGINT, previous)
            if self.tb is not None:
                self.tb.close()
            self.close()
        if not interrupted:
            self._finish()
        return TrainResult(self.run_dir, self.step, dict(self.evals), interrupted, time.perf_counter() - t_start)

    def close(self) -> None:
        """Finish the rollout in flight, close the env pool (Ray workers are killed); safe to call twice."""
        try:
            if self._executor is not None:
                self._stop.set()  # the rollout in flight stops at the end of its current round
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
                self._pending = None
        finally:
            self.pool.close()

    def _finish(self) -> None:
        from agentgym.eval.curriculum_plots import plot_teacher
        from agentgym.eval.plots import plot_training

        try:
            plot_training(self.run_dir / "metrics.jsonl", self.run_dir / "plots")
            plot_teacher(self.run_dir, dims=self.cfg.teacher.plot_dims or None)
        except Exception as exc:  # plotting must never lose a finished run
            print(f"warning: plots failed: {exc!r}")
        self.export(self.run_dir / "final")
        first, last = min(self.evals), max(self.evals)
        summary = {"steps": self.step, "heldout_success_before": self.evals[first],
                   "heldout_success_after": self.evals[last], "eval_tasks": len(self.eval_tasks),
                   "evals": {str(k): v for k, v in sorted(self.evals.items())}}
        _atomic_write(self.run_dir / "summary.json", json.dumps(summary, indent=1))

    def export(self, path: Path) -> Path:
        """Write a checkpoint folder that ``--policy PATH`` (and transformers) can load.

        With an adapter per role: ``PATH/<role>/`` holds the base with that role's adapter
        merged (one loadable model per role) and ``PATH/adapters/`` the PEFT adapters.
        """
        if self.adapters is not None:
            path.mkdir(parents=True, exist_ok=True)
            self.model.save_pretrained(str(path / "adapters"), safe_serialization=True)
            for role in self.roles:
                self.adapters.merged(role).save_pretrained(str(path / role), safe_serialization=True)
                self.tokenizer.save_pretrained(str(path / role))
            return path
        model = self.model
        if hasattr(model, "merge_and_unload"):
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(str(path), safe_serialization=True)
        self.tokenizer.save_pretrained(str(path))
        return path


class RolloutCancelled(RuntimeError):
    """A background rollout stopped because the trainer closed."""


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 60  # a torn last line: drop it


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def train_from_config(path: str | None, overrides: list[str] | None = None, quiet: bool = False) -> TrainResult:
    cfg = load_config(path, overrides)
    return GRPOTrainer(cfg, quiet=quiet).train()


def resume_run(run_dir: str | Path, quiet: bool = False) -> TrainResult:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"{run_dir} has no config.yaml: not a run folder")
    cfg = load_config(run_dir / "config.yaml")
    cfg.run_dir = str(run_dir)
    return GRPOTrainer(cfg, resume=True, quiet=quiet).train()
