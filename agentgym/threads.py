"""Torch threads that give way when another process wants the CPU.

On a small CPU, torch's default (one OpenMP thread per core, spinning at every barrier)
is the fastest setting while the machine is idle and a disaster when it is not: with a
second CPU-bound process on one of two cores, every barrier waits for a descheduled
partner, and sampling ran at 10.8 tokens/s against 94.9 idle (``bench/threads.py``,
``results/bench/threads.json``). One thread runs at 53-56 tokens/s either way, and
``OMP_WAIT_POLICY=PASSIVE`` trades a quarter of the idle speed for safety.

:class:`ThreadGovernor` keeps both speeds: every ``every_s`` seconds (at the next
generation batch or update) it times a short probe, a few matrix products of an
update's shape, with one thread and with the full count, and uses whichever was faster, with
a margin against flapping. Idle, the full count wins and nothing changes; beside a busy
process the probe with the full count stalls at its barriers, so one thread wins within
one check, and the full count comes back once the neighbour stops. A probe costs about
0.1 s (its full-count half is cut off once it has taken twice the one-thread time).

The count is per OS thread under OpenMP (a thread that set it keeps it), so every thread
that does torch work applies the current choice itself at its next :func:`tick`.

It is on by default for a transformers model on the CPU when torch would use more than
one thread and neither ``OMP_NUM_THREADS`` nor ``model.threads`` fixes the count. On the
machines we checked, the model's logits and gradients are bit for bit the same with one
thread and with two, so the choice changes speed, not results; ``model.threads: N``
fixes the count for a run that must not depend on it.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable

import torch

#: Seconds between two probes.
EVERY_S = 20.0
#: The full count must be this much faster than one thread to be chosen (and this much
#: slower to be dropped): a margin so that noise does not flip the choice every probe.
MARGIN = 0.9


def _probe_once(threads: int, reps: int, cap_s: float | None) -> float:
    """Seconds for ``reps`` products of the shape an update's MLP multiplies (256 tokens
    of a ~100M model: compute-bound, so a second free core pays) with ``threads``
    threads; stops early (inf) past ``cap_s``. Decoding-shaped products (8 rows) were
    tried first and do not separate idle from busy: memory-bound, they gain 0-13% from a
    second thread while the real step gains 30%."""
    torch.set_num_threads(threads)
    x, w = _probe_tensors()
    with torch.no_grad():
        y = x @ w  # first touch outside the timing
        t0 = time.perf_counter()
        for _ in range(reps):
            y = x @ w
            if cap_s is not None and time.perf_counter() - t0 > cap_s:
                return float("inf")
    del y
    return time.perf_counter() - t0


_TENSORS: tuple[torch.Tensor, torch.Tensor] | None = None


def _probe_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    global _TENSORS
    if _TENSORS is None:
        g = torch.Generator().manual_seed(0)
        _TENSORS = (torch.randn(256, 576, generator=g), torch.randn(576, 1536, generator=g))
    return _TENSORS


def measure(full: int, reps: int = 6) -> tuple[float, float]:
    """(seconds with one thread, seconds with ``full`` threads) for the probe, the better
    of two tries each, interleaved; the full-count tries are cut off (inf) at twice the
    one-thread time, which is all the decision needs."""
    one = min(_probe_once(1, reps, None), _probe_once(1, reps, None))
    many = min(_probe_once(full, reps, 2 * one), _probe_once(full, reps, 2 * one))
    return one, many


class ThreadGovernor:
    """Chooses between ``full`` torch threads and one, by timing :func:`measure` (or
    ``probe``) every ``every_s`` seconds. ``probe`` and ``clock`` are replaceable for tests."""

    def __init__(
        self,
        full: int,
        *,
        every_s: float = EVERY_S,
        margin: float = MARGIN,
        probe: Callable[[int], tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        notify: Callable[[str], None] | None = None,
    ):
        if full < 2:
            raise ValueError(f"a governor needs at least 2 threads to choose from, got {full}")
        self.full = full
        self.threads = full
        self.every_s = every_s
        self.margin = margin
        self.probe = probe
        self.clock = clock
        self.notify = notify
        self.probes = 0
        self.switches = 0
        self._next = clock()  # the first tick probes
        self._lock = threading.Lock()
        self._local = threading.local()
        self._said_low = False

    def tick(self) -> int:
        """Probe if one is due, apply the current choice to the calling thread, and return it."""
        now = self.clock()
        with self._lock:
            due = now >= self._next
            if due:
                self._next = now + self.every_s
        if due:
            self._decide()
        if getattr(self._local, "applied", None) != self.threads:
            torch.set_num_threads(self.threads)
            self._local.applied = self.threads
        return self.threads

    def _decide(self) -> None:
        # measure is looked up at each probe (not bound when the class was defined), so a
        # test's replacement of it reaches a governor that enable() made.
        one, many = (self.probe or measure)(self.full)
        self._local.applied = None  # the probe changed this thread's count
        self.probes += 1
        before = self.threads
        if before == self.full and many * self.margin > one:
            self.threads = 1
        elif before == 1 and many < self.margin * one:
            self.threads = self.full
        if self.threads != before:
            self.switches += 1
            if self.notify is not None and (self.threads == 1 and not self._said_low or self.threads == self.full):
                self.notify(self._message(one, many))
                self._said_low = self._said_low or self.threads == 1

    def _message(self, one: float, many: float) -> str:
        if self.threads == 1:
            took = f"over {2 * one * 1e3:.0f} ms (cut off)" if math.isinf(many) else f"{many * 1e3:.0f} ms"
            return (
                f"agentgym: another process is using the CPU (a probe took {took} with {self.full} torch threads, "
                f"{one * 1e3:.0f} ms with one); running with 1 thread until it stops (model.threads: N fixes the count)"
            )
        return f"agentgym: the CPU is free again; back to {self.full} torch threads"


_GOVERNOR: ThreadGovernor | None = None
#: Set by :func:`fix`: a run (or the environment) chose the count; no governor then.
_FIXED = False


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fix(threads: int) -> None:
    """Use exactly ``threads`` torch threads from now on (0: leave torch's count and let
    :func:`enable` govern it)."""
    global _FIXED, _GOVERNOR
    if threads:
        torch.set_num_threads(threads)
        _FIXED, _GOVERNOR = True, None
    else:
        _FIXED = False


def enable(device: torch.device | str = "cpu") -> ThreadGovernor | None:
    """Govern torch's threads for CPU work in this process, unless the count is fixed (by
    :func:`fix`, ``OMP_NUM_THREADS`` or ``AGENTGYM_THREADS=fixed``), torch uses one
    thread anyway, or the model is not on the CPU. Returns the governor (one per process)."""
    global _GOVERNOR
    if _GOVERNOR is not None:
        return _GOVERNOR
    if _FIXED or torch.device(device).type != "cpu" or torch.get_num_threads() < 2:
        return None
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("AGENTGYM_THREADS", "").lower() == "fixed":
        return None
    _GOVERNOR = ThreadGovernor(torch.get_num_threads(), notify=_say)
    return _GOVERNOR


def disable() -> None:
    """Stop governing and give torch back the full count (tests, and code that wants the
    count to stay put)."""
    global _GOVERNOR
    if _GOVERNOR is not None:
        torch.set_num_threads(_GOVERNOR.full)
    _GOVERNOR = None


def tick() -> int | None:
    """Called before CPU-heavy torch work (a generation batch, an update): probes when due
    and applies the choice to the calling thread. Returns the count in force, or None when
    no governor runs."""
    return None if _GOVERNOR is None else _GOVERNOR.tick()


def current() -> ThreadGovernor | None:
    return _GOVERNOR
