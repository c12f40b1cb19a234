"""Env pools: in-process and Ray workers give the same Episodes; dead workers are replaced
and their episodes replayed (or dropped and counted when a replay diverges or fails)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

import agentgym
from agentgym import TaskSpec
from agentgym.config import ConfigError, load_config
from agentgym.machine import check_backends
from agentgym.policies import SamplingParams, ScriptedPolicy
from agentgym.rollout import InProcessPool, RolloutRunner
from tests.pool_envs import GuessLite

GUESS = [TaskSpec({"high": 9}, s) for s in range(5)]


def guesser(chat):
    """Deterministic replies that depend on the conversation (so turns differ)."""
    return ScriptedPolicy(chat, lambda text: str(len(re.findall(r"higher|lower", text)) * 2 + len(text) % 3 + 1))


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def ray_pool(ray_session):
    from agentgym.rollout.ray_pool import RayPool

    pools = []

    def make(n=2):
        pools.append(RayPool(n))
        return pools[-1]

    yield make
    for p in pools:
        p.close()


def kill_and_wait(ray, actor):
    """Kill an actor and wait until Ray reports it dead (so the next call sees it)."""
    from ray.exceptions import RayActorError

    ray.kill(actor)
    # The kill is asynchronous: a call may still be served just after it. Ask until the
    # actor answers as dead (at most 100 calls).
    for _ in range(100):
        try:
            ray.get(actor.ready.remote(), timeout=60)
        except RayActorError:
            return
        time.sleep(0.1)
    pytest.fail("the killed actor kept answering")


def dicts(episodes):
    return [e.to_dict() for e in episodes]


# ----- (a) same Episodes and metrics as in-process --------------------------------------
def test_multi_turn_episodes_are_identical_across_backends(chat, ray_pool):
    ref = RolloutRunner(guesser(chat), SamplingParams(max_new_tokens=8)).run("pool/guess-v0", GUESS, group_size=2)
    assert any(e.num_turns > 1 for e in ref)
    runner = RolloutRunner(guesser(chat), SamplingParams(max_new_tokens=8), pool=ray_pool(2))
    assert dicts(runner.run("pool/guess-v0", GUESS, group_size=2)) == dicts(ref)
    assert dicts(runner.run("pool/guess-v0", GUESS, group_size=2)) == dicts(ref)  # envs reused in the workers
    assert runner.last_stats.worker_restarts == 0 and runner.last_stats.dropped_env_errors == 0


def _game_move(text: str) -> str:
    """Valid moves in Nim and Kuhn poker, read off the conversation (so games run long)."""
    last = text[text.rfind("user") :]
    heaps = re.findall(r"heap (\d+) has (\d+)", last)
    if heaps:
        return f"take 1 from heap {next((i for i, n in heaps if int(n) > 0), heaps[0][0])}"
    return "call" if "call or fold" in last else "I bet."


GAMES = [
    (
        "multiagent/nim-v0",
        [TaskSpec({"heaps": 2, "max_heap": 4, "opponent": "random", "seat": 1}, s) for s in range(3)],
    ),
    ("multiagent/kuhn-poker-v0", [TaskSpec({"opponent": "self", "seat": 0}, s) for s in range(3)]),
    (
        "multiagent/negotiation-v0",
        [
            TaskSpec({"n_kinds": 2, "max_count": 2, "max_rounds": 3, "opponent": "greedy", "seat": 0}, s)
            for s in range(2)
        ],
    ),
]


@pytest.mark.parametrize("env_id, tasks", GAMES, ids=[g[0] for g in GAMES])
def test_games_play_in_ray_workers_with_the_same_episodes(chat, ray_pool, env_id, tasks):
    """A game's scripted seats move inside the worker: its Episodes (every seat's) are the
    in-process ones, with and without per-task seeds."""
    policy = ScriptedPolicy(chat, _game_move)
    sp = SamplingParams(max_new_tokens=12)
    pool = ray_pool(2)
    for seeds in (None, list(range(len(tasks)))):
        ref = RolloutRunner(policy, sp, seed=4).run(env_id, tasks, group_size=2, seeds=seeds)
        assert ref and all(e.num_policy_tokens for e in ref)
        got = RolloutRunner(policy, sp, seed=4, pool=pool).run(env_id, tasks, group_size=2, seeds=seeds)
        assert dicts(got) == dicts(ref)


def test_a_game_on_a_killed_worker_is_replayed_with_its_scripted_seats(chat, ray_pool):
    env_id, tasks = GAMES[0]
    policy = ScriptedPolicy(chat, _game_move)
    ref = RolloutRunner(policy, SamplingParams(max_new_tokens=12)).run(env_id, tasks, group_size=2)
    pool = ray_pool(2)
    runner = RolloutRunner(policy, SamplingParams(max_new_tokens=12), pool=pool)
    ray = pytest.importorskip("ray")

    def on_round(k, live):
        if k == 1 and live:
            kill_and_wait(ray, pool.workers[0])

    got = runner.run(env_id, tasks, group_size=2, on_round=on_round)
    st = runner.last_stats
    assert st.worker_restarts == 1 and st.replayed_episodes > 0 and st.replay_failures == 0
    assert dicts(got) == dicts(ref)


def _train(tmp_path, backend, steps=2):
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / backend}",
            "seed=3",
            "model.name=tiny",
            "env.id=math/arithmetic-v0",
            "rollout.tasks_per_step=2",
            "rollout.group_size=4",
            "rollout.max_new_tokens=6",
            "grpo.lr=1e-3",
            "grpo.micro_batch_size=8",
            "grpo.mask_truncated=false",
            "train.eval_tasks=4",
            "train.eval_max_new_tokens=6",
            f"rollout.backend={backend}",
            "rollout.ray.num_workers=2",
        ],
    )
    tr = GRPOTrainer(cfg, quiet=True)
    played = []
    run = tr.runner.run

    def recording_run(*args, **kwargs):
        eps = run(*args, **kwargs)
        played.extend(dicts(eps))
        return eps

    tr.runner.run = recording_run
    try:
        records = []
        for _ in range(steps):
            records.append({k: v for k, v in tr.train_step().items() if not k.startswith("time/")})
        ev = tr.evaluate()
        weights = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    finally:
        tr.close()
    return played, records, ev.overall, weights


def test_grpo_training_is_identical_with_ray_workers(tmp_path, ray_session):
    """A short seeded GRPO run on the math env: same Episodes (ids, log-probs, rewards),
    same metrics, same held-out evaluation and same weights with rollout.backend=ray."""
    eps_a, rec_a, ev_a, w_a = _train(tmp_path, "inprocess")
    eps_b, rec_b, ev_b, w_b = _train(tmp_path, "ray")
    assert len(eps_a) == 2 * 2 * 4 and eps_a == eps_b
    assert rec_a == rec_b and rec_b[0]["rollout/worker_restarts"] == 0.0
    assert ev_a == ev_b
    assert all((w_a[n] == w_b[n]).all() for n in w_a)


# ----- (b) a worker dies mid-batch: replaced, episodes replayed, nothing lost -------------
def test_worker_process_exiting_mid_batch_is_replaced_and_episodes_replayed(chat, ray_pool, tmp_path):
    marker = tmp_path / "crash"
    kwargs = {"marker": str(marker)}
    ref = RolloutRunner(guesser(chat), SamplingParams(max_new_tokens=8), env_kwargs=kwargs).run(
        "pool/crash-once-v0", GUESS, group_size=2
    )
    assert sum(e.num_turns >= 2 for e in ref) >= 2  # some episodes reach the crashing step
    marker.write_text("x")
    runner = RolloutRunner(guesser(chat), SamplingParams(max_new_tokens=8), env_kwargs=kwargs, pool=ray_pool(2))
    got = runner.run("pool/crash-once-v0", GUESS, group_size=2)
    assert not marker.exists() and (tmp_path / "crash.claimed").exists()  # a worker did exit
    st = runner.last_stats
    assert st.worker_restarts == 1 and st.replayed_episodes >= 1
    assert st.replay_failures == 0 and st.dropped_env_errors == 0
    assert dicts(got) == dicts(ref)


def test_killed_actor_between_rounds_is_replaced(chat, ray_pool):
    ref = RolloutRunner(guesser(chat), SamplingParams(max_new_tokens=8)).run("pool/guess-v0", GUESS, group_size=2)
    pool = ray_pool(2)
    runner = RolloutRunner(guesser(chat), SamplingParams(max_new_tokens=8), pool=pool)
    ray = pytest.importorskip("ray")

    def on_round(k, live):
        if k == 1 and live:
            kill_and_wait(ray, pool.workers[1])

    got = runner.run("pool/guess-v0", GUESS, group_size=2, on_round=on_round)
    assert runner.last_stats.worker_restarts == 1 and runner.last_stats.replayed_episodes > 0
    assert dicts(got) == dicts(ref)


def test_a_worker_dead_at_reset_is_replaced_and_the_resets_retried(ray_pool, ray_session):
    pool = ray_pool(1)
    kill_and_wait(ray_session, pool.workers[0])
    opened = pool.reset("pool/guess-v0", GUESS[:3])
    assert all(r.error is None for r in opened) and [r.task for r in opened] == GUESS[:3]
    assert (pool.stats.worker_restarts, pool.stats.replayed_episodes, pool.stats.replay_failures) == (1, 3, 0)
    assert all(r.error is None for r in pool.step([r.handle for r in opened], ["1", "2", "3"]))


# ----- (c) replays that diverge or fail are dropped and counted ---------------------------
def test_replay_divergence_drops_the_episodes_and_counts_them(ray_pool, ray_session):
    pool = ray_pool(1)
    opened = pool.reset("pool/pid-v0", GUESS[:2])
    handles = [r.handle for r in opened]
    first = pool.step(handles, ["1", "1"])
    assert all(r.error is None and r.messages[0]["content"].startswith("pid ") for r in first)
    kill_and_wait(ray_session, pool.workers[0])
    again = pool.step(handles, ["2", "2"])
    assert all(r.error is not None and "diverged at step 1" in r.error for r in again)
    assert (pool.stats.worker_restarts, pool.stats.replayed_episodes, pool.stats.replay_failures) == (1, 2, 2)
    # The replacement worker serves new episodes.
    [fresh] = pool.reset("pool/guess-v0", GUESS[:1])
    assert pool.step([fresh.handle], ["5"])[0].error is None


def test_a_replay_that_dies_again_drops_every_episode_of_that_worker(ray_pool, chat):
    pool = ray_pool(1)
    a, b = (r.handle for r in pool.reset("pool/die-v0", GUESS[:2]))
    [res] = pool.step([a], ["die"])  # dies, is replaced, the replay re-sends "die": dies again
    assert res.error is not None and "died again" in res.error
    [later] = pool.step([b], ["3"])  # b was on the same worker: lost with it
    assert later.error is not None and "died again" in later.error
    assert (pool.stats.worker_restarts, pool.stats.replay_failures) == (2, 2)
    runner = RolloutRunner(ScriptedPolicy(chat, lambda t: "die"), SamplingParams(max_new_tokens=4), pool=pool)
    assert runner.run("pool/die-v0", GUESS[:1], group_size=2) == []
    st = runner.last_stats
    assert st.dropped_env_errors == 2 and st.replay_failures == 2 and st.worker_restarts == 2


def test_env_errors_in_workers_behave_as_in_process(ray_pool, chat, monkeypatch):
    pool = ray_pool(2)
    with pytest.raises(RuntimeError, match="reset bug"):
        pool.reset("pool/broken-reset-v0", GUESS[:3])
    runner = RolloutRunner(ScriptedPolicy(chat, lambda t: "not a number"), SamplingParams(max_new_tokens=4), pool=pool)
    eps = runner.run("pool/guess-v0", GUESS[:2], group_size=2)
    assert len(eps) == 4 and all(e.errors for e in eps)  # bad actions are the env's answer, not errors


def test_more_workers_than_cpus_is_a_clear_error(ray_session):
    from agentgym.rollout.ray_pool import RayPool

    with pytest.raises(RuntimeError, match="need 6 CPUs but the Ray cluster has 2"):
        RayPool(3, num_cpus_per_worker=2)


# ----- in-process pool ---------------------------------------------------------------------
def test_inprocess_pool_reuses_envs_and_discards_broken_ones(monkeypatch):
    made = []

    def make_env(env_id, **kw):
        made.append(agentgym.make(env_id, **kw))
        return made[-1]

    pool = InProcessPool(make_env)
    first = pool.reset("pool/guess-v0", GUESS[:2], {"max_turns": 2})
    pool.release([r.handle for r in first])
    again = pool.reset("pool/guess-v0", GUESS[2:4], {"max_turns": 2})
    assert len(made) == 2  # reused
    pool.reset("pool/guess-v0", GUESS[:1], {"max_turns": 3})
    assert len(made) == 3  # other kwargs, another env
    monkeypatch.setattr(GuessLite, "_step", lambda self, a: 1 / 0)
    [bad, _] = pool.step([r.handle for r in again], ["1", "1"])
    assert "ZeroDivisionError" in bad.error
    assert "no live episode" in pool.step([again[0].handle], ["1"])[0].error
    monkeypatch.undo()
    pool.release([r.handle for r in again])
    pool.reset("pool/guess-v0", GUESS[:2], {"max_turns": 2})
    assert len(made) == 5  # the two broken envs were not reused
    with pytest.raises(RuntimeError, match="reset bug"):
        pool.reset("pool/broken-reset-v0", GUESS[:1])
    pool.close()


# ----- config ------------------------------------------------------------------------------
def test_ray_backend_config_is_validated(tmp_path, monkeypatch):
    cfg = load_config(None, ["rollout.backend=ray", "rollout.ray.num_workers=4", "rollout.ray.address=auto"])
    assert cfg.rollout.ray.num_workers == 4 and cfg.rollout.ray.address == "auto"
    assert load_config(None).rollout.backend == "inprocess"
    with pytest.raises(ConfigError, match="rollout.ray.num_workers"):
        load_config(None, ["rollout.ray.num_workers=0"])
    with pytest.raises(ConfigError, match="rollout.backend"):
        load_config(None, ["rollout.backend=dask"])
    with pytest.raises(ConfigError, match="did you mean 'num_workers'"):
        load_config(None, ["rollout.ray.num_worker=2"])

    import importlib.util

    import agentgym.grpo.setup as setup_mod
    import agentgym.grpo.trainer as trainer_mod

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    monkeypatch.setattr(setup_mod, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match=r"pip install agentgym\[ray\]"):
        check_backends(cfg)
    with pytest.raises(ConfigError, match=r"rollout.backend=ray needs Ray.*pip install agentgym\[ray\]"):
        trainer_mod.GRPOTrainer(
            load_config(None, [f"run_dir={tmp_path}", "model.name=tiny", "rollout.backend=ray"]), quiet=True
        )


def test_trainer_logs_the_pool_counters(tmp_path):
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'r'}",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            "rollout.tasks_per_step=1",
            "rollout.group_size=2",
            "rollout.max_new_tokens=3",
            "grpo.mask_truncated=false",
            "train.steps=1",
            "train.eval_tasks=2",
        ],
    )
    GRPOTrainer(cfg, quiet=True).train()
    rec = [json.loads(x) for x in Path(tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rec if r["kind"] == "train"][0]
    assert train["rollout/worker_restarts"] == 0.0 and train["rollout/replayed_episodes"] == 0.0
    assert train["rollout/env_errors"] == 0.0


def test_agentgym_imports_without_ray_or_vllm():
    import subprocess
    import sys

    code = (
        "import sys, agentgym, agentgym.rollout, agentgym.grpo.trainer, agentgym.policies.vllm_policy; "
        "assert 'ray' not in sys.modules and 'vllm' not in sys.modules, 'imported eagerly'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
