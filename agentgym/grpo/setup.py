"""Building a training run from its config: every check first, then the model and its parts.

:func:`build` checks what can be checked without a model (env id, teacher options,
multi-agent settings, backends) and only then loads the model, so a broken config fails
in a second. It returns :class:`Parts`, which the trainer only wires together.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from agentgym.config import ConfigError, RunConfig, import_modules
from agentgym.curriculum import DynamicSampling, PassRateBand, Teacher, make_teacher, run_options
from agentgym.grpo.checkpoint import rng_state, set_rng_state
from agentgym.grpo.collect import Collector
from agentgym.grpo.distributed import BroadcastTeacher, World, init_world
from agentgym.grpo.update import UpdateSettings
from agentgym.machine import check_backends, check_report_to
from agentgym.multiagent import TextAECEnv, TextParallelEnv, is_multiagent
from agentgym.placement import resolve_device, resolve_precision
from agentgym.policies.base import SamplingParams
from agentgym.policies.models import ModelNotAvailable, check_model_name, load_model
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.registry import make
from agentgym.registry import spec as env_spec
from agentgym.rollout import make_pool, make_runner
from agentgym.tasks import TaskSpec, TrainingTasks

#: Seed of the held-out tasks a run evaluates on (``agentgym eval --seed 1234`` gives the same).
EVAL_SEED = 1234


@dataclass
class EnvFacts:
    """What the trainer needs to know about the env, read off one probe instance."""

    max_turns: int
    #: Seats of a multi-agent game (empty for a single-agent env).
    seats: tuple[str, ...]
    #: The most moves the policy makes in one episode: ``max_turns`` alone; in a game one
    #: seat's share of them (:attr:`~agentgym.multiagent.TextAECEnv.max_seat_moves`).
    policy_moves: int = 0

    def __post_init__(self) -> None:
        if not self.policy_moves:
            self.policy_moves = self.max_turns


@dataclass
class Parts:
    """A run's components. ``policy`` generates with the trained weights (evaluation);
    ``sampler`` generates training batches: the same object on-policy, a one-update-old
    copy off-policy (a vLLM engine is both)."""

    tasks: TrainingTasks
    teacher: Teacher
    model: Any
    tokenizer: Any
    ref_model: Any
    adapters: Any
    policy: Any
    sampler: Any
    optimizer: torch.optim.Optimizer
    pool: Any
    collector: Collector
    update: UpdateSettings
    env: EnvFacts
    eval_tasks: list[TaskSpec]
    #: This process among the training processes (rank 0 of 1 without torchrun).
    world: World = field(default_factory=World)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def check_config(cfg: RunConfig) -> tuple[TrainingTasks, Teacher, EnvFacts]:
    """Everything that can fail without a model, as :class:`ConfigError`."""
    import_modules(cfg.imports)
    try:
        env_cls = env_spec(cfg.env.id).family_class()
    except KeyError as exc:
        raise ConfigError(
            f"env.id: {exc.args[0] if exc.args else exc}"
        ) from None  # a wrong env id fails before the model loads
    except TypeError as exc:  # a factory function: no class to read the task space from
        raise ConfigError(f"env.id: {exc}") from None
    try:
        TrainingTasks(env_cls.param_space, env_cls.held_out, cfg.env.params)
    except ValueError as exc:
        hint = ""
        names = set(cfg.env.params) - {d.name for d in env_cls.param_space.dims}
        if names:
            hint = f" (did env.id change? set env.params for {cfg.env.id} too, e.g. env.params={{}})"
        raise ConfigError(f"env.params: {exc}{hint}") from None
    try:
        probe = make(cfg.env.id, **cfg.env.kwargs)
    except TypeError as exc:
        raise ConfigError(f"env.kwargs: {_kwarg_problem(env_cls, cfg.env.kwargs, exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"env.kwargs: {exc}") from None
    # The probe (made with the run's kwargs) names each task's content from here on: training
    # never draws held-out content and evaluation draws only held-out content.
    tasks = probe.training_tasks(cfg.env.params)
    try:
        held_out_tasks(tasks, cfg)
    except ValueError as exc:
        raise ConfigError(f"train.eval_tasks: {exc}") from None
    try:
        check_model_name(cfg.model.name)
    except ModelNotAvailable as exc:
        raise ConfigError(f"model.name: {exc}") from None
    try:
        # make() is annotated TextEnv but builds multi-agent games too; is_multiagent tells them.
        game = cast(TextAECEnv | TextParallelEnv, probe) if is_multiagent(probe) else None
        seats = tuple(game.possible_agents) if game is not None else ()
        if game is not None and seats:
            try:
                game.check_players(cfg.multiagent.controllers, cfg.multiagent.eval_opponents)
            except ValueError as exc:
                raise ConfigError(f"multiagent: {exc}") from None
        elif cfg.multiagent.adapters == "per_role":
            raise ConfigError(f"multiagent.adapters=per_role needs a multi-agent game; {cfg.env.id} has one agent")
        max_turns = int(getattr(probe, "max_turns", 1))
        facts = EnvFacts(max_turns, seats, int(game.max_seat_moves) if game is not None and seats else max_turns)
    finally:
        probe.close()
    if "outcome" in cfg.teacher.options:
        raise ConfigError(
            "teacher.options.outcome is now teacher.outcome (success, reward or part:<name>), "
            "read by every teacher and filter"
        )
    # Unset options scaled to this run's length; the user's own options win.
    options = {**run_options(cfg.teacher.name, teacher_steps(cfg), cfg.rollout.tasks_per_step), **cfg.teacher.options}
    try:  # a wrong teacher option fails before the model loads
        teacher = make_teacher(cfg.teacher.name, tasks, seed=cfg.seed, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"teacher: {exc}") from None
    if cfg.model.lora is not None and cfg.warmup.steps and cfg.grpo.kl_ref == "warm_start":
        if cfg.grpo.beta > 0 or cfg.train.kl_every > 0:
            raise ConfigError(
                "grpo.kl_ref: warm_start anchors to the warm-started weights, which with LoRA are the base plus "
                "an adapter; that is not supported yet: set grpo.kl_ref: base (the model as loaded)"
            )
    check_backends(cfg)  # a missing Ray, vLLM or GPU is named before the model loads
    check_report_to(cfg)
    return tasks, teacher, facts


def held_out_tasks(tasks: TrainingTasks, cfg: RunConfig) -> list[TaskSpec]:
    """The run's held-out evaluation tasks (train.eval_tasks, per cell with train.eval_per_cell)."""
    if cfg.train.eval_per_cell:
        return tasks.held_out_specs_per_cell(cfg.train.eval_tasks, seed=EVAL_SEED)
    return tasks.held_out_specs(cfg.train.eval_tasks, seed=EVAL_SEED)


def teacher_steps(cfg: RunConfig) -> int:
    """How many batches the teacher chooses in this run: the GRPO steps, and the warm-start
    steps that sample like GRPO (``warmup.source: rejection``)."""
    steps = cfg.train.steps
    if cfg.train.max_generations is not None:  # the budget ends the run first, at about this step
        per_step = cfg.rollout.tasks_per_step * cfg.rollout.group_size
        steps = min(steps, -(-cfg.train.max_generations // per_step))
    return steps + (cfg.warmup.steps if cfg.warmup.source == "rejection" else 0)


def _kwarg_problem(env_cls: type, given: dict[str, Any], exc: TypeError) -> str:
    """Name the env kwargs that do not exist, with the ones that do."""
    import inspect

    accepted: set[str] = set()
    for klass in env_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    unknown = sorted(set(given) - accepted)
    if not unknown:
        return str(exc)
    close = {u: difflib.get_close_matches(u, sorted(accepted), n=1) for u in unknown}
    said = ", ".join(f"{u!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for u, c in close.items())
    return f"{env_cls.__name__} takes no {said}; it takes {', '.join(sorted(accepted))}"


def build(cfg: RunConfig) -> Parts:
    tasks, teacher, facts = check_config(cfg)
    device = resolve_device(cfg.train.device)
    world = init_world(device.type)
    if world.distributed:
        _check_distributed(cfg, facts)
        teacher = BroadcastTeacher(teacher, world)
    weights_dtype, autocast_dtype = resolve_precision(cfg.train.precision, device)
    torch.manual_seed(cfg.seed)  # the same on every rank: the same initial weights (LoRA too)
    np.random.seed(cfg.seed)
    model, tok = load_model(cfg.model.name, seed=cfg.seed, dtype=str(weights_dtype).removeprefix("torch."))
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # generation passes its own cache; training needs none
    model, adapters = _with_lora(cfg, model, facts.seats)
    model.eval()  # dropout only where LoRA dropout is asked for (UpdateSettings.train_mode)
    ref_model = None
    if cfg.grpo.beta > 0 or cfg.train.kl_every > 0:
        saved = rng_state()  # loading the reference draws nothing the run would otherwise draw
        ref_model, _ = load_model(cfg.model.name, seed=cfg.seed, dtype=str(weights_dtype).removeprefix("torch."))
        ref_model.requires_grad_(False)
        set_rng_state(saved)
    model.to(device)  # vLLM's engine (model.backend=vllm) shares this rank's GPU
    if ref_model is not None:
        ref_model.to(device)
    if cfg.train.fsdp:  # before the optimizer: AdamW's state lives on the shards
        from agentgym.grpo.fsdp import shard

        model = shard(model, world)
    policy = _policy(cfg, model, tok, autocast_dtype, world, device)
    if adapters is not None:
        from agentgym.policies.roles import RolePolicy

        policy = RolePolicy(policy, adapters)
    off_policy = cfg.rollout.off_policy_steps > 0
    sampler = policy
    if off_policy and cfg.model.backend == "transformers":
        sampler = TransformersPolicy(
            copy.deepcopy(model).requires_grad_(False), tok, seed=cfg.seed, autocast_dtype=autocast_dtype
        )
    params = [p for p in model.parameters() if p.requires_grad]
    g = cfg.grpo
    optimizer = torch.optim.AdamW(params, lr=g.lr, betas=g.betas, weight_decay=g.weight_decay)
    ro = cfg.rollout
    pool = make_pool(
        ro.backend,
        num_workers=ro.ray.num_workers,
        address=ro.ray.address,
        num_cpus_per_worker=ro.ray.num_cpus_per_worker,
    )
    sampling = SamplingParams(max_new_tokens=ro.max_new_tokens, temperature=ro.temperature)
    runner = make_runner(
        cfg.env.id,
        sampler,
        sampling,
        max_episode_tokens=ro.max_episode_tokens,
        env_kwargs=cfg.env.kwargs,
        pool=pool,
        controllers=cfg.multiagent.controllers or None,
        seed=cfg.seed,
    )
    filters: list[Any] = []
    if g.dynamic_sampling:
        filters.append(DynamicSampling())
    if cfg.teacher.pass_rate_band is not None:
        filters.append(PassRateBand(*cfg.teacher.pass_rate_band))
    collector = Collector(
        runner,
        teacher,
        filters,
        env_id=cfg.env.id,
        tasks_per_step=ro.tasks_per_step,
        group_size=ro.group_size,
        max_refill_rounds=g.max_refill_rounds,
        scale_std=g.scale_std,
        outcome=cfg.teacher.outcome,
        seed=cfg.seed,
        world=world,
    )
    lora = cfg.model.lora
    update = UpdateSettings(
        loss_agg=g.loss_agg,
        eps_low=g.eps_low,
        eps_high=g.eps_high,
        temperature=ro.temperature,
        micro_batch_size=g.micro_batch_size,
        share_prefix=g.share_prefix,
        max_grad_norm=g.max_grad_norm,
        importance_weights=importance_weights_on(cfg),
        is_cap=g.is_cap,
        beta=g.beta,
        kl_estimator=g.kl_estimator,
        updates_per_batch=g.updates_per_batch,
        mini_batches=g.mini_batches,
        train_mode=lora is not None and lora.dropout > 0,
        autocast=None if autocast_dtype is None else str(autocast_dtype).removeprefix("torch."),
    )
    eval_tasks = held_out_tasks(tasks, cfg)
    return Parts(
        tasks,
        teacher,
        model,
        tok,
        ref_model,
        adapters,
        policy,
        sampler,
        optimizer,
        pool,
        collector,
        update,
        facts,
        eval_tasks,
        world,
        device,
    )


def _check_distributed(cfg: RunConfig, facts: EnvFacts) -> None:
    """What torchrun runs cannot do yet, named before the model loads."""
    if cfg.model.backend == "vllm" and cfg.model.vllm.tensor_parallel_size > 1:
        raise ConfigError(
            "model.vllm.tensor_parallel_size > 1 under torchrun is not implemented: each rank runs its own "
            "vLLM engine on its own GPU (tensor_parallel_size 1); for a model that needs several GPUs to "
            "generate, serve it on other GPUs (agentgym generate-server --backend vllm) and set model.backend=remote"
        )


def importance_weights_on(cfg: RunConfig) -> bool:
    """Whether the update applies truncated importance weights: as configured, and by
    default whenever another engine samples (vLLM, or a one-update-old copy off-policy)."""
    if cfg.grpo.importance_weights is not None:
        return cfg.grpo.importance_weights
    return cfg.rollout.off_policy_steps > 0 or cfg.model.backend in ("vllm", "remote")


def _with_lora(cfg: RunConfig, model: Any, seats: tuple[str, ...]) -> tuple[Any, Any]:
    """The model with LoRA adapters when asked (one per seat with ``adapters: per_role``)."""
    lc = cfg.model.lora
    if lc is None:
        return model, None
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=lc.r,
        lora_alpha=lc.alpha,  # type: ignore[arg-type]  # peft annotates it int; it only divides (alpha / r)
        lora_dropout=lc.dropout,
        target_modules=lc.target_modules,
        task_type="CAUSAL_LM",
    )
    if cfg.multiagent.adapters == "per_role":
        from agentgym.policies.roles import RoleAdapters

        adapters = RoleAdapters(model, seats, lora)
        return adapters.model, adapters
    return get_peft_model(model, lora), None


def _policy(cfg: RunConfig, model: Any, tok: Any, autocast_dtype: Any, world: Any, device: Any) -> Any:
    """Who generates: the trained model, a vLLM engine on this rank's GPU, or a generation server."""
    if cfg.model.backend == "transformers":
        return TransformersPolicy(model, tok, seed=cfg.seed, autocast_dtype=autocast_dtype)
    if cfg.model.backend == "remote":
        from agentgym.policies.remote import RemotePolicy

        ro = cfg.model.remote
        # rank 0 uploads the weights; the other ranks wait until the server holds them
        return RemotePolicy(ro.server_url(), tok, timeout_s=ro.timeout_s, chunk_mb=ro.chunk_mb, writer=world.main)
    import torch

    from agentgym.policies.vllm_policy import VLLMPolicy, vllm_model_path

    vo = cfg.model.vllm
    extra: dict[str, Any] = {"tensor_parallel_size": vo.tensor_parallel_size}
    if world.distributed:
        # One engine per rank, inside this process, on this rank's GPU (vLLM's torchrun mode).
        if device.type == "cuda":
            torch.cuda.set_device(device)
        extra = {"tensor_parallel_size": 1, "distributed_executor_backend": "external_launcher"}
    return VLLMPolicy(
        vllm_model_path(cfg.model.name, seed=cfg.seed),
        tok,
        seed=cfg.seed + world.rank,
        gpu_memory_utilization=vo.gpu_memory_utilization,
        enable_sleep_mode=vo.enable_sleep_mode,
        dtype=vo.dtype,
        max_model_len=vo.max_model_len,
        kv_cache_gib=vo.kv_cache_gib,
        **extra,
    )
