"""The ``rune`` command line: the parser and ``main``.

Each subcommand is a ``common.Subcommand`` (a name, a help line, a function
that adds its arguments, a function that runs it and returns the exit code)
exported in the ``COMMANDS`` tuple of its module. ``SUBCOMMANDS`` below is
the fixed list of those tuples: adding a subcommand means writing a module
and adding its ``COMMANDS`` here; nothing is registered at import time, and
the subcommand modules never import this one.

Exit codes are listed in ``rune --help`` (``common.EXIT_CODES``). Errors are
printed with their location, the offending line and a caret, on stderr, or
as JSON on stdout with ``--json``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import check, engine_commands, manifest_command, search, serve
from .common import EXIT_CODES, Subcommand

__all__ = ["main", "SUBCOMMANDS", "build_parser"]

SUBCOMMANDS: tuple[Subcommand, ...] = (
    check.COMMANDS + engine_commands.COMMANDS + search.COMMANDS + manifest_command.COMMANDS + serve.COMMANDS
)


def _exit_codes_epilog() -> str:
    lines = ["exit codes:"]
    lines += [f"  {code}  {meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with one sub-parser per entry of ``SUBCOMMANDS``."""
    from .. import __version__

    epilog = _exit_codes_epilog()
    parser = argparse.ArgumentParser(
        prog="rune",
        description="RUNE policy engine command line",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rune_fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in SUBCOMMANDS:
        p = sub.add_parser(
            cmd.name, help=cmd.help, description=cmd.help, epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``rune`` and ``python -m rune_fast``; returns the exit code."""
    _safe_streams()
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    return int(args._run(args))


def _safe_streams() -> None:
    """Never fail while printing: ids may hold lone surrogates (``\\ud800`` in
    an entity literal, undecodable bytes in argv) and the terminal may not be
    UTF-8, so unencodable characters are written as backslash escapes instead
    of raising ``UnicodeEncodeError`` (a traceback) half-way through output."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - detached or closed stream
                pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
