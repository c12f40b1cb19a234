"""The `agentgym` command: list envs, play one, print rollouts, evaluate on held-out tasks."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Markdown: docstrings reflow into paragraphs, ``code`` renders as code, and brackets in
# help (NAME=[v1,v2]) stay text instead of being read as rich markup tags.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown")

_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH"}


def _help_type(text: str | None) -> str | None:
    """A value's type as click names it (``<list[str]>`` -> ``TEXT``); choices stay as they are."""
    if not isinstance(text, str) or not (text.startswith("<") and ">" in text):
        return text
    core = text[1 : text.index(">")]
    if core.startswith("list[") and core.endswith("]"):
        core = core[5:-1]
    return _TYPE_NAMES.get(core.lower(), core.upper()) + text[text.index(">") + 1 :]


def _plain_help_types() -> None:
    """Typer 0.2x shows every option's Python type (``<bool>`` for a flag): flags get none,
    values click's names. Only the help's type column changes (a no-op on other versions)."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:
        return
    for cls in (TyperOption, TyperArgument):
        original = getattr(cls, "display_type_rich", None)
        if original is None:
            continue

        def display_type_rich(self: Any, ctx: Any, _original: Any = original) -> str | None:
            if getattr(self, "is_flag", False) or getattr(self, "is_bool_flag", False):
                return None
            return _help_type(_original(self, ctx))

        cls.display_type_rich = display_type_rich  # type: ignore[method-assign]


_plain_help_types()
# Not a terminal (a log file, CI): wide enough that tables are not squeezed.
console = Console(width=None if sys.stdout.isatty() else 160)


def _say(message: dict[str, str]) -> None:
    console.print(f"[bold cyan]{message['role']}[/bold cyan]: {escape(message['content'])}")


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k.strip() in out:  # a second value would silently replace the first
            raise typer.BadParameter(f"{k.strip()!r} given twice; give several values as NAME=[v1,v2]")
        from agentgym.config import load_yaml

        try:
            out[k.strip()] = load_yaml(v)  # 3 -> int, true -> bool, 0.5 -> float, +- -> str
        except (yaml.YAMLError, RecursionError) as exc:
            why = " ".join(str(exc).split())[:200]
            raise typer.BadParameter(f"{item!r}: the value is not valid YAML ({why})") from None
    return out


def _check_env(env_id: str):
    from agentgym import spec
    from agentgym.registry import EnvNotFound

    try:
        return spec(env_id)
    except EnvNotFound as exc:
        raise typer.BadParameter(str(exc), param_hint="ENV_ID") from None


def _task(env_id: str, params: dict[str, Any], seed: int):
    from agentgym import TaskSpec
    from agentgym.spaces import ParamError

    cls = _check_env(env_id).load_class()
    rng = __import__("numpy").random.default_rng(seed)
    base = cls.sample_train_task(rng)
    try:
        merged = cls.param_space.validate({**base.params, **params})
    except ParamError as exc:
        raise typer.BadParameter(str(exc)) from None
    return TaskSpec(merged, seed)


@app.command()
def envs(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List registered environments and their parameter spaces."""
    from agentgym import list_envs
    from agentgym.spaces import HeldOut, ParamSpace

    def meta(s):
        # Entry points may be factories rather than TextEnv classes: show what is declared.
        cls = s.load_class()
        if isinstance(cls, type) and hasattr(cls, "param_space"):
            return cls.param_space, cls.held_out
        return ParamSpace([]), HeldOut()

    specs = list_envs()
    if as_json:
        rows = []
        for s in specs:
            space, held = meta(s)
            rows.append(
                {
                    "id": s.id,
                    "description": s.description,
                    "source": s.source,
                    "kwargs": s.kwargs,
                    "params": space.to_dict(),
                    "held_out_region": held.region.to_dict() if held.region else None,
                }
            )
        print(json.dumps(rows, indent=1, default=str))
        return
    table = Table(title=f"{len(specs)} environments")
    for col in ("id", "description", "parameters", "held-out region", "package"):
        table.add_column(col, overflow="fold")
    for s in specs:
        space, held = meta(s)
        region = held.region
        table.add_row(
            s.id,
            s.description,
            "\n".join(f"{d.name} {d.describe()}" for d in space),
            ", ".join(f"{k}∈{list(v)}" for k, v in region.constraints.items()) if region else "-",
            s.source,
        )
    console.print(table)


@app.command()
def play(
    env_id: Annotated[str, typer.Argument(help="Environment id, e.g. math/arithmetic-v0.")],
    seed: Annotated[int, typer.Option(help="Task seed.")] = 0,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Task parameter NAME=VALUE (repeatable).")
    ] = None,
) -> None:
    """Play an environment yourself in the terminal (type your reply; an empty line sends it; /quit leaves).

    In a game you take every seat the policy would (both in self-play); scripted opponents
    (``-p opponent=optimal``) play their own seats."""
    from agentgym import make
    from agentgym.rollout.seats import Seating, seat_env

    _check_env(env_id)
    play = seat_env(make(env_id))
    turn = play.reset(_task(env_id, _parse_params(param), seed), Seating(seed=seed))
    controllers = getattr(play, "controllers", None)
    seats = f"; seats {controllers}" if controllers else ""
    console.print(f"[dim]task {json.dumps(play.task.to_dict())}{seats}[/dim]")
    returns: dict[str, float] = {}
    success, turns = False, 0
    while True:
        for agent, kind, text in turn.said:
            console.print(f"[cyan]{agent} ({kind})[/cyan]: {escape(text)}")
        for agent, reward, info in turn.credits:
            returns[agent] = returns.get(agent, 0.0) + reward
            turns = int(info.get("turn", turns))
            if agent in play.seats:
                success = bool(info.get("success", success))
                if reward or info.get("reward_parts") or info.get("error"):
                    parts = ", ".join(f"{k}={v:g}" for k, v in info.get("reward_parts", {}).items())
                    err = f"  error: {escape(info['error'])}" if info.get("error") else ""
                    console.print(f"[yellow]{agent + ' ' if agent else ''}reward {reward:g}[/yellow] ({parts}){err}")
        if turn.done:
            break
        moves = {}
        for agent in turn.movers:
            for m in turn.observations[agent]:
                _say(m)
            reply = _read_reply(f"you ({agent})" if agent else "you")
            if reply is None:
                return
            moves[agent] = reply
        turn = play.step(moves)
    for agent in play.seats:
        for m in turn.observations.get(agent, []):
            _say(m)
    verdict = "[green]success[/green]" if success else "[red]failure[/red]"
    ret = ", ".join(f"{a + ' ' if a else ''}return {r:g}" for a, r in sorted(returns.items()))
    console.print(f"episode over: {verdict}, {ret}, {turns} turn(s)")


def _read_reply(who: str) -> str | None:
    """Lines up to an empty one; None on /quit (or end of input before any line)."""
    console.print(f"[bold green]{who}[/bold green] (end with an empty line):")
    lines: list[str] = []
    while True:
        try:
            line = input()
        except EOFError:
            line = "/quit" if not lines else ""
        if line.strip() == "/quit":
            console.print("bye")
            return None
        if line == "" and lines:
            return "\n".join(lines)
        if line != "":
            lines.append(line)


class _LineProgress:
    """Progress outside a terminal (a log file, CI): one plain line per update, flushed at once."""

    def __init__(self) -> None:
        self.tasks: dict[int, list[Any]] = {}
        self.t0 = time.perf_counter()

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int) -> int:
        self.tasks[len(self.tasks)] = [description, total, 0]
        return len(self.tasks) - 1

    def advance(self, task: int, n: int) -> None:
        row = self.tasks[task]
        row[2] += n
        print(f"{row[0]}: {row[2]}/{row[1]} ({time.perf_counter() - self.t0:.0f} s)", file=sys.stderr, flush=True)


def _progress() -> Any:
    """A rich progress bar in a terminal, plain lines elsewhere (so logs show progress as it happens)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not console.is_terminal:
        return _LineProgress()
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _sampling(max_new_tokens: int, temperature: float):
    from agentgym.policies import SamplingParams

    try:
        return SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _check_policy(name: str) -> None:
    """Refuse a --policy that cannot load here at once (no network), before anything loads."""
    from agentgym.policies import check_policy_name
    from agentgym.policies.models import ModelNotAvailable

    try:
        check_policy_name(name)
    except ModelNotAvailable as exc:
        console.print(f"[red]error:[/red] --policy: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def _policy(name: str, seed: int):
    from agentgym.policies import make_policy
    from agentgym.policies.models import ModelNotAvailable

    with console.status(f"loading policy {name!r} ..."):
        try:
            return make_policy(name, seed=seed)
        except (ModelNotAvailable, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None


@app.command()
def rollout(
    env_id: Annotated[str, typer.Argument(help="Environment id.")],
    policy: Annotated[
        str,
        typer.Option(
            help="smollm2-135m (default model), tiny, random, a checkpoint folder, or vllm:MODEL (generated by vLLM)."
        ),
    ] = "smollm2-135m",
    n: Annotated[int, typer.Option(help="Number of episodes.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for tasks and sampling.")] = 0,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Task parameter NAME=VALUE.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per turn.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.7,
    batch: Annotated[int, typer.Option(help="Episodes played together; each batch prints when it ends.")] = 8,
) -> None:
    """Play a few episodes with a policy and print their transcripts (a game: one per policy seat)."""
    from agentgym.rollout import make_runner

    _check_env(env_id)  # a wrong id fails before the model loads
    _check_policy(policy)
    params = _parse_params(param)
    tasks = [_task(env_id, params, seed + i) for i in range(n)]
    sampling = _sampling(max_new_tokens, temperature)
    pol = _policy(policy, seed)
    runner = make_runner(env_id, pol, sampling, seed=seed)
    i = 0
    for start in range(0, len(tasks), batch):  # each batch is printed as soon as it is played
        for ep in runner.run(env_id, tasks[start : start + batch]):
            _print_episode(i, ep)
            i += 1


def _print_episode(i: int, ep: Any) -> None:
    seat = f"  seat {ep.agent}" if ep.agent else ""
    console.rule(f"episode {i}{seat}  task {json.dumps(ep.task.to_dict())}")
    for m in ep.messages:
        _say(m)
    # A reply cut at the token limit still ends a one-answer episode as "terminated": say it was cut.
    cut = ", a reply was cut at --max-new-tokens" if getattr(ep, "hit_length_limit", False) else ""
    console.print(
        f"reward {ep.reward:g}  success {ep.success}  turns {ep.num_turns}  policy tokens {ep.num_policy_tokens} "
        f" end: {ep.end_reason}{cut}"
    )


@app.command("eval")
def eval_cmd(
    env_ids: Annotated[list[str], typer.Argument(help="One or more environment ids.")],
    policy: Annotated[
        str,
        typer.Option(
            help="smollm2-135m (default model), tiny, random, a checkpoint folder, vllm:MODEL (the model "
            "generated by a vLLM engine here: a CUDA GPU or vLLM's CPU build), or a served model: "
            "openai:http://HOST:PORT/MODEL?tokenizer=NAME"
        ),
    ] = "smollm2-135m",
    tasks: Annotated[int, typer.Option(help="Held-out tasks per environment.")] = 100,
    k: Annotated[
        int, typer.Option(help="Samples per task at --temperature: their mean success (mean@k) and pass@k.")
    ] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the held-out task draw and sampling.")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per turn.")] = 256,
    temperature: Annotated[
        float,
        typer.Option(help="Temperature of the k samples: the training one (rollout.temperature); 0: greedy."),
    ] = 1.0,
    greedy: Annotated[
        bool, typer.Option("--greedy/--no-greedy", help="Also play every task once greedily (temperature 0).")
    ] = True,
    by: Annotated[list[str] | None, typer.Option(help="Also break results down by these parameters.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path("results/eval.json"),
    samples: Annotated[
        Path | None,
        typer.Option(
            help="JSONL of every sample (task, conversation, reward and its parts), written as each batch finishes "
            "(default: beside --out, <out>.samples.jsonl)."
        ),
    ] = None,
    env_kwarg: Annotated[
        list[str] | None,
        typer.Option("--env-kwarg", "-e", help="Env constructor argument NAME=VALUE, e.g. max_turns=4 (repeatable)."),
    ] = None,
    opponents: Annotated[
        list[str] | None,
        typer.Option(
            "--opponent",
            help="Multi-agent games: a scripted opponent (e.g. random, optimal) or 'self'; the policy plays it in "
            "every seat (repeatable; default random).",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Draw held-out tasks only where NAME takes these values, as a config's env.params: NAME=[v1,v2] or "
            "NAME=v (repeatable). With --seed 1234 these are the trainer's own eval tasks.",
        ),
    ] = None,
) -> None:
    """Evaluate a policy on held-out tasks: mean@k, pass@k and greedy success, each with its
    standard error and 95% interval over the distinct tasks, by region; mean reward.

    The report is the trainer's: --k samples per task at --temperature (the training
    temperature) and a greedy pass. For a multi-agent game the policy plays each task in
    every seat against each --opponent; success is the learner seat's (a win, a correct
    final answer). Writes the JSON report, every sample as JSONL, and a PNG beside the JSON."""
    from agentgym.eval import write_json
    from agentgym.eval.plan import EvalArgError, check_env_ids, plan_eval

    try:
        check_env_ids(env_ids)  # a wrong id fails first, then a policy that cannot load here
        _check_policy(policy)
        plan = plan_eval(
            env_ids,
            n_tasks=tasks,
            k=k,
            seed=seed,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            greedy=greedy,
            env_kwargs=_parse_params(env_kwarg),
            restrict={k: v if isinstance(v, list) else [v] for k, v in _parse_params(param).items()},
            opponents=opponents,
            by=by,
        )
    except EvalArgError as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from None
    pol = _policy(policy, seed)
    samples_path = samples or out.with_suffix(".samples.jsonl")
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    sample_file = samples_path.open("w")

    def on_samples(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            sample_file.write(json.dumps(row) + "\n")
        sample_file.flush()

    with _progress() as prog:

        def progress(env_id: str, plays: int) -> Callable[[int], None]:
            bar = prog.add_task(env_id, total=plays)
            return lambda n: prog.advance(bar, n)

        reports = plan.run(pol, progress, on_samples)
    sample_file.close()
    console.print(f"samples: {samples_path}", soft_wrap=True)
    print_reports(reports, by=plan.breakdown)
    path = write_json(
        reports,
        out,
        meta={
            "policy": policy,
            "k": k,
            "greedy": greedy,
            "seed": seed,
            "sampling": plan.sampling.__dict__,
            "env_kwargs": plan.env_kwargs,
            "params": plan.restrict,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    console.print(f"wrote {path}")
    try:
        from agentgym.eval.plots import plot_report

        console.print(f"wrote {plot_report(reports, path.with_suffix('.png'))}")
    except Exception as exc:  # a plot must never lose an evaluation
        console.print(f"[yellow]warning:[/yellow] plot failed: {escape(repr(exc))}")


@app.command(context_settings={"allow_extra_args": False})
def train(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Argument(help="YAML run config (e.g. configs/quickstart.yaml).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Dotted overrides, e.g. grpo.lr=1e-5 train.steps=10.")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the run in this folder exactly where it stopped; train.steps=N (and other train.* "
            "overrides) extends a finished run."
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="Print the resolved config (every default, TRL names mapped) and exit."),
    ] = False,
    from_warm_start: Annotated[
        Path | None,
        typer.Option(
            "--from-warm-start",
            help="Start from this run's kept warm start (RUN/warm_start) instead of training it again; the two "
            "configs must agree on everything up to the end of the warm start (checked).",
        ),
    ] = None,
) -> None:
    """Train a policy with GRPO from a config; ends with held-out success before and after."""
    from agentgym.config import ConfigError, dump_config, load_config
    from agentgym.grpo.checkpoint import CheckpointWriteError
    from agentgym.grpo.trainer import resume_run, train_from_config
    from agentgym.state_check import StateFileError

    if resume is None and config is None:
        raise typer.BadParameter("give a CONFIG file, or --resume RUN_DIR")
    if resume is not None and from_warm_start is not None:
        raise typer.BadParameter("--from-warm-start starts a new run; --resume continues one: give one of them")
    if print_config:
        try:
            if config is not None and "=" in config and not Path(config).exists():
                overrides, config = [config, *(overrides or [])], None
            source = str(resume / "config.yaml") if resume is not None else config
            print(dump_config(load_config(source, overrides)), end="")
        except ConfigError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None
        return
    try:
        if resume is not None:
            if config is not None and "=" in config and not Path(config).exists():
                overrides, config = [config, *(overrides or [])], None
            if config is not None:
                raise typer.BadParameter(
                    "--resume takes no config: a resumed run keeps its own (train.* overrides only)"
                )
            _check_resumable(resume, (ctx.obj or {}).get("imports", []))
            result = resume_run(resume, overrides=overrides)
        else:
            if config is not None and "=" in config and not Path(config).exists():
                overrides, config = [config, *(overrides or [])], None
            result = train_from_config(config, overrides, from_warm_start=from_warm_start)
    except (ConfigError, StateFileError, FileExistsError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except CheckpointWriteError as exc:  # a full disk: say so, the run resumes from the last one
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if result.interrupted:
        if _rank() == 0:
            console.print(
                f"stopped at step {result.steps_done}; continue with: agentgym train --resume {result.run_dir}"
            )
        raise typer.Exit(130)
    _print_result(result)


@app.command(context_settings={"allow_extra_args": False})
def sft(
    config: Annotated[str, typer.Argument(help="YAML run config with a warmup section (or only overrides).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. warmup.steps=20.")] = None,
) -> None:
    """Supervised fine-tuning alone: the config's warm start (warmup.*), no GRPO steps."""
    from agentgym.config import ConfigError
    from agentgym.grpo.checkpoint import CheckpointWriteError
    from agentgym.grpo.trainer import train_from_config

    path: str | None = config
    if "=" in config and not Path(config).exists():  # only overrides, on the defaults
        overrides, path = [config, *(overrides or [])], None
    try:
        result = train_from_config(path, [*(overrides or []), "train.steps=0"])
    except (ConfigError, FileExistsError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except CheckpointWriteError as exc:  # a full disk: say so, the run resumes from the last one
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if result.interrupted:
        if _rank() == 0:
            console.print(
                f"stopped at step {result.steps_done}; continue with: agentgym train --resume {result.run_dir}"
            )
        raise typer.Exit(130)
    _print_result(result)


@app.command(context_settings={"allow_extra_args": False})
def compare(
    config: Annotated[str, typer.Argument(help="YAML run config every arm starts from.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides for every arm, e.g. train.steps=12.")] = None,
    arm: Annotated[
        list[str] | None,
        typer.Option(
            "--arm",
            "-a",
            help="An arm: its name, then its overrides, as one quoted string: --arm 'bandit teacher.name=bandit' "
            "(repeatable; default: one arm 'base', the config as it is).",
        ),
    ] = None,
    arms: Annotated[
        Path | None,
        typer.Option(
            "--arms",
            help="YAML file of arms, each NAME: a list of key=value strings, or NAME: {dotted.key: value} "
            "(they follow the --arm ones).",
        ),
    ] = None,
    seeds: Annotated[str, typer.Option(help="Seeds, each one run per arm: 0,1,2.")] = "0,1,2",
    baseline: Annotated[
        str | None, typer.Option(help="The arm the others are compared with (default: the first).")
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="The summary.json key compared (a dotted key reaches into mappings); for a key with 'after' in it, "
            "its 'before' twin is shown too."
        ),
    ] = "heldout_success_after",
    runs: Annotated[
        Path | None, typer.Option(help="Folder of the run folders ARM-sSEED (default: runs/compare/CONFIG_NAME).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="JSON report; the PNG plot goes beside it (default: results/compare/CONFIG_NAME.json)."),
    ] = None,
    no_train: Annotated[
        bool, typer.Option("--no-train", help="Only read finished runs (unfinished ones are listed, not run).")
    ] = False,
    train_command: Annotated[
        str | None,
        typer.Option(
            help="The command that trains one run, e.g. 'torchrun --nproc-per-node 2 -m agentgym train' "
            "(default: this python -m agentgym train)."
        ),
    ] = None,
    earlier: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="An earlier comparison's JSON report whose finished runs count as this one's, for arms and seeds "
            "whose folders are gone (another machine's); its runs' configs must match (repeatable).",
        ),
    ] = None,
    share_warm_start: Annotated[
        bool,
        typer.Option(
            help="Start a run from the kept warm start of a run in the same folder whose settings up to the end "
            "of the warm start match (seed included): the same run bit for bit, without training and evaluating "
            "that warm start again."
        ),
    ] = True,
) -> None:
    """Compare arms (config overrides) over seeds: each (arm, seed) is one `agentgym train` run.

    Reports per arm the metric's mean ± standard error over seeds and each seed's value,
    and each arm's difference to the baseline with a 95% t interval and p-value (paired
    by seed when both arms ran the same seeds, else Welch's). Finished runs are read, not
    rerun; a stopped run is resumed, so the same command continues a comparison. Writes
    a JSON report (every run's resolved config, code commit and machine) and a PNG plot.

    Example: agentgym compare configs/math-teacher.yaml --arm 'random teacher.name=random'
    --arm 'bandit teacher.name=bandit' --seeds 0,1,2

    Seeds run on different machines: keep each machine's report (or collect its run
    folders into --runs) and name the reports with --from; with --no-train the command
    only merges them.
    """
    import shlex

    from agentgym.compare import (
        Arm,
        CompareError,
        CompareInterrupted,
        Plan,
        default_out,
        load_arms_file,
        parse_arm,
        parse_seeds,
        report_table,
        run_comparison,
        write_report,
    )

    try:
        arm_list = [parse_arm(a) for a in arm or []] + (load_arms_file(arms) if arms is not None else [])
        plan = Plan(
            config=config,
            arms=arm_list or [Arm("base")],
            seeds=parse_seeds(seeds),
            overrides=list(overrides or []),
            baseline=baseline,
            metric=metric,
            runs=runs,
            share_warm_start=share_warm_start,
            earlier=list(earlier or []),
        )
        if train_command is not None:
            plan.train_command = shlex.split(train_command)
        report = run_comparison(plan, train=not no_train, command=shlex.join(["agentgym", *sys.argv[1:]]))
    except CompareError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except CompareInterrupted as exc:
        console.print(escape(str(exc)), soft_wrap=True)
        raise typer.Exit(130) from None
    console.print(report_table(report))
    curves = report.get("curves") or {}
    if any(len(rows) > 1 for rows in curves.values()):
        from agentgym.compare.curves import curves_table

        console.print(curves_table(curves))
    paths = write_report(report, out if out is not None else default_out(plan))
    console.print(f"wrote {paths[0]} and {paths[1]}", soft_wrap=True)


@app.command()
def demos(
    env_id: Annotated[str, typer.Argument(help="Registered env id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file of Episodes to write.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Training tasks to demonstrate.")] = 128,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Restrict tasks like env.params: NAME=[v1,v2] or NAME=v (repeatable)."),
    ] = None,
    env_kwarg: Annotated[list[str] | None, typer.Option("--env-kwarg", "-e", help="Env kwarg NAME=VALUE.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the task draws.")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Longest demonstrated reply, in tokens.")] = 256,
) -> None:
    """Play training tasks with the env's own demonstrator (oracle, or a game's scripted
    optimal players) and write them as Episodes for warmup.source=file."""
    from agentgym.policies.base import ChatFormat
    from agentgym.policies.models import load_tokenizer
    from agentgym.rollout.demos import make_demos, save_demos
    from agentgym.spaces import ParamError

    _check_env(env_id)
    restrict = {k: v if isinstance(v, list) else [v] for k, v in _parse_params(param).items()}
    try:
        eps, stats = make_demos(
            env_id,
            ChatFormat(load_tokenizer()),
            n,
            restrict=restrict,
            seed=seed,
            env_kwargs=_parse_params(env_kwarg),
            max_new_tokens=max_new_tokens,
        )
    except (ParamError, ValueError, TypeError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    save_demos(out, eps)
    console.print(
        f"{stats.kept} demonstrations of {stats.tasks} tasks ({stats.failed} not solved, left out); wrote {out}"
    )


def _rank() -> int:
    """This process's rank under torchrun (0 alone): rank 0 speaks for the run."""
    return int(os.environ.get("RANK", "0"))


def _estimate_text(d: dict[str, Any] | None) -> str:
    """An estimate stored as a dict (summary, checkpoint) as ``41.2% ± 3.1 [35.0, 47.4]``."""
    from agentgym.eval import Estimate

    return "-" if not d else Estimate(**d).text()


def _summary_of(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def _change_text(est: dict[str, Any] | None) -> str:
    """A paired change in points: ``+15.7 ± 1.7\n[+12.4, +19.0]``."""
    if not est or est.get("value") is None:
        return "-"
    text = f"{est['value'] * 100:+.1f} ± {est['se'] * 100:.1f}"
    if est.get("low") is not None and est.get("high") is not None:
        text += f"\n[{est['low'] * 100:+.1f}, {est['high'] * 100:+.1f}]"
    return text


def _print_result(result) -> None:
    if _rank() != 0:
        return
    first, last = min(result.evals), max(result.evals)
    stats = getattr(result, "eval_stats", {}) or {}
    settings = stats.get(last, {})
    k, temp = settings.get("k", "k"), settings.get("temperature")
    title = "held-out success"
    if temp is not None:
        title += f": mean@{k} at T={temp:g}, greedy, pass@{k}; ± s.e. [95% CI] over tasks"
    table = Table(title=title)
    for col in ("", "step", f"mean@{k}", "greedy", f"pass@{k}", "tasks"):
        table.add_column(col, justify="left" if col in ("", "step") else "right")

    def row(label: str, step: int) -> None:
        st = stats.get(step)
        if st is None:  # an eval from a checkpoint that predates standard errors
            table.add_row(label, str(step), f"{result.evals[step]:.1%}", "-", "-", "-")
            return
        cells = [_estimate_text(st.get(name)).replace(" [", "\n[") for name in ("mean_at_k", "greedy", "pass_at_k")]
        table.add_row(label, str(step), *cells, str(st.get("tasks", "-")))

    row("before", first)
    warm = getattr(result, "warmup_steps", 0)
    if warm and warm in result.evals and warm != last:
        row("after warm start", warm)
    row("after", last)
    change = _summary_of(result.run_dir).get("heldout_change") or {}
    if change:  # paired by task: after minus before on the same tasks
        cells = [_change_text(change.get(name)) for name in ("mean_at_k", "greedy")]
        table.add_row("change", "(paired)", *cells, "", "")
    else:
        table.add_row("change", "", f"{(result.evals[last] - result.evals[first]) * 100:+.1f} points", "", "", "")
    console.print(table)
    console.print(
        f"{result.run_dir}: {result.steps_done} steps in {result.seconds / 60:.1f} min; plots in "
        f"{result.run_dir / 'plots'}, "
        f"model in {result.run_dir / 'final'}"
    )


def _cell(est) -> str:
    """An estimate as a table cell: value ± s.e. over its interval."""
    return "-" if est is None else est.text().replace(" [", "\n[")


def print_reports(reports, by: list[str] | None = None) -> None:
    """The eval table: per env, overall, per held-out region and per ``by`` parameter, the
    three estimates as value ± s.e. [95% interval] and the distinct tasks they rest on."""
    k = reports[0].k if reports else 1
    temp = reports[0].temperature if reports else 0.0
    table = Table(
        title=f"held-out evaluation: mean@{k} at T={temp:g} (primary), pass@{k}, greedy; ± s.e. [95% CI] over tasks"
    )
    cols = ("env", "split", "tasks", f"mean@{k}", f"pass@{k}", "greedy", "mean reward", "no answer")
    for col in cols:
        table.add_column(col, justify="right" if col not in ("env", "split") else "left")

    parts = sorted({p for rep in reports for p in rep.overall.reward_parts})
    for p in parts:
        table.add_column(p, justify="right")

    def row(env: str, split: str, r) -> None:
        table.add_row(
            env,
            split,
            str(r.tasks),
            *(_cell(e) for e in (r.mean_at_k, r.pass_at_k, r.greedy)),
            f"{r.mean_reward:.3f}",
            f"{r.format_errors:.1%}",
            *(f"{r.reward_parts.get(p, 0.0):.3f}" for p in parts),
        )

    for rep in reports:
        row(rep.env_id, "all", rep.overall)
        for name, r in rep.by_region.items():
            row("", name, r)
        for dim in by or []:
            for v, r in rep.by_param.get(dim, {}).items():
                row("", f"{dim}={v}", r)
        table.add_section()
    console.print(table)


def _check_resumable(run_dir: Path, named: list[str]) -> None:
    """Before ``--resume`` runs anything from a run folder: the modules its config.yaml would
    import must be named by the user (``agentgym --import M``), and its checkpoint's state
    files must decode within bounds (:mod:`agentgym.state_check`)."""
    from agentgym.config import ConfigError, load_config
    from agentgym.state_check import check_run_state

    if not (run_dir / "config.yaml").exists():
        return  # resume_run says so
    wanted = load_config(run_dir / "config.yaml").imports
    unnamed = [m for m in wanted if m not in named]
    if unnamed:
        flags = " ".join(f"--import {m}" for m in wanted)
        raise ConfigError(
            f"{run_dir / 'config.yaml'} imports {', '.join(map(repr, unnamed))}: a run folder does not import code "
            f"on its own (it may come from elsewhere). If you trust that code, name it: "
            f"agentgym {flags} train --resume {run_dir}"
        )
    check_run_state(run_dir)


@app.command()
def serve(
    env_id: Annotated[str, typer.Argument(help="Environment id to serve.")],
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port, printed).")] = 8000,
    env_kwarg: Annotated[
        list[str] | None, typer.Option("--env-kwarg", "-e", help="Env constructor argument NAME=VALUE (repeatable).")
    ] = None,
    openenv: Annotated[
        bool, typer.Option("--openenv", help="Speak OpenEnv's protocol (WebSocket /ws), for OpenEnv's client.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer TOKEN' (default: $AGENTGYM_SERVER_TOKEN; a fresh one, printed, "
            "when --host is not loopback)."
        ),
    ] = None,
    max_sessions: Annotated[int, typer.Option(help="Sessions open at once (past it /reset answers 503).")] = 64,
    idle_seconds: Annotated[float, typer.Option(help="A session idle this long is closed and its env freed.")] = 600.0,
) -> None:
    """Serve an env over HTTP (reset / step / state as JSON) for other trainers; see agentgym.serve.

    With --openenv it speaks OpenEnv's protocol instead: OpenEnv's client, unmodified, runs
    its episodes (see agentgym.interop.openenv_server)."""
    import os

    from agentgym.httpserve import is_loopback_host
    from agentgym.serve import EnvServer

    _check_env(env_id)
    token = token or os.environ.get("AGENTGYM_SERVER_TOKEN") or None
    fresh = token is None and not is_loopback_host(host)
    if fresh:
        import secrets

        token = secrets.token_urlsafe(24)
    try:
        server = EnvServer(
            env_id,
            host=host,
            port=port,
            env_kwargs=_parse_params(env_kwarg),
            protocol="openenv" if openenv else "agentgym",
            token=token,
            max_sessions=max_sessions,
            idle_seconds=idle_seconds,
        )
    except (TypeError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    print(f"serving {env_id} at {server.url}" + (" (OpenEnv protocol)" if openenv else ""), flush=True)
    if fresh:
        print(f"token: clients send 'Authorization: Bearer {token}' (RemoteEnv: AGENTGYM_SERVER_TOKEN)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@app.command("generate-server")
def generate_server(
    model: Annotated[str, typer.Argument(help="Model to serve: the run config's model.name.")] = "smollm2-135m",
    backend: Annotated[
        str, typer.Option(help="vllm (a CUDA GPU or vLLM's CPU build) or transformers (any device).")
    ] = "transformers",
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port, printed).")] = 8001,
    seed: Annotated[int, typer.Option(help="The run's seed (it builds the tiny test model).")] = 0,
    device: Annotated[str, typer.Option(help="transformers backend: auto, cpu or cuda.")] = "auto",
    token: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer TOKEN' (default: $AGENTGYM_SERVER_TOKEN, else a fresh one, printed)."
        ),
    ] = None,
    no_token: Annotated[
        bool, typer.Option("--no-token", help="Loopback only: serve without a token (any local user can push weights).")
    ] = False,
    gpu_memory_utilization: Annotated[
        float | None, typer.Option(help="vllm on CUDA: share of each GPU's memory (default 0.9).")
    ] = None,
    kv_cache_gib: Annotated[
        float | None, typer.Option(help="vllm: KV cache in GiB (default on vLLM's CPU build: 1).")
    ] = None,
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs the model is sharded over.")] = 1,
) -> None:
    """Generate rollouts for a trainer on other GPUs or machines (model.backend: remote).

    The trainer sends prompts as token ids and uploads its weights after every step; see
    agentgym.policies.remote for the protocol."""
    import os

    from agentgym.httpserve import is_loopback_host
    from agentgym.policies.remote import serve_model

    token = token or os.environ.get("AGENTGYM_SERVER_TOKEN") or None
    if no_token and not is_loopback_host(host):
        console.print(f"[red]error:[/red] --no-token is for a loopback address only, not {escape(host)}")
        raise typer.Exit(2)
    fresh = token is None and not no_token
    if fresh:  # whoever reaches the port can replace the weights: a token by default
        import secrets

        token = secrets.token_urlsafe(24)
    options = {
        "gpu_memory_utilization": gpu_memory_utilization,
        "kv_cache_gib": kv_cache_gib,
        "tensor_parallel_size": tensor_parallel_size,
    }
    try:
        server = serve_model(
            model, backend=backend, host=host, port=port, seed=seed, device=device, token=token, vllm_options=options
        )
    except (ValueError, OSError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    print(f"serving {model} ({backend}) at {server.url}", flush=True)
    if fresh:
        print(f"token: on the trainer, export AGENTGYM_SERVER_TOKEN={token}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _version(value: bool) -> None:
    if value:
        from agentgym import __version__

        console.print(f"agentgym {__version__}")
        raise typer.Exit()


def _plain_warnings(ctx: typer.Context) -> None:
    """Show Python warnings as one ``warning: ...`` line on stderr for this command.

    Python's own format (source path, line number, the code line) reads like a traceback
    in the middle of a progress bar; ``tqdm.write`` prints above the bar. The warnings
    are still Python warnings (filters apply; library code can catch them): only how an
    uncaught one is shown changes, and only until the command ends.
    """
    import warnings

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
        from tqdm import tqdm

        tqdm.write(f"warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    ctx.call_on_close(lambda: setattr(warnings, "showwarning", previous))


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            help="Import this module first (repeatable): envs it registers with a plain register() call "
            "become usable by every command.",
        ),
    ] = None,
) -> None:
    """agentgym: train LLM agents with RL on Gymnasium/PettingZoo text environments."""
    from agentgym.config import ConfigError, import_modules

    _plain_warnings(ctx)
    ctx.obj = {**(ctx.obj or {}), "imports": list(imports or [])}  # what the user named (train --resume)

    try:
        import_modules(list(imports or []), where="--import")
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def main() -> None:
    try:
        app()
    except KeyError as exc:  # EnvNotFound and friends: a message, not a traceback
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
