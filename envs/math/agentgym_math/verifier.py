"""Answer extraction and checking for math tasks whose gold answer is a rational number.

Two steps, kept apart so each can be tested on its own:

- :func:`extract_answer` finds what the model gave as its final answer: the content of
  the last ``\\boxed{...}`` (or ``\\fbox{...}``), else a closing phrase such as
  "the answer is 7" or "Answer: 7".
- :func:`check` compares that text with the gold :class:`~fractions.Fraction`. A fast
  path parses the usual forms (``-3``, ``0.25``, ``1,000``, ``7/2``, ``\\frac{7}{2}``,
  ``x = 7/2``, mixed numbers ``3 1/2``) exactly with :class:`fractions.Fraction`; only
  what it cannot read goes to math_verify (sympy), after guards that refuse answers
  known to explode (huge exponents, factorials, binomials, Gamma, sums...), in a worker
  process killed at a hard deadline (:data:`SLOW_PATH_TIMEOUT_S`) from any thread.

Neither function raises: bad input gives ``None`` or ``(False, error message)``.
"""

from __future__ import annotations

import atexit
import json
import re
import select
import subprocess
import sys
import threading
from fractions import Fraction

#: Answers longer than this are refused instead of being handed to sympy.
MAX_ANSWER_CHARS = 200
#: A box that has not closed this many characters after it opened counts as unclosed.
MAX_BOX_CHARS = 1000
#: How many boxes, from the last one back, are tried before giving up.
MAX_BOXES_TRIED = 32
#: Seconds the slow path (math_verify in its worker process) may take before it is killed.
SLOW_PATH_TIMEOUT_S = 3.0

NO_ANSWER_ERROR = "no final answer found: put it in \\boxed{}"

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"\\.|[{}]", re.DOTALL)
# "the answer is 7", "Final answer: 7", "**Answer:** $7$", "answer = 7": the phrase only;
# what follows it is read up to the end of its line or sentence.
_PHRASE_RE = re.compile(r"answer\**\s*(?:is\b|:|=)[ \t]*:?[ \t]*\**[ \t]*", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"[.!?;,。](?=\s)|\n")

# ----- fast path -----------------------------------------------------------------------
# The forms answers take most of the time ("42", "-7/2", "0.375"), read before anything else.
_QUICK_RE = re.compile(r"\s*([+-]?\d+)(?:/(\d+)|\.(\d+))?\s*")
_INT = r"\d+(?:,\d{3})+|\d+"
_NUMBER_RE = re.compile(rf"([+-]?)({_INT})?(?:\.(\d*))?")
_SIMPLE_FRAC_RE = re.compile(rf"([+-]?)({_INT})\s*/\s*({_INT})")
_MIXED_RE = re.compile(r"([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)")
# \frac{a}{b}, \dfrac{-a}{b}, \tfrac12, \frac{1}2, with an optional whole part before it.
_LATEX_FRAC_RE = re.compile(
    r"([+-]?)(\d+)?\s*\\[dt]?frac\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))"
)
_UNIT_RE = re.compile(r"([+-]?(?:\d+(?:,\d{3})*)(?:\.\d+)?)\s+[A-Za-z][A-Za-z ]*")
_STRIP_RE = re.compile(r"\\left|\\right|\\displaystyle|\\[,;:! $]|\\text\{\s*\}")
# Spaces go, except between two digits: "3 5" must not read as 35.
_SPACE_RE = re.compile(r"(?<!\d)\s+|\s+(?!\d)")
_TEXT_UNIT_RE = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{[^{}]*\}$")
_VAR_PREFIX_RE = re.compile(r"^[a-zA-Z]\s*=\s*")
_TEXT_WRAP_RE = re.compile(r"^\\(?:text|mathrm|mathbf|textbf)\{(.*)\}$", re.DOTALL)
_TRAILING = " \t\n.。;,$"
_LEADING = " \t\n$"

# ----- guards for the slow path ----------------------------------------------------------
# An exponent that itself holds an exponent or a long number (10^{10^{10}}, 9^9^9,
# 2^99999) makes sympy build a gigantic integer in one C call that no alarm interrupts.
_EXPONENT_RE = re.compile(r"(?:\^|\*\*)([^+\-*/=,;]*)")
_LONG_DIGITS_RE = re.compile(r"\d{5,}")
# Functions whose value sympy computes exactly however large the arguments: refused before
# parsing (a rational gold answer never needs them), as are very long digit runs.
_EXPLOSIVE_RE = re.compile(
    r"\\(?:binom|dbinom|tbinom|choose|Gamma|gamma|sum|prod|int|lim|zeta|operatorname|mathrm\{C\})|"
    r"\b(?:binomial|factorial|gamma|Gamma|Sum|Product|Integral|zeta|C)\s*\(",
)
_HUGE_NUMBER_RE = re.compile(r"\d{13,}")


def extract_answer(text: str) -> str | None:
    """The model's final answer in ``text``, or ``None`` when it gave none.

    The last ``\\boxed{...}``/``\\fbox{...}`` whose braces balance wins (escaped braces
    ``\\{`` do not count; an empty last box means no answer); without one, the last
    "answer is X" / "Answer: X" phrase, read to the end of its sentence or line.
    Bounded work on hostile text: a box still open after :data:`MAX_BOX_CHARS` characters
    counts as unclosed, and only the last :data:`MAX_BOXES_TRIED` boxes are tried.
    """
    if not isinstance(text, str) or not text:
        return None
    boxed = _last_box(text)
    if boxed is not None:
        # An empty last box is no answer, whatever came before it.
        return boxed.strip() or None
    return _last_phrase(text)


_LAST_NUMBER_RE = re.compile(r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")
#: Only the tail of a long reply is searched for a bare number.
LAST_NUMBER_WINDOW = 2000


def last_number(text: str) -> str | None:
    """The last number written in ``text`` ("8 + 6 = 14." gives "14"), or ``None``.

    The lenient reading of a final answer used when a reply has neither a box nor an
    answer phrase (as "flexible extraction" does in common GSM8K evaluations).
    """
    if not isinstance(text, str) or not text:
        return None
    found = None
    for m in _LAST_NUMBER_RE.finditer(text, max(0, len(text) - LAST_NUMBER_WINDOW)):
        found = m.group()
    return found.replace("−", "-") if found is not None else None


def _last_box(text: str) -> str | None:
    end = len(text)
    for _ in range(MAX_BOXES_TRIED):
        start = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if start < 0:
            return None
        m = _BOX_RE.match(text, start)
        if m is not None:
            content = _balanced(text, m.end())
            if content is not None:
                return content
        end = start
    return None


def _balanced(text: str, open_at: int) -> str | None:
    """The text from ``open_at`` up to the brace closing the one just before it."""
    depth = 1
    for m in _BRACE_RE.finditer(text, open_at, min(len(text), open_at + MAX_BOX_CHARS)):
        c = m.group()
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_at : m.start()]
    return None


def _last_phrase(text: str) -> str | None:
    last = None
    for last in _PHRASE_RE.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last is None:
        return None
    tail = text[last.end() : last.end() + MAX_ANSWER_CHARS + 1]
    answer = _SENTENCE_END_RE.split(tail, maxsplit=1)[0].replace("**", "")
    answer = answer.strip().rstrip(_TRAILING + "!*").strip().strip("$").strip()
    return answer or None


def parse_rational(answer: str) -> Fraction | None:
    """``answer`` as an exact :class:`Fraction` when it has a simple form, else ``None``.

    Reads integers (``-3``, ``1,000``), decimals (``0.25``, ``.5``, ``3.``), ``a/b``,
    ``\\frac{a}{b}`` and its ``\\dfrac``/``\\tfrac``/``\\frac12`` spellings, mixed
    numbers (``3 1/2``, ``3\\frac{1}{2}``), with ``x =``, ``$``, ``\\left( \\right)``,
    a trailing period or a unit word ("12 apples") around them.
    """
    m = _QUICK_RE.fullmatch(answer)
    if m:
        whole, den, frac = m.groups()
        if den is not None:
            return Fraction(int(whole), int(den)) if den.strip("0") else None
        if frac is not None:
            return Fraction(int(whole + frac), 10 ** len(frac))
        return Fraction(int(whole))
    s = answer.strip().lstrip(_LEADING).rstrip(_TRAILING)
    m = _VAR_PREFIX_RE.match(s)
    if m:
        s = s[m.end() :]
    m = _TEXT_WRAP_RE.match(s)
    if m:
        s = m.group(1)
    # Mixed numbers are recognised before spaces are removed ("3 1/2" is not "31/2").
    m = _MIXED_RE.fullmatch(s)
    if m:
        sign, whole, num, den = m.groups()
        return _mixed(sign, int(whole), int(num), int(den))
    m = _UNIT_RE.fullmatch(s)
    if m:
        s = m.group(1)
    s = _TEXT_UNIT_RE.sub("", s)
    s = _SPACE_RE.sub("", _STRIP_RE.sub("", s)).lstrip(_LEADING).rstrip(_TRAILING)
    while len(s) > 2 and s[0] == "(" and s[-1] == ")" and "(" not in s[1:-1]:
        s = s[1:-1]
    if s.startswith("{") and s.endswith("}") and s.count("{") == 1:
        s = s[1:-1]
    if not s:
        return None
    m = _NUMBER_RE.fullmatch(s)
    if m:
        sign, whole, frac = m.groups()
        if whole is None and not frac:
            return None
        digits = (whole or "0").replace(",", "") + "." + (frac or "")
        value = Fraction(digits.rstrip(".") if not frac else digits)
        return -value if sign == "-" else value
    m = _SIMPLE_FRAC_RE.fullmatch(s)
    if m:
        sign, num, den = m.groups()
        d = int(den.replace(",", ""))
        if d == 0:
            return None
        value = Fraction(int(num.replace(",", "")), d)
        return -value if sign == "-" else value
    m = _LATEX_FRAC_RE.fullmatch(s)
    if m:
        sign, whole, num_b, num_d, den_b, den_d = m.groups()
        num, den = int(num_b or num_d), int(den_b or den_d)
        if den == 0:
            return None
        if whole is not None:
            return _mixed(sign, int(whole), num, den)
        value = Fraction(num, den)
        return -value if sign == "-" else value
    return None


def _mixed(sign: str, whole: int, num: int, den: int) -> Fraction | None:
    # Only a proper fraction makes a mixed number; "3 5/2" is ambiguous, let sympy decide.
    if den == 0 or not 0 <= num < den:
        return None
    value = whole + Fraction(num, den)
    return -value if sign == "-" else value


def check(answer_text: str, gold: Fraction) -> tuple[bool, str | None]:
    """Whether ``answer_text`` equals ``gold``; the error says why it could not be read.

    Returns ``(correct, error)``: ``error`` is ``None`` whenever the answer was read (right
    or wrong), and a message for the agent when it could not be.
    """
    try:
        if not isinstance(answer_text, str):
            return (
                False,
                f"could not parse the answer: expected text, got {type(answer_text).__name__}",
            )
        text = answer_text.strip()
        if not text:
            return False, "the answer is empty: put a number in \\boxed{}"
        if len(text) > MAX_ANSWER_CHARS:
            return False, (
                f"the answer is too long ({len(text)} characters; at most {MAX_ANSWER_CHARS}): "
                "give only the final number in \\boxed{}"
            )
        value = parse_rational(text)
        if value is not None:
            return value == gold, None
        return _slow_check(text, gold)
    except Exception as exc:  # never let a strange answer crash an episode
        return False, f"could not parse the answer: {type(exc).__name__}: {exc}"[:300]


def _slow_check(text: str, gold: Fraction) -> tuple[bool, str | None]:
    """math_verify (sympy) for what the fast path cannot read: ``\\sqrt{1/4}``, ``2^{3}``..."""
    if GUARDS:
        for m in _EXPONENT_RE.finditer(text):
            exponent = m.group(1)
            if "^" in exponent or "**" in exponent or _LONG_DIGITS_RE.search(exponent):
                return False, "could not parse the answer: its exponent is too large to evaluate"
        if "!" in text:
            return False, "could not parse the answer: factorials are not accepted"
        if _EXPLOSIVE_RE.search(text) or _HUGE_NUMBER_RE.search(text):
            return False, "could not parse the answer: give the final value as a number, not a formula to evaluate"
    return _SLOW.check(text, gold)


#: The pre-parse guards (off only in tests that exercise the deadline).
GUARDS = True


class _SlowPath:
    """One math_verify worker process shared by all threads; killed and replaced at a deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentgym_math._verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        if _readline(proc, 120.0) is None:  # importing sympy: not part of any answer's deadline
            _kill(proc)
            raise RuntimeError("the answer checker's worker did not start")
        return proc

    def check(self, text: str, gold: Fraction) -> tuple[bool, str | None]:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"text": text, "num": gold.numerator, "den": gold.denominator}) + "\n")
            proc.stdin.flush()
            line = _readline(proc, SLOW_PATH_TIMEOUT_S)
            if line is None:
                _kill(proc)
                self._proc = None
                return False, f"could not check the answer within {SLOW_PATH_TIMEOUT_S:g} s: give a plain number"
            reply = json.loads(line)
            return bool(reply["ok"]), reply["error"]

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                _kill(self._proc)
                self._proc = None


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], timeout)[0]:
        return None
    line = proc.stdout.readline()
    return line or None


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


_SLOW = _SlowPath()
atexit.register(_SLOW.close)


def format_rational(value: Fraction) -> str:
    """``value`` as an integer or ``p/q`` (the form the oracle boxes)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def format_decimal(value: Fraction) -> str | None:
    """``value`` as an exact decimal (``0.375``), or ``None`` when it does not terminate."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return None
    places = max(twos, fives)
    if places == 0:
        return str(value.numerator)
    scaled = abs(value.numerator) * 10**places // value.denominator
    sign = "-" if value < 0 else ""
    whole, frac = divmod(scaled, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}".rstrip("0").rstrip(".")
