"""Where a base fact was stated: ``[data]`` file:line or ``[sources]`` file row.

The front end keeps one location per ``[data]`` key and per ``[sources]``
entry, not per row (a million rows would carry a million locations for a
feature used while debugging). So the engine keeps only a small
``Provenance`` (the key and source locations, per file content hash, and the
data rows of relations that also have rules, so a proof can tell a stated
fact from a derived one), and the row locations are **recovered on demand**:
the first time an explanation needs a row of relation R, the files that state
R are read again and indexed for R only (the ``[data]`` array is scanned for
the line of each element; a source row is numbered from 1, its line is the
row number plus one when the file has a header). If a file changed since the
engine was built (its content hash differs) or cannot be read (an engine
built from text), the location falls back to the ``[data]`` key's line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..lang import ast as A
from ..values import value_key

__all__ = ["Provenance", "array_element_lines"]


def _key(row: Iterable[Any]) -> tuple:
    return tuple(value_key(v) for v in row)


class Provenance:
    """What an engine remembers about where its facts came from (small)."""

    __slots__ = ("_index", "_lock", "idb_data", "origins")

    def __init__(self, bundle: A.Bundle, facts: Mapping[str, list], idb: Iterable[str]) -> None:
        origins: dict[str, list[tuple]] = {}
        for rf in bundle.files:
            for fs in rf.facts:
                origins.setdefault(fs.relation, []).append(("data", rf.path, fs.loc, rf.content_hash))
            for spec in rf.sources:
                origins.setdefault(spec.relation, []).append(("source", spec.path, spec.loc, spec.header))
        self.origins = origins
        self.idb_data: dict[str, frozenset] = {
            rel: frozenset(_key(r) for r in rows) for rel, rows in facts.items() if rel in set(idb) and rows
        }
        self._index: dict[str, dict] = {}
        self._lock = threading.Lock()

    def is_stated(self, rel: str, row: tuple) -> bool:
        """Whether a row of a relation that has rules was also stated as data."""
        rows = self.idb_data.get(rel)
        return rows is not None and _key(row) in rows

    def origin(self, rel: str, row: tuple) -> dict:
        """``{"kind": "data"|"source", "file", "line"[, "row"]}`` for a stated fact."""
        index = self._index.get(rel)
        if index is None:
            with self._lock:
                index = self._index.get(rel)
                if index is None:
                    index = self._index[rel] = self._build(rel)
        hit = index.get(_key(row))
        if hit is not None:
            return dict(hit)
        places = self.origins.get(rel, ())
        if places:
            kind, path, loc = places[0][:3]
            return {"kind": kind, "file": loc.file if kind == "data" else path, "line": loc.line if kind == "data" else 0}
        return {"kind": "data", "file": "?", "line": 0}

    def _build(self, rel: str) -> dict:
        index: dict = {}
        for place in self.origins.get(rel, ()):
            try:
                if place[0] == "data":
                    self._index_data(rel, place, index)
                else:
                    self._index_source(rel, place, index)
            except Exception:
                continue
        return index

    @staticmethod
    def _index_data(rel: str, place: tuple, index: dict) -> None:
        from ..lang.fileio import read_regular
        from ..lang.parser import parse_file
        from ..limits import DEFAULT_LIMITS

        _, path, loc, digest = place
        if not loc.line or path.startswith("<"):
            return
        rf = parse_file(path)
        if rf.content_hash != digest:
            return
        # regular files only, never blocking (the path may have become a FIFO)
        text = read_regular(path, DEFAULT_LIMITS.max_file_bytes).data.decode("utf-8-sig")
        for fs in rf.facts:
            if fs.relation != rel or fs.loc.line != loc.line:
                continue
            lines = array_element_lines(text, loc.line)
            for i, row in enumerate(fs.rows):
                line = lines[i] if i < len(lines) else loc.line
                index.setdefault(_key(row), {"kind": "data", "file": loc.file, "line": line})

    @staticmethod
    def _index_source(rel: str, place: tuple, index: dict) -> None:
        from ..lang.sources import load_source

        _, path, loc, header = place
        spec = A.SourceSpec(rel, path, header, loc)
        fs = load_source(spec)
        for i, row in enumerate(fs.rows):
            index.setdefault(_key(row), {"kind": "source", "file": path, "row": i + 1,
                                         "line": i + 1 + (1 if header else 0)})


def array_element_lines(text: str, key_line: int) -> list[int]:
    """1-based line of each top-level element of the TOML value that starts on
    ``key_line`` (``key = [ ... ]``); a scalar value gives its own line.

    A small scanner: it skips strings (basic, literal, multi-line) and
    comments, and counts brackets, which is all it takes to find where each
    element of an array begins.
    """
    lines = text.split("\n")
    if not 1 <= key_line <= len(lines):
        return []
    # start after the first '=' of the key line
    pos_line = key_line - 1
    col = lines[pos_line].find("=")
    if col < 0:
        return []
    src = "\n".join(lines[pos_line:])
    i = col + 1
    line = key_line
    n = len(src)
    depth = 0
    out: list[int] = []
    expecting = False  # at depth 1, waiting for the next element
    while i < n:
        ch = src[i]
        if ch == "\n":
            line += 1
            i += 1
            if depth == 0 and out:
                break
            continue
        if ch in " \t\r":
            i += 1
            continue
        if ch == "#":
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if depth == 0:
            if ch == "[":
                depth = 1
                expecting = True
                i += 1
                continue
            return [line]  # a scalar value
        if depth == 1 and expecting and ch not in ",]":
            out.append(line)
            expecting = False
        if ch in "\"'":
            triple = src.startswith(ch * 3, i)
            end = ch * 3 if triple else ch
            j = i + len(end)
            while j < n:
                if ch == '"' and src[j] == "\\":
                    j += 2
                    continue
                if src.startswith(end, j):
                    break
                j += 1
            line += src.count("\n", i, j)
            i = j + len(end)
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                break
        elif ch == "," and depth == 1:
            expecting = True
        i += 1
    return out
