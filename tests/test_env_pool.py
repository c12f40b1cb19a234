"""The in-process env pool steps envs that declare ``concurrent_steps`` side by side.

A barrier that every env of a batch must reach inside ``step`` (or ``reset``) proves the
calls overlap: stepped one after another, the first env waits alone and times out.
"""

from __future__ import annotations

import threading

import pytest

from agentgym import TaskSpec
from agentgym.rollout.pool import InProcessPool
from tests.pool_envs import GuessLite


class Meeting(GuessLite):
    """Every step (and reset) waits at a shared barrier of ``parties`` envs."""

    concurrent_steps = True
    barrier: threading.Barrier | None = None
    threads: list[str] = []

    def _meet(self):
        Meeting.threads.append(threading.current_thread().name)
        if Meeting.barrier is not None:
            Meeting.barrier.wait(timeout=5)

    def _reset(self, params, rng):
        self._meet()
        return super()._reset(params, rng)

    def _step(self, action):
        self._meet()
        if action == "boom":
            raise RuntimeError("env bug")
        return super()._step(action)


class Plain(GuessLite):
    """Not declared concurrent: must be stepped in the caller's thread."""

    def _step(self, action):
        Meeting.threads.append(threading.current_thread().name)
        return super()._step(action)


def _pool(cls, **kw):
    return InProcessPool(make_env=lambda env_id, **kwargs: cls(**kwargs), **kw)


def _tasks(n):
    return [TaskSpec({"high": 50}, seed) for seed in range(n)]


@pytest.fixture(autouse=True)
def _clean():
    Meeting.barrier, Meeting.threads = None, []
    yield
    Meeting.barrier, Meeting.threads = None, []


def test_concurrent_envs_are_reset_and_stepped_side_by_side():
    pool = _pool(Meeting)
    Meeting.barrier = threading.Barrier(4)
    opened = pool.reset("m", _tasks(4))  # would raise BrokenBarrierError one at a time
    out = pool.step([r.handle for r in opened], ["1", "2", "3", "4"])
    assert [o.error for o in out] == [None] * 4
    assert all(o.messages for o in out)
    pool.close()


def test_one_thread_steps_one_env_after_another():
    pool = _pool(Meeting, max_threads=1)
    opened = pool.reset("m", _tasks(3))
    Meeting.threads = []
    pool.step([r.handle for r in opened], ["1", "2", "3"])
    assert set(Meeting.threads) == {threading.current_thread().name}
    pool.close()


def test_envs_not_declared_concurrent_stay_in_the_callers_thread():
    pool = _pool(Plain)
    opened = pool.reset("p", _tasks(3))
    pool.step([r.handle for r in opened], ["1", "2", "3"])
    assert Meeting.threads and set(Meeting.threads) == {threading.current_thread().name}
    pool.close()


def test_results_match_a_sequential_pool_in_request_order():
    """The same calls give the same results, in the order asked, with or without threads."""

    def play(pool):
        opened = pool.reset("m", _tasks(6))
        handles = [r.handle for r in opened]
        rounds = [[r.messages[-1]["content"] for r in opened]]
        for guess in ("25", "12", "37"):
            # ask in reverse order: results must follow the request, not the handles
            out = pool.step(handles[::-1], [guess] * len(handles))
            rounds.append([(o.reward, o.terminated, o.messages[-1]["content"] if o.messages else "") for o in out])
        pool.close()
        return rounds

    assert play(_pool(Meeting)) == play(_pool(Meeting, max_threads=1))


def test_an_env_that_raises_is_dropped_and_the_others_go_on():
    pool = _pool(Meeting)
    opened = pool.reset("m", _tasks(3))
    handles = [r.handle for r in opened]
    out = pool.step(handles, ["1", "boom", "3"])
    assert out[0].error is None and out[2].error is None
    assert "env bug" in out[1].error
    assert handles[1] not in pool.live_handles and set(pool.live_handles) == {handles[0], handles[2]}
    again = pool.step([handles[1]], ["1"])
    assert "no live episode" in again[0].error
    pool.close()


def test_a_failed_reset_releases_the_opened_episodes_and_raises_the_first_error():
    class BadSeed(Meeting):
        def _reset(self, params, rng):
            if self.task.seed == 1:
                raise ValueError("cannot open seed 1")
            return super()._reset(params, rng)

    pool = _pool(BadSeed)
    with pytest.raises(ValueError, match="seed 1"):
        pool.reset("b", _tasks(3))
    assert pool.live_handles == []
    assert len(pool._free[next(iter(pool._free))]) == 2  # the two good envs are reusable
    pool.close()


def test_one_handle_twice_in_a_step_is_refused():
    pool = _pool(Meeting)
    (r,) = pool.reset("m", _tasks(1))
    with pytest.raises(ValueError, match="twice"):
        pool.step([r.handle, r.handle], ["1", "2"])
    pool.close()
