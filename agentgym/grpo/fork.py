"""Start a run from another run's warm start, as if it had run the warm start itself.

Arms of a comparison that differ only after the warm start (the GRPO learning rate, the
batch, the temperature, a KL anchor, the teacher) train the same warm start and evaluate
it twice (before and after) on every seed; that is a third of a 100-step ladder run here.
A run with a warm start keeps its state at the end of it in ``RUN/warm_start/`` (weights,
evals, RNG; the optimizer's moments only where GRPO keeps them, ``warmup.reset_optimizer:
false``). :func:`fork_warm_start` starts a new run from there: it checks that the two
configs agree on everything that decides the warm start, copies the log lines and eval
reports up to its end, and leaves a checkpoint at that step, which ``--resume`` then
continues. Resuming is exact, so the forked run is the run it would have been from
scratch, bit for bit (``tests/test_fork.py`` checks the weights and every log line).

Settings that act only after the warm start are listed in :data:`AFTER_WARM_START`. The
teacher is not among the checked settings: it draws nothing while demonstrations train
(``warmup.source`` oracle or file; a rejection warm start samples like GRPO and cannot be
shared), so the forked run builds its own teacher from its own config.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from agentgym.config import ConfigError, RunConfig, dump_config, load_config
from agentgym.grpo.checkpoint import COMPLETE, latest_checkpoint, load_state, save_state
from agentgym.grpo.runlog import _flatten  # dotted keys of a nested config, as the run log writes them

__all__ = [
    "AFTER_WARM_START",
    "WARM_START_DIR",
    "find_donor",
    "fork_warm_start",
    "warm_start_checkpoint",
    "warm_start_key",
]

#: The folder of a run that holds its state at the end of the warm start.
WARM_START_DIR = "warm_start"

#: Config fields (dotted; a section name covers all of it) that act only after the warm
#: start of an oracle or file warm start, so two runs that differ only in these share it.
AFTER_WARM_START = (
    "run_dir",
    "teacher",
    "grpo.objective",
    "grpo.lr",
    "grpo.eps_low",
    "grpo.eps_high",
    "grpo.loss_agg",
    "grpo.scale_std",
    "grpo.beta",
    "grpo.kl_estimator",
    "grpo.kl_ref",
    "grpo.is_cap",
    "grpo.importance_weights",
    "grpo.dynamic_sampling",
    "grpo.max_refill_rounds",
    "grpo.mask_truncated",
    "grpo.updates_per_batch",
    "grpo.mini_batches",
    "rollout.tasks_per_step",
    "rollout.group_size",
    "rollout.max_new_tokens",
    # rollout.temperature is the held-out eval's temperature unless train.eval_temperature
    # is set: the key holds the eval temperature itself (see warm_start_key).
    "rollout.temperature",
    "train.steps",
    "train.eval_every",
    "train.save_every",
    "train.keep_checkpoints",
    "train.report_to",
    "train.project",
    "train.kl_every",
)


def _after_warm_start(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") for name in AFTER_WARM_START)


def warm_start_key(cfg: RunConfig) -> dict[str, Any]:
    """Every setting that decides a run's warm start and its two evaluations, flat."""
    flat = _flatten(cfg.model_dump(mode="json"))
    key = {k: v for k, v in flat.items() if not _after_warm_start(k)}
    key["train.eval_temperature"] = (
        cfg.rollout.temperature if cfg.train.eval_temperature is None else cfg.train.eval_temperature
    )
    return key


def warm_start_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's kept end-of-warm-start checkpoint, or None."""
    return latest_checkpoint(Path(run_dir) / WARM_START_DIR)


def can_share(cfg: RunConfig) -> bool:
    """Whether a run's warm start can be shared at all: demonstrations, on one process."""
    return cfg.warmup.steps > 0 and cfg.warmup.source in ("oracle", "file")


def find_donor(runs: Path, cfg: RunConfig) -> Path | None:
    """A run folder under ``runs`` whose kept warm start is this config's (the first by name)."""
    if not can_share(cfg) or not runs.is_dir():
        return None
    for run in sorted(p for p in runs.iterdir() if p.is_dir()):
        if run.resolve() == Path(cfg.run_dir).resolve() or warm_start_checkpoint(run) is None:
            continue
        try:
            donor = load_config(run / "config.yaml")
        except (OSError, ConfigError):
            continue
        if not differences(donor, cfg):
            return run
    return None


def differences(donor: RunConfig, cfg: RunConfig) -> list[str]:
    """The settings that decide the warm start and differ between the two configs."""
    a, b = warm_start_key(donor), warm_start_key(cfg)
    return [f"{k}: {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def fork_warm_start(donor_dir: str | Path, cfg: RunConfig) -> Path:
    """Make ``cfg.run_dir`` a run stopped at the end of the warm start of ``donor_dir``.

    Returns the new run folder; continue it with ``resume_run``. Raises ConfigError when
    the warm start cannot be shared (another setting decides it, none was kept, the new
    folder already holds a run).
    """
    donor_dir, run_dir = Path(donor_dir), Path(cfg.run_dir)
    if not can_share(cfg):
        raise ConfigError(
            "only a warm start on demonstrations (warmup.steps > 0, warmup.source oracle or file) can be shared; "
            f"this config has warmup.steps={cfg.warmup.steps}, source={cfg.warmup.source}"
        )
    if donor_dir.resolve() == run_dir.resolve():
        raise ConfigError(f"{run_dir} would start from its own warm start")
    if (run_dir / "config.yaml").exists() or (run_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{run_dir} already holds a run; choose another run_dir")
    try:
        donor_cfg = load_config(donor_dir / "config.yaml")
    except (OSError, ConfigError) as exc:
        raise ConfigError(f"{donor_dir}: no readable run config ({exc})") from None
    ck = warm_start_checkpoint(donor_dir)
    if ck is None:
        raise ConfigError(f"{donor_dir} kept no warm start ({donor_dir / WARM_START_DIR} is missing or unfinished)")
    diffs = differences(donor_cfg, cfg)
    if diffs:
        raise ConfigError(f"{donor_dir}'s warm start is not this run's: " + "; ".join(diffs[:6]))
    step = int(ck.name.removeprefix("step_"))
    if step != cfg.warmup.steps or (ck / "pending.json").exists():
        raise ConfigError(f"{ck} is not the end of a warm start of {cfg.warmup.steps} steps")
    run_dir.mkdir(parents=True, exist_ok=True)
    before = set(run_dir.iterdir())  # a comparison's provenance.json may already be there
    try:
        _link_tree(ck, run_dir / WARM_START_DIR / ck.name)
        _link_tree(ck, run_dir / "checkpoints" / ck.name, fresh={"state.json", "state.safetensors"})
        # The teacher starts fresh from this run's own config (it drew nothing so far).
        state = load_state(run_dir / "checkpoints" / ck.name)
        state.pop("teacher", None)
        save_state(run_dir / "checkpoints" / ck.name, state)
        for name in ("metrics.jsonl", "teacher.jsonl"):
            if (donor_dir / name).exists():  # lines past the warm start go at --resume (RunLog.trim)
                shutil.copyfile(donor_dir / name, run_dir / name)
        for report in sorted((donor_dir / "evals").glob("step_*.json")):
            if int(report.stem.removeprefix("step_")) <= step:
                (run_dir / "evals").mkdir(exist_ok=True)
                shutil.copyfile(report, run_dir / "evals" / report.name)
        (run_dir / "forked_from.txt").write_text(f"{donor_dir.resolve()} {ck.name}\n")
        (run_dir / "config.yaml").write_text(dump_config(cfg))  # last: the folder is now a run
    except BaseException:  # leave the folder as it was
        for made in set(run_dir.iterdir()) - before:
            shutil.rmtree(made) if made.is_dir() else made.unlink()
        raise
    return run_dir


def _link_tree(src: Path, dst: Path, fresh: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Hard-link ``src``'s files into ``dst`` (copy where links cannot be made, and the
    ``fresh`` names always: they get rewritten)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        target = dst / item.name
        if item.name in fresh:
            shutil.copyfile(item, target)
            continue
        try:
            os.link(item, target)
        except OSError:
            shutil.copyfile(item, target)
    if not (dst / COMPLETE).exists():
        raise ConfigError(f"{src} is not a complete checkpoint")
