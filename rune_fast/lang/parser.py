"""The file-level front end: a ``.rune`` file -> ``RuneFile``, files -> ``Bundle``.

docs/language.md §1 (layout), §3 (data), §7 (embedded tests).  How a file is read:

1. **Split** at section header lines: a TOML table header (``[name]``,
   ``[name.sub]``, ``[[name]]``) in column 0 whose first key is a bare name.
   Everything before the first header is the preamble, which must hold the
   version line and nothing else.
2. **TOML sections** are parsed by a real TOML parser (``rtoml`` when
   importable because it is ~6x faster, ``tomllib`` otherwise and for error
   positions).  All chunks of one section kind (``[data]``, ``[data.agent]``
   ...) form one TOML document in which every other line of the file is
   blank, so that the parser's line numbers *are* file line numbers and TOML's
   own rules (a table may not be declared twice) apply unchanged.  Each
   ``[tests.NAME]`` is its own document so that one broken test does not hide
   the errors of the others.
3. ``[rules]`` / ``[policies]`` text goes to ``rules_parser`` /
   ``policy_parser`` with its first line number.
4. **Errors are collected** across all sections and raised together, sorted by
   position (``errors.raise_collected``).

TOML parsers do not report where a key is, so a single regex pass over each
section finds the line of every ``key =`` (``_KeyIndex``); facts and errors
are located with it.

``[data]`` conversion works column by column with C-level operations (see
``sources.convert_column``) because a realistic data section has 10^5 rows.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import time
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from .ast import Bundle, EmbeddedTest, FactSet, Loc, Policy, RequestEntity, Rule, RuneFile, SourceSpec
from ..errors import (
    RuneArityError,
    RuneDataError,
    RuneDuplicateIdError,
    RuneError,
    RuneManifestError,
    RuneSourceError,
    RuneSyntaxError,
    RuneUndefinedError,
    RuneVersionError,
    raise_collected,
)
from ..limits import DEFAULT_LIMITS, Limits
from .sources import (
    EntityCache,
    convert_column,
    describe_bad_value,
    parse_source_bytes,
    paused_gc,
    read_source,
)
from .fileio import FileRefused, ReadResult, confine, read_regular, resolve_roots
from .manifest import MANIFEST_MODES, MANIFEST_NAME, manifest_path, read_manifest, verify_manifest
from ..values import INT_MAX, INT_MIN, Entity, parse_entity_literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published on PyPI as tomli
    import tomli as tomllib

try:  # pragma: no cover - depends on the environment
    import rtoml as _rtoml

    _rtoml_loads = _rtoml.loads
except ImportError:  # pragma: no cover
    _rtoml_loads = None  # type: ignore[assignment]  # then tomllib parses everything

__all__ = [
    "parse_text",
    "parse_file",
    "load_bundle",
    "bundle_from_text",
    "bundle_manifest",
    "SUPPORTED_VERSIONS",
    "SECTIONS",
]

#: What a version error says is supported.
SUPPORTED_VERSIONS = ("rune/1", "rune/1.N")
#: The section names, as an error message lists them.
SECTIONS = ("[metadata]", "[data]", "[sources]", "[rules]", "[policies]", "[tests.NAME]")

_VERSION_VALUE = re.compile(r"rune/1(?:\.[0-9]+)?\Z")
_TOML_KINDS = ("metadata", "data", "sources", "tests")
_CODE_KINDS = ("rules", "policies")

# --------------------------------------------------------------------------
# Lexical helpers (line classification only; TOML itself is parsed by TOML parsers)

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\\n]|\\.)*"'
_LITERAL = r"'[^'\n]*'"
_KEY = rf"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_PATH = rf"{_KEY}(?:[ \t]*\.[ \t]*{_KEY})*"

#: Candidate header lines: ``[`` or ``[[`` in column 0 followed by a bare name.
#: Requiring a letter or ``_`` keeps inner-array lines of a multi-line TOML
#: array (``["alice", "admin"],``, ``[1, 2]``) from ever being headers.
_HEADER_START = re.compile(r"^\[\[?[ \t]*[A-Za-z_]", re.M)
_HEADER_LINE = re.compile(
    rf"(?:\[\[[ \t]*(?P<dbl>{_PATH})[ \t]*\]\]|\[[ \t]*(?P<sgl>{_PATH})[ \t]*\])[ \t]*(?:#[^\n]*)?\r?"
)
#: ``[true]`` and friends in column 0 are one-element inner arrays, not headers.
_VALUE_WORDS = frozenset(("true", "false", "inf", "nan"))
_KEY_PART = re.compile(rf"[ \t]*(?:({_BARE})|({_BASIC})|({_LITERAL}))[ \t]*")
_KEY_LINE = re.compile(rf"^[ \t]*({_PATH})[ \t]*=", re.M)
_BLANK_OR_COMMENT = re.compile(r"[ \t]*(?:#[^\n]*)?\r?")
_VERSION_PREFIX = re.compile(r"[ \t]*version[ \t]*=[ \t]*")
_TOMLLIB_POS = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*\Z")
_RTOML_POS = re.compile(r"\s*at line (\d+) column (\d+)\s*\Z")
_REL_SEGMENT = re.compile(r"[a-z_][A-Za-z0-9_]*\Z")

_DATA_SHAPES = (
    "accepted shapes: an array of arrays of scalars (all the same length), an array of "
    "scalars, a single scalar, or a table of these (flattened to dotted relation names)"
)


def _unquote_basic(quoted: str) -> str:
    try:
        value: str = tomllib.loads("k = " + quoted)["k"]
        return value
    except (tomllib.TOMLDecodeError, KeyError):
        return quoted[1:-1]


def _split_key_path(s: str) -> Optional[tuple[str, ...]]:
    """``a."b c".'d'`` -> ``("a", "b c", "d")``; None if it is not a key path."""
    keys: list[str] = []
    pos = 0
    n = len(s)
    while True:
        m = _KEY_PART.match(s, pos)
        if m is None:
            return None
        if m.group(1) is not None:
            keys.append(m.group(1))
        elif m.group(2) is not None:
            keys.append(_unquote_basic(m.group(2)))
        else:
            keys.append(m.group(3)[1:-1])
        pos = m.end()
        if pos >= n:
            return tuple(keys)
        if s[pos] != ".":
            return None
        pos += 1


def _where(loc: Loc) -> str:
    return f"{loc.file}:{loc.line}:{loc.col}" if loc.line else loc.file


# --------------------------------------------------------------------------
# Source text and located errors


class _Src:
    """One file's text plus cheap ways to name a position in it."""

    __slots__ = ("file", "text", "_lines")

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self._lines: Optional[list[str]] = None

    def line_text(self, n: int) -> str:
        if self._lines is None:
            self._lines = self.text.split("\n")
        if 1 <= n <= len(self._lines):
            return self._lines[n - 1].rstrip("\r")
        return ""

    def text_at(self, line_start: int) -> str:
        """The line starting at offset ``line_start`` (no split of the whole text)."""
        end = self.text.find("\n", line_start)
        return self.text[line_start : end if end >= 0 else len(self.text)].rstrip("\r")

    def loc(self, line: int, col: int, line_start: int = -1) -> Loc:
        text = self.text_at(line_start) if line_start >= 0 else self.line_text(line)
        return Loc(self.file, line, col, text)

    def err(self, cls: type[RuneError], msg: str, line: int, col: int, **kw: Any) -> RuneError:
        return cls(msg, file=self.file, line=line, column=col, source_line=self.line_text(line), **kw)

    def err_at(self, cls: type[RuneError], msg: str, loc: Loc, **kw: Any) -> RuneError:
        return cls(msg, file=self.file, line=loc.line, column=loc.col, source_line=loc.text, **kw)


def _err_from_loc(cls: type[RuneError], msg: str, loc: Loc) -> RuneError:
    return cls(msg, file=loc.file, line=loc.line, column=loc.col, source_line=loc.text or None)


# --------------------------------------------------------------------------
# Sections


@dataclass(slots=True)
class _Chunk:
    """One header line and the text up to the next header line."""

    keys: tuple[str, ...]
    double: bool
    line: int  # 1-based line of the header
    col: int  # 1-based column of the first key
    start: int  # offset of the header line
    body: int  # offset of the first line after the header
    end: int  # offset of the next header (or end of text)


def _split(text: str) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    line = 1
    last = 0
    n = len(text)
    for m in _HEADER_START.finditer(text):
        s = m.start()
        eol = text.find("\n", s)
        if eol < 0:
            eol = n
        hm = _HEADER_LINE.fullmatch(text, s, eol)
        if hm is None:
            continue
        dbl = hm.group("dbl")
        path = dbl if dbl is not None else hm.group("sgl")
        keys = _split_key_path(path)
        if keys is None or keys[0] in _VALUE_WORDS:
            continue
        line += text.count("\n", last, s)
        last = s
        col = hm.start("dbl" if dbl is not None else "sgl") - s + 1
        if chunks:
            chunks[-1].end = s
        chunks.append(_Chunk(keys, dbl is not None, line, col, s, min(eol + 1, n), n))
    return chunks


class _KeyIndex:
    """Where each ``key =`` of a TOML section is (TOML parsers do not say).

    Paths are relative to the section (``drop`` leading header keys removed:
    1 for ``[data.x]``, 2 for ``[tests.NAME.x]``).  ``find`` falls back to the
    longest known prefix (an inline table ``agent = {name = "x"}`` locates
    ``agent.name`` at ``agent``) and finally to the section header.
    """

    def __init__(self, src: _Src, chunks: list[_Chunk], drop: int) -> None:
        self.src = src
        self.map: dict[tuple[str, ...], tuple[int, int, int]] = {}
        text = src.text
        first = chunks[0]
        self.header = (first.line, first.col, first.start)
        for c in chunks:
            prefix = c.keys[drop:]
            self.map.setdefault(prefix, (c.line, c.col, c.start))
            line = c.line + 1
            pos = c.body
            for m in _KEY_LINE.finditer(text, c.body, c.end):
                ls = m.start()
                line += text.count("\n", pos, ls)
                pos = ls
                keys = _split_key_path(m.group(1))
                if keys is not None:
                    hit = (line, m.start(1) - ls + 1, ls)
                    for k in range(1, len(keys) + 1):  # a.b.c = 1 also defines a and a.b
                        self.map.setdefault(prefix + keys[:k], hit)

    def find(self, path: tuple[str, ...]) -> Loc:
        for k in range(len(path), 0, -1):
            hit = self.map.get(path[:k])
            if hit is not None:
                return self.src.loc(*hit)
        return self.src.loc(*self.header)


def _toml_loads(doc: str) -> tuple[Optional[dict], Optional[tuple[str, int, int]]]:
    """Parse with rtoml (fast); on failure ask tomllib for a precise position.

    Returns ``(result, None)`` or ``(None, (message, line, col))``; ``line`` is
    0 for "at end of document".  rtoml's message says what was expected, so
    it is appended to tomllib's terse one.
    """
    rmsg = ""
    rpos: Optional[tuple[int, int]] = None
    if _rtoml_loads is not None:
        try:
            return _rtoml_loads(doc), None
        except Exception as e:  # rtoml.TomlParsingError and anything exotic
            rmsg = str(e)
            m = _RTOML_POS.search(rmsg)
            if m:
                rpos = (int(m.group(1)), int(m.group(2)))
                rmsg = rmsg[: m.start()]
    try:
        return tomllib.loads(doc), None
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
    except RecursionError:
        msg = "values nested too deeply"
    line = col = 0
    m = _TOMLLIB_POS.search(msg)
    if m:
        msg = msg[: m.start()]
        if m.group(1):
            line, col = int(m.group(1)), int(m.group(2))
    if not line and rpos:
        line, col = rpos
    if rmsg and rmsg.lower() != msg.lower():
        msg = f"{msg} ({rmsg})"
    return None, (msg, line, col)


def _group_doc(text: str, chunks: list[_Chunk]) -> str:
    """The chunks as one TOML document, padded with newlines to keep line numbers."""
    parts = []
    cur = 1
    for c in chunks:
        parts.append("\n" * (c.line - cur))
        parts.append(text[c.start : c.end])
        cur = c.line + text.count("\n", c.start, c.end)
    return "".join(parts)


# --------------------------------------------------------------------------
# The file parser


class _FileParser:
    def __init__(self, text: str, path: str, limits: Limits, base_dir: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        self.src = _Src(path, text)
        self.limits = limits
        self.base_dir = base_dir
        self.errors: list[RuneError] = []
        self.cache = EntityCache()

    # -- errors
    def error(self, cls: type, msg: str, line: int, col: int) -> None:
        self.errors.append(self.src.err(cls, msg, line, col))

    def error_at(self, cls: type, msg: str, loc: Loc) -> None:
        self.errors.append(self.src.err_at(cls, msg, loc))

    # -- driver
    def parse(self, content_hash: str) -> RuneFile:
        src = self.src
        text = src.text
        chunks = _split(text)
        version = self.preamble(chunks[0].start if chunks else len(text), chunks)

        metadata: dict[str, Any] = {}
        facts: list[FactSet] = []
        sources: list[SourceSpec] = []
        rules: list[Rule] = []
        policies: list[Policy] = []
        tests: list[EmbeddedTest] = []

        groups: dict[Any, list[_Chunk]] = {}
        code: list[tuple[str, _Chunk]] = []
        for c in chunks:
            head = c.keys[0]
            shown = ("[[%s]]" if c.double else "[%s]") % ".".join(c.keys)
            if head in _CODE_KINDS:
                if len(c.keys) != 1 or c.double:
                    self.error(RuneSyntaxError, f"section header {shown}: [{head}] takes no sub-name; write [{head}]",
                               c.line, c.col)
                else:
                    code.append((head, c))
            elif head == "tests":
                if len(c.keys) < 2:
                    self.error(RuneSyntaxError, f"section header {shown}: each test is a table named "
                               "[tests.NAME]", c.line, c.col)
                else:
                    groups.setdefault(("tests", c.keys[1]), []).append(c)
            elif head in _TOML_KINDS:
                groups.setdefault(head, []).append(c)
            else:
                self.error(RuneSyntaxError, f"unknown section {shown}; the sections are {', '.join(SECTIONS)}",
                           c.line, c.col)

        for key, group in groups.items():
            kind = key[0] if isinstance(key, tuple) else key
            value = self.toml_group(kind, group)
            if value is None:
                continue
            if kind == "metadata":
                metadata.update(value)
            elif kind == "data":
                facts.extend(self.data_facts(value, _KeyIndex(src, group, 1)))
            elif kind == "sources":
                sources.extend(self.source_specs(value, _KeyIndex(src, group, 1)))
            else:
                for name, table in value.items():
                    t = self.embedded_test(name, table, _KeyIndex(src, group, 2))
                    if t is not None:
                        tests.append(t)

        for kind, c in code:
            nodes = self.code_section(kind, c)
            (rules if kind == "rules" else policies).extend(nodes)

        if self.errors:
            self.errors.sort(key=lambda e: (e.line, e.column))
            raise_collected(self.errors)
        return RuneFile(
            path=src.file,
            version=version,
            metadata=metadata,
            facts=tuple(facts),
            sources=tuple(sources),
            rules=tuple(rules),
            policies=tuple(policies),
            tests=tuple(tests),
            content_hash=content_hash,
        )

    # -- preamble / version
    def preamble(self, end: int, chunks: list[_Chunk]) -> str:
        text = self.src.text
        pos = 0
        line = 1
        version = ""
        seen = False
        supported = " and ".join(SUPPORTED_VERSIONS)
        while pos < end:
            eol = text.find("\n", pos, end)
            if eol < 0:
                eol = end
            if not _BLANK_OR_COMMENT.fullmatch(text, pos, eol):
                raw = text[pos:eol].rstrip("\r")
                if not seen:
                    seen = True
                    version = self.version_line(raw, line, supported)
                    if not version:
                        break  # one error for a bad start is enough
                else:
                    indent = len(raw) - len(raw.lstrip())
                    self.error(RuneSyntaxError, "unexpected text before the first section; expected a section "
                               f"header such as [data] or [rules] in column 0 (the sections are {', '.join(SECTIONS)})",
                               line, indent + 1)
                    break
            pos = eol + 1
            line += 1
        if not seen:
            where = chunks[0].line if chunks else 1
            self.error(RuneVersionError, f'missing version header: the first line must be version = "rune/1" '
                       f"(supported versions: {supported})", where, 1)
        return version

    def version_line(self, raw: str, line: int, supported: str) -> str:
        try:
            doc = tomllib.loads(raw)
        except tomllib.TOMLDecodeError:
            doc = None
        indent = len(raw) - len(raw.lstrip())
        if not doc or list(doc) != ["version"] or not isinstance(doc["version"], str):
            self.error(RuneVersionError, 'expected the version header version = "rune/1" as the first line '
                       f"(supported versions: {supported})", line, indent + 1)
            return ""
        value = doc["version"]
        if not _VERSION_VALUE.match(value):
            m = _VERSION_PREFIX.match(raw)
            self.error(RuneVersionError, f"unsupported version {value!r}; supported versions: {supported}",
                       line, (m.end() if m else indent) + 1)
            return ""
        return value

    # -- TOML sections
    def toml_group(self, kind: str, group: list[_Chunk]) -> Optional[dict]:
        doc = _group_doc(self.src.text, group)
        result, problem = _toml_loads(doc)
        if problem is not None:
            msg, line, col = problem
            if not line:  # "at end of document": point after the last text of the section
                stripped = doc.rstrip()
                line = stripped.count("\n") + 1
                col = len(stripped) - stripped.rfind("\n")
            self.error(RuneSyntaxError, f"invalid TOML in [{kind}]: {msg}", line, col)
            return None
        assert result is not None
        first = group[0]
        extra = [k for k in result if k != kind]
        if extra:
            line, col = self.indented_header(group, extra[0]) or (first.line, first.col)
            self.error(RuneSyntaxError, f"table [{extra[0]}] inside the [{kind}] section: section headers must "
                       "start in column 0", line, col)
        value = result.get(kind)
        if kind == "tests":
            if not isinstance(value, dict):  # pragma: no cover - [tests] alone is rejected earlier
                return None
            for name, t in value.items():
                if not isinstance(t, dict):
                    self.error(RuneDataError, f"[[tests.{name}]] is an array of tables; each test is one table "
                               f"[tests.{name}]", first.line, first.col)
            return {k: v for k, v in value.items() if isinstance(v, dict)}
        if not isinstance(value, dict):
            self.error(RuneDataError, f"[[{kind}]] is an array of tables; write one [{kind}] table",
                       first.line, first.col)
            return None
        return value

    def indented_header(self, group: list[_Chunk], name: str) -> Optional[tuple[int, int]]:
        """Where an indented ``[name...]`` header hides inside a section."""
        pat = re.compile(rf"^([ \t]+)\[\[?[ \t]*{re.escape(name)}\b", re.M)
        text = self.src.text
        for c in group:
            m = pat.search(text, c.body, c.end)
            if m:
                return text.count("\n", 0, m.start()) + 1, len(m.group(1)) + 1
        return None

    # -- [data]
    def data_facts(self, data: dict, index: _KeyIndex) -> list[FactSet]:
        out: list[FactSet] = []
        max_depth = self.limits.max_nesting

        def walk(prefix: tuple[str, ...], table: dict, depth: int) -> None:
            for k, v in table.items():
                path = prefix + (k,)
                if type(v) is dict:
                    if depth >= max_depth:
                        loc = index.find(path)
                        self.errors.append(self.limits.exceeded(
                            "max_nesting", f"[data] key {'.'.join(path)!r} nests tables more than "
                            f"{max_depth} deep", file=loc.file, line=loc.line, column=loc.col,
                            source_line=loc.text))
                        continue
                    walk(path, v, depth + 1)
                else:
                    fs = self.fact_set(path, v, index)
                    if fs is not None:
                        out.append(fs)

        try:
            walk((), data, 0)
        finally:
            # A nested function that calls itself is a reference cycle (it
            # holds this parser and all its data): break it so the parse is
            # freed by reference counting (engines are built with the cyclic
            # collector paused; see engine._gc_paused).
            walk = None  # type: ignore[assignment]
        return out

    def fact_set(self, path: tuple[str, ...], v: Any, index: _KeyIndex) -> Optional[FactSet]:
        name = ".".join(path)
        loc = index.find(path)
        for seg in path:
            if not _REL_SEGMENT.match(seg):
                self.error_at(RuneDataError, f"[data] key {name!r}: {seg!r} is not a relation name (relation "
                              "names are [a-z_][A-Za-z0-9_]*, dot-separated)", loc)
                return None
        cache = self.cache
        t = type(v)
        if t is list:
            if not v:
                return FactSet(name, 1, (), loc)  # an empty relation; see docs/file-format-notes.md
            kinds = set(map(type, v))
            if kinds == {list}:
                lens = set(map(len, v))
                if len(lens) > 1:
                    n0 = len(v[0])
                    i = next(i for i, row in enumerate(v) if len(row) != n0)
                    self.error_at(RuneDataError, f"[data] key {name!r}: inner arrays have different lengths "
                                  f"(element 1 has {n0} values, element {i + 1} has {len(v[i])}); {_DATA_SHAPES}", loc)
                    return None
                n = lens.pop()
                if n == 0:
                    return FactSet(name, 0, ((),) * len(v), loc)
                cols = []
                for j, col in enumerate(zip(*v)):
                    vals, bad = convert_column(col, cache)
                    if bad >= 0:
                        what = describe_bad_value(col[bad])
                        self.error_at(RuneDataError, f"[data] key {name!r}: element {bad + 1}, position {j + 1} "
                                      f"is {what}; a tuple holds scalars only; {_DATA_SHAPES}", loc)
                        return None
                    cols.append(vals)
                return FactSet(name, n, tuple(zip(*cols)), loc)
            if list in kinds:
                self.error_at(RuneDataError, f"[data] key {name!r}: the array mixes inner arrays and scalars; "
                              f"{_DATA_SHAPES}", loc)
                return None
            if dict in kinds:
                self.error_at(RuneDataError, f"[data] key {name!r} is an array of tables; {_DATA_SHAPES}", loc)
                return None
            vals, bad = convert_column(v, cache)
            if bad >= 0:
                self.error_at(RuneDataError, f"[data] key {name!r}: element {bad + 1} is "
                              f"{describe_bad_value(v[bad])}; {_DATA_SHAPES}", loc)
                return None
            return FactSet(name, 1, tuple(zip(vals)), loc)
        vals, bad = convert_column((v,), cache)
        if bad >= 0:
            self.error_at(RuneDataError, f"[data] key {name!r} is {describe_bad_value(v)}; {_DATA_SHAPES}", loc)
            return None
        return FactSet(name, 1, (vals,), loc)

    # -- [sources]
    def source_specs(self, table: dict, index: _KeyIndex) -> list[SourceSpec]:
        out: list[SourceSpec] = []
        shapes = 'write relation = "file.csv" or relation = { path = "file.csv", header = true }'

        def walk(prefix: tuple[str, ...], t: dict) -> None:
            for k, v in t.items():
                path = prefix + (k,)
                name = ".".join(path)
                loc = index.find(path)
                if isinstance(v, dict) and "path" not in v:
                    walk(path, v)
                    continue
                if not all(_REL_SEGMENT.match(seg) for seg in path):
                    self.error_at(RuneSourceError, f"[sources] key {name!r} is not a relation name (relation names "
                                  "are [a-z_][A-Za-z0-9_]*, dot-separated)", loc)
                    continue
                header = False
                if isinstance(v, dict):
                    unknown = [x for x in v if x not in ("path", "header")]
                    if unknown:
                        self.error_at(RuneSourceError, f"[sources] {name!r}: unknown key {unknown[0]!r}; a source "
                                      "table has path and, optionally, header", loc)
                        continue
                    header = v.get("header", False)
                    if not isinstance(header, bool):
                        self.error_at(RuneSourceError, f"[sources] {name!r}: header must be true or false", loc)
                        continue
                    v = v["path"]
                if not isinstance(v, str) or not v:
                    self.error_at(RuneSourceError, f"[sources] {name!r}: expected a file path; {shapes}", loc)
                    continue
                full = os.path.normpath(os.path.join(self.base_dir, v))
                out.append(SourceSpec(name, full, header, loc))

        walk((), table)
        return out

    # -- [tests.NAME]
    def embedded_test(self, name: str, t: dict, index: _KeyIndex) -> Optional[EmbeddedTest]:
        header = index.find(())
        ok = True
        label = f"[tests.{name}]"
        for k in t:
            if k not in _TEST_KEYS:
                self.error_at(RuneDataError, f"{label}: unknown key {k!r}; a test has "
                              f"{', '.join(_TEST_KEYS)}", index.find((k,)))
                ok = False
        ents: dict[str, Entity] = {}
        for k in ("principal", "action", "resource"):
            if k not in t:
                self.error_at(RuneDataError, f"{label}: missing {k} (an entity literal such as "
                              f"{_ENTITY_EXAMPLES[k]})", header)
                ok = False
                continue
            v = t[k]
            e = parse_entity_literal(v) if isinstance(v, str) else None
            if e is None:
                self.error_at(RuneDataError, f"{label}: {k} must be an entity literal written as a TOML literal "
                              f"string, such as {_ENTITY_EXAMPLES[k]}; found {_show(v)}", index.find((k,)))
                ok = False
            else:
                ents[k] = e
        context = t.get("context", {})
        if not isinstance(context, dict):
            self.error_at(RuneDataError, f"{label}: context must be a table such as {{ mfa = true }}; found "
                          f"{_show(context)}", index.find(("context",)))
            ok = False
        else:
            why = _json_problem(context, self.limits.max_nesting)
            if why:
                self.error_at(RuneDataError, f"{label}: context {why}", index.find(("context",)))
                ok = False
        entities = self.request_entities(label, t.get("entities", []), index.find(("entities",)))
        if entities is None:
            ok = False
        expect = t.get("expect")
        if expect is None:
            self.error_at(RuneDataError, f"{label}: missing expect (one of {', '.join(_EXPECT)})", header)
            ok = False
        elif expect not in _EXPECT:
            self.error_at(RuneDataError, f"{label}: expect must be one of {', '.join(_EXPECT)}; found "
                          f"{_show(expect)}", index.find(("expect",)))
            ok = False
        if not ok:
            return None
        return EmbeddedTest(name, ents["principal"], ents["action"], ents["resource"], context,
                            entities or (), str(expect), header)

    def request_entities(self, label: str, v: Any, loc: Loc) -> Optional[tuple[RequestEntity, ...]]:
        form = ("an array of tables { uid = { type = \"User\", id = \"alice\" }, attrs = { ... }, "
                "parents = [ ... ] } (uid and parents may also be entity literal strings)")
        if not isinstance(v, list):
            self.error_at(RuneDataError, f"{label}: entities must be {form}", loc)
            return None
        out = []
        for i, item in enumerate(v, 1):
            if not isinstance(item, dict):
                self.error_at(RuneDataError, f"{label}: entities element {i} is {_show(item)}; expected {form}", loc)
                return None
            unknown = [k for k in item if k not in ("uid", "attrs", "parents")]
            if unknown:
                self.error_at(RuneDataError, f"{label}: entities element {i}: unknown key {unknown[0]!r} "
                              "(expected uid, attrs, parents)", loc)
                return None
            uid = _entity_ref(item.get("uid"))
            if uid is None:
                self.error_at(RuneDataError, f"{label}: entities element {i}: uid must be "
                              "{ type = \"User\", id = \"alice\" } or 'User::\"alice\"'; found "
                              f"{_show(item.get('uid'))}", loc)
                return None
            attrs = item.get("attrs", {})
            why = _json_problem(attrs, self.limits.max_nesting) if isinstance(attrs, dict) else "must be a table"
            if why:
                self.error_at(RuneDataError, f"{label}: entities element {i}: attrs {why}", loc)
                return None
            parents_raw = item.get("parents", [])
            parents = [_entity_ref(p) for p in parents_raw] if isinstance(parents_raw, list) else [None]
            if any(p is None for p in parents):
                self.error_at(RuneDataError, f"{label}: entities element {i}: parents must be an array of "
                              "entities ({ type = ..., id = ... } or entity literal strings)", loc)
                return None
            out.append(RequestEntity(uid, attrs, tuple(parents)))  # type: ignore[arg-type]
        return tuple(out)

    # -- [rules] / [policies]
    def code_section(self, kind: str, c: _Chunk) -> tuple:
        body = self.src.text[c.body : c.end]
        if not body.strip():
            return ()
        from .policy_parser import parse_policies
        from .rules_parser import parse_rules

        parse: Callable[..., tuple[tuple[Any, ...], list[RuneError]]]
        parse = parse_rules if kind == "rules" else parse_policies
        nodes, errs = parse(body, self.src.file, c.line + 1, max_nesting=self.limits.max_nesting)
        for err in errs:
            self.errors.extend(err.errors)
        return tuple(nodes)


_TEST_KEYS = ("principal", "action", "resource", "context", "entities", "expect", "description")
_EXPECT = ("permit", "deny", "forbid")
_ENTITY_EXAMPLES = {
    "principal": "'User::\"alice\"'",
    "action": "'Action::\"read\"'",
    "resource": "'Document::\"d1\"'",
}


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return describe_bad_value(v)


def _entity_ref(v: Any) -> Optional[Entity]:
    """``'User::"alice"'`` or ``{type = "User", id = "alice"}`` (Cedar JSON) -> Entity."""
    if isinstance(v, str):
        return parse_entity_literal(v)
    if isinstance(v, dict) and set(v) == {"type", "id"}:
        ty, ident = v["type"], v["id"]
        if isinstance(ty, str) and isinstance(ident, str) and parse_entity_literal(str(Entity(ty, ident))):
            return Entity(ty, ident)
    return None


def _json_problem(v: Any, max_depth: int, depth: int = 0) -> str:
    """Why ``v`` cannot travel as a JSON request value ("" if it can).

    Context and attrs are handed to the engine exactly as a JSON request
    would be, so TOML-only kinds (dates, times) are refused here.
    """
    if depth > max_depth:
        return f"is nested more than {max_depth} deep"
    t = type(v)
    if t is str or t is bool:
        return ""
    if t is int:
        return "" if INT_MIN <= v <= INT_MAX else f"holds {describe_bad_value(v)}"
    if t is float:
        return "" if v == v else f"holds {describe_bad_value(v)}"
    if t is list:
        for x in v:
            why = _json_problem(x, max_depth, depth + 1)
            if why:
                return why
        return ""
    if t is dict:
        for x in v.values():
            why = _json_problem(x, max_depth, depth + 1)
            if why:
                return why
        return ""
    return f"holds {describe_bad_value(v)}"


# --------------------------------------------------------------------------
# Public API: files


def _default_base(path: str) -> str:
    if path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(path))


def _text_too_big(text: str, limits: Limits) -> int:
    """The UTF-8 size of ``text`` if it exceeds the limit, else 0 (cheap when clearly small)."""
    lim = limits.max_file_bytes
    if len(text) * 4 <= lim:
        return 0
    if len(text) > lim:
        return len(text)
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > lim else 0


def parse_text(
    text: str,
    path: str = "<string>",
    *,
    limits: Limits = DEFAULT_LIMITS,
    base_dir: Optional[str] = None,
) -> RuneFile:
    """Parse the text of one ``.rune`` file; raise every error found at once.

    ``path`` is only used in locations (and, unless ``base_dir`` is given, to
    resolve ``[sources]`` paths: relative to its directory, or to the current
    directory for ``"<string>"``).
    """
    big = _text_too_big(text, limits)
    if big:
        raise limits.exceeded("max_file_bytes", f"{path} has {big} bytes", file=path)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    base = base_dir if base_dir is not None else _default_base(path)
    with paused_gc():
        return _FileParser(text, path, limits, base).parse(digest)


def _read_file(path: str, limits: Limits, what: str = "") -> ReadResult:
    """Read one ``.rune`` file: a regular file only, never blocking, size-checked
    first (see ``fileio.read_regular``); every refusal is a ``RuneError``
    naming the file."""
    try:
        return read_regular(path, limits.max_file_bytes)
    except FileRefused as e:
        if e.kind == "too_big":
            raise limits.exceeded("max_file_bytes", f"{path} {e.reason}", file=path) from None
        raise RuneError(f"cannot read {what}{path}: {e.reason}", file=path) from None


def _read_limited(path: str, limits: Limits, what: str = "") -> bytes:
    return _read_file(path, limits, what).data


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        end = data.find(b"\n", e.start)
        raw = data[start : end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")
        col = len(data[start : e.start].decode("utf-8", "replace")) + 1
        raise RuneSyntaxError(
            f"the file is not UTF-8 text (invalid byte 0x{data[e.start]:02x})",
            file=path, line=line, column=col, source_line=raw,
        ) from None


def _parse_bytes(data: bytes, path: str, limits: Limits) -> RuneFile:
    text = _decode(data, path)
    digest = hashlib.sha256(data).hexdigest()
    with paused_gc():
        return _FileParser(text, path, limits, _default_base(path)).parse(digest)


def parse_file(path: Union[str, os.PathLike], *, limits: Limits = DEFAULT_LIMITS) -> RuneFile:
    """Read and parse one ``.rune`` file (size checked before reading)."""
    p = os.fspath(path)
    return _parse_bytes(_read_limited(p, limits), p, limits)


# --------------------------------------------------------------------------
# Public API: bundles


def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError as e:
        reason = "not found" if isinstance(e, FileNotFoundError) else f"unreadable ({e.strerror or e})"
        raise RuneError(f"cannot list directory {d}: {reason}", file=d) from None


def _rune_files(root: str, recursive: bool) -> list[str]:
    """``*.rune`` files under ``root`` sorted by (relative) name; dotfiles
    (editor lock and swap files such as ``.#a.rune``) are skipped.

    Directories named ``*.rune`` are skipped (or walked, recursively); any
    other ``*.rune`` entry is returned even if it is not a regular file, so
    that reading it refuses it loudly (a FIFO in a bundle is an error, not
    something to skip silently).  A subdirectory that cannot be listed is an
    error too: skipping it would silently drop its policies.
    """
    found: list[tuple[str, str]] = []
    pending = [root]
    while pending:
        d = pending.pop()
        for f in _listdir(d):
            if f.startswith("."):
                continue
            full = os.path.join(d, f)
            try:
                is_dir = os.path.isdir(full)
            except (OSError, ValueError):  # pragma: no cover - isdir does not raise on Linux
                is_dir = False
            if is_dir:
                if recursive:
                    pending.append(full)
            elif f.endswith(".rune"):
                found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    found.sort()
    return [full for _, full in found]


class _Blobs:
    """Names and bytes of everything a bundle was built from: the hash input
    and the list of paths a watcher must watch."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.items: dict[str, tuple[str, bytes]] = {}  # key -> (name, data)
        self.watched: list[str] = []
        self.reads: dict[str, ReadResult] = {}  # path -> what was read (settle checks)

    def name_of(self, path: str) -> str:
        ap = os.path.abspath(path)
        try:
            return os.path.relpath(ap, self.root).replace(os.sep, "/")
        except ValueError:  # pragma: no cover - different drive on Windows
            return ap

    def add(self, path: str, data: bytes, read: Optional[ReadResult] = None) -> None:
        ap = os.path.abspath(path)
        if ap in self.items:
            return
        self.items[ap] = (self.name_of(ap), data)
        self.watched.append(ap)
        if read is not None:
            self.reads[ap] = read

    def files(self) -> list[tuple[str, bytes]]:
        """``(name, bytes)`` of every file read from disk (what a manifest lists)."""
        return [v for k, v in self.items.items() if not k.startswith("\0")]

    def digests(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, hashlib.sha256(d).hexdigest()) for k, (_, d) in self.items.items() if not k.startswith("\0"))

    def add_unwatched(self, name: str, data: bytes) -> None:
        self.items["\0" + name] = (name, data)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name, data in self.items.values():
            nb = name.encode("utf-8", "surrogatepass")
            h.update(b"%d:" % len(nb) + nb + b"%d:" % len(data))
            h.update(data)
        return h.hexdigest()


def _load_sources(files: Iterable[RuneFile], limits: Limits, blobs: _Blobs,
                  errors: list[RuneError], bundle_root: str,
                  source_roots: Sequence[str] = ()) -> dict[str, list[FactSet]]:
    """Load every ``[sources]`` entry; returns file path -> its source facts.

    Sources are confined to ``bundle_root`` plus the allow-listed
    ``source_roots`` (resolved real paths, see ``sources.read_source``); the
    text of a file outside ``bundle_root`` is never quoted in an error.
    """
    out: dict[str, list[FactSet]] = {}
    cache: dict[str, bytes] = {}
    home = resolve_roots([bundle_root])
    roots = home + tuple(r for r in resolve_roots(source_roots) if r not in home)
    for rf in files:
        lst = out.setdefault(rf.path, [])
        for spec in rf.sources:
            try:
                data = cache.get(spec.path)
                if data is None:
                    read = read_source(spec, limits=limits, roots=roots)
                    data = read.data
                    cache[spec.path] = data
                    blobs.add(spec.path, data, read)
                inside = confine(spec.path, home) is not None
                lst.append(parse_source_bytes(spec, data, limits=limits, quote=inside))
            except RuneError as e:
                errors.extend(e.errors)
    return out


def _merge(files: list[RuneFile], source_facts: dict[str, list[FactSet]], watched: list[str],
           digest: str, errors: list[RuneError],
           file_digests: tuple[tuple[str, str], ...] = ()) -> Bundle:
    # facts: one FactSet per relation, in order of first appearance
    parts: dict[str, list[FactSet]] = {}
    for rf in files:
        for fs in chain(rf.facts, source_facts.get(rf.path, ())):
            parts.setdefault(fs.relation, []).append(fs)
    facts: list[FactSet] = []
    for rel, ps in parts.items():
        nonempty = [p for p in ps if p.rows]
        first = nonempty[0] if nonempty else ps[0]
        for p in nonempty[1:]:
            if p.arity != first.arity:
                errors.append(_err_from_loc(
                    RuneArityError,
                    f"relation {rel!r} has {p.arity} values per fact here but {first.arity} at {_where(first.loc)}; "
                    "a relation has one arity everywhere",
                    p.loc,
                ))
        if len(ps) == 1:
            facts.append(ps[0] if ps[0].arity == first.arity else replace(ps[0], arity=first.arity))
        else:
            rows = tuple(chain.from_iterable(p.rows for p in ps if p.arity == first.arity or not p.rows))
            facts.append(FactSet(rel, first.arity, rows, ps[0].loc))

    # policies: ids assigned by bundle position, then checked for duplicates
    policies: list[Policy] = []
    seen: dict[str, Policy] = {}
    for i, pol in enumerate(chain.from_iterable(rf.policies for rf in files)):
        auto = not pol.id
        if auto:
            pol = replace(pol, id=f"policy{i}")
        other = seen.get(pol.id)
        if other is not None:
            hint = " (this id was assigned by position; give the policy an @id)" if auto else ""
            errors.append(_err_from_loc(
                RuneDuplicateIdError,
                f"duplicate policy id {pol.id!r}: also used by the policy at {_where(other.loc)}{hint}",
                pol.loc,
            ))
        else:
            seen[pol.id] = pol
        policies.append(pol)

    tests: list[EmbeddedTest] = []
    seen_tests: dict[str, EmbeddedTest] = {}
    for t in chain.from_iterable(rf.tests for rf in files):
        other_t = seen_tests.get(t.name)
        if other_t is not None:
            errors.append(_err_from_loc(
                RuneDuplicateIdError,
                f"duplicate test name {t.name!r}: also defined at {_where(other_t.loc)}",
                t.loc,
            ))
            continue
        seen_tests[t.name] = t
        tests.append(t)

    metadata: dict[str, Any] = {}
    for rf in files:
        metadata.update(rf.metadata)

    return Bundle(
        files=tuple(files),
        facts=tuple(facts),
        rules=tuple(chain.from_iterable(rf.rules for rf in files)),
        policies=tuple(policies),
        tests=tuple(tests),
        metadata=metadata,
        watched_paths=tuple(watched),
        content_hash=digest,
        file_digests=file_digests,
    )


def _bundle_root(p: str) -> tuple[str, bool]:
    """``(root directory, is_dir)`` for a bundle path; a path that cannot be
    examined is reported as what it is (missing, unreadable), not as missing."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise RuneError(f"cannot read {p}: no such file or directory", file=p) from None
    except NotADirectoryError:
        raise RuneError(f"cannot read {p}: no such file or directory (a parent is not a directory)",
                        file=p) from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise RuneError(f"cannot read {p}: unreadable ({reason})", file=p) from None
    if stat.S_ISDIR(st.st_mode):
        return p, True
    return os.path.dirname(os.path.abspath(p)), False


def _read_bundle_files(p: str, root: str, is_dir: bool, recursive: bool, limits: Limits,
                       source_roots: Sequence[str]) -> tuple[list[RuneFile], _Blobs, list[RuneError], dict, int]:
    """Read and parse every ``.rune`` file and read and parse every source;
    the last item is how many ``.rune`` files there were."""
    if is_dir:
        paths = _rune_files(p, recursive)
        if not paths:
            how = "recursively" if recursive else "not recursively; pass recursive=True for subdirectories"
            raise RuneError(f"no .rune files in directory {p} (searched {how})", file=p)
    else:
        paths = [p]
    errors: list[RuneError] = []
    blobs = _Blobs(root)
    files: list[RuneFile] = []
    for path in paths:
        try:
            read = _read_file(path, limits)
            blobs.add(path, read.data, read)
            files.append(_parse_bytes(read.data, path, limits))
        except RuneError as e:
            errors.extend(e.errors)
    with paused_gc():
        source_facts = _load_sources(files, limits, blobs, errors, root, source_roots)
    return files, blobs, errors, source_facts, len(paths)


def _unsettled(blobs: _Blobs, p: str, is_dir: bool, recursive: bool) -> Optional[str]:
    """The first file whose size, mtime or inode changed since it was read,
    or a change in the set of ``.rune`` files; None if everything is as read."""
    for path, r in blobs.reads.items():
        try:
            st = os.stat(path)
        except OSError:
            return path
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (r.size, r.mtime_ns, r.ino):
            return path
    if is_dir:
        try:
            now = {os.path.abspath(x) for x in _rune_files(p, recursive)}
        except RuneError:
            return p
        if not now <= set(blobs.reads):
            return p
    return None


#: How many times a settle check re-reads a bundle that keeps changing.
SETTLE_ATTEMPTS = 3


def load_bundle(
    path_or_dir: Union[str, os.PathLike],
    *,
    recursive: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    source_roots: Sequence[Union[str, os.PathLike]] = (),
    manifest: str = "auto",
    settle: float = 0.0,
) -> Bundle:
    """Load a ``.rune`` file (a bundle of one) or a directory of them (docs/language.md §1).

    Every file is parsed and every source loaded before anything is raised,
    so one call reports all the problems of the bundle.

    - ``source_roots``: directories, besides the bundle's own, that
      ``[sources]`` may read from (default: none; see ``sources.read_source``).
    - ``manifest``: ``"auto"`` verifies ``rune.manifest`` when the bundle has
      one, ``"require"`` refuses a bundle without one, ``"off"`` ignores it
      (see ``manifest.py``).
    - ``settle``: seconds; when > 0, after reading everything the files are
      examined again that much later and must not have changed (size, mtime,
      inode, set of ``.rune`` files); a bundle still changing is read again,
      at most ``SETTLE_ATTEMPTS`` times, then refused.
    """
    if manifest not in MANIFEST_MODES:
        raise ValueError(f"manifest must be one of {', '.join(MANIFEST_MODES)}, got {manifest!r}")
    p = os.fspath(path_or_dir)
    roots = [os.fspath(r) for r in source_roots]
    root, is_dir = _bundle_root(p)
    attempts = SETTLE_ATTEMPTS if settle > 0 else 1
    for attempt in range(attempts):
        files, blobs, errors, source_facts, n_paths = _read_bundle_files(p, root, is_dir, recursive, limits, roots)
        if settle <= 0:
            break
        time.sleep(settle)
        changed = _unsettled(blobs, p, is_dir, recursive)
        if changed is None:
            break
        if attempt == attempts - 1:
            raise RuneError(
                f"{changed} was still changing after {attempts} reads {settle:g}s apart; not loaded "
                "(write files atomically: temporary file + rename)",
                file=changed,
            )
    watched = list(blobs.watched)
    if manifest != "off":
        mpath = os.path.abspath(manifest_path(root))
        expected = read_manifest(mpath, limits)
        if expected is None and manifest == "require":
            raise RuneManifestError(
                f"no bundle manifest ({MANIFEST_NAME}) and manifest='require'; write one with: rune manifest PATH",
                file=mpath,
            )
        if expected is not None:
            # A mismatch is raised alone: other errors would be about a file
            # that is still being written.
            verify_manifest(mpath, expected, blobs.files(), every_listed=is_dir)
            watched.append(mpath)  # writing the manifest last is what triggers the reload
    with paused_gc():
        bundle = _merge(files, source_facts, watched, blobs.digest(), errors, blobs.digests())
    if errors:
        errors.extend(_checker_errors(bundle, source_facts, errors, all_files_parsed=len(files) == n_paths))
    raise_collected(errors)
    return bundle


def _checker_errors(
    bundle: Bundle, source_facts: dict[str, list[FactSet]], found_before: list[RuneError], *, all_files_parsed: bool
) -> list[RuneError]:
    """The load-time checks of what did load, for a bundle that has errors.

    So that one load reports everything: a parse error in one file does not
    hide a safety error in another. A relation defined only in a file that
    did not parse, or by a source that did not load, would be reported as
    undefined although it is not; those reports are left out (all of them
    when a ``.rune`` file failed, since its relations are unknown), and so
    are problems the merge already reported (duplicate ids, fact arities).
    """
    from .checks import check_program  # the checks need the whole bundle; only here on failure

    try:
        check_program(bundle.facts, bundle.rules, bundle.policies)
    except RuneError as e:
        found = e.errors
    else:
        return []
    loaded = {fs.relation for fss in source_facts.values() for fs in fss}
    missing = {spec.relation for rf in bundle.files for spec in rf.sources} - loaded
    seen = {(type(x), x.file, x.line, x.column) for x in found_before}
    return [
        x for x in found
        if (type(x), x.file, x.line, x.column) not in seen
        and not (isinstance(x, RuneUndefinedError) and (not all_files_parsed or _undefined_name(x) in missing))
    ]


def _undefined_name(e: RuneError) -> str:
    m = re.match(r"relation (\S+) is used", e.message)
    return m.group(1) if m else ""


def bundle_manifest(
    path: str, *, recursive: bool = False, source_roots: Sequence[str] = (), limits: Optional[Limits] = None
) -> tuple[str, dict[str, str]]:
    """Load the bundle at ``path`` (ignoring any existing manifest) and return
    ``(where its manifest goes, name -> sha256 of every file it read)``.

    Raises the bundle's ``RuneError`` if it does not load: a manifest is a
    statement that these files are complete, so it is only written for files
    that parse.
    """
    bundle = load_bundle(path, recursive=recursive, source_roots=source_roots, manifest="off",
                         limits=DEFAULT_LIMITS if limits is None else limits)
    root, _is_dir = _bundle_root(path)
    digests: dict[str, str] = {}
    for ap, digest in bundle.file_digests:
        try:
            name = os.path.relpath(ap, os.path.abspath(root)).replace(os.sep, "/")
        except ValueError:  # pragma: no cover - different drive on Windows
            name = ap
        digests[name] = digest
    return manifest_path(root), digests


def bundle_from_text(
    text: str,
    path: str = "<string>",
    *,
    limits: Limits = DEFAULT_LIMITS,
    base_dir: Optional[str] = None,
    source_roots: Sequence[Union[str, os.PathLike]] = (),
) -> Bundle:
    """A bundle of one file given as text (sources are still read from disk,
    confined to ``base_dir`` (default: the directory of ``path``, or the
    current directory) and the allow-listed ``source_roots``).

    ``watched_paths`` holds only the source files (the text has no file);
    the hash covers ``path``, the text and the sources.
    """
    rf = parse_text(text, path, limits=limits, base_dir=base_dir)
    errors: list[RuneError] = []
    base = base_dir if base_dir is not None else _default_base(path)
    blobs = _Blobs(base)
    blobs.add_unwatched(path, text.encode("utf-8", "surrogatepass"))
    with paused_gc():
        source_facts = _load_sources([rf], limits, blobs, errors, base, [os.fspath(r) for r in source_roots])
        bundle = _merge([rf], source_facts, blobs.watched, blobs.digest(), errors, blobs.digests())
    if errors:
        errors.extend(_checker_errors(bundle, source_facts, errors, all_files_parsed=True))
    raise_collected(errors)
    return bundle
