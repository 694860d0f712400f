"""What every ``rune`` subcommand shares: the subcommand record, exit codes,
and one way to report errors as text or JSON.

Scripts branch on exit codes and parse ``--json`` output, so both are part of
the command line's contract and are defined here once (``EXIT_CODES`` is
also what ``rune --help`` prints). A subcommand module depends only on this
module; ``app.py`` assembles the subcommands, so no module of the CLI
imports another one back.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from ..errors import RuneError, RuneRequestError

__all__ = [
    "Subcommand",
    "EXIT_OK",
    "EXIT_NEGATIVE",
    "EXIT_USAGE",
    "EXIT_DENY",
    "EXIT_FORBID",
    "EXIT_LOAD_ERROR",
    "EXIT_BAD_REQUEST",
    "EXIT_CODES",
    "error_dict",
    "add_path",
    "plural",
    "print_json",
    "report_load_failure",
    "report_request_failure",
]

#: Success: ``check`` found no error, every test passed, ``eval`` permits,
#: ``query`` has at least one answer.
EXIT_OK = 0
#: A negative result: ``check`` found errors (or warnings under ``--strict``),
#: a test failed, ``query`` has no answer.
EXIT_NEGATIVE = 1
#: A bad command line (argparse's convention).
EXIT_USAGE = 2
#: ``eval``: the decision is deny (no permit applies).
EXIT_DENY = 3
#: ``eval``: the decision is forbid (a forbid applies).
EXIT_FORBID = 4
#: ``test``, ``eval``, ``query``: the file or bundle does not load (errors,
#: missing path). ``check`` reports these as its negative result, 1.
EXIT_LOAD_ERROR = 5
#: ``eval``, ``query``: the request (``--principal`` ... ``--entities``, or
#: the query atom) is malformed.
EXIT_BAD_REQUEST = 6

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success: check ok, all tests pass, eval permits, query has answers"),
    (EXIT_NEGATIVE, "check found errors (or warnings with --strict), a test failed, query has no answer"),
    (EXIT_USAGE, "bad command line"),
    (EXIT_DENY, "eval: deny"),
    (EXIT_FORBID, "eval: forbid"),
    (EXIT_LOAD_ERROR, "test/eval/query: the file or bundle does not load"),
    (EXIT_BAD_REQUEST, "eval/query: malformed request or query atom"),
)


@dataclass(frozen=True)
class Subcommand:
    """One ``rune NAME ...`` subcommand.

    ``configure`` adds the arguments to the sub-parser; ``run`` receives the
    parsed namespace and returns the process exit code.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def error_dict(e: BaseException, path: str = "") -> dict[str, Any]:
    """One error as JSON: its class, message and where it is.

    ``RuneRequestError`` carries the request field instead of a position;
    an ``OSError`` (an unreadable path the loaders did not wrap) is reported
    against ``path``.
    """
    if isinstance(e, RuneRequestError):
        return {"class": type(e).__name__, "message": e.message, "field": e.field}
    if isinstance(e, RuneError):
        return {
            "class": type(e).__name__,
            "message": e.message,
            "file": e.file,
            "line": e.line,
            "column": e.column,
        }
    return {"class": type(e).__name__, "message": str(e), "file": path, "line": 0, "column": 0}


def _all_errors(e: BaseException) -> list[BaseException]:
    return list(e.errors) if isinstance(e, RuneError) else [e]


def plural(n: int, word: str, plural_form: str = "") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural_form or word + 's'}"


def print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, ensure_ascii=False), file=out)


def add_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="FILE_OR_DIR", help="a .rune file or a directory of .rune files (a bundle)")
    p.add_argument("-r", "--recursive", action="store_true", help="also load .rune files in subdirectories")


def render_errors(e: BaseException, path: str, stream: TextIO) -> int:
    """Print every error of ``e`` as ``file:line:col: Class: message`` with a caret."""
    errors = _all_errors(e)
    for x in errors:
        print(x.render() if isinstance(x, RuneError) else f"{path}: {x}", file=stream)
    return len(errors)


def report_load_failure(
    e: BaseException, args: argparse.Namespace, out: TextIO, err: TextIO, code: int = EXIT_LOAD_ERROR
) -> int:
    """Report a bundle that does not load; return ``code``.

    Text goes to ``err`` and ends with ``PATH: N errors``; with ``--json``
    one object ``{"ok": false, "errors": [...]}`` goes to ``out``.
    """
    if getattr(args, "json", False):
        print_json({"ok": False, "errors": [error_dict(x, args.path) for x in _all_errors(e)]}, out)
        return code
    n = render_errors(e, args.path, err)
    print(f"{args.path}: {plural(n, 'error')}", file=err)
    return code


def report_request_failure(e: RuneError, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Report a malformed request or query atom; return ``EXIT_BAD_REQUEST``.

    A request error names its field (``principal``, ``context``,
    ``entities[0].attrs`` ...) in the text and in the JSON.
    """
    if getattr(args, "json", False):
        print_json({"ok": False, "errors": [error_dict(x, args.path) for x in e.errors]}, out)
        return EXIT_BAD_REQUEST
    for x in e.errors:
        if isinstance(x, RuneRequestError):
            where = f"field {x.field!r}: " if x.field else ""
            print(f"bad request: {where}{x.message}", file=err)
        else:
            print(f"bad query: {x.render()}", file=err)
    return EXIT_BAD_REQUEST
