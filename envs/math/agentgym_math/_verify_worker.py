"""The math answer checker's slow path, in a process of its own so that it can be killed.

Started by :func:`agentgym_math.verifier._slow_check` as ``python -m
agentgym_math._verify_worker``; reads one JSON request per line (``text``, ``num``,
``den``) and writes one JSON answer per line (``ok``, ``error``). sympy can spend minutes
inside one C call on an answer such as ``\\binom{9999999999}{4999999999}``, which no
alarm interrupts and which would hang a rollout thread; here the parent simply kills
this process at the deadline and starts another.
"""

from __future__ import annotations

import json
import sys


def answer(text: str, num: int, den: int) -> tuple[bool, str | None]:
    import sympy
    from math_verify import parse, verify

    from agentgym_math.verifier import _VAR_PREFIX_RE

    body = text.strip("$").strip()
    m = _VAR_PREFIX_RE.match(body)
    if m:
        body = body[m.end() :]
    parsed = parse(f"${body}$", parsing_timeout=None)
    if not parsed:
        parsed = parse(body, parsing_timeout=None)
    # "banana" parses as b*a*n*a*n*a: an expression with unknowns is not a number.
    if not any(isinstance(p, sympy.Basic) and not p.free_symbols for p in parsed):
        return False, f"could not parse the answer: {text[:60]!r} is not a number"
    return bool(verify(sympy.Rational(num, den), parsed, timeout_seconds=None)), None


def main() -> None:
    import math_verify  # noqa: F401  (imported before "ready": start-up is not part of any deadline)
    import sympy  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            req = json.loads(line)
            ok, error = answer(req["text"], int(req["num"]), int(req["den"]))
        except Exception as exc:  # a strange answer is an unreadable answer, never a dead worker
            ok, error = False, f"could not parse the answer: {type(exc).__name__}: {exc}"[:300]
        print(json.dumps({"ok": ok, "error": error}), flush=True)


if __name__ == "__main__":
    main()
