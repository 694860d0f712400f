"""One tokenizer shared by the ``[rules]`` and ``[policies]`` parsers.

Why one lexer: both languages share their lexical layer (identifiers, numbers,
JSON strings, ``#`` comments, the same punctuation), and having a single place
that knows how to compute file positions means every error of either parser
points at the same line and column a user sees in an editor.

Positions: the parsers receive the *text of one section* plus ``first_line``,
the file line number of the section's first line. Sections always start at a
line boundary, so columns need no adjustment; lines are shifted by
``first_line - 1``. Columns count characters (not bytes), 1-based.

The lexer never stops at an error: a stray character or an unterminated string
becomes an ``error`` token (and a ``RuneSyntaxError`` in ``Lexed.errors``), so
the parser can skip the broken statement and keep finding other errors. A bad
escape inside an otherwise well-formed string is reported but still yields a
normal string token (best-effort value), because the statement around it is
probably fine and should not produce a second, confusing error.

This module also holds what both recursive-descent parsers share (the token
cursor and ``ParserBase``: locations, the nesting limit, the statement loop
that collects errors and recovers), and the helpers that turn a string
literal into a ``like`` pattern.
"""

from __future__ import annotations

import math
import re
from typing import Callable, NoReturn, Optional, TypeVar

from .ast import LIKE_WILDCARD, Loc
from ..errors import RuneError, RuneLimitError, RuneSyntaxError
from ..like import pattern_from_glob as like_pattern_from_glob
from ..like import pattern_from_pieces as _pattern_from_pieces

__all__ = [
    "IDENT",
    "INT",
    "FLOAT",
    "STRING",
    "EOF",
    "ERROR",
    "Token",
    "Lexed",
    "tokenize",
    "describe",
    "like_pattern",
    "like_glob",
    "like_pattern_from_glob",
    "TokenCursor",
    "SilentError",
    "ParserBase",
]

# Token kinds. Punctuation tokens use their own text as kind (``"("``, ``":-"``).
IDENT = "ident"
INT = "int"
FLOAT = "float"
STRING = "string"
EOF = "eof"
ERROR = "error"

#: Value stored for an integer literal too long to be worth converting (it is
#: out of range whatever its sign; also avoids Python's int-from-str digit limit).
_HUGE_INT = 2**64

# A marker inside a decoded string: the escape ``\*`` (a literal star in a
# ``like`` pattern). Any object distinct from every str works.
_STAR_ESC = object()

_JSON_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}

_PUNCT_RULES = r":-|::|==|!=|<=|>=|&&|\|\||[()\[\]{},.;:=<>+\-*/%!@]"
# No ``:-`` in policies: ``{a:-1}`` is a record ``{a: -1}`` there.
_PUNCT_POLICIES = r"::|==|!=|<=|>=|&&|\|\||[()\[\]{},.;:=<>+\-*/%!@]"


def _master(punct: str, slash_comments: bool) -> "re.Pattern[str]":
    comment = r"\#[^\n]*|//[^\n]*" if slash_comments else r"\#[^\n]*"
    # Leading horizontal whitespace is folded into every match (half as many
    # matches to loop over); ``end`` only matches trailing blanks at the end.
    return re.compile(
        r"[ \t\r\f\v]*(?:"
        r"(?P<nl>\n)"
        rf"|(?P<comment>{comment})"
        r"|(?P<float>[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
        r"|(?P<int>[0-9]+)"
        r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
        r'|(?P<string>"(?:[^"\\\n]|\\[^\n])*")'
        r'|(?P<unterminated>"[^\n]*)'
        rf"|(?P<punct>{punct})"
        r"|(?P<bad>[^\n])"
        r"|(?P<end>\Z))"
    )


_PATTERNS = {
    "rules": _master(_PUNCT_RULES, slash_comments=False),
    "policies": _master(_PUNCT_POLICIES, slash_comments=True),
}


class Token:
    """One token with its position in the original file.

    ``first`` is true for the first token of its line: error recovery uses it
    to find where the next statement probably starts. ``pos``/``end`` are
    offsets in the section text; two tokens touch (no space between them)
    when ``a.end == b.pos``, which the rules parser needs for dotted names.
    For strings, ``value`` is the decoded text; ``parts`` is ``None`` unless
    the literal uses ``\\*``, in which case it keeps the decoded pieces with
    those escapes marked, so that a ``like`` pattern can tell an escaped star
    from a wildcard.
    """

    __slots__ = ("kind", "text", "value", "line", "col", "pos", "end", "first", "parts")

    def __init__(
        self,
        kind: str,
        text: str,
        value: object,
        line: int,
        col: int,
        pos: int,
        end: int,
        first: bool,
        parts: Optional[list] = None,
    ) -> None:
        self.kind = kind
        self.text = text
        self.value = value
        self.line = line
        self.col = col
        self.pos = pos
        self.end = end
        self.first = first
        self.parts = parts

    @property
    def star_escape(self) -> bool:
        """True for a string literal that uses ``\\*`` (only valid in ``like``)."""
        return self.parts is not None

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.text!r}, {self.line}:{self.col})"


def describe(tok: Token) -> str:
    """How a token is named in "found ..." parts of error messages."""
    if tok.kind == EOF:
        return "end of input"
    text = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
    if tok.kind == STRING:
        return f"string {text}"
    if tok.kind in (INT, FLOAT):
        return f"number {text}"
    return f"'{text}'"


class Lexed:
    """Tokens of one section plus what is needed to locate and report errors."""

    __slots__ = ("tokens", "errors", "lines", "file", "first_line")

    def __init__(self, tokens: list[Token], errors: list[RuneSyntaxError], lines: list[str], file: str, first_line: int) -> None:
        self.tokens = tokens
        self.errors = errors
        self.lines = lines
        self.file = file
        self.first_line = first_line

    def line_text(self, line: int) -> str:
        """The full source line ``line`` (file numbering), without line terminator."""
        idx = line - self.first_line
        if 0 <= idx < len(self.lines):
            return self.lines[idx]
        return ""

    def loc(self, tok: Token) -> Loc:
        idx = tok.line - self.first_line
        return Loc(self.file, tok.line, tok.col, self.lines[idx] if 0 <= idx < len(self.lines) else "")

    def error(self, message: str, line: int, col: int) -> RuneSyntaxError:
        return RuneSyntaxError(message, file=self.file, line=line, column=col, source_line=self.line_text(line))


def _bad_char_message(ch: str) -> str:
    if ch == "'":
        return "unexpected character \"'\": strings are written in double quotes"
    if ch == "?":
        return "unexpected character '?' (policy templates with ?principal/?resource are not supported)"
    if ch.isprintable() and not ch.isspace():
        return f"unexpected character '{ch}'"
    return f"unexpected character U+{ord(ch):04X}"


def _decode(body: str) -> tuple[list, Optional[tuple[int, str]]]:
    """Decode the inside of a JSON string literal.

    Returns the decoded pieces (``str`` and ``_STAR_ESC`` markers) and the
    first problem as ``(offset in body, message)`` or ``None``. On a problem
    the offending escape is kept literally so the token still has a value.
    """
    if "\\" not in body:
        return [body], None
    parts: list = []
    buf: list[str] = []
    err: Optional[tuple[int, str]] = None
    i = 0
    n = len(body)
    while i < n:
        j = body.find("\\", i)
        if j < 0:
            buf.append(body[i:])
            break
        buf.append(body[i:j])
        c = body[j + 1] if j + 1 < n else ""
        if c in _JSON_ESCAPES and c:
            buf.append(_JSON_ESCAPES[c])
            i = j + 2
        elif c == "*":
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(_STAR_ESC)
            i = j + 2
        elif c == "u":
            code, used, problem = _unicode_escape(body, j)
            if problem is not None:
                if err is None:
                    err = (j, problem)
                buf.append(body[j : j + used])
            else:
                buf.append(chr(code))
            i = j + used
        else:
            if err is None:
                shown = c if c.isprintable() else f"U+{ord(c):04X}" if c else ""
                err = (
                    j,
                    f"invalid escape '\\{shown}' in string; valid escapes are "
                    '\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX (and \\* in like patterns)',
                )
            buf.append(body[j : j + 2])
            i = j + 2
    if buf:
        parts.append("".join(buf))
    return parts, err


_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _unicode_escape(body: str, j: int) -> tuple[int, int, Optional[str]]:
    """Decode ``\\uXXXX`` (and a following low surrogate) at ``body[j]``.

    Lone surrogates are rejected: they are valid in a Python str but cannot be
    encoded as UTF-8 later (JSON output, hashing), which would crash far from
    the cause.
    """
    m = _HEX4.match(body, j + 2)
    if m is None:
        return 0, 2, "invalid \\u escape: expected 4 hexadecimal digits after \\u"
    code = int(m.group(), 16)
    if 0xD800 <= code <= 0xDBFF:
        m2 = _HEX4.match(body, j + 8) if body.startswith("\\u", j + 6) else None
        if m2 is not None:
            low = int(m2.group(), 16)
            if 0xDC00 <= low <= 0xDFFF:
                return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), 12, None
        return 0, 6, "invalid \\u escape: a high surrogate must be followed by a low surrogate \\uDC00-\\uDFFF"
    if 0xDC00 <= code <= 0xDFFF:
        return 0, 6, "invalid \\u escape: lone low surrogate"
    return code, 6, None


def tokenize(text: str, file: str, first_line: int = 1, *, dialect: str = "rules") -> Lexed:
    """Split ``text`` into tokens; never raises for any input.

    ``dialect`` is ``"rules"`` or ``"policies"``: policies also accept ``//``
    comments and have no ``:-`` token. The token list always ends with an
    ``eof`` token, so parsers can look ahead without bounds checks.
    """
    pattern = _PATTERNS[dialect]
    lines = text.split("\n")
    if "\r" in text:
        lines = [ln.rstrip("\r") for ln in lines]
    tokens: list[Token] = []
    errors: list[RuneSyntaxError] = []
    lexed = Lexed(tokens, errors, lines, file, first_line)
    line = first_line
    line_start = 0
    first = True
    append = tokens.append
    for m in pattern.finditer(text):
        kind: str = m.lastgroup  # type: ignore[assignment]  # every alternative is a named group
        if kind == "comment" or kind == "end":
            continue
        if kind == "nl":
            line += 1
            line_start = m.end()
            first = True
            continue
        start = m.start(kind)
        tok_text = m.group(kind)
        col = start - line_start + 1
        if kind == "punct":
            append(Token(tok_text, tok_text, tok_text, line, col, start, m.end(), first))
        elif kind == "ident":
            append(Token(IDENT, tok_text, tok_text, line, col, start, m.end(), first))
        elif kind == "int":
            digits = tok_text.lstrip("0")
            value: object = int(tok_text) if len(digits) <= 20 else _HUGE_INT
            append(Token(INT, tok_text, value, line, col, start, m.end(), first))
        elif kind == "float":
            try:
                fvalue = float(tok_text)
            except (ValueError, OverflowError):  # pragma: no cover - regex guarantees syntax
                fvalue = math.inf
            append(Token(FLOAT, tok_text, fvalue, line, col, start, m.end(), first))
        elif kind == "string":
            body = tok_text[1:-1]
            if "\\" not in body:
                append(Token(STRING, tok_text, body, line, col, start, m.end(), first))
            else:
                parts, problem = _decode(body)
                if problem is not None:
                    offset, message = problem
                    errors.append(lexed.error(message, line, col + 1 + offset))
                value = "".join(["*" if p is _STAR_ESC else p for p in parts])
                has_star = any(p is _STAR_ESC for p in parts)
                append(Token(STRING, tok_text, value, line, col, start, m.end(), first, parts if has_star else None))
        elif kind == "unterminated":
            errors.append(lexed.error("unterminated string: missing closing '\"' before the end of the line", line, col))
            append(Token(ERROR, tok_text, None, line, col, start, m.end(), first))
        else:  # bad
            errors.append(lexed.error(_bad_char_message(tok_text), line, col))
            append(Token(ERROR, tok_text, None, line, col, start, m.end(), first))
        first = False
    last_line_text = lines[-1]
    append(Token(EOF, "", None, line, len(last_line_text) + 1, len(text), len(text), first))
    return lexed


# --------------------------------------------------------------------------
# like patterns


def like_pattern(tok: Token) -> tuple[Optional[str], ...]:
    """The ``Like.pattern`` of a string token: ``*`` is a wildcard, ``\\*`` a star.

    The result alternates non-empty literal strings and ``LIKE_WILDCARD``
    (``None``); ``"a*b"`` -> ``("a", None, "b")``, ``"*"`` -> ``(None,)``,
    ``""`` -> ``()``.
    """
    pieces: list = []
    for part in tok.parts or [tok.value]:
        if part is _STAR_ESC:
            pieces.append("*")
            continue
        segments = part.split("*")
        for k, seg in enumerate(segments):
            if k:
                pieces.append(LIKE_WILDCARD)
            pieces.append(seg)
    return _pattern_from_pieces(pieces)


def like_glob(tok: Token) -> str:
    """The ``MethodCall.arg`` of ``X.like("...")`` in rules: an escaped glob.

    Rules keep the pattern as one ``str``; in it ``*`` is a wildcard, ``\\*``
    a literal star and ``\\\\`` a literal backslash. ``like_pattern_from_glob``
    turns it into the same tuple form policies use (both forms are matched by
    ``rune_fast.like``, the one matcher of the language).
    """
    out: list[str] = []
    for part in tok.parts or [tok.value]:
        if part is _STAR_ESC:
            out.append("\\*")
        else:
            out.append(part.replace("\\", "\\\\"))
    return "".join(out)


# --------------------------------------------------------------------------
# Parser support


class SilentError(Exception):
    """The parser reached an ``error`` token: the lexer already reported it.

    Raised instead of a second ``RuneSyntaxError`` so one typo yields one
    message; the parsers catch it, skip the statement and never let it escape.
    """


class TokenCursor:
    """A position in a token list with the lookahead helpers both parsers use."""

    __slots__ = ("lx", "toks", "i", "last")

    def __init__(self, lexed: Lexed) -> None:
        self.lx = lexed
        self.toks = lexed.tokens
        self.i = 0
        self.last = len(self.toks) - 1

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        j = self.i + k
        return self.toks[j if j < self.last else self.last]

    def prev(self) -> Optional[Token]:
        return self.toks[self.i - 1] if self.i > 0 else None

    def advance(self) -> Token:
        t = self.toks[self.i]
        if self.i < self.last:
            self.i += 1
        return t

    def at(self, kind: str) -> bool:
        return self.toks[self.i].kind == kind

    def at_word(self, word: str) -> bool:
        t = self.toks[self.i]
        return t.kind == IDENT and t.text == word

    def fail(self, message: str, tok: Optional[Token] = None) -> NoReturn:
        """Raise a syntax error at ``tok`` (default: the current token).

        If the current token is an ``error`` token, the real problem was
        already reported by the lexer; raise ``SilentError`` instead.
        """
        if self.toks[self.i].kind == ERROR:
            raise SilentError()
        t = tok if tok is not None else self.toks[self.i]
        raise self.lx.error(message, t.line, t.col)

    def found(self) -> str:
        return describe(self.toks[self.i])

    def expect(self, kind: str, message: str) -> Token:
        """Consume a token of ``kind`` or fail with ``message + ", found ..."``."""
        t = self.toks[self.i]
        if t.kind != kind:
            self.fail(f"{message}, found {describe(t)}")
        return self.advance()



_T = TypeVar("_T")


class ParserBase:
    """State and scaffolding shared by the ``[rules]`` and ``[policies]`` parsers.

    One copy so that both report locations, the ``max_nesting`` limit and
    collected errors the same way. A subclass names what nests in
    ``NESTING_WHAT`` (it appears in the limit message), implements
    ``recover(start)`` (skip to where the next statement probably starts) and
    parses a whole section with ``parse_all(self.<statement>)``.
    """

    NESTING_WHAT = "expression"

    def __init__(self, lexed: Lexed, max_nesting: int) -> None:
        self.lx = lexed
        self.c = TokenCursor(lexed)
        self.max_nesting = max_nesting
        self.depth = 0

    def loc(self, tok: Token) -> Loc:
        return self.lx.loc(tok)

    def enter(self, tok: Token) -> None:
        """One more level of nesting; fail (limit) past ``max_nesting``."""
        self.depth += 1
        if self.depth > self.max_nesting:
            raise RuneLimitError(
                f"limit max_nesting={self.max_nesting} exceeded: {self.NESTING_WHAT} nested too deeply",
                "max_nesting",
                file=self.lx.file,
                line=tok.line,
                column=tok.col,
                source_line=self.lx.line_text(tok.line),
            )

    def leave(self) -> None:
        self.depth -= 1

    def parenthesized(self, inner: Callable[[], _T]) -> _T:
        """``( inner )``; the current token is ``(``. One level of nesting, and
        the same message in both languages for a ``(`` left open."""
        c = self.c
        t = c.tok
        self.enter(t)
        c.advance()
        e = inner()
        if not c.at(")"):
            c.fail(f"expected ')' to close the '(' at {t.line}:{t.col}, found {c.found()}")
        c.advance()
        self.leave()
        return e

    def plain_string(self, t: Token) -> str:
        """A string token used as plain text: consume it; ``\\*`` is not allowed."""
        if t.star_escape:
            self.c.fail("'\\*' is only valid in a like pattern", t)
        self.c.advance()
        return t.value  # type: ignore[return-value]

    def recover(self, start: int) -> None:
        """Skip past the statement that failed at token index ``start``."""
        raise NotImplementedError

    def parse_all(self, statement: Callable[[], _T]) -> tuple[tuple[_T, ...], list[RuneError]]:
        """Parse statements until the end of input, collecting every error.

        After an error the parser recovers and goes on, so one load reports
        every broken statement. Never raises: lexer errors, syntax errors, a
        ``RecursionError`` (reported as the ``max_nesting`` limit) and even
        a parser bug all become ``RuneError`` values, sorted by position.
        """
        lexed = self.lx
        c = self.c
        errors: list[RuneError] = list(lexed.errors)
        out: list[_T] = []
        while c.tok.kind != EOF:
            start = c.i
            try:
                out.append(statement())
                continue
            except SilentError:
                pass
            except RuneError as e:
                errors.append(e)
            except RecursionError:
                t = c.toks[start]
                errors.append(
                    RuneLimitError(
                        f"limit max_nesting={self.max_nesting} exceeded: input nested too deeply to parse",
                        "max_nesting",
                        file=lexed.file,
                        line=t.line,
                        column=t.col,
                        source_line=lexed.line_text(t.line),
                    )
                )
            except Exception as e:  # pragma: no cover - a parser bug must still not escape
                t = c.tok
                errors.append(lexed.error(f"internal parser error ({type(e).__name__}: {e})", t.line, t.col))
            self.recover(start)
        errors.sort(key=lambda e: (e.line, e.column))
        return tuple(out), errors
