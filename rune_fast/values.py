"""Runtime values of the language: strings, integers, floats, booleans, entities.

Python's own ``str``, ``int``, ``float`` and ``bool`` represent the scalar
kinds; ``Entity`` is the one type we add. Because ``True == 1 == 1.0`` in
Python, code that must tell kinds apart (interning, equality in joins) uses
``value_key`` instead of the value itself.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple, Optional, Union

__all__ = [
    "Entity",
    "Value",
    "TYPE_NAME",
    "entity_problem",
    "parse_entity_literal",
    "is_entity_literal",
    "value_key",
    "format_value",
    "INT_MIN",
    "INT_MAX",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

#: A type name: ``Name`` or ``Ns::Name`` (ASCII letters, digits, ``_``).
#: Always used with ``fullmatch``: a pattern ending in ``$`` would also accept
#: a final newline (``"User\n"``), a different type that escapes ``is User``.
TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")
_SURROGATE = re.compile("[\ud800-\udfff]")


def entity_problem(ty: object, ident: object) -> Optional[str]:
    """Why ``(ty, ident)`` is not an entity of the language, or ``None``.

    The one validation of type names and ids, used by every entry point
    (entity literals, ``("Type", "id")`` pairs, Cedar-JSON objects, ``Entity``
    values passed by callers, ``{"__entity": ..}`` in context and attributes).
    The whole type name must be ``Name(::Name)*`` (full match: no
    surrounding whitespace, no final newline, ASCII only); the id is any
    text, except that it must be valid Unicode (no lone surrogate, which no
    JSON encoder, Cedar or terminal can represent).
    """
    if type(ty) is not str:
        return f"entity type must be a string, got {type(ty).__name__}"
    if TYPE_NAME.fullmatch(ty) is None:
        return f"entity type {ty!r} is not a type name such as User or App::Doc"
    if type(ident) is not str:
        return f"entity id must be a string, got {type(ident).__name__}"
    if not ident.isascii() and _SURROGATE.search(ident) is not None:
        return "entity id contains a lone surrogate (not valid Unicode text)"
    return None


def plain_str(x: object) -> object:
    """``x`` as an exact ``str`` if it is a ``str`` subclass instance, else ``x``."""
    if type(x) is not str and isinstance(x, str):
        return str.__str__(x)
    return x


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
    """Return the entity a whole string spells (``Type::"id"``), or ``None``.

    Linear and allocation-light (one ``find``, one full match of the type,
    one C JSON-string decode): the id is a JSON string body, so its first
    ``::"`` separates it from the type (a type name has no quote).
    """
    if type(text) is not str:
        return None
    i = text.find('::"')
    if i <= 0 or len(text) < i + 4 or text[-1] != '"':
        return None
    ty = text[:i]
    if TYPE_NAME.fullmatch(ty) is None:
        return None
    body = text[i + 2:]
    try:
        ident = json.loads(body)
    except ValueError:
        return None
    if type(ident) is not str or entity_problem(ty, ident) is not None:
        return None
    return Entity(ty, ident)


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
