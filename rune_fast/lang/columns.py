"""Column conversion shared by ``[data]``, ``[tests]`` and ``[sources]``.

Why a module of its own: every fact value a bundle states goes through here,
so this is where load time is won or lost (see ``sources.py`` for how a
source file is split into columns). A column is converted as a whole where
possible: joined into one string and checked with substring counts and
regexes that start with a literal newline, then converted with ``map`` over
builtins; a column of many repeated values is converted once per distinct
value, through a cache shared by all the columns of a file (one ``Entity``
per literal). ``paused_gc`` pauses the cyclic collector while millions of
tuples are built.
"""

from __future__ import annotations

import gc
import math
import re
import threading
from contextlib import contextmanager
from itertools import filterfalse, repeat
from operator import itemgetter
from typing import Any, Iterator, Optional, Sequence

from ..values import INT_MAX, INT_MIN, Entity, parse_entity_literal

__all__ = ["EntityCache", "convert_column", "describe_bad_value", "paused_gc"]

_SCALAR_TYPES = frozenset((str, int, float, bool))
_new_tuple = tuple.__new__


class _CellOverflow(Exception):
    """A CSV integer cell outside the 64-bit range (the caller locates it)."""

    def __init__(self, cell: str) -> None:
        self.cell = cell

class EntityCache(dict):
    """``str -> str | Entity``: a string whose whole text is an entity literal
    becomes an ``Entity``, any other string stays itself.

    Mapping a column through ``cache.__getitem__`` keeps the loop in C; only a
    string seen for the first time runs ``__missing__``.  Keys are strings
    only, so ``1``/``True``/``1.0`` never collide.
    """

    __slots__ = ()

    def __missing__(self, s: str) -> Any:
        v: Any = s
        if '::"' in s:
            ent = parse_entity_literal(s)
            if ent is not None:
                v = ent
        self[s] = v
        return v


def describe_bad_value(v: Any) -> str:
    """Say what a non-scalar value is, in the user's (TOML/JSON) words."""
    if isinstance(v, list):
        return "a nested array"
    if isinstance(v, dict):
        return "a table/object"
    if v is None:
        return "null"
    if isinstance(v, float) and v != v:
        return "nan (never equal to itself, so the fact could never match)"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"the integer {v}, outside the 64-bit signed range"
    name = type(v).__name__
    if name in ("datetime", "date", "time"):
        return f"a TOML {name} ({v}); dates and times are not a value kind, write a string or an integer"
    return f"a value of type {name}"


def convert_column(col: Sequence[Any], cache: EntityCache) -> tuple[tuple, int]:
    """Convert one column of TOML/JSON values to fact values.

    Returns ``(values, -1)`` or ``(partial, index_of_first_bad_value)``.  Bad
    values: non-scalars (arrays, tables, null, dates), integers outside 64
    bits, nan.
    """
    types = set(map(type, col))
    if types == {str}:
        return _convert_strings(col, cache, False), -1
    if types <= {int}:
        if col and (min(col) < INT_MIN or max(col) > INT_MAX):
            return (), _first_bad(col)
        return tuple(col), -1
    if types <= {bool}:
        return tuple(col), -1
    if types <= {float}:
        if any(map(math.isnan, col)):
            return (), _first_bad(col)
        return tuple(col), -1
    if not types <= _SCALAR_TYPES:
        return (), _first_bad(col)
    if float not in types:
        return _convert_mixed(col, cache)
    out: list[Any] = []
    append = out.append
    for i, c in enumerate(col):
        t = type(c)
        if t is str:
            c = cache[c]
        elif t is int:
            if c < INT_MIN or c > INT_MAX:
                return (), i
        elif t is float:
            if c != c:
                return (), i
        append(c)
    return tuple(out), -1


def _convert_mixed(col: Sequence[Any], cache: EntityCache) -> tuple[tuple, int]:
    """A column of strings, integers and booleans (no floats): an attribute
    value column (``"secret"``, ``3``, ``true``, ``Folder::"f1"``).

    The distinct strings are converted as one column into ``cache``; then
    ``cache.get(cell, cell)`` maps every cell in one C loop: a string to its
    converted value, any other cell to itself (the cache holds only string
    keys, and no string equals a number). Integers are range-checked over the
    distinct values: ``1 == True`` may hide one behind the other in the set,
    but only 0 and 1, which are in range (a float could hide ``2**63``, hence
    no floats here).
    """
    distinct = set(col)
    ints = [v for v in distinct if type(v) is int]
    if ints and (min(ints) < INT_MIN or max(ints) > INT_MAX):
        return (), _first_bad(col)
    _fill_cache([v for v in distinct if type(v) is str], cache, False)
    return tuple(map(cache.get, col, col)), -1


def _first_bad(col: Sequence[Any]) -> int:
    for i, c in enumerate(col):
        t = type(c)
        if t is str or t is bool:
            continue
        if t is int:
            if INT_MIN <= c <= INT_MAX:
                continue
        elif t is float:
            if c == c:
                continue
        return i
    return -1  # pragma: no cover - callers only ask when something is bad


# --------------------------------------------------------------------------
# Whole-column string conversion
#
# The column is joined into one string framed by newlines ("\ncell\ncell\n")
# and examined with regexes that begin with a literal "\n", which the regex
# engine finds with a fast scan instead of trying every position.

_TYPE = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"
_INT_CELL = re.compile(r"-?[0-9]+\Z")
#: A cell that is not an integer (the final "\n" is followed by the end).
_NOT_INT_NL = re.compile(r"\n(?!-?[0-9]+\n|\Z)")
#: A cell that CSV typing turns into an int or a bool.
_SPECIAL_NL = re.compile(r"\n(?:-?[0-9]+|true|false)(?=\n)")
#: A cell that is a simple entity literal (no escapes in the id).
_ENTITY_NL = re.compile(rf'\n({_TYPE})::"([^"\\\n]*)"(?=\n)')
_TYPE_NAME = re.compile(rf"{_TYPE}\Z")
#: Characters an entity id may not hold raw, besides "\n": controls (a JSON
#: string body may not) and lone surrogates (``values.entity_problem``).
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")
_CONTROL_DELETE = {i: None for i in range(32) if i != 10}
#: At most this many entity types in a column for ``_entities_by_split``
#: (each type costs one scan of the joined column).
SPLIT_MAX_TYPES = 16


def _one_type_entities(col: Sequence[str], j: str) -> Optional[tuple]:
    """All cells ``T::"id"`` with one type T: the usual entity column.

    ``j`` is the column joined as ``"\ncell\ncell\n"``; the caller has ruled
    out newlines inside cells, backslashes and control characters.  Since a
    cell never holds a newline, counting substrings of ``j`` checks every cell
    at once: each starts with ``T::"`` (the "\nT::\"" count), each ends with
    a quote (the "\"\n" count), none is just ``T::"``, and the quotes number
    exactly two per cell, so an id never holds a quote.  Ids are then cut out
    with a C-level ``itemgetter(slice)`` and every Entity shares the one type
    string.
    """
    n = len(col)
    first = col[0]
    k = first.find('::"')
    if k <= 0:
        return None
    ty = first[:k]
    prefix = first[: k + 3]
    if (
        not _TYPE_NAME.match(ty)
        or j.count("\n" + prefix) != n
        or j.count('"\n') != n
        or j.count('"') != 2 * n
        or ("\n" + prefix + "\n") in j
    ):
        return None
    ids = map(itemgetter(slice(k + 3, -1)), col)
    return tuple(map(_new_tuple, repeat(Entity), zip(repeat(ty), ids)))


def _entities_by_split(col: Sequence[str], j: str) -> Optional[tuple]:
    """All cells ``T::"id"``, of a few types T: a column such as the entity
    column of ``attr`` (documents, users and folders).

    The same checks as ``_one_type_entities`` on the joined column ``j``
    (same preconditions), with one prefix count per type: each cell starts
    with ``T::"`` for one of the types (two different prefixes never match
    at the same place, since a type holds no quote), ends with a quote, is
    not just ``T::"``, and the quotes number two per cell.  Then every cell
    is ``T::"id"`` with a quote-free id, so turning each cell end ``"\n``
    into ``::"`` and splitting the column at ``::"`` (two C calls) gives
    type, id, type, id, ... The types are taken from that split; if it was
    misaligned (the column is not what the checks require), the checks fail.
    None when a check fails or there are more than ``SPLIT_MAX_TYPES`` types.
    """
    n = len(col)
    parts = j[1:-2].replace('"\n', '::"').split('::"')
    if len(parts) != 2 * n or j.count('"\n') != n or j.count('"') != 2 * n:
        return None
    types = parts[0::2]
    canon = {t: t for t in set(types)}  # one type string shared by all its entities
    if len(canon) > SPLIT_MAX_TYPES:
        return None
    anchored = 0
    for t in canon:
        prefix = "\n" + t + '::"'
        if not _TYPE_NAME.match(t) or (prefix + "\n") in j:
            return None
        anchored += j.count(prefix)
    if anchored != n:
        return None
    return tuple(map(_new_tuple, repeat(Entity), zip(map(canon.__getitem__, types), parts[1::2])))


def _has_control(j: str) -> bool:
    """Does ``j`` hold a control character other than newline, or a lone
    surrogate?  (An entity id is a JSON string body, which may not hold a
    control character, and valid Unicode.)  ``str.translate`` has an ASCII
    fast path that beats a regex scan five-fold."""
    if j.isascii():
        return len(j.translate(_CONTROL_DELETE)) != len(j)
    return _CONTROL.search(j) is not None



#: Up to this many cells a column's distinct values are counted exactly
#: (``set`` over the column, one C loop, ~5% of converting it); a longer
#: column (a source file of 10^6 rows) is judged from a strided sample.
EXACT_DISTINCT_MAX = 1 << 17


def _distinct_if_repeated(col: Sequence[str]) -> Optional[list[str]]:
    """The distinct values of ``col`` if converting only those pays (at
    least a quarter of the cells repeat an earlier one), else None.

    An exact count, not a sample, up to ``EXACT_DISTINCT_MAX`` cells: a
    strided sample of a column whose values come in runs (three ``attr``
    rows per entity) sees only distinct values and misses the repetition.
    """
    n = len(col)
    if n < 64:
        return None
    if n > EXACT_DISTINCT_MAX:
        sample = col[:: max(1, n // 4096)]
        if len(set(sample)) * 2 > len(sample):
            return None
    uniq = set(col)
    return list(uniq) if len(uniq) * 4 <= n * 3 else None


def _fill_cache(strs: Sequence[str], cache: dict, csv_typed: bool, plain: bool = False) -> None:
    """Put the converted value of every string of ``strs`` (distinct) that
    ``cache`` lacks into it, converting them as one column (``plain``: they
    are known to stay strings).  The cache then gives one object per
    distinct text across all the columns of a file (one ``Entity`` per
    literal, one string per attribute name): less memory, fewer objects for
    the garbage collector to scan, and later dict lookups that find the
    very same key object (an identity check, no string compare).
    """
    new = list(filterfalse(cache.__contains__, strs))
    if not new:
        return
    if plain:
        cache.update(zip(new, new))
        return
    if not csv_typed:
        # Entity literals and plain strings mixed (the distinct strings of
        # an attribute value column): the literals as one column (the entity
        # fast paths need a column of literals only), the rest stay strings.
        ents = [s for s in new if '::"' in s]
        if len(ents) < len(new):
            others = [s for s in new if '::"' not in s]
            cache.update(zip(others, others))
            new = ents
            if not new:
                return
    cache.update(zip(new, _convert_strings(new, cache, csv_typed)))


def _convert_strings(col: Sequence[str], cache: dict, csv_typed: bool) -> tuple:
    """Convert a column of strings: entity literals -> Entity and, for CSV
    (``csv_typed``), integers and booleans too.  ``cache`` types one string
    (``EntityCache`` or ``_CsvCellCache``) for the per-distinct-value path.
    """
    n = len(col)
    if not n:
        return ()
    j = "\n" + "\n".join(col) + "\n"
    if j.count("\n") == n + 1:  # no cell contains a newline: whole-column checks apply
        special = False
        if csv_typed:
            if _NOT_INT_NL.search(j) is None:
                vals = tuple(map(int, col))
                if min(vals) < INT_MIN or max(vals) > INT_MAX:
                    for c, v in zip(col, vals):
                        if v < INT_MIN or v > INT_MAX:
                            raise _CellOverflow(c)
                return vals
            special = _SPECIAL_NL.search(j) is not None
        plain = not special and '::"' not in j
        uniq = _distinct_if_repeated(col)
        if uniq is not None:
            _fill_cache(uniq, cache, csv_typed, plain)
            return tuple(map(cache.__getitem__, col))
        if plain:
            return tuple(col)
        if not special and "\\" not in j and not _has_control(j):
            ents = _one_type_entities(col, j)
            if ents is None:
                ents = _entities_by_split(col, j)
            if ents is not None:
                return ents
            pairs = _ENTITY_NL.findall(j)
            if len(pairs) == n:  # every cell is an entity literal
                return tuple(map(_new_tuple, repeat(Entity), pairs))
    return tuple(map(cache.__getitem__, col))


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of tuples.

    Loading creates no reference cycles, but every allocation of a tracked
    tuple counts towards a collection, and full collections traverse every
    fact already built: with 10^6 facts that more than doubles the load time.
    Re-entrant and thread-safe: the collector is re-enabled (if it was on)
    when the outermost pause ends.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()
