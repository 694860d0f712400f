"""Configurable limits (docs/language.md §9): every one fails closed with its name."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import RuneLimitError

__all__ = ["Limits", "DEFAULT_LIMITS", "MAX_ARITY"]

#: Columns of a relation, at most (a fixed property of the language, checked
#: with the arities: a wider fact set, head or atom is a located error).
MAX_ARITY = 64


@dataclass(frozen=True)
class Limits:
    """Safe defaults; pass any field as a keyword to ``load``/``PolicyStore``.

    - ``max_file_bytes``: a ``.rune`` or source file larger than this is refused.
    - ``max_tuples``: work allowed while building the engine: tuples the
      rules derive plus the matches aggregates collect.
    - ``max_model_bytes``: bytes of derived rows while building the engine
      (8 bytes per column of every derived tuple; indexes add up to about half
      as much again). Bounds memory where ``max_tuples`` cannot: a wide head
      costs more per tuple.
    - ``load_deadline_ms``: wall-clock budget of evaluating the rules while
      building the engine (0 = none).
    - ``max_request_tuples``: like ``max_tuples``, for a single request.
    - ``max_request_model_bytes``: like ``max_model_bytes``, for a single request.
    - ``deadline_ms``: wall-clock budget of one decision (0 = none).
    - ``max_nesting``: maximum nesting depth of an expression or a rule.
    - ``max_rule_literals``: literals in one rule, aggregate bodies included
      (the core nests one level per literal: about 300 bytes of C stack each).
    - ``max_body_bytes``: largest request body accepted by the HTTP fronts.

    Request size (each a ``RuneRequestError`` naming the limit, raised before
    anything expensive is built from the request):

    - ``max_id_length``: characters of one entity id (an entity literal may
      be at most ``6 * max_id_length + 1024`` characters, checked unread);
    - ``max_string_length``: characters of one string in context or attrs;
    - ``max_value_depth``: nesting of sets/records in context or attrs;
    - ``max_request_values``: values (scalars, set elements, record fields,
      parents) in one request's context and entities together;
    - ``max_request_chars``: characters of all strings (ids, keys, values)
      in one request's context and entities together;
    - ``max_request_entities``: entities in one request's ``entities``.
    """

    max_file_bytes: int = 64 * 1024 * 1024
    max_tuples: int = 50_000_000
    max_model_bytes: int = 1 << 30
    load_deadline_ms: float = 10_000.0
    max_request_tuples: int = 1_000_000
    max_request_model_bytes: int = 64 << 20
    deadline_ms: float = 1000.0
    max_nesting: int = 64
    max_rule_literals: int = 5000
    max_body_bytes: int = 1024 * 1024
    max_id_length: int = 4096
    max_string_length: int = 1024 * 1024
    max_value_depth: int = 32
    max_request_values: int = 100_000
    max_request_chars: int = 4 * 1024 * 1024
    max_request_entities: int = 10_000

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
