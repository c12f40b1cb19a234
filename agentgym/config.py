"""Typed run configs: YAML files plus dotted ``key=value`` overrides.

Every section is a pydantic model that forbids unknown keys, so a typo such as
``grpo.lr_rate=1e-5`` is an error naming the key (with its valid siblings) before any
model loads. Values given on the command line are parsed as YAML scalars
(``3`` -> int, ``1e-5`` -> float, ``true`` -> bool, ``[a, b]`` -> list).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A run config is malformed; the message names the key and what is wrong."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(_Section):
    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    #: LoRA dropout. Above 0 the update's forward passes run in train mode so it acts
    #: (the sampler and the PPO ratio's old log-probs stay dropout-free).
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class VLLMOptions(_Section):
    """Settings of the vLLM generation engine (``model.backend: vllm``)."""

    #: Share of the GPU's memory vLLM may take (weights + KV cache); the rest is the trainer's
    #: (null: 0.3). CUDA only: on vLLM's CPU build set kv_cache_gib instead.
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    #: Free vLLM's GPU memory while the trainer updates (``llm.sleep(level=1)``); null: on
    #: where the platform has sleep mode (CUDA), off on CPU, where true is an error.
    enable_sleep_mode: bool | None = None
    #: Weights' dtype inside vLLM (auto, bfloat16, float16, float32); auto is the
    #: checkpoint's dtype on CUDA and float32 (the trainer's) on CPU.
    dtype: str = "auto"
    #: KV cache size in GiB (null: 1 on CPU; on CUDA sized by gpu_memory_utilization).
    kv_cache_gib: float | None = Field(None, gt=0)
    #: Longest prompt + completion vLLM must hold (null: the model's own limit).
    max_model_len: int | None = Field(None, ge=16)
    #: GPUs vLLM shards the model over (tensor parallel); the trainer stays on the first.
    tensor_parallel_size: int = Field(1, ge=1)


class RemoteOptions(_Section):
    """Where the generation server is (``model.backend: remote``; see agentgym.policies.remote)."""

    #: The server ``agentgym generate-server`` printed, e.g. http://10.0.0.2:8001.
    url: str | None = None
    #: Seconds one request (a batch of generations, a weight upload) may take.
    timeout_s: float = Field(600.0, gt=0)
    #: Size of one weight-upload request; a model of any size goes up in parts.
    chunk_mb: int = Field(256, ge=1)

    def server_url(self) -> str:
        """``url``, which :class:`RunConfig` requires with ``backend: remote`` (a ConfigError
        for a config changed after it was checked)."""
        if not self.url:
            raise ConfigError("model.backend=remote needs model.remote.url (`agentgym generate-server` prints it)")
        return self.url


class ModelConfig(_Section):
    #: smollm2-135m (embedded default), tiny (tests), a checkpoint folder or a hub id.
    name: str = "smollm2-135m"
    #: LoRA adapters instead of full fine-tuning (null: full fine-tuning).
    lora: LoraConfig | None = None
    #: Threads torch may use. 0: torch's count (one per core), lowered to 1 while another
    #: process holds the CPU (a short probe every 20 s decides; agentgym/threads.py): on 2
    #: cores a busy neighbour made 2 spinning threads about 9x slower than 1. N: exactly N.
    threads: int = Field(0, ge=0)
    #: Who generates rollouts: the trained model itself (transformers, CPU or GPU), a
    #: vLLM engine on the trainer's GPU (one per rank under torchrun), or a generation
    #: server on other GPUs or machines (remote); the last two receive the weights after
    #: every update.
    backend: Literal["transformers", "vllm", "remote"] = "transformers"
    vllm: VLLMOptions = VLLMOptions()
    remote: RemoteOptions = RemoteOptions()


class EnvConfig(_Section):
    id: str = "math/arithmetic-v0"
    #: Constructor kwargs of the env (e.g. max_turns).
    kwargs: dict[str, Any] = {}
    #: Restrict training to part of the space: name -> list of allowed values or [low, high].
    params: dict[str, Any] = {}


class TeacherConfig(_Section):
    #: Which teacher picks training tasks: random, schedule, bandit or alp_gmm; or fixed
    #: (a fixed set of options.n_tasks training tasks, cycled: the optimizer sanity check).
    name: Literal["random", "schedule", "bandit", "alp_gmm", "fixed"] = "random"
    #: Options of that teacher (see agentgym/curriculum), e.g. {signal: abs_adv, sampler: sec}.
    #: Unset options take the papers' run defaults, scaled to this run's length (the
    #: bandit's SEC alpha 0.5 and tau 0.3; ALP-GMM's fit_rate a fifth of the run's groups,
    #: within [20, 250]; see the README's teacher section).
    options: dict[str, Any] = {}
    #: What the teacher and the filters (grpo.dynamic_sampling, pass_rate_band) read of
    #: each episode: "success" (0 or 1), "reward" (the shaped reward, format bonuses and
    #: subgoals included) or "part:<name>" (one reward part the env reports, e.g.
    #: part:correct). The update's advantages always use the shaped reward.
    outcome: str = "success"
    #: Keep only groups whose pass rate (mean outcome) lies in [low, high] (null: keep
    #: all); composes with any teacher, and dropped rollouts count as spent.
    pass_rate_band: tuple[float, float] | None = None
    #: One or two parameter names for the curriculum plots (default: the first that vary).
    plot_dims: list[str] = []

    @field_validator("outcome")
    @classmethod
    def _check_outcome(cls, v: str) -> str:
        from agentgym.curriculum.base import check_outcome

        return check_outcome(v)


class RayOptions(_Section):
    """Env workers as Ray actors (``rollout.backend: ray``)."""

    #: Ray actors, each holding its own pool of envs; episodes are dealt round-robin.
    num_workers: int = Field(2, ge=1)
    #: Ray cluster to join (null: start a local one; "auto" or "ray://HOST:10001": an existing one).
    address: str | None = None
    #: CPUs Ray reserves for each worker.
    num_cpus_per_worker: float = Field(1.0, gt=0)


class RolloutConfig(_Section):
    tasks_per_step: int = Field(4, ge=1)
    group_size: int = Field(8, ge=2)
    max_new_tokens: int = Field(64, ge=1, le=1_000_000)
    temperature: float = Field(1.0, gt=0)
    max_episode_tokens: int = Field(1024, ge=16, le=10_000_000)
    #: Where envs run: in the trainer's process, or in Ray workers (generation stays in
    #: the trainer either way; Episodes are the same).
    backend: Literal["inprocess", "ray"] = "inprocess"
    ray: RayOptions = RayOptions()
    #: Staleness bound of the sampler, in updates. 0: on-policy (generate, then update).
    #: 1: one-step off-policy: the episodes of step n+1 are generated while step n's update
    #: runs, by a copy of the weights one update old; truncated importance weights
    #: (grpo.is_cap) correct for the lag. Only 0 and 1 are supported.
    off_policy_steps: int = Field(0, ge=0, le=1)


class GRPOConfig(_Section):
    #: What a training step after the warm start does: "grpo", the policy-gradient update
    #: below; "rft", rejection fine-tuning (expert iteration), the baseline GRPO has to
    #: beat on the same generations: sample like GRPO, then cross-entropy on the
    #: successful episodes only (at grpo.lr; the loss settings below do not apply).
    objective: Literal["grpo", "rft"] = "grpo"
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = Field(1.0, gt=0)
    eps_low: float = Field(0.2, ge=0)
    eps_high: float = Field(0.28, ge=0)
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "dr_grpo"] = "token_mean"
    scale_std: bool = True
    #: KL penalty to the reference model (grpo.kl_ref; 0: no penalty).
    beta: float = Field(0.0, ge=0)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    #: The reference model of the KL penalty and of the logged ``kl/ref``: "warm_start"
    #: (default), the weights when the warm start ends, as RLHF anchors to its SFT model
    #: (with no warm start: the model as loaded); "base", the model as loaded.
    kl_ref: Literal["warm_start", "base"] = "warm_start"
    #: Cap of the truncated importance weight for tokens sampled by another engine.
    is_cap: float = Field(3.0, gt=0)
    #: Apply the truncated importance weight min(pi_old / pi_sampler, is_cap). null (the
    #: default): on whenever another engine samples (model.backend: vllm, or
    #: rollout.off_policy_steps: 1), off when the trained model samples itself.
    importance_weights: bool | None = None
    #: Drop groups whose outcomes (teacher.outcome: success by default) are all equal and
    #: sample more tasks (DAPO).
    dynamic_sampling: bool = False
    #: Extra rollout rounds the filters (dynamic sampling, pass-rate band) may spend to refill.
    max_refill_rounds: int = Field(2, ge=0)
    #: Leave completions that hit max_new_tokens out of the loss.
    mask_truncated: bool = True
    #: Sequences per forward/backward pass (gradient accumulation over the step).
    micro_batch_size: int = Field(8, ge=1)
    #: Micro-batches hold one prompt's rows where they can, and the prompt tokens they
    #: share run through the decoder once (same loss and gradients up to rounding).
    share_prefix: bool = True
    #: Passes over each generated batch (PPO epochs; TRL num_iterations, veRL ppo_epochs).
    #: Above 1 the ratio to the batch's starting log-probs moves and clipping acts.
    updates_per_batch: int = Field(1, ge=1, le=64)
    #: Optimizer steps per pass: the batch's rows are split into this many mini-batches.
    mini_batches: int = Field(1, ge=1, le=1024)


class MultiAgentConfig(_Section):
    """Training on multi-agent games (ignored for single-agent envs)."""

    #: How GRPO compares returns. "role": each seat's episode against the same seat in the
    #: other plays of the same task. "role_turn": each move of a seat is its own sample,
    #: with the return that followed it, compared per (task, seat, move number).
    advantages: Literal["role", "role_turn"] = "role"
    #: Seat -> "policy" or a scripted kind, for every training game ({}: the game's own
    #: choice from its opponent/seat params, which a teacher may pick; else self-play).
    controllers: dict[str, str] = {}
    #: Scripted opponents the held-out evaluation plays the policy against, in every seat.
    eval_opponents: list[str] = ["random"]
    #: "shared": one policy plays every seat (role-conditioned by each seat's prompt).
    #: "per_role": one LoRA adapter per seat over the shared base model (needs model.lora);
    #: each seat is played, and trained, by its own adapter.
    adapters: Literal["shared", "per_role"] = "shared"
    #: With per-role adapters: every this many steps, rotate which adapter plays which
    #: seat (CORY's role exchange), so each adapter learns every role. 0: never.
    swap_every: int = Field(0, ge=0)


class WarmupConfig(_Section):
    """Supervised warm start before GRPO, in the same run (``agentgym sft`` runs it alone)."""

    #: Where the demonstrations come from. "oracle": the env's own demonstrator (oracle or
    #: scripted optimal players) on training tasks; "file": a JSONL of Episodes or chat rows
    #: (``messages`` + ``tools``); "rejection": the model's own successful episodes, sampled
    #: each step like a GRPO batch (expert iteration); "none": no warm start.
    source: Literal["none", "oracle", "file", "rejection"] = "none"
    #: Optimizer steps of the warm start (they come before train.steps GRPO steps).
    steps: int = Field(0, ge=0, le=1_000_000)
    lr: float = Field(1e-5, gt=0)
    #: Demonstrations per optimizer step (oracle and file sources).
    batch_size: int = Field(16, ge=1, le=100_000)
    #: Oracle demonstrations to make (training tasks, never held-out ones).
    demos: int = Field(256, ge=1, le=10_000_000)
    #: The demonstration file (source: file).
    file: str | None = None
    #: Restrict the demonstrated tasks like env.params (empty: env.params).
    params: dict[str, Any] = {}
    #: Most new tokens of one demonstrated reply (longer replies are cut).
    max_new_tokens: int = Field(256, ge=1, le=1_000_000)
    #: Start GRPO with a fresh AdamW state (moments and step count zeroed) when the warm
    #: start ends, so its first steps are not partly more SFT (one AdamW through both
    #: leaves 0.9^k of the SFT first moment in GRPO step k). false: one state through both.
    reset_optimizer: bool = True


class TrainConfig(_Section):
    #: Where metrics go besides metrics.jsonl: "tensorboard" (default), "wandb", "trackio"
    #: (each only when its package is installed: a missing one is a config error).
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = ["tensorboard"]
    #: The project name for wandb / trackio (default: the run folder's parent name).
    project: str | None = None
    #: GRPO steps (after the warm-up's steps); 0 with a warm start: supervised only.
    steps: int = Field(20, ge=0, le=10_000_000)
    #: Stop once this many generations (rollouts, those a filter dropped included) are
    #: spent, train.steps staying the upper bound: arms that spend differently per step
    #: (dynamic sampling, a teacher's filters) compared at equal compute. null: no budget.
    max_generations: int | None = Field(None, ge=1)
    #: Held-out evaluation every N steps (and at the start, see eval_start, and the end); 0: only those.
    eval_every: int = Field(0, ge=0)
    #: Evaluate the untrained model at step 0. false (only with a warm start): the first
    #: evaluation is the one after the warm start, which the change is measured from; for
    #: arms of a comparison whose base model needs no evaluation per run (it costs most where
    #: the untrained model writes long answers: 10 min of a 90 min run here).
    eval_start: bool = True
    eval_tasks: int = Field(64, ge=1, le=10_000_000)
    eval_max_new_tokens: int = Field(64, ge=1, le=1_000_000)
    #: Samples per held-out task at train.eval_temperature: the primary number is their
    #: mean success over tasks (mean@k), with pass@k beside it.
    eval_k: int = Field(4, ge=1, le=1024)
    #: Temperature of those samples (null: rollout.temperature, what GRPO optimises).
    eval_temperature: float | None = Field(None, ge=0)
    #: Also play every held-out task once greedily (temperature 0) and report that success.
    eval_greedy: bool = True
    #: Spread the held-out tasks evenly over the cells of the space (every combination of
    #: env.params values; discrete dims only), eval_tasks rounded up to a multiple of the
    #: cell count, so mean@k weights every cell equally (a curriculum's metric); off: tasks
    #: are drawn uniformly over the space.
    eval_per_cell: bool = False
    #: Checkpoint every N steps (and at the end).
    save_every: int = Field(5, ge=1)
    #: Keep only the newest N checkpoints.
    keep_checkpoints: int = Field(2, ge=1)
    #: Log ``kl/ref``, the KL from the sampling policy to the reference model (grpo.kl_ref)
    #: on the step's own samples (k3 estimate per loss token), every N GRPO steps (0:
    #: never). Costs one forward pass of the reference model per measured step, and the
    #: memory of a second copy of the weights.
    kl_every: int = Field(0, ge=0)
    #: Where the trained model (and the transformers sampler, and the reference model)
    #: live: "auto" is the GPU when torch sees one, else the CPU. Under torchrun each
    #: rank takes its own GPU (LOCAL_RANK).
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Numerics of training and generation: "fp32"; "bf16-mixed" (float32 weights and
    #: optimizer, forward passes under bfloat16 autocast); "bf16" (bfloat16 weights too:
    #: half the memory, a less exact optimizer); "auto": bf16-mixed on a GPU, fp32 on a CPU.
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16"] = "auto"
    #: Recompute activations in the backward pass (transformers' gradient checkpointing):
    #: less memory for long episodes, about a third more compute.
    gradient_checkpointing: bool = False
    #: Under torchrun: shard the model's weights, gradients and AdamW state over the ranks
    #: with FSDP2 (``fully_shard`` per decoder layer, see :mod:`agentgym.grpo.fsdp`); each
    #: rank gathers the whole weights only for its rollout and its micro-batches. Off:
    #: every rank holds the whole model (plain data parallel; gradients are summed).
    fsdp: bool = False

    @model_validator(mode="after")
    def _check_eval(self) -> TrainConfig:
        if self.eval_temperature == 0 and self.eval_k > 1:
            raise ValueError(
                "train.eval_temperature=0 is greedy: its train.eval_k samples would all be alike; set train.eval_k=1"
            )
        return self


class RunConfig(_Section):
    run_dir: str = Field("runs/default", min_length=1)
    #: Modules imported before anything else, for envs registered by a plain ``register()``
    #: call at import time rather than through the ``agentgym.envs`` entry point.
    imports: list[str] = []
    seed: int = 0
    model: ModelConfig = ModelConfig()
    env: EnvConfig = EnvConfig()
    teacher: TeacherConfig = TeacherConfig()
    rollout: RolloutConfig = RolloutConfig()
    grpo: GRPOConfig = GRPOConfig()
    train: TrainConfig = TrainConfig()
    multiagent: MultiAgentConfig = MultiAgentConfig()
    warmup: WarmupConfig = WarmupConfig()

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        w = self.warmup
        if w.source == "file" and not w.file:
            raise ValueError("warmup.source=file needs warmup.file (a JSONL of Episodes or chat rows)")
        if w.source != "none" and w.steps == 0:
            raise ValueError(f"warmup.source={w.source} needs warmup.steps >= 1")
        if w.source == "none" and w.steps:
            raise ValueError("warmup.steps needs a warmup.source (oracle, file or rejection)")
        if self.train.steps == 0 and w.steps == 0:
            raise ValueError("nothing to train: train.steps is 0 and there is no warm start (warmup.steps)")
        if not self.train.eval_start and w.steps == 0:
            raise ValueError(
                "train.eval_start=false needs a warm start (warmup.steps): without one no evaluation "
                "would measure the change from the untrained model"
            )
        if self.rollout.max_new_tokens >= self.rollout.max_episode_tokens:
            raise ValueError(
                f"rollout.max_new_tokens ({self.rollout.max_new_tokens}) must be smaller than "
                f"rollout.max_episode_tokens ({self.rollout.max_episode_tokens}): one reply must fit in an episode"
            )
        if self.model.backend in ("vllm", "remote") and self.model.lora is not None:
            raise ValueError(
                f"model.lora cannot be combined with model.backend={self.model.backend} yet (the engine "
                "receives full weights); use full fine-tuning or model.backend=transformers"
            )
        if self.model.backend == "remote" and not self.model.remote.url:
            raise ValueError(
                "model.backend=remote needs model.remote.url, the address `agentgym generate-server` printed"
            )
        if self.multiagent.adapters == "per_role":
            if self.model.lora is None:
                raise ValueError(
                    "multiagent.adapters=per_role needs model.lora (one LoRA adapter per role), e.g. model.lora.r=16"
                )
            if self.rollout.off_policy_steps:
                raise ValueError("multiagent.adapters=per_role cannot be combined with rollout.off_policy_steps yet")
        elif self.multiagent.swap_every:
            raise ValueError("multiagent.swap_every rotates per-role adapters: set multiagent.adapters=per_role")
        return self


def _suggest(keys: list[str], options: list[str]) -> str:
    """A hint for the unknown last of ``keys`` among ``options`` (see :mod:`agentgym.config_hints`)."""
    from agentgym.config_hints import suggest

    trl = {name: " and ".join(targets) for name, (targets, _) in TRL_NAMES.items()}
    return suggest(".".join(keys[:-1]), keys[-1], options, _all_keys(), trl)


@functools.cache
def _all_keys() -> list[str]:
    """Every dotted key of :class:`RunConfig`, sections walked."""
    out: list[str] = []

    def walk(model: Any, prefix: str) -> None:
        for name, field in model.model_fields.items():
            out.append(prefix + name)
            sub = _submodel(field)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")

    walk(RunConfig, "")
    return out


# ----- the names TRL's GRPOConfig users type --------------------------------------------------
def _loss_type(value: Any) -> str:
    table = {"grpo": "seq_mean_token_mean", "bnpo": "token_mean", "dapo": "token_mean", "dr_grpo": "dr_grpo"}
    if value not in table:
        raise ConfigError(f"loss_type {value!r}: TRL's values here are {', '.join(table)}")
    return table[value]


def _scale_rewards(value: Any) -> bool:
    if value in (True, "group", "true"):
        return True
    if value in (False, "none", "false"):
        return False
    raise ConfigError(
        f"scale_rewards {value!r}: only per-group scaling (true/'group') or none (false/'none') exist here"
    )


#: TRL GRPOConfig name -> (where it lives here, value conversion). Accepted at the top level or
#: in any section where that name is not already a field; ``--print-config`` shows the result.
TRL_NAMES: dict[str, tuple[tuple[str, ...], Any]] = {
    "learning_rate": (("grpo.lr",), None),
    "num_generations": (("rollout.group_size",), None),
    "epsilon": (("grpo.eps_low", "grpo.eps_high"), None),  # TRL: epsilon_high defaults to epsilon
    "epsilon_high": (("grpo.eps_high",), None),
    "loss_type": (("grpo.loss_agg",), _loss_type),
    "scale_rewards": (("grpo.scale_std",), _scale_rewards),
    "max_steps": (("train.steps",), None),
    "max_completion_length": (("rollout.max_new_tokens",), None),
    "num_iterations": (("grpo.updates_per_batch",), None),
    "mask_truncated_completions": (("grpo.mask_truncated",), None),
    "beta": (("grpo.beta",), None),
    "temperature": (("rollout.temperature",), None),
    "max_grad_norm": (("grpo.max_grad_norm",), None),
    "weight_decay": (("grpo.weight_decay",), None),
    "seed": (("seed",), None),
}


def _trl_target(keys: list[str]) -> str | None:
    """The TRL name at the end of ``keys`` when it is not a field where it stands."""
    name = keys[-1]
    if name not in TRL_NAMES:
        return None
    model: Any = RunConfig
    for key in keys[:-1]:
        fields = getattr(model, "model_fields", {})
        if key not in fields:
            return None
        model = _submodel(fields[key])
    if model is not None and name in getattr(model, "model_fields", {}):
        return None  # a real field of that section (grpo.beta, rollout.temperature)
    return name


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def _map_trl(data: dict[str, Any]) -> None:
    """Move TRL-named keys of a loaded YAML mapping to where they live here (epsilon before epsilon_high)."""
    found: list[tuple[list[str], Any]] = []

    def walk(node: dict[str, Any], prefix: list[str]) -> None:
        for key in list(node):
            keys = [*prefix, key]
            if _trl_target(keys) is not None:
                found.append((keys, node.pop(key)))
            elif isinstance(node.get(key), dict) and len(keys) < 3:
                walk(node[key], keys)

    walk(data, [])
    for keys, value in sorted(found, key=lambda kv: kv[0][-1] == "epsilon_high"):
        targets, convert = TRL_NAMES[keys[-1]]
        for target in targets:
            _set_path(data, target, convert(value) if convert else value)


def apply_override(data: dict[str, Any], dotted: str) -> None:
    """Set ``a.b.c=value`` in a nested dict, checking each key against :class:`RunConfig`.

    TRL's names (``learning_rate``, ``num_generations``, ``loss_type``...) are accepted
    anywhere they are not a field already and set what they mean here (:data:`TRL_NAMES`).
    """
    if "=" not in dotted:
        raise ConfigError(f"override {dotted!r} must look like key.path=value")
    path, raw = dotted.split("=", 1)
    keys = path.strip().split(".")
    trl = _trl_target(keys)
    if trl is not None:
        targets, convert = TRL_NAMES[trl]
        for target in targets:
            apply_override(data, f"{target}={raw}")
            if convert is not None:
                _set_path(data, target, convert(_read_value(data, target)))
        return
    model: Any = RunConfig
    node = data
    for i, key in enumerate(keys):
        fields = getattr(model, "model_fields", None)
        if fields is not None and key not in fields:
            where = ".".join(keys[:i]) or "the top level"
            raise ConfigError(
                f"unknown config key {path!r}: {key!r} is not in {where}; valid: "
                f"{sorted(fields)}{_suggest(keys[: i + 1], list(fields))}"
            )
        if i == len(keys) - 1:
            try:
                node[key] = load_yaml(raw) if raw.strip() else None
            except (yaml.YAMLError, RecursionError) as exc:
                why = " ".join(str(exc).split())[:200]
                raise ConfigError(
                    f"override {dotted!r}: the value is not valid YAML ({why}); quote the whole override"
                ) from None
            _check_shape(node[key], f"override {dotted!r}")
            return
        sub = node.get(key)
        if not isinstance(sub, dict):
            sub = {}
            node[key] = sub
        node = sub
        if fields is not None:
            model = _submodel(fields[key])


#: How deep a config may nest (sections, then option mappings and lists inside them).
MAX_CONFIG_DEPTH = 32


def _check_shape(data: Any, where: str) -> None:
    """Refuse self-referencing YAML aliases and absurd nesting before anything walks the data."""
    stack: list[tuple[Any, int, frozenset[int]]] = [(data, 0, frozenset())]
    while stack:
        node, depth, above = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if id(node) in above:
            raise ConfigError(f"{where} holds a YAML alias that refers to itself")
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where} nests deeper than {MAX_CONFIG_DEPTH} levels: not a config")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1, above | {id(node)}) for c in children)


def import_modules(names: list[str], where: str = "imports") -> None:
    """Import each module (an env registry's side effects); raise :class:`ConfigError` naming a failure.

    The current folder goes first on ``sys.path``, as ``python -m`` puts it: the ``agentgym``
    script alone would not find ``my_envs.py`` beside the user.
    """
    import importlib
    import os
    import sys

    if not names:
        return
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the last import (tests, notebooks)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or the module itself failing
            hint = _import_hint(name, exc, cwd)
            raise ConfigError(f"{where}: cannot import {name!r}: {type(exc).__name__}: {exc}{hint}") from None


def _import_hint(name: str, exc: Exception, cwd: str) -> str:
    """How to make a module that was not found importable (empty when the module itself failed)."""
    if name.endswith(".py") or "/" in name or "\\" in name:
        path = Path(name)
        return f" (give a module name, not a file: {path.stem!r}, run from the folder that holds {path.name})"
    if not isinstance(exc, ModuleNotFoundError) or exc.name is None or not name.startswith(exc.name):
        return ""  # found, but its own code or one of its imports failed: the message says which
    first = name.split(".")[0]
    return (
        f" (looked in the current folder {cwd} and on sys.path: run from the folder that holds {first}.py "
        f"or {first}/, or add that folder to PYTHONPATH, or pip install the package)"
    )


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: ``*name`` shares a node, so nine nested lists of
    ten aliases (a "billion laughs" of 500 bytes) become 10^9 values for whoever walks them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not allowed in an agentgym config: write the value out",
                mark,
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses aliases (see :class:`_NoAliasLoader`)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults), apply overrides, validate; raise :class:`ConfigError`."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = load_yaml(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except RecursionError:
            raise ConfigError(f"{p} nests too deeply to be a config") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from None
        _check_shape(loaded, str(p))
        if isinstance(loaded, dict):
            _map_trl(loaded)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    for item in overrides or []:
        apply_override(data, item)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown config key {loc!r}{_suggest_for(err['loc'])}")
            elif err["type"] == "value_error" and isinstance(err.get("input"), dict):
                # a section's own check: its message names the keys and values; the input is the whole section
                problems.append(str(err.get("ctx", {}).get("error", err["msg"])))
            else:
                problems.append(f"{loc or 'config'}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid config: " + "; ".join(problems)) from None


def _submodel(field: Any) -> Any:
    """The config section class of a field (also through ``Section | None``), else None."""
    ann = field.annotation
    return next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _suggest_for(loc: tuple) -> str:
    model: Any = RunConfig
    for key in loc[:-1]:
        fields = getattr(model, "model_fields", {})
        if key not in fields:
            return ""
        model = _submodel(fields[key])
    fields = getattr(model, "model_fields", None)
    return f"; valid: {sorted(fields)}{_suggest([str(x) for x in loc], list(fields))}" if fields else ""


def _read_value(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for key in dotted.split("."):
        node = node[key]
    return node


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
