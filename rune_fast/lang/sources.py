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
import io
import json
from itertools import chain, repeat
from typing import Any, Optional, Sequence

from .ast import FactSet, SourceSpec
from .fileio import FileRefused, ReadResult, confine, read_regular, resolve_roots
from ..errors import RuneError, RuneSourceError, raise_collected
from ..limits import DEFAULT_LIMITS, Limits
from ..values import INT_MAX, INT_MIN, parse_entity_literal
from .columns import EntityCache, _CellOverflow, _INT_CELL, _convert_strings, convert_column, describe_bad_value, paused_gc

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
