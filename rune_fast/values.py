"""Runtime values of the language: strings, integers, floats, booleans, entities.

Python's own ``str``, ``int``, ``float`` and ``bool`` represent the scalar
kinds; ``Entity`` is the one type we add. Because ``True == 1 == 1.0`` in
Python, code that must tell kinds apart (interning, equality in joins) uses
``value_key`` instead of the value itself.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple, Union

__all__ = [
    "Entity",
    "Value",
    "ENTITY_LITERAL",
    "parse_entity_literal",
    "is_entity_literal",
    "is_type_name",
    "value_key",
    "format_value",
    "INT_MIN",
    "INT_MAX",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``Type::"id"`` or ``Ns::Type::"id"``; the id is a JSON string body.
ENTITY_LITERAL = re.compile(rf'^({_NAME}(?:::{_NAME})*)::"((?:[^"\\]|\\.)*)"$', re.S)

_TYPE_NAME = re.compile(rf"{_NAME}(?:::{_NAME})*")


def is_type_name(text: object) -> bool:
    """Whether ``text`` is a whole entity type name (``User``, ``Ns::User``).

    Full-match semantics: ``"User\\n"`` is not a type name (a pattern ending
    in ``$`` would accept it, since ``$`` also matches before a final newline).
    """
    return type(text) is str and _TYPE_NAME.fullmatch(text) is not None


class Entity(NamedTuple):
    """An entity: a ``(type, id)`` pair such as ``User::"alice"``.

    A NamedTuple so that it is cheap, hashable and immutable; ``str()`` gives
    the literal text accepted everywhere an entity is expected.
    """

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}::{json.dumps(self.id, ensure_ascii=False)}"

    def __repr__(self) -> str:
        return f"Entity({self})"

    @classmethod
    def parse(cls, text: str) -> "Entity":
        ent = parse_entity_literal(text)
        if ent is None:
            raise ValueError(f"not an entity literal: {text!r} (expected Type::\"id\")")
        return ent


Value = Union[str, int, float, bool, Entity]


def parse_entity_literal(text: str) -> "Entity | None":
    """Return the entity a whole string spells, or ``None`` if it is not one."""
    m = ENTITY_LITERAL.match(text)
    if m is None:
        return None
    try:
        ident = json.loads('"' + m.group(2) + '"')
    except ValueError:
        return None
    return Entity(m.group(1), ident)


def is_entity_literal(text: str) -> bool:
    return parse_entity_literal(text) is not None


# Kind tags, shared with the compiled core (see _core.pxd).
KIND_STR = 0
KIND_INT = 1
KIND_FLOAT = 2
KIND_BOOL = 3
KIND_ENTITY = 4


def value_key(value: object) -> tuple:
    """A key that is equal only for values of the same kind and content.

    ``1``, ``1.0`` and ``True`` are three different values of the language.
    """
    t = type(value)
    if t is str:
        return (KIND_STR, value)
    if t is bool:
        return (KIND_BOOL, value)
    if t is int:
        return (KIND_INT, value)
    if t is float:
        return (KIND_FLOAT, value)
    if t is Entity:
        return (KIND_ENTITY, value)
    raise TypeError(f"unsupported value {value!r} of type {t.__name__}")


def format_value(value: object) -> str:
    """The language's spelling of a value (for messages and CLI output)."""
    if isinstance(value, Entity):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)
