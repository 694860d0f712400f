"""The ``rune`` command line: ``rune check`` (and, later, eval / test / query).

Each subcommand is one entry of ``SUBCOMMANDS``: a name, a help line, a
function that adds its arguments to an ``argparse`` sub-parser, and a function
that runs it and returns the exit code.  Adding ``eval``, ``test`` or
``query`` means writing those two functions and appending one entry; nothing
else in this module changes.

Exit codes: 0 success, 1 the policy (or a test) is wrong, 2 bad command line
(argparse's convention).  Every ``RuneError`` is printed with its location,
the offending line and a caret, one after the other, on stderr.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TextIO

from ..errors import RuneError

__all__ = ["main", "Subcommand", "SUBCOMMANDS", "build_parser", "load_checked", "print_errors"]


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


def print_errors(err: RuneError, stream: Optional[TextIO] = None) -> int:
    """Render every error carried by ``err`` on ``stream``; return how many."""
    stream = stream if stream is not None else sys.stderr
    errors = err.errors
    for e in errors:
        print(e.render(), file=stream)
    return len(errors)


def load_checked(path: str, *, recursive: bool = False):
    """Load the bundle at ``path`` and run every load-time check.

    Returns ``(bundle, program_info)``; raises ``RuneError`` (possibly a
    ``RuneErrors`` carrying several) on any problem.  Shared by every
    subcommand so that ``eval``/``test``/``query`` refuse exactly what
    ``check`` refuses.
    """
    from ..lang import parser  # imported lazily: `rune --help` must work on a broken install
    from ..lang.checks import check_program

    bundle = parser.load_bundle(path, recursive=recursive)
    info = check_program(bundle.facts, bundle.rules, bundle.policies)
    return bundle, info


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


# --------------------------------------------------------------------------
# rune check


def _configure_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="FILE_OR_DIR", help="a .rune file or a directory of .rune files (a bundle)")
    p.add_argument("-r", "--recursive", action="store_true", help="also load .rune files in subdirectories")


def _run_check(args: argparse.Namespace) -> int:
    try:
        bundle, _info = load_checked(args.path, recursive=args.recursive)
    except RuneError as err:
        n = print_errors(err)
        print(f"{args.path}: {_plural(n, 'error')}", file=sys.stderr)
        return 1
    except OSError as err:  # the loaders should wrap these; never show a traceback anyway
        print(f"{args.path}: {err}", file=sys.stderr)
        return 1
    n_facts = sum(len(fs.rows) for fs in bundle.facts)
    print(
        f"ok: {_plural(len(bundle.files), 'file')}, {_plural(n_facts, 'fact')}, "
        f"{_plural(len(bundle.rules), 'rule')}, {_plural(len(bundle.policies), 'policy', 'policies')}, "
        f"{_plural(len(bundle.tests), 'test')}"
    )
    return 0


# --------------------------------------------------------------------------
# The table of subcommands.
#
# Extension point: a subcommand is one `Subcommand` entry. `eval`, `test` and
# `query` need the engine and live in `cli_engine.py`, which appends its
# entries through `cli_engine.register(SUBCOMMANDS)`; `build_parser` calls it
# lazily so that `rune check` never depends on the engine being importable.

SUBCOMMANDS: list[Subcommand] = [
    Subcommand("check", "load a file or bundle and run every load-time check", _configure_check, _run_check),
]


def _register_engine_commands() -> None:
    """Add eval/test/query from ``cli_engine`` when it is available."""
    try:
        from .engine_commands import register
    except ImportError:  # the engine front is optional for `rune check`
        return
    register(SUBCOMMANDS)
    from ..server.cli import register as register_serve

    register_serve(SUBCOMMANDS)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with one sub-parser per entry of ``SUBCOMMANDS``."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="rune", description="RUNE policy engine command line")
    parser.add_argument("--version", action="version", version=f"rune_fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _register_engine_commands()
    for cmd in SUBCOMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``rune`` and ``python -m rune_fast``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    return int(args._run(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
