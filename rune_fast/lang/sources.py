"""``[sources]`` fact files (CSV and JSON lines) -> ``FactSet`` (docs/language.md §3).

Sources exist so that large fact sets (10^6 facts) load fast.  Python code
that runs once per cell costs about a microsecond, which adds up to a second
per million cells, so this module avoids per-cell Python code:

- A CSV file in which no field is quoted (the usual case, entity cells
  included) is split with ``str.split``.  Otherwise the csv module reads it.
- Cells are then handled column by column.  A column is joined into one
  string and checked with substring counts and regexes that start with a
  literal newline (integers? plain strings? entities of a few types?).  It
  is converted with ``map`` over builtins.  A column of many repeated values
  is converted once per distinct value, through a cache shared by all the
  columns of a file, so that a repeated text becomes one object (one
  ``Entity`` per literal).  Only a column that mixes kinds and cannot be
  handled whole falls back to a dict cache whose ``__missing__`` types each
  distinct string.
- The cyclic garbage collector is paused while the tuples are built (see
  ``paused_gc``).

``convert_column`` converts TOML and JSON values.  ``[data]`` follows exactly
the same rules, so ``parser.py`` imports it from here.

Errors name the source file with line and column, and the ``[sources]`` entry
that declared it.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import math
import re
import threading
from contextlib import contextmanager
from itertools import chain, filterfalse, repeat
from operator import itemgetter
from typing import Any, Iterator, Optional, Sequence

from .ast import FactSet, SourceSpec
from .fileio import FileRefused, ReadResult, confine, read_regular, resolve_roots
from ..errors import RuneError, RuneSourceError, raise_collected
from ..limits import DEFAULT_LIMITS, Limits
from ..values import INT_MAX, INT_MIN, Entity, parse_entity_literal

__all__ = [
    "load_source",
    "read_source",
    "read_source_bytes",
    "parse_source_bytes",
    "source_format",
    "EntityCache",
    "convert_column",
    "describe_bad_value",
    "paused_gc",
    "type_csv_column",
]

#: Extensions read as JSON lines; every other file is CSV.
JSONL_EXTENSIONS = (".jsonl", ".ndjson")

#: At most this many cell errors are reported per source file (a broken
#: 10^6-line file must not produce 10^6 errors).
MAX_ERRORS_PER_FILE = 20

_SCALAR_TYPES = frozenset((str, int, float, bool))
_new_tuple = tuple.__new__

# --------------------------------------------------------------------------
# Value conversion shared with [data]


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


# --------------------------------------------------------------------------
# Reading


def source_format(path: str) -> str:
    """``"jsonl"`` for ``.jsonl``/``.ndjson`` files, else ``"csv"``."""
    return "jsonl" if path.lower().endswith(JSONL_EXTENSIONS) else "csv"


def _entry_where(spec: SourceSpec) -> str:
    if spec.loc.line:
        return f"{spec.loc.file}:{spec.loc.line}:{spec.loc.col}"
    return spec.loc.file


#: Longest source line quoted in an error message (the rest is cut, "...").
MAX_QUOTED_CHARS = 160


def _clip(text: str, n: int = MAX_QUOTED_CHARS) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def read_source_bytes(
    spec: SourceSpec,
    *,
    limits: Limits = DEFAULT_LIMITS,
    roots: Optional[Sequence[str]] = None,
) -> bytes:
    """Read a source file, refusing it (before reading) if it exceeds ``max_file_bytes``.

    ``roots`` are the directories a source may lie under (the bundle
    directory, plus any allow-listed roots).  The bundle loaders
    (``parser.load_bundle``, ``parser.bundle_from_text``) always pass them;
    ``None`` (no confinement) is for callers that vetted the path themselves.
    The path is resolved (``..`` and every symlink
    followed) before the check, so neither an absolute path, nor ``../``, nor
    a symlink can reach outside.  Only regular files are read (a FIFO or a
    device is refused without blocking, see ``fileio``).

    Every refusal is a ``RuneSourceError`` (``RuneLimitError`` for the size)
    located at the ``[sources]`` entry (that is the line the user has to fix)
    and naming the path, never its content.
    """
    return read_source(spec, limits=limits, roots=roots).data


def read_source(
    spec: SourceSpec,
    *,
    limits: Limits = DEFAULT_LIMITS,
    roots: Optional[Sequence[str]] = None,
) -> ReadResult:
    """``read_source_bytes`` plus the identity (size, mtime, inode) of the file read."""
    loc = spec.loc
    at: dict[str, Any] = dict(file=loc.file, line=loc.line, column=loc.col, source_line=loc.text or None)
    allowed = resolve_roots(roots) if roots is not None else None
    real = confine(spec.path, allowed) if allowed is not None else spec.path
    if real is None:
        shown = ", ".join(allowed or ()) or "(none)"
        raise RuneSourceError(
            f"source file {spec.path} for relation {spec.relation!r} is outside the bundle directory "
            f"(after resolving symlinks and '..'); sources may only be read under: {shown}. "
            "Allow another directory explicitly with source_roots=[...]",
            **at,
        )
    try:
        return read_regular(real, limits.max_file_bytes)
    except FileRefused as e:
        if e.kind == "too_big":
            raise limits.exceeded("max_file_bytes", f"source file {spec.path} {e.reason}", **at) from None
        raise RuneSourceError(f"source file {spec.path} for relation {spec.relation!r}: {e.reason}", **at) from None


def load_source(
    spec: SourceSpec, *, limits: Limits = DEFAULT_LIMITS, roots: Optional[Sequence[str]] = None
) -> FactSet:
    """Read and parse one ``[sources]`` entry into a ``FactSet`` (loc = the entry)."""
    return parse_source_bytes(spec, read_source_bytes(spec, limits=limits, roots=roots), limits=limits)


def parse_source_bytes(
    spec: SourceSpec, data: bytes, *, limits: Limits = DEFAULT_LIMITS, quote: bool = True
) -> FactSet:
    """Parse the bytes of a source file (already read, e.g. to hash them too).

    ``quote=False`` keeps the file's text out of error messages (only line
    and column are given): used for files outside the bundle directory,
    whose content must not leak into logs and ``stats.last_error``.  Quoted
    lines are cut at ``MAX_QUOTED_CHARS`` either way.
    """
    if len(data) > limits.max_file_bytes:
        loc = spec.loc
        raise limits.exceeded(
            "max_file_bytes", f"source file {spec.path} has {len(data)} bytes",
            file=loc.file, line=loc.line, column=loc.col, source_line=loc.text or None,
        )
    ctx = _FileCtx(spec, data, quote)
    text = ctx.decode()
    with paused_gc():
        if source_format(spec.path) == "jsonl":
            arity, rows = _parse_jsonl(ctx, text)
        else:
            arity, rows = _parse_csv(ctx, text)
    return FactSet(spec.relation, arity, rows, spec.loc)


class _FileCtx:
    """Error construction for one source file: lazily split lines for messages."""

    def __init__(self, spec: SourceSpec, data: bytes, quote: bool = True) -> None:
        self.spec = spec
        self.data = data
        self.quote = quote
        self.text = ""
        self._lines: Optional[list[str]] = None

    def decode(self) -> str:
        try:
            self.text = self.data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = self.data.count(b"\n", 0, e.start) + 1
            start = self.data.rfind(b"\n", 0, e.start) + 1
            end = self.data.find(b"\n", e.start)
            raw = self.data[start : end if end >= 0 else len(self.data)]
            col = len(self.data[start : e.start].decode("utf-8", "replace")) + 1
            raise self.error(
                f"not UTF-8 text (invalid byte 0x{self.data[e.start]:02x})",
                line, col, raw.decode("utf-8", "replace"),
            ) from None
        return self.text

    def line_text(self, n: int) -> str:
        if self._lines is None:
            self._lines = self.text.split("\n")
        if 1 <= n <= len(self._lines):
            return self._lines[n - 1].rstrip("\r")
        return ""

    def error(self, message: str, line: int, column: int = 1, source_line: Optional[str] = None) -> RuneSourceError:
        spec = self.spec
        if not self.quote:
            source_line = None
        else:
            if source_line is None and line:
                source_line = self.line_text(line)
            if source_line is not None:
                source_line = _clip(source_line)
        return RuneSourceError(
            f"{message} (source of relation {spec.relation!r} declared at {_entry_where(spec)})",
            file=spec.path, line=line, column=column, source_line=source_line,
        )


# --------------------------------------------------------------------------
# CSV


class _CellOverflow(Exception):
    def __init__(self, cell: str) -> None:
        self.cell = cell


class _CsvCellCache(dict):
    """``cell text -> typed value`` for mixed CSV columns (see module docstring)."""

    __slots__ = ()

    def __missing__(self, s: str) -> Any:
        v: Any
        if _INT_CELL.match(s):
            v = int(s)
            if v < INT_MIN or v > INT_MAX:
                raise _CellOverflow(s)
        elif s == "true":
            v = True
        elif s == "false":
            v = False
        elif '::"' in s:
            v = parse_entity_literal(s) or s
        else:
            v = s
        self[s] = v
        return v


def type_csv_column(col: Sequence[str], cache: Optional[dict] = None) -> tuple:
    """Type one CSV column: ``-?[0-9]+`` -> int, ``true``/``false`` -> bool,
    entity literal -> Entity, anything else stays a string.

    Raises ``_CellOverflow`` for an integer outside 64 bits.
    """
    return _convert_strings(col, cache if cache is not None else _CsvCellCache(), True)


def _csv_rows_with_lines(text: str) -> list[tuple[int, list[str]]]:
    """Slow path (errors only): every non-blank record with its first line number."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out = []
    prev = 0
    for row in reader:
        start = prev + 1
        prev = reader.line_num
        if row:
            out.append((start, row))
    return out


def _field_column(fields: list[str], j: int) -> int:
    """Approximate 1-based column of field ``j`` (exact for unquoted lines)."""
    if j == 0 or j >= len(fields):
        return 1
    return len(",".join(fields[:j])) + 2


def _plain_csv_lines(text: str) -> Optional[list[str]]:
    """The non-blank lines of a CSV text in which no field is quoted, or None.

    The csv module only treats a quote specially at the start of a field, so
    when no line and no field starts with one (and there is no CR or NUL),
    splitting on newlines and commas gives exactly the csv module's records,
    about four times faster.  Entity cells such as ``User::"alice"`` keep
    their quotes inside the field and stay on this path.
    """
    if text.startswith('"') or ',"' in text or '\n"' in text or "\r" in text or "\x00" in text:
        return None
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    if "" in lines:
        lines = list(filter(None, lines))
    return lines


def _columns(flat: list, arity: int) -> list[list]:
    """Row-major cells -> one list per column (slicing runs in C)."""
    return [flat[j::arity] for j in range(arity)]


def _parse_csv(ctx: _FileCtx, text: str) -> tuple[int, tuple]:
    spec = ctx.spec
    header_len = -1
    lines = _plain_csv_lines(text)
    if lines is not None:
        if spec.header and lines:
            header_len = lines[0].count(",") + 1
            del lines[0]
        nrows = len(lines)
        lens = {c + 1 for c in set(map(str.count, lines, repeat(",")))}
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            rows = list(reader)
        except csv.Error as e:
            raise ctx.error(f"malformed CSV: {e}", reader.line_num or 1) from None
        if rows and not all(rows):
            rows = list(filter(None, rows))  # blank lines carry no fact
        if spec.header and rows:
            header_len = len(rows[0])
            del rows[0]
        nrows = len(rows)
        lens = set(map(len, rows))
    if not nrows:
        return (header_len if header_len >= 0 else 1), ()
    if header_len >= 0:
        lens.add(header_len)
    if len(lens) > 1:
        _raise_ragged_csv(ctx, text)
    arity = lens.pop()
    if lines is not None:
        flat = ",".join(lines).split(",")
        del lines
    else:
        flat = list(chain.from_iterable(rows))
        del rows
    cols = _columns(flat, arity)
    del flat
    cache = _CsvCellCache()
    typed = []
    for j, col in enumerate(cols):
        try:
            typed.append(type_csv_column(col, cache))
        except _CellOverflow as e:
            i = col.index(e.cell)
            line, fields = _csv_rows_with_lines(text)[(1 if spec.header else 0) + i]
            raise ctx.error(
                f"integer {_clip(e.cell, 40) if ctx.quote else '(not shown)'} in field {j + 1} is outside the 64-bit signed range",
                line, _field_column(fields, j),
            ) from None
        cols[j] = None  # type: ignore[call-overload]  # free the strings early
    return arity, tuple(zip(*typed))


def _raise_ragged_csv(ctx: _FileCtx, text: str) -> None:
    located = _csv_rows_with_lines(text)
    first_line, first = located[0]
    n = len(first)
    errs = []
    for line, row in located[1:]:
        if len(row) != n:
            what = "the header" if ctx.spec.header else f"the first row (line {first_line})"
            errs.append(ctx.error(
                f"ragged CSV: this row has {len(row)} fields but {what} has {n}; "
                "every row of a relation must have the same number of fields",
                line,
            ))
            if len(errs) >= MAX_ERRORS_PER_FILE:
                break
    raise_collected(errs)
    raise ctx.error("ragged CSV", first_line)  # pragma: no cover - the scan above finds the row


# --------------------------------------------------------------------------
# JSON lines


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _array_lines(lines: list[str]) -> bool:
    """Does every line start with "[" and end with "]"?  Checked on the joined
    text (the lines hold no newline), which is cheaper than a call per line."""
    j = "\n".join(lines)
    n = len(lines) - 1
    return j.startswith("[") and j.endswith("]") and j.count("\n[") == n and j.count("]\n") == n


def _parse_jsonl(ctx: _FileCtx, text: str) -> tuple[int, tuple]:
    lines = text.split("\n")
    nonblank = list(filter(None, lines)) if "" in lines else lines
    if not _array_lines(nonblank):  # surrounding blanks, CRLF, or a bad line
        nonblank = list(filter(None, map(str.strip, lines)))
    if not nonblank:
        return 1, ()
    items: Optional[list] = None
    # Fast path: the whole file as one JSON array (one C call).  Guarded so
    # that a line that is not one array on its own cannot hide in the join.
    if _array_lines(nonblank):
        try:
            items = json.loads("[" + ",".join(nonblank) + "]", parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            items = None
        if items is not None and (len(items) != len(nonblank) or set(map(type, items)) != {list}):
            items = None
    del nonblank
    if items is None:
        _raise_jsonl_line_errors(ctx, list(map(str.strip, lines)))
        raise ctx.error("malformed JSON lines", 1)  # pragma: no cover - the line scan finds the culprit

    def line_of(k: int) -> int:
        return [i for i, s in enumerate(lines, 1) if s.strip()][k]

    lens = set(map(len, items))
    if len(lens) > 1:
        n = len(items[0])
        errs = []
        for k, it in enumerate(items):
            if len(it) != n:
                errs.append(ctx.error(
                    f"ragged JSON lines: this array has {len(it)} values but the first (line {line_of(0)}) "
                    f"has {n}; every row of a relation must have the same length",
                    line_of(k),
                ))
                if len(errs) >= MAX_ERRORS_PER_FILE:
                    break
        raise_collected(errs)
    arity = lens.pop()
    if arity == 0:
        return 0, ((),) * len(items)
    cols = _columns(list(chain.from_iterable(items)), arity)
    del items
    cache = EntityCache()
    for j, col in enumerate(cols):
        vals, bad = convert_column(col, cache)
        if bad >= 0:
            raise ctx.error(
                f"value {j + 1} is {describe_bad_value(col[bad])}; each line must be one JSON array of "
                "scalars (strings, numbers, booleans; entity literals as strings)",
                line_of(bad),
            )
        cols[j] = vals  # type: ignore[call-overload]
    return arity, tuple(zip(*cols))


def _raise_jsonl_line_errors(ctx: _FileCtx, stripped: list[str]) -> None:
    """Slow path: parse line by line to find and locate every bad line."""
    errs: list[RuneError] = []
    for n, s in enumerate(stripped, 1):
        if not s:
            continue
        try:
            v = json.loads(s, parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            raw = ctx.line_text(n)
            col = len(raw) - len(raw.lstrip()) + e.pos + 1
            errs.append(ctx.error(f"invalid JSON: {e.msg}; each line must be one JSON array", n, col))
        except (ValueError, RecursionError) as e:
            errs.append(ctx.error(f"invalid JSON: {e}; each line must be one JSON array", n))
        else:
            if not isinstance(v, list):
                errs.append(ctx.error(
                    f"expected one JSON array per line, found {describe_bad_value(v) if not isinstance(v, (str, int, float)) else 'a scalar'}",
                    n,
                ))
        if len(errs) >= MAX_ERRORS_PER_FILE:
            break
    raise_collected(errs)
