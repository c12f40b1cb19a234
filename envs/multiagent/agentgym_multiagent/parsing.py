"""Reading moves out of replies: lenient about form, strict about meaning.

A reply may wrap its move in a short sentence ("I bet.", "Check!"), in any case. It is
read only when it names exactly one move; a reply that names none, several, or an
illegal one gets an error that lists the legal moves, so the agent can try again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Replies longer than this are not searched for a move word: a move is a short sentence.
MOVE_CHARS = 300


def one_of(words: Sequence[str]) -> str:
    """``"check or bet"``, ``"a, b or c"``: a list of choices for a prompt."""
    words = list(words)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def choose_word(
    text: str, legal: Sequence[str], vocabulary: Sequence[str], *, max_chars: int = MOVE_CHARS
) -> tuple[str | None, str | None]:
    """The single move word of ``text``, or an error saying why there is none.

    ``vocabulary`` holds every move word of the game and ``legal`` those allowed now.
    Words match whole and case-insensitively. Returns ``(word, None)`` when exactly one
    distinct vocabulary word appears and it is legal, else ``(None, error)``.
    """
    ask = f"Reply with exactly one word: {one_of(legal)}"
    if len(text) > max_chars:
        return None, f"your reply is too long to read as a move ({len(text)} characters). {ask}"
    found = sorted({w.lower() for w in re.findall(r"[A-Za-z]+", text)} & {v.lower() for v in vocabulary})
    if not found:
        return None, f"no move found in your reply. {ask}"
    if len(found) > 1:
        return None, f"your reply names several moves ({', '.join(found)}). {ask}"
    word = found[0]
    if word not in legal:
        return None, f"'{word}' is not a legal move now. {ask}"
    return word, None


def excerpt(text: str, limit: int = 600) -> str:
    """``text`` cut to ``limit`` characters (with a mark), to quote one agent to another."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
