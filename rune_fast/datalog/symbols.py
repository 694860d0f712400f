"""Interning: every value of the language becomes a 64-bit integer id.

Integers in [-2**62, 2**62) are their own id (``2*v + 1``, odd), so facts of
integers need no table at all and the core does integer arithmetic without
calling back. Every other value (strings, floats, booleans, entities, larger
integers) gets an even id ``2*k`` from a table. Equal values get equal ids,
and values of different kinds never share one (``1``, ``1.0`` and ``True``
are three different values), so a join can compare ids directly.

A table can extend a frozen parent: the program's constants are the root, a
model built from facts extends it, and each request extends the model. The
parent is never written, so one engine's tables are shared by all threads.
"""

from __future__ import annotations

from typing import Iterable, Optional

from ..values import Entity, INT_MAX, INT_MIN

__all__ = ["Symbols", "INLINE_MIN", "INLINE_MAX", "is_inline_int"]

INLINE_MIN = -(2**62)
INLINE_MAX = 2**62 - 1


def is_inline_int(ident: int) -> bool:
    return ident & 1 == 1


class Symbols:
    """A symbol table, optionally extending a parent that must not change any more."""

    __slots__ = ("parent", "_offset", "_values", "_str", "_ent", "_float", "_bigint", "_bool", "_up")

    def __init__(self, parent: Optional["Symbols"] = None) -> None:
        self.parent = parent
        self._offset = parent.size if parent is not None else 0
        self._values: list = []
        self._str: dict = {}
        self._ent: dict = {}
        self._float: dict = {}
        self._bigint: dict = {}
        self._bool: dict = {}
        # The ancestors' tables of each kind (str, entity, float, big int,
        # bool), nearest first, for lookups without recursion. Ancestors are
        # frozen and their dicts are shared by reference, so these never go stale.
        if parent is None:
            self._up = ((), (), (), (), ())
        else:
            pu = parent._up
            self._up = (
                (parent._str,) + pu[0],
                (parent._ent,) + pu[1],
                (parent._float,) + pu[2],
                (parent._bigint,) + pu[3],
                (parent._bool,) + pu[4],
            )

    @property
    def size(self) -> int:
        """Number of table entries including the parent's (inline integers are not counted)."""
        return self._offset + len(self._values)

    def _table_for(self, value: object) -> dict:
        t = type(value)
        if t is str:
            return self._str
        if t is Entity:
            return self._ent
        if t is float:
            return self._float
        if t is bool:
            return self._bool
        if t is int:
            return self._bigint
        raise TypeError(f"unsupported value {value!r} of type {t.__name__}")

    def lookup(self, value: object) -> Optional[int]:
        """The id of ``value`` if it is known (here or in a parent), else None."""
        t = type(value)
        if t is int:
            if INLINE_MIN <= value <= INLINE_MAX:
                return 2 * value + 1
        table = self._table_for(value)
        found = table.get(value)
        if found is not None:
            return found
        if self.parent is not None:
            return self.parent.lookup(value)
        return None

    def intern(self, value: object) -> int:
        """The id of ``value``, adding it to this table if no table knows it."""
        t = type(value)
        # Fast paths for the common kinds: one dict probe when known.
        if t is str:
            table, kind = self._str, 0
        elif t is Entity:
            # Strings only: results are kept out of the cyclic GC on the
            # grounds that no value can hold a reference to anything else.
            if type(value.type) is not str or type(value.id) is not str:  # type: ignore[attr-defined]
                raise TypeError("an entity's type and id must be strings, got "  # (its repr needs strings too)
                                f"{type(value.type).__name__} and {type(value.id).__name__}")  # type: ignore[attr-defined]
            table, kind = self._ent, 1
        elif t is int:
            if INLINE_MIN <= value <= INLINE_MAX:
                return 2 * value + 1
            if not INT_MIN <= value <= INT_MAX:
                raise OverflowError(f"integer {value} does not fit in 64 bits")
            table, kind = self._bigint, 3
        elif t is float:
            if value != value:
                raise ValueError("NaN is not a value of the language")
            table, kind = self._float, 2
        elif t is bool:
            table, kind = self._bool, 4
        else:
            raise TypeError(f"unsupported value {value!r} of type {t.__name__}")
        found = table.get(value)
        if found is not None:
            return found
        for up in self._up[kind]:
            found = up.get(value)
            if found is not None:
                return found
        ident = 2 * (self._offset + len(self._values))
        self._values.append(value)
        table[value] = ident
        return ident

    def value(self, ident: int) -> object:
        """The value an id stands for."""
        if ident & 1:
            return ident >> 1
        k = ident >> 1
        if k >= self._offset:
            return self._values[k - self._offset]
        if self.parent is None:
            raise KeyError(ident)
        return self.parent.value(ident)

    def table(self) -> list:
        """Every value with an even id, by index (the parent's first): ``table()[k]`` is id ``2*k``."""
        head = self.parent.table() if self.parent is not None else []
        return head + self._values

    def row_values(self, row: Iterable[int]) -> tuple:
        value = self.value
        return tuple([value(i) for i in row])
