"""The thread governor: one torch thread while another process holds a core, the full
count when the CPU is free again, decided by a probe at most every ``every_s`` seconds and
applied in every thread that does torch work."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from agentgym import threads
from agentgym.threads import ThreadGovernor


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Probe:
    """Replies (one-thread seconds, full-count seconds) from a script of CPU states."""

    def __init__(self):
        self.busy = False
        self.calls = 0

    def __call__(self, full):
        self.calls += 1
        return (0.020, 0.060) if self.busy else (0.020, 0.017)


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def make(probe, clock, **kw):
    return ThreadGovernor(2, every_s=20.0, probe=probe, clock=clock, **kw)


def test_one_thread_while_the_cpu_is_busy_and_the_full_count_when_it_is_free_again():
    probe, clock, said = Probe(), Clock(), []
    gov = make(probe, clock, notify=said.append)
    assert gov.tick() == 2 and torch.get_num_threads() == 2  # idle: the full count wins the first probe
    probe.busy = True
    clock.t = 19.9
    assert gov.tick() == 2 and probe.calls == 1  # no probe before every_s
    clock.t = 20.0
    assert gov.tick() == 1 and torch.get_num_threads() == 1
    assert "another process is using the CPU" in said[-1] and "1 thread" in said[-1]
    clock.t = 40.0
    assert gov.tick() == 1  # still busy: stays, says nothing more
    assert len(said) == 1
    probe.busy = False
    clock.t = 60.0
    assert gov.tick() == 2 and torch.get_num_threads() == 2
    assert "free again" in said[-1]
    assert (gov.probes, gov.switches) == (4, 2)


def test_a_margin_keeps_noise_from_flipping_the_choice():
    clock = Clock()
    replies = iter([(0.020, 0.0195), (0.020, 0.0195), (0.020, 0.030), (0.020, 0.0195), (0.020, 0.0170)])
    gov = make(lambda full: next(replies), clock, margin=0.9)
    # Full count barely faster (0.0195 vs 0.020): 0.9 x 0.0195 < 0.020, so it stays.
    assert gov.tick() == 2
    clock.t += 20
    assert gov.tick() == 2
    clock.t += 20
    assert gov.tick() == 1  # clearly slower: dropped
    clock.t += 20
    assert gov.tick() == 1  # barely faster is not enough to come back
    clock.t += 20
    assert gov.tick() == 2  # 0.017 < 0.9 x 0.020


def test_a_full_count_probe_cut_off_counts_as_slower():
    gov = make(lambda full: (0.020, math.inf), Clock())
    assert gov.tick() == 1


def test_each_thread_that_works_gets_the_choice():
    """OpenMP keeps a thread count per OS thread: a background rollout thread must apply
    the choice itself, not inherit the main thread's."""
    probe, clock = Probe(), Clock()
    gov = make(probe, clock)
    gov.tick()
    seen = {}
    started, go = threading.Event(), threading.Event()

    def worker():
        torch.set_num_threads(2)
        torch.ones(4).sum()  # a thread that has done torch work keeps its own count
        assert torch.get_num_threads() == 2
        started.set()
        go.wait(5)
        seen["before"] = torch.get_num_threads()
        seen["tick"] = gov.tick()
        seen["after"] = torch.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    started.wait(5)
    probe.busy = True
    clock.t = 20.0
    assert gov.tick() == 1  # the main thread probes and switches
    go.set()
    t.join(5)
    assert seen == {"before": 2, "tick": 1, "after": 1}


def test_a_probe_times_real_work_and_the_count_is_reapplied_after_it():
    one, many = threads.measure(2, reps=2)
    assert 0 < one < 5 and many > 0
    # The real probe leaves torch at the full count (its last products ran with 2); a
    # governor that chooses 1 thread must set 1 again after probing, in this thread.
    clock = Clock()
    gov = ThreadGovernor(2, probe=lambda full: (threads.measure(full, reps=2)[0], math.inf), clock=clock)
    assert gov.tick() == 1 and torch.get_num_threads() == 1
    clock.t = 20.0  # a second probe, after this thread already had 1 applied
    assert gov.tick() == 1 and gov.probes == 2
    assert torch.get_num_threads() == 1


def test_enable_respects_a_fixed_count(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("AGENTGYM_THREADS", raising=False)
    try:
        torch.set_num_threads(2)
        threads.fix(3)  # model.threads: 3
        assert threads.enable("cpu") is None and torch.get_num_threads() == 3
        threads.fix(0)  # model.threads: 0, torch's count
        torch.set_num_threads(2)
        gov = threads.enable("cpu")
        assert gov is not None and gov.full == 2 and threads.enable("cpu") is gov
        threads.disable()
        assert threads.enable("meta") is None  # not CPU work
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.enable("cpu") is None  # the environment fixed the count
        monkeypatch.delenv("OMP_NUM_THREADS")
        torch.set_num_threads(1)
        assert threads.enable("cpu") is None  # nothing to choose from
    finally:
        threads.disable()
        threads.fix(0)


@pytest.mark.parametrize("fixed", [0, 1])
def test_a_training_run_governs_its_threads_unless_model_threads_fixes_them(tmp_path, monkeypatch, fixed):
    """``model.threads: 0`` (the default): the trainer governs torch's count and logs the
    count in force with each update; ``model.threads: 1`` (the long experiments) fixes it
    and clears a governor a command had already started."""
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("AGENTGYM_THREADS", raising=False)
    monkeypatch.setattr(threads, "measure", lambda full, reps=10: (0.020, 0.060))  # a busy CPU
    torch.set_num_threads(2)
    threads.enable("cpu")  # as make_policy does for a command
    overrides = [
        f"run_dir={tmp_path / 'run'}",
        "model.name=tiny",
        f"model.threads={fixed}",
        "rollout.tasks_per_step=1",
        "rollout.group_size=2",
        "rollout.max_new_tokens=4",
        "train.eval_tasks=2",
        "train.eval_max_new_tokens=4",
    ]
    try:
        tr = GRPOTrainer(load_config(None, overrides), quiet=True)
        try:
            record = tr.train_step()
        finally:
            tr.close()
        if fixed:
            assert threads.current() is None and "time/threads" not in record
            assert torch.get_num_threads() == 1
        else:
            assert threads.current() is not None and record.get("time/threads") == 1.0
            assert torch.get_num_threads() == 1
    finally:
        threads.disable()
        threads.fix(0)
