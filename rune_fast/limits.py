"""Configurable limits (docs/language.md §9): every one fails closed with its name."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import RuneLimitError

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    """Safe defaults; pass any field as a keyword to ``load``/``PolicyStore``.

    - ``max_file_bytes``: a ``.rune`` or source file larger than this is refused.
    - ``max_tuples``: derived tuples allowed while building the engine.
    - ``max_request_tuples``: tuples a single request may derive.
    - ``deadline_ms``: wall-clock budget of one decision (0 = none).
    - ``max_nesting``: maximum nesting depth of an expression or a rule.
    - ``max_body_bytes``: largest request body accepted by the HTTP fronts.
    """

    max_file_bytes: int = 64 * 1024 * 1024
    max_tuples: int = 50_000_000
    max_request_tuples: int = 1_000_000
    deadline_ms: float = 1000.0
    max_nesting: int = 64
    max_body_bytes: int = 1024 * 1024

    @classmethod
    def from_kwargs(cls, base: "Limits | None" = None, **kwargs: Any) -> "Limits":
        """Build limits from keyword arguments, rejecting unknown names."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(base or DEFAULT_LIMITS, **kwargs)

    def exceeded(self, name: str, detail: str, **loc: Any) -> RuneLimitError:
        return RuneLimitError(f"limit {name}={getattr(self, name)} exceeded: {detail}", name, **loc)


DEFAULT_LIMITS = Limits()
