"""What the guard's resolvers may raise, and how their results reach it.

A module of its own so that the guard's request path (``guard.py``) and the
adapters share these few names without either importing the other's
internals: the errors a resolver raises to deny with a status, the check
that a resolver is callable, where a failing resolver raised (for the log),
and the hand-over of a principal an adapter already resolved (its memo fast
path) to ``Guard.decide``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any, Optional

__all__ = ["ResolverError", "BodyTooLarge", "Resolver", "UNRESOLVED", "ResolverFailed"]


class ResolverError(Exception):
    """A resolver could not produce its part of the request; denies with ``status``."""

    status = 403


class BodyTooLarge(ResolverError):
    """A resolver asked for a body larger than the guard's ``max_body``."""

    status = 413


Resolver = Callable[[Any], Any]


def _check_resolver(name: str, fn: Any) -> Optional[Resolver]:
    if fn is None:
        return None
    if not callable(fn):
        raise TypeError(f"Guard: {name} must be a callable fn(req) or None; got {fn!r}")
    return fn  # type: ignore[no-any-return]


def _where(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame that raised ``exc``."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return "?"
    f = tb[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"



#: ``decide(resolved=...)`` default: the principal resolver has not run yet.
UNRESOLVED: Any = object()


class ResolverFailed:
    """What the principal resolver raised, handed from an adapter's fast path to
    :meth:`Guard.decide` (which reports it as a resolver failure: a deny)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
