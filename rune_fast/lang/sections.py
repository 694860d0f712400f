"""A ``.rune`` file cut into sections, and its TOML sections parsed with locations.

The file-level parser (``parser.py``) works on sections: it needs the file
split at its header lines, each kind of TOML section parsed as one document
whose line numbers are the file's, and the line of every ``key =`` because
TOML parsers do not report where a key is.  That lexical layer is here, apart
from what the sections mean, so ``parser.py`` reads as the meaning of each
section and this module as how a file is cut and how TOML errors are
located.

- ``_split(text) -> list[_Chunk]``: the header lines, in order.
- ``_group_doc(text, chunks)``: the chunks of one section kind as one TOML
  document, every other line blank.
- ``_toml_loads(doc)``: rtoml when importable (fast), tomllib for a precise
  error position.
- ``_KeyIndex``: the location of every key path of a section.
- ``_Src``: the file text with line lookup and located errors.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from .ast import Loc
from ..errors import RuneError
from ..limits import Limits
from .columns import EntityCache

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published on PyPI as tomli
    import tomli as tomllib

try:  # pragma: no cover - depends on the environment
    import rtoml as _rtoml

    _rtoml_loads = _rtoml.loads
except ImportError:  # pragma: no cover
    _rtoml_loads = None  # type: ignore[assignment]  # then tomllib parses everything


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
#: The patterns over whole sections start with a literal newline instead of
#: ``^`` with ``re.M``: the regex engine then jumps from newline to newline
#: (a fast scan for one character) instead of attempting a match at every
#: offset, which is ~10x faster on a 10^5-line ``[data]`` section. The
#: callers search from one character before the first line start (or test
#: the start of the text on its own).
_HEADER_START = re.compile(r"\[\[?[ \t]*[A-Za-z_]")
_HEADER_START_NL = re.compile(r"\n\[\[?[ \t]*[A-Za-z_]")
_HEADER_LINE = re.compile(
    rf"(?:\[\[[ \t]*(?P<dbl>{_PATH})[ \t]*\]\]|\[[ \t]*(?P<sgl>{_PATH})[ \t]*\])[ \t]*(?:#[^\n]*)?\r?"
)

#: ``[true]`` and friends in column 0 are one-element inner arrays, not headers.
_VALUE_WORDS = frozenset(("true", "false", "inf", "nan"))
_KEY_PART = re.compile(rf"[ \t]*(?:({_BARE})|({_BASIC})|({_LITERAL}))[ \t]*")
_KEY_LINE_NL = re.compile(rf"\n[ \t]*({_PATH})[ \t]*=")
_BLANK_OR_COMMENT = re.compile(r"[ \t]*(?:#[^\n]*)?\r?")
_TOMLLIB_POS = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*\Z")
_RTOML_POS = re.compile(r"\s*at line (\d+) column (\d+)\s*\Z")


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


def _header_candidates(text: str) -> list[int]:
    """Offsets of the lines that start like a header (``_HEADER_START`` at a
    line start), in order."""
    starts = [0] if _HEADER_START.match(text) else []
    starts += [m.start() + 1 for m in _HEADER_START_NL.finditer(text)]
    return starts


def _key_lines(text: str, start: int, end: int) -> Iterator[tuple[int, int, str]]:
    """``(line_start, key_start, key_path_text)`` of every ``key =`` line that
    starts in ``text[start:end]``. ``start`` is a line start after the first
    line (a section body follows its header line), so ``text[start - 1]`` is
    the newline the pattern begins with.

    Only a line with an ``=`` can be a key line, and the rows of a big
    ``[data]`` array have none: the scan jumps from ``=`` to ``=``
    (``str.find``) and tries the pattern once at the start of each such line.
    """
    pos = start
    find, rfind, match = text.find, text.rfind, _KEY_LINE_NL.match
    while True:
        eq = find("=", pos, end)
        if eq < 0:
            return
        ls = rfind("\n", start - 1, eq) + 1
        m = match(text, ls - 1, end)
        if m is not None:
            yield ls, m.start(1), m.group(1)
        nl = find("\n", eq, end)
        if nl < 0:
            return
        pos = nl + 1


def _split(text: str) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    line = 1
    last = 0
    n = len(text)
    for s in _header_candidates(text):
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
            for ls, ks, path in _key_lines(text, c.body, c.end):
                line += text.count("\n", pos, ls)
                pos = ls
                keys = _split_key_path(path)
                if keys is not None:
                    hit = (line, ks - ls + 1, ls)
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


class SectionMixin:
    """What a section mixin of ``parser._FileParser`` (``DataSection``,
    ``EmbeddedTests``) reads from the parser: its attributes and ``error_at``.
    A problem is recorded there (located) and parsing goes on, so one load
    reports them all."""

    src: _Src
    limits: Limits
    base_dir: str
    errors: list[RuneError]
    cache: EntityCache

    def error_at(self, cls: type, msg: str, loc: Loc) -> None:  # pragma: no cover - the parser's
        raise NotImplementedError
