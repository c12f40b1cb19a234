"""Planning, training and reading the runs of a comparison (arms x seeds of ``agentgym train``).

A comparison is one config, a few **arms** (each a name and its config overrides) and a
list of **seeds**. Each (arm, seed) pair is one ``agentgym train`` run in its own
subprocess, in ``RUNS/<arm>-s<seed>``, run seed by seed (every arm at the first seed,
then at the next), so a comparison cut short still has the same seeds in every arm.
A run whose ``summary.json`` exists is read, not rerun; a run that started but did not
finish is continued with ``agentgym train --resume``. Running the same command again
therefore picks up where an interrupted comparison stopped. A run folder whose
``config.yaml`` differs from what its arm asks for now is an error, never silently
mixed in.

Each run's launches are recorded in ``provenance.json`` in its folder (command, code
commit and dirty state, machine, times); the report (:mod:`agentgym.compare.report`)
carries that record and the run's resolved ``config.yaml``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from agentgym.compare.curves import run_curve

#: Where reports go by default: a folder that is committed, so the numbers behind the
#: README's tables live in the repository (the run folders under runs/ do not).
RESULTS_DIR = Path("results") / "compare"
RUNS_DIR = Path("runs") / "compare"
DEFAULT_METRIC = "heldout_success_after"
#: Keys the comparison sets itself for every run.
RESERVED_KEYS = ("seed", "run_dir")
_ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class CompareError(ValueError):
    """A comparison that cannot be planned, run or read (the message says what to change)."""


class CompareInterrupted(RuntimeError):
    """Ctrl-C stopped a training run; it saved a checkpoint and the same command continues it."""


@dataclass
class Arm:
    """One method of a comparison: a name (also its run folders' prefix) and its config overrides."""

    name: str
    overrides: list[str] = field(default_factory=list)


def parse_arm(text: str) -> Arm:
    """An arm from ``"NAME key=value ..."`` (shell quoting, so a value may hold spaces)."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise CompareError(f"--arm {text!r}: {exc}") from None
    if not words:
        raise CompareError("--arm needs a name, then its overrides: --arm 'NAME key=value ...'")
    return Arm(words[0], words[1:])


def load_arms_file(path: str | Path) -> list[Arm]:
    """Arms from a YAML mapping, in file order: each name maps to a list of ``key=value``
    strings or to a mapping of dotted keys to values (null or [] for no overrides)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CompareError(f"cannot read arms file {p}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or not data:
        raise CompareError(f"{p} must map arm names to overrides, e.g.\nrandom: [teacher.name=random]")
    arms = []
    for name, spec in data.items():
        if spec is None:
            spec = []
        if isinstance(spec, dict):
            # JSON is valid YAML, so each value goes back through the override parser unchanged.
            spec = [f"{key}={json.dumps(value)}" for key, value in spec.items()]
        if not isinstance(spec, list) or not all(isinstance(s, str) for s in spec):
            raise CompareError(
                f"{p}: arm {name!r} must be a list of 'key=value' strings or a mapping of keys to values"
            )
        arms.append(Arm(str(name), spec))
    return arms


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0,1,2"`` or ``"0 1 2"``; an empty list or a repeated seed is an error."""
    items = [s for s in re.split(r"[,\s]+", text.strip()) if s]
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise CompareError(f"--seeds {text!r}: seeds are integers, e.g. --seeds 0,1,2") from None
    if not seeds:
        raise CompareError("no seeds: give at least one, e.g. --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise CompareError(f"--seeds {text!r} repeats a seed")
    return seeds


@dataclass
class Plan:
    """What to compare: the config, overrides for every arm, the arms, seeds and where things go.

    ``train_command`` is the command that trains one run; the config, overrides and
    ``run_dir``/``seed`` (or ``--resume RUN``) are appended to it.
    """

    config: str
    arms: list[Arm]
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)
    baseline: str | None = None
    metric: str = DEFAULT_METRIC
    runs: Path | None = None
    train_command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "agentgym", "train"])
    #: Start a new run from the kept warm start of a run in the same folder (or a sibling
    #: comparison's folder) whose settings
    #: up to the end of the warm start are the same (same seed included): the same run,
    #: bit for bit, without training and evaluating that warm start again.
    share_warm_start: bool = True
    #: Earlier comparison reports whose finished runs count as this comparison's (``--from``):
    #: a run folder lost with its machine is still a seed of the comparison. A run folder
    #: that has finished wins over a report's record of the same arm and seed.
    earlier: list[Path] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return self.runs if self.runs is not None else RUNS_DIR / Path(self.config).stem

    def run_dir(self, arm: Arm, seed: int) -> Path:
        return self.runs_dir / f"{arm.name}-s{seed}"

    def run_overrides(self, arm: Arm, seed: int) -> list[str]:
        return [*self.overrides, *arm.overrides, f"seed={seed}", f"run_dir={self.run_dir(arm, seed)}"]


def check_plan(plan: Plan) -> dict[tuple[str, int], dict[str, Any]]:
    """Validate a plan before anything runs; return each run's resolved config (a dict).

    Every arm's overrides go through the config loader, so an unknown key or a bad value
    is an error naming the arm before the first run starts.
    """
    from agentgym.config import ConfigError, load_config

    if not plan.seeds:
        raise CompareError("no seeds: give at least one, e.g. --seeds 0,1,2")
    if len(set(plan.seeds)) != len(plan.seeds):
        raise CompareError(f"seeds {plan.seeds} repeat a seed")
    if not plan.arms:
        raise CompareError("no arms: give --arm 'NAME key=value ...' (or --arms FILE)")
    names = [a.name for a in plan.arms]
    for name in names:
        if not _ARM_NAME.fullmatch(name):
            raise CompareError(f"arm name {name!r}: use letters, digits and _ . + - (it names run folders)")
    if len(set(names)) != len(names):
        raise CompareError(f"arm names repeat: {names}")
    if plan.baseline is not None and plan.baseline not in names:
        raise CompareError(f"baseline {plan.baseline!r} is not an arm; arms: {names}")
    resolved = {}
    for arm in plan.arms:
        for item in [*plan.overrides, *arm.overrides]:
            if "=" in item and item.split("=", 1)[0].strip() in RESERVED_KEYS:
                where = f"arm {arm.name!r}" if item in arm.overrides else "the overrides"
                raise CompareError(
                    f"{where}: {item!r}: the comparison sets seed and run_dir itself (see --seeds, --runs)"
                )
        for seed in plan.seeds:
            try:
                cfg = load_config(plan.config, plan.run_overrides(arm, seed))
            except ConfigError as exc:
                raise CompareError(f"arm {arm.name!r}: {exc}") from None
            resolved[(arm.name, seed)] = cfg.model_dump(mode="json")
    return resolved


# ----- provenance: the code and the machine a run was made with ---------------------------


def code_version() -> dict[str, Any]:
    """The git commit of the agentgym source and whether tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    info: dict[str, Any] = {"agentgym": _version("agentgym"), "commit": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        info["note"] = f"{root} is not a git checkout"
        return info
    info["commit"] = commit.strip()
    # Untracked files (results, scratch runs) are not the code; changed tracked files are.
    changed = (git("status", "--porcelain", "--untracked-files=no") or "").splitlines()
    info["dirty"] = bool(changed)
    info["dirty_files"] = [line[3:] for line in changed][:50]
    return info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine and software a run was made on: CPU model, cores, GPUs, python and torch."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
    }
    if shutil.which("nvidia-smi"):
        try:
            res = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
            )
            info["gpus"] = [g.strip() for g in res.stdout.splitlines() if g.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)  # a Ctrl-C never leaves half a file


# ----- running ----------------------------------------------------------------------------


def run_state(run_dir: Path) -> str:
    """``finished`` (summary.json written), ``started`` (config.yaml written: resume it) or ``new``."""
    if (run_dir / "summary.json").exists():
        return "finished"
    return "started" if (run_dir / "config.yaml").exists() else "new"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def check_run_config(run_dir: Path, planned: dict[str, Any]) -> None:
    """Raise :class:`CompareError` when the run folder's config differs from what its arm asks for."""
    from agentgym.config import ConfigError, load_config

    path = run_dir / "config.yaml"
    if not path.exists():
        return
    try:
        found = load_config(path).model_dump(mode="json")
    except ConfigError as exc:
        raise CompareError(f"{path} cannot be read as a config ({exc}); delete {run_dir} to rerun it") from None
    diffs = _config_diffs(found, planned)
    if diffs:
        raise CompareError(
            f"{run_dir} was made with another config ({'; '.join(diffs[:5])}"
            f"{'; ...' if len(diffs) > 5 else ''}): delete it to rerun it, or give --runs another folder"
        )


def _warm_start_donor(plan: Plan, arm: Arm, seed: int) -> Path | None:
    """A run of this comparison's folder (or of another comparison beside it) that kept the
    warm start this run would train."""
    if not plan.share_warm_start:
        return None
    from agentgym.config import ConfigError, load_config
    from agentgym.grpo.fork import find_donor

    try:
        cfg = load_config(plan.config, plan.run_overrides(arm, seed))
    except ConfigError:
        return None
    # This comparison's folder first, then the other comparisons' beside it (runs/compare/*).
    folders = [plan.runs_dir]
    if plan.runs_dir.parent.is_dir():
        folders += sorted(p for p in plan.runs_dir.parent.iterdir() if p.is_dir() and p != plan.runs_dir)
    return next((d for folder in folders if (d := find_donor(folder, cfg)) is not None), None)


def train_run(plan: Plan, arm: Arm, seed: int, log: Callable[[str], None] = print) -> None:
    """Train (or resume) one run in a subprocess; record the launch in its ``provenance.json``."""
    run = plan.run_dir(arm, seed)
    resume = run_state(run) == "started"
    if resume:
        cmd = [*plan.train_command, "--resume", str(run)]
    else:
        cmd = [*plan.train_command, plan.config, *plan.run_overrides(arm, seed)]
        donor = _warm_start_donor(plan, arm, seed)
        if donor is not None:
            cmd += ["--from-warm-start", str(donor)]
    run.mkdir(parents=True, exist_ok=True)
    prov_path = run / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {"launches": []}
    launch = {
        "command": shlex.join(cmd),
        "resumed": resume,
        "code": code_version(),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    prov["launches"].append(launch)
    _write_json(prov_path, prov)
    log(f"[{arm.name} seed {seed}] {'resuming' if resume else 'training'}: {shlex.join(cmd)}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "TQDM_DISABLE": "1"})
    interrupted = False
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            # The run got the same Ctrl-C and is saving a checkpoint: wait for it, so the
            # next comparison resumes it instead of losing the step.
            interrupted = True
    seconds = round(time.perf_counter() - t0, 1)
    launch.update(seconds=seconds, returncode=code)
    _write_json(prov_path, prov)
    if interrupted or code == 130:
        raise CompareInterrupted(f"stopped in {run}; run the same command again to continue")
    if code != 0:
        raise CompareError(f"[{arm.name} seed {seed}] training failed (exit {code}): {shlex.join(cmd)}")
    log(f"[{arm.name} seed {seed}] done in {seconds / 60:.1f} min")


# ----- reading a run ----------------------------------------------------------------------


@dataclass
class RunResult:
    """One finished run as the report sees it."""

    arm: str
    seed: int
    run_dir: str
    value: float
    #: The same metric before training (``..._before``), when summaries carry it.
    before: float | None
    #: The run's own standard error of ``value`` (``<metric>_se``), when its summary carries one.
    within_se: float | None
    summary: dict[str, Any]
    config: dict[str, Any]
    #: Where ``config`` came from: the run folder's config.yaml, or the plan when the folder has none.
    config_source: str
    launches: list[dict[str, Any]]
    costs: dict[str, Any]
    #: The run's evaluations (:func:`agentgym.compare.curves.run_curve`), kept in the report
    #: so that a later comparison can take this run from the report alone (``--from``).
    curve: list[dict[str, Any]] = field(default_factory=list)
    #: Where the run was read from: its folder, or an earlier report (``--from``).
    source: str = "folder"


def summary_value(summary: dict[str, Any], key: str) -> Any:
    """``summary[key]``, where a dotted key reaches into nested mappings (None when absent)."""
    if key in summary:
        return summary[key]
    node: Any = summary
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def before_metric(metric: str) -> str | None:
    """The 'before training' twin of a metric: its last ``after`` turned into ``before``."""
    i = metric.rfind("after")
    return None if i < 0 else metric[:i] + "before" + metric[i + len("after") :]


def se_keys(metric: str) -> list[str]:
    """Where a summary may hold the run's own standard error of ``metric``: ``<metric>_se``,
    or the ``se`` beside a nested ``value``/``mean`` (``heldout_after.greedy.value``)."""
    keys = [metric + "_se"]
    head, _, last = metric.rpartition(".")
    if head and last in ("value", "mean"):
        keys.append(f"{head}.se")
    return keys


def _number(x: Any) -> float | None:
    """``x`` as a float when it is a finite number (not a bool, not NaN), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _costs(run_dir: Path) -> dict[str, Any]:
    """Generations spent, training minutes, and the steps after the warm start that trained
    on something: for GRPO some group's rewards differed, for RFT some sample succeeded."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    spent, seconds, grpo_steps, with_signal = 0, 0.0, 0, 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if row.get("kind") in ("train", "sft", "rft"):
            spent += int(row.get("rollout/spent", 0) or 0)
            seconds += float(row.get("time/step_s", 0.0) or 0.0)
        if row.get("kind") == "train":
            grpo_steps += 1
            if row.get("train/rft"):  # rejection fine-tuning trains when some sample succeeded
                with_signal += int(row.get("rft/kept_episodes", 0) or 0) > 0
            else:  # GRPO: without unequal rewards in some group, a step updates nothing
                with_signal += float(row.get("adv/abs_mean", 0.0) or 0.0) > 0
    out: dict[str, Any] = {
        "generations": spent,
        "train_minutes": round(seconds / 60, 2),
        "grpo_steps": grpo_steps,
        "grpo_steps_with_signal": with_signal,
    }
    # Wall clock of the run's own launches (evaluations included); a run started from
    # another's warm start did not pay for that warm start, its donor did.
    prov = run_dir / "provenance.json"
    try:
        launches = json.loads(prov.read_text()).get("launches", []) if prov.exists() else []
    except json.JSONDecodeError:
        launches = []
    wall = [float(x["seconds"]) for x in launches if isinstance(x.get("seconds"), (int, float))]
    if wall:
        out["wall_minutes"] = round(sum(wall) / 60, 2)
    return out


def read_run(plan: Plan, arm: Arm, seed: int, planned: dict[str, Any]) -> RunResult:
    """The finished run of ``arm`` at ``seed``: its metric, config, provenance and costs."""
    run = plan.run_dir(arm, seed)
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"cannot read {run / 'summary.json'}: {exc}") from None
    value = summary_value(summary, plan.metric)
    if _number(value) is None:
        numeric = sorted(k for k, v in _flatten(summary).items() if _number(v) is not None)
        raise CompareError(
            f"{run / 'summary.json'} has no number under {plan.metric!r}; --metric can be one of {numeric}"
        )
    twin = before_metric(plan.metric)
    before = summary_value(summary, twin) if twin else None
    within = next((v for k in se_keys(plan.metric) if (v := _number(summary_value(summary, k))) is not None), None)
    if (run / "config.yaml").exists():
        config, source = yaml.safe_load((run / "config.yaml").read_text()), str(run / "config.yaml")
    else:
        config, source = planned, "plan (the run folder has no config.yaml)"
    prov_path = run / "provenance.json"
    launches = json.loads(prov_path.read_text()).get("launches", []) if prov_path.exists() else []
    return RunResult(
        arm=arm.name,
        seed=seed,
        run_dir=str(run),
        value=float(value),
        before=_number(before),
        within_se=within,
        summary=summary,
        config=config,
        config_source=source,
        launches=launches,
        costs=_costs(run),
        curve=run_curve(run, int((config.get("warmup") or {}).get("steps") or 0) if isinstance(config, dict) else 0),
    )


# ----- runs from an earlier report ----------------------------------------------------------


def _report_curve(report: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's evaluations from a report: its own ``curve``, or, in a report written
    before runs kept one, its arm's curve where that arm ran this seed alone (the arm's
    mean over one seed is the run's value, its band the run's own standard error)."""
    if run.get("curve"):
        return list(run["curve"])
    rows = (report.get("curves") or {}).get(run["arm"]) or []
    if not rows or any(row.get("seeds") != [run["seed"]] for row in rows):
        return []
    points = []
    for row in rows:
        point: dict[str, Any] = {"step": row["step"], "generations": row.get("generations"), "tasks": row.get("tasks")}
        for name, stat in row.items():
            if isinstance(stat, dict) and "mean" in stat:
                point[name], point[f"{name}_se"] = stat["mean"], stat.get("se")
        points.append(point)
    return points


def runs_from_report(path: str | Path, metric: str) -> list[RunResult]:
    """The finished runs an earlier comparison report holds, read for ``metric`` (their
    folders may be gone: a report keeps each run's summary, config, launches and costs)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"--from {path}: cannot read it as a JSON report ({exc})") from None
    if not isinstance(report, dict) or report.get("kind") != "agentgym-compare":
        raise CompareError(f"--from {path}: not a comparison report (agentgym compare writes them)")
    out = []
    for run in report.get("runs") or []:
        summary = run.get("summary") or {}
        value = _number(summary_value(summary, metric))
        if value is None:
            raise CompareError(f"--from {path}: run {run.get('arm')}-s{run.get('seed')} has no number under {metric!r}")
        twin = before_metric(metric)
        within = next((v for k in se_keys(metric) if (v := _number(summary_value(summary, k))) is not None), None)
        out.append(
            RunResult(
                arm=str(run["arm"]),
                seed=int(run["seed"]),
                run_dir=str(run.get("run_dir", "")),
                value=value,
                before=_number(summary_value(summary, twin)) if twin else None,
                within_se=within,
                summary=summary,
                config=_with_defaults(run.get("config") or {}),
                config_source=str(run.get("config_source", "")),
                launches=list(run.get("launches") or []),
                costs=dict(run.get("costs") or {}),
                curve=_report_curve(report, run),
                source=str(path),
            )
        )
    return out


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A report's stored config as resolved now: settings added since it was written take
    their defaults (the run ran without them), so it compares equal to an arm that keeps
    them. A config that no longer validates is compared as stored."""
    from pydantic import ValidationError

    from agentgym.config import RunConfig

    try:
        return RunConfig.model_validate(config).model_dump(mode="json")
    except (ValidationError, TypeError, ValueError):
        return config


def _config_diffs(found: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two resolved configs (``run_dir`` aside)."""
    a, b = _flatten(found), _flatten(want)
    return [
        f"{key}: run has {a.get(key)!r}, arm asks for {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if key != "run_dir" and a.get(key) != b.get(key)
    ]


# ----- the comparison ---------------------------------------------------------------------


def run_comparison(
    plan: Plan, *, train: bool = True, log: Callable[[str], None] = print, command: str | None = None
) -> dict[str, Any]:
    """Train what is missing (unless ``train`` is False), read every finished run, return the report.

    Without ``train``, runs that have not finished are left out and listed under ``missing``.
    ``command`` (the command line that asked for the comparison) goes into the report.
    """
    from agentgym.compare.report import build_report

    resolved = check_plan(plan)
    earlier: dict[tuple[str, int], RunResult] = {}
    for path in plan.earlier:
        for r in runs_from_report(path, plan.metric):
            if (r.arm, r.seed) in resolved and (r.arm, r.seed) not in earlier:
                diffs = _config_diffs(r.config, resolved[(r.arm, r.seed)])
                if diffs:
                    raise CompareError(
                        f"--from {path}: run {r.arm}-s{r.seed} was made with another config "
                        f"({'; '.join(diffs[:5])}{'; ...' if len(diffs) > 5 else ''})"
                    )
                earlier[(r.arm, r.seed)] = r
    results: list[RunResult] = []
    missing: list[str] = []
    for seed in plan.seeds:  # seed-major: every arm at this seed before the next seed
        for arm in plan.arms:
            run = plan.run_dir(arm, seed)
            check_run_config(run, resolved[(arm.name, seed)])
            if run_state(run) != "finished":
                if (arm.name, seed) in earlier:
                    log(f"[{arm.name} seed {seed}] from {earlier[(arm.name, seed)].source}")
                    results.append(earlier[(arm.name, seed)])
                    continue
                if not train:
                    missing.append(str(run))
                    continue
                train_run(plan, arm, seed, log)
            results.append(read_run(plan, arm, seed, resolved[(arm.name, seed)]))
    if not results:
        raise CompareError(f"no finished runs under {plan.runs_dir}")
    return build_report(plan, results, missing, command=command)


def default_out(plan: Plan) -> Path:
    """``results/compare/<config name>.json``: a committed folder."""
    return RESULTS_DIR / f"{Path(plan.config).stem}.json"
