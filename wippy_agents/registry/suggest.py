"""Closest-known-name suggestions for messages ("did you mean `source`?")."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["suggest", "closest"]


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known name nearest to ``word`` (None when nothing is close)."""
    found = difflib.get_close_matches(word, sorted(set(known)), n=1, cutoff=0.6)
    return found[0] if found else None


def suggest(word: str, known: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` or ``""``."""
    best = closest(word, known)
    return f" (did you mean `{best}`?)" if best else ""
