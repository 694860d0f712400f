"""Error types of rune_fast.

Every problem a user can cause is a ``RuneError`` that knows where it happened
(file, line, column, and the offending source line) so that it can be fixed
without guessing. Loading collects errors instead of stopping at the first
one; several errors travel together as a ``RuneErrors`` (itself a
``RuneError``), so ``except RuneError`` catches both.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

__all__ = [
    "RuneError",
    "RuneErrors",
    "RuneSyntaxError",
    "RuneVersionError",
    "RuneDataError",
    "RuneSourceError",
    "RuneManifestError",
    "RuneCheckError",
    "RuneSafetyError",
    "RuneStratificationError",
    "RuneArityError",
    "RuneUndefinedError",
    "RuneHeadWildcardError",
    "RuneDuplicateIdError",
    "RuneLimitError",
    "RuneRequestError",
    "RuneEvalError",
    "raise_collected",
]


class RuneError(Exception):
    """A located, user-facing error.

    ``file`` may be ``"<string>"`` for text loaded from memory; ``line`` and
    ``column`` are 1-based (0 when the error has no position, e.g. a missing
    file). ``source_line`` is the text of the offending line, used to render a
    caret under the column.
    """

    def __init__(
        self,
        message: str,
        file: str = "<string>",
        line: int = 0,
        column: int = 0,
        source_line: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.source_line = source_line

    @property
    def errors(self) -> list["RuneError"]:
        """All errors carried by this exception (just itself for one error)."""
        return [self]

    @property
    def location(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file

    def render(self) -> str:
        """``file:line:col: message`` followed by the source line and a caret."""
        head = f"{self.location}: {type(self).__name__}: {self.message}"
        if self.source_line is None or not self.line:
            return head
        text = self.source_line.rstrip("\n")
        caret = " " * max(self.column - 1, 0) + "^"
        return f"{head}\n    {text}\n    {caret}"

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # keep errors picklable (multiprocessing, caches)
        return (
            _rebuild,
            (type(self), self.message, self.file, self.line, self.column, self.source_line, self.__dict__),
        )


def _rebuild(
    cls: type[RuneError], message: str, file: str, line: int, column: int, source_line: Optional[str],
    state: dict[str, Any],
) -> RuneError:
    err = cls.__new__(cls)
    RuneError.__init__(err, message, file, line, column, source_line)
    err.__dict__.update(state)
    return err


class RuneErrors(RuneError):
    """Several independent errors found in one load."""

    def __init__(self, errors: Sequence[RuneError]) -> None:
        errors = list(errors)
        first = errors[0]
        super().__init__(
            f"{len(errors)} errors",
            first.file,
            first.line,
            first.column,
            first.source_line,
        )
        self._errors = errors

    @property
    def errors(self) -> list[RuneError]:
        return list(self._errors)

    def render(self) -> str:
        return "\n".join(e.render() for e in self._errors)


class RuneSyntaxError(RuneError):
    """Text that does not follow the grammar of a section."""


class RuneVersionError(RuneSyntaxError):
    """Missing or unsupported ``version = "rune/1"`` header."""


class RuneDataError(RuneError):
    """A ``[data]`` or ``[tests.*]`` value of a shape the language does not accept."""


class RuneSourceError(RuneError):
    """A ``[sources]`` entry or the file it points to is invalid."""


class RuneManifestError(RuneSourceError):
    """A bundle that does not match its ``rune.manifest`` (or a manifest that
    cannot be read): nothing is loaded."""


class RuneCheckError(RuneError):
    """A program that parses but is not a valid program (load-time checks)."""


class RuneSafetyError(RuneCheckError):
    """A variable that no positive atom or assignment binds."""


class RuneStratificationError(RuneCheckError):
    """A cycle through negation or an aggregate."""


class RuneArityError(RuneCheckError):
    """One relation used with two different arities."""


class RuneUndefinedError(RuneCheckError):
    """A relation used but never defined (no facts, no rules, not a request relation)."""


class RuneHeadWildcardError(RuneCheckError):
    """``_`` in a rule head."""


class RuneDuplicateIdError(RuneCheckError):
    """Two policies with one id in a bundle."""


class RuneLimitError(RuneError):
    """A configured limit was exceeded; ``limit`` names it."""

    def __init__(self, message: str, limit: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit


class RuneRequestError(RuneError, ValueError):
    """A malformed authorization request; ``field`` names the offending field."""

    def __init__(self, message: str, field: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("file", "<request>")
        super().__init__(message, **kwargs)
        self.field = field

    @property
    def location(self) -> str:
        return f"request field {self.field!r}" if self.field else "request"


class RuneEvalError(RuneError):
    """An error while evaluating a policy condition or a rule (type error, overflow...)."""


def raise_collected(errors: Iterable[RuneError]) -> None:
    """Raise nothing, the single error, or a ``RuneErrors`` with all of them.

    Several errors are sorted by file, line and column (stable, so errors at
    one position keep the order they were found in): a bundle's report reads
    top to bottom, whichever stage found each problem.
    """
    errors = list(errors)
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    flat: list[RuneError] = []
    for e in errors:
        flat.extend(e.errors)
    flat.sort(key=_position)
    raise RuneErrors(flat)


def _position(e: RuneError) -> tuple[str, int, int]:
    return (e.file, e.line, e.column)


class EvalFailure(Exception):
    """Internal: a rule binding that derives nothing (overflow, division by zero,
    a type error); the evaluators record it as a diagnostic and go on."""
