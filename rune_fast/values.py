"""Runtime values of the language: strings, integers, floats, booleans, entities.

Python's own ``str``, ``int``, ``float`` and ``bool`` represent the scalar
kinds; ``Entity`` is the one type we add. Because ``True == 1 == 1.0`` in
Python, code that must tell kinds apart by membership uses ``value_key``
(below) instead of the value itself. ``entity_problem`` is the one
validation of entity types and ids.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, NamedTuple, Optional, Union, overload

__all__ = [
    "Entity",
    "Value",
    "TYPE_NAME",
    "entity_problem",
    "parse_entity_literal",
    "is_entity_literal",
    "is_type_name",
    "value_key",
    "from_key",
    "key_row",
    "unkey_row",
    "json_key",
    "BoolKey",
    "FloatKey",
    "TRUE_KEY",
    "FALSE_KEY",
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


@overload
def plain_str(x: str) -> str: ...
@overload
def plain_str(x: object) -> object: ...
def plain_str(x: object) -> object:
    """``x`` as an exact ``str`` if it is a ``str`` subclass instance, else ``x``."""
    if type(x) is not str and isinstance(x, str):
        return str.__str__(x)
    return x


def is_type_name(text: object) -> bool:
    """Whether ``text`` is a whole entity type name (``User``, ``Ns::User``).

    Full-match semantics: ``"User\\n"`` is not a type name (a pattern ending
    in ``$`` would accept it, since ``$`` also matches before a final newline).
    """
    return type(text) is str and TYPE_NAME.fullmatch(text) is not None


class Entity(NamedTuple):
    """An entity: a ``(type, id)`` pair such as ``User::"alice"``.

    A NamedTuple so that it is cheap, hashable and immutable; ``str()`` gives
    the literal text accepted everywhere an entity is expected.
    """

    type: str
    id: str

    def __str__(self) -> str:
        # (str() of an id that is not a string: the error naming such an entity must not fail)
        ident = self.id if isinstance(self.id, str) else str(self.id)
        return f"{self.type}::{json.dumps(ident, ensure_ascii=False)}"

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


# ---------------------------------------------------------------------------
# Value keys: the one scheme that keeps True, 1 and 1.0 apart
#
# Python's ``True == 1 == 1.0`` (with equal hashes) would merge three values
# of the language in every set and dict. Wherever values are compared by
# membership (Cedar sets and records, relation rows probed by policies, the
# decision cache's key of a request), they are replaced by their *key*: a
# boolean by a sentinel, a float by a one-element ``FloatKey`` tuple; every
# other value (strings, integers, entities, Cedar sets and records, which
# key their own contents) is its own key, so the common case costs nothing.
# (The Datalog core keeps kinds apart by interning each kind in its own
# table: symbols.py.)


class BoolKey:
    """The key of ``True`` or ``False`` (two instances, compared by identity)."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"


TRUE_KEY = BoolKey(True)
FALSE_KEY = BoolKey(False)


class FloatKey(tuple):
    """The key of a float: ``1.0`` must not find ``1``."""

    __slots__ = ()


def value_key(v: Any) -> Any:
    """The key of a value: equal only for values of the same kind and content."""
    if v is True:
        return TRUE_KEY
    if v is False:
        return FALSE_KEY
    if type(v) is float:
        return FloatKey((v,))
    return v


def from_key(k: Any) -> Any:
    """The value whose key is ``k`` (inverse of ``value_key``)."""
    if k is TRUE_KEY:
        return True
    if k is FALSE_KEY:
        return False
    if type(k) is FloatKey:
        return k[0]
    return k


def key_row(row: Iterable[Any]) -> tuple:
    """A relation row in key form."""
    return tuple([value_key(v) for v in row])


def unkey_row(row: tuple) -> tuple:
    return tuple([from_key(v) for v in row])


_TAG_DICT = object()
_TAG_LIST = object()


def json_key(x: Any, depth: int = 0) -> Any:
    """The key of a JSON-like request value *before* conversion (``None``
    for ``None``): dicts and lists are tagged, scalars keyed as above, so two
    inputs get equal keys only if they convert to the same value. Raises
    ``TypeError`` for other types or nesting deeper than 64 (the caller then
    does not cache)."""
    t = type(x)
    if t is str or t is int or t is Entity or x is None:
        return x
    if t is bool or t is float:
        return value_key(x)
    if depth > 64:
        raise TypeError("too deep for a key")
    if t is dict:
        return (_TAG_DICT, frozenset([(k, json_key(v, depth + 1)) for k, v in x.items()]))
    if t is list or t is tuple:
        return (_TAG_LIST, tuple([json_key(v, depth + 1) for v in x]))
    raise TypeError(f"no key for {t.__name__}")


def format_value(value: object) -> str:
    """The language's spelling of a value (for messages and CLI output)."""
    if isinstance(value, Entity):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)
