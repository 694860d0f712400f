"""``rune check``: load a file or bundle, run every load-time check and the lints.

Errors (the bundle does not load) exit 1 and are printed on stderr, sorted by
file, line and column. Lints (``lang.lints``) are warnings: printed on stderr
after a successful load, exit 0 unless ``--strict``. ``--json`` prints one
object on stdout instead: ``{"ok", "errors", "warnings", "counts"}``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, TextIO

from ..errors import RuneError
from .common import EXIT_NEGATIVE, EXIT_OK, Subcommand, add_path, plural, print_json, report_load_failure

__all__ = ["COMMANDS", "load_checked", "run_check"]


def load_checked(path: str, *, recursive: bool = False) -> tuple[Any, Any]:
    """Load the bundle at ``path`` and run every load-time check.

    Returns ``(bundle, program_info)``; raises ``RuneError`` (possibly a
    ``RuneErrors`` carrying several) on any problem.
    """
    from ..lang import parser  # imported lazily: `rune --help` must work on a broken install
    from ..lang.checks import check_program

    bundle = parser.load_bundle(path, recursive=recursive)
    info = check_program(bundle.facts, bundle.rules, bundle.policies)
    return bundle, info


def _configure_check(p: argparse.ArgumentParser) -> None:
    add_path(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when there are warnings (lints)")
    p.add_argument("--json", action="store_true", help="print errors, warnings and counts as one JSON object")


def run_check(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Check a bundle; print a summary, the errors or the warnings."""
    from ..lang.lints import lint_bundle

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        bundle, _info = load_checked(args.path, recursive=args.recursive)
    except (RuneError, OSError) as e:  # the loaders wrap OSError; never show a traceback anyway
        return report_load_failure(e, args, out, err, code=EXIT_NEGATIVE)
    warnings = lint_bundle(bundle)
    code = EXIT_NEGATIVE if warnings and args.strict else EXIT_OK
    counts = {
        "files": len(bundle.files),
        "facts": sum(len(fs.rows) for fs in bundle.facts),
        "rules": len(bundle.rules),
        "policies": len(bundle.policies),
        "tests": len(bundle.tests),
    }
    if args.json:
        print_json(
            {"ok": code == EXIT_OK, "errors": [], "warnings": [w.to_dict() for w in warnings], "counts": counts}, out
        )
        return code
    for w in warnings:
        print(w.render(), file=err)
    if warnings:
        print(f"{args.path}: {plural(len(warnings), 'warning')}", file=err)
    print(
        f"ok: {plural(counts['files'], 'file')}, {plural(counts['facts'], 'fact')}, "
        f"{plural(counts['rules'], 'rule')}, {plural(counts['policies'], 'policy', 'policies')}, "
        f"{plural(counts['tests'], 'test')}"
    )
    return code


COMMANDS: tuple[Subcommand, ...] = (
    Subcommand("check", "load a file or bundle, run every load-time check and the lints", _configure_check, run_check),
)
