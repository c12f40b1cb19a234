"""Pathological math answers cannot hang a rollout thread: guards first, then a killable worker."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest

verifier = pytest.importorskip("agentgym_math.verifier")

PATHOLOGICAL = [
    r"\binom{9999999999}{4999999999}",
    r"\Gamma(99999999)",
    r"\sum_{i=1}^{99999999} i^{i}",
    r"\prod_{k=1}^{10^{9}} k",
    r"99999999999999999999!",
    r"10^{10^{10}}",
    r"binomial(9999999999, 4999999999)",
]


def _in_thread(fn, *args):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    t.join(timeout=60)  # a bound on hanging forever, not a speed target
    assert not t.is_alive(), f"{args[0]!r} hung a non-main thread"
    return out[0]


@pytest.mark.parametrize("answer", PATHOLOGICAL)
def test_guards_refuse_explosive_answers_in_any_thread(answer):
    ok, error = _in_thread(verifier.check, answer, Fraction(7))
    assert ok is False and error.startswith("could not parse the answer")


def test_what_the_guards_miss_is_killed_at_the_deadline(monkeypatch):
    monkeypatch.setattr(verifier, "GUARDS", False)
    ok, error = _in_thread(verifier.check, r"\binom{9999999999}{4999999999}", Fraction(7))
    assert ok is False and "could not check the answer within" in error
    # the worker was replaced: the slow path still answers, right and wrong, from a thread
    assert _in_thread(verifier.check, r"\sqrt{1/4}", Fraction(1, 2)) == (True, None)
    assert _in_thread(verifier.check, r"\sqrt{1/4}", Fraction(1, 3)) == (False, None)


def test_many_threads_share_the_slow_path():
    results: list = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(verifier.check(rf"2^{{{i}}}", Fraction(2**i))))
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [(True, None)] * 6
