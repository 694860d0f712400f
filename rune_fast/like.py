"""The one ``like`` matcher, shared by rules (``X.like("...")``) and policies (``x like "..."``).

A pattern only has one wildcard, ``*`` (any run of characters, possibly
empty); ``\\*`` is a literal star. Such a glob never needs backtracking:
split it at the stars, and a string matches iff it starts with the first
segment, ends with the last one, and contains the middle segments in order,
without overlap, in between. Taking each middle segment at its *leftmost*
occurrence is always right (a later occurrence leaves strictly less room for
the rest), so one left-to-right pass of ``str.find`` decides the match in
time linear in the string for a given pattern. A regex ``fullmatch`` of the
same glob backtracks: ``"*a*b*c*d*e*f*g*"`` on a 60 KB string took seconds,
holding the GIL the whole time.

Two spellings of a pattern reach this module:

* the ``Like.pattern`` tuple of the policy AST: non-empty literal strings
  alternating with ``WILDCARD`` (``None``), e.g. ``("a", None, "b")``;
* the escaped glob string that rules keep (``MethodCall.arg``): ``*`` is a
  wildcard, ``\\*`` a literal star and ``\\\\`` a literal backslash.
  ``pattern_from_glob`` turns it into the tuple form.

This is a base module (like ``values.py``): it imports nothing from the
layers, so the language front end, the Datalog core and the policy layer can
all use it.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Optional

__all__ = ["WILDCARD", "Matcher", "like_matcher", "glob_matcher", "pattern_from_glob", "pattern_from_pieces"]

#: In a pattern tuple, this marker stands for an unescaped ``*`` (it is
#: ``lang.ast.LIKE_WILDCARD``).
WILDCARD = None

Matcher = Callable[[str], bool]


def pattern_from_pieces(pieces: Iterable[Optional[str]]) -> tuple[Optional[str], ...]:
    """Normalize pieces (str or ``WILDCARD``) into the pattern tuple form.

    Adjacent literals are merged, empty literals dropped and runs of wildcards
    collapsed (``**`` matches exactly what ``*`` matches), so that equal
    patterns compare equal and the matcher needs no special cases.
    """
    out: list[Optional[str]] = []
    for p in pieces:
        if p is WILDCARD:
            if not out or out[-1] is not WILDCARD:
                out.append(WILDCARD)
        elif p:
            if out and out[-1] is not WILDCARD:
                out[-1] = out[-1] + p
            else:
                out.append(p)
    return tuple(out)


def pattern_from_glob(glob: str) -> tuple[Optional[str], ...]:
    """Parse an escaped glob (``*`` wildcard, ``\\*`` star, ``\\\\`` backslash) into the tuple form.

    A backslash before any other character stands for that character; a
    trailing lone backslash is a literal backslash.
    """
    pieces: list[Optional[str]] = []
    buf: list[str] = []
    i = 0
    n = len(glob)
    while i < n:
        c = glob[i]
        if c == "\\" and i + 1 < n:
            buf.append(glob[i + 1])
            i += 2
            continue
        if c == "*":
            pieces.append("".join(buf))
            buf = []
            pieces.append(WILDCARD)
        else:
            buf.append(c)
        i += 1
    pieces.append("".join(buf))
    return pattern_from_pieces(pieces)


def like_matcher(pattern: Iterable[Optional[str]]) -> Matcher:
    """A function ``str -> bool`` deciding ``s like pattern`` in linear time.

    ``pattern`` is in the tuple form (literal strings and ``WILDCARD``); it
    need not be normalized.
    """
    parts = [""]
    for item in pattern:
        if item is WILDCARD:
            parts.append("")
        else:
            parts[-1] += item
    if len(parts) == 1:
        lit = parts[0]
        return lambda s: s == lit
    prefix, suffix, middle = parts[0], parts[-1], [m for m in parts[1:-1] if m]
    need = len(prefix) + len(suffix) + sum(map(len, middle))
    if not middle:
        if not prefix and not suffix:
            return lambda s: True
        # len check first: prefix and suffix must not overlap ("ab*ba" vs "aba")
        return lambda s: len(s) >= need and s.startswith(prefix) and s.endswith(suffix)

    def match(s: str) -> bool:
        if len(s) < need or not s.startswith(prefix) or not s.endswith(suffix):
            return False
        pos = len(prefix)
        end = len(s) - len(suffix)
        for m in middle:
            i = s.find(m, pos, end)
            if i < 0:
                return False
            pos = i + len(m)
        return True

    return match


@functools.lru_cache(maxsize=1024)
def glob_matcher(glob: str) -> Matcher:
    """``like_matcher`` of an escaped glob (the form rules keep), cached per glob."""
    return like_matcher(pattern_from_glob(glob))
