"""``rune eval``, ``rune test`` and ``rune query``: the subcommands that need an Engine.

They live apart from ``cli.py`` (which owns ``rune check`` and the
dispatcher) so that each can be written and tested on its own; ``cli.py``
registers them by extending its ``SUBCOMMANDS`` with ``ENGINE_SUBCOMMANDS``.

Exit codes (``rune eval``): 0 permit, 3 deny or forbid, 1 the bundle or the
request is wrong, 2 bad command line (argparse). ``rune test``: 0 all tests
pass (or there are none), 1 any failure or load error. ``rune query``: 0
answered (even with no rows), 1 error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, TextIO

from ..errors import RuneError, RuneRequestError
from ..values import Entity, format_value

__all__ = ["ENGINE_SUBCOMMANDS", "register", "run_eval", "run_test", "run_query"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_PERMITTED = 3


def _print_errors(err: RuneError, stream: TextIO) -> int:
    errors = err.errors
    for e in errors:
        print(e.render(), file=stream)
    return len(errors)


def _load(args: argparse.Namespace):
    from ..engine import load

    return load(args.path, recursive=getattr(args, "recursive", False), cache_size=0)


def _print_failure(e: Exception, args: argparse.Namespace, stream: TextIO) -> int:
    """Report why ``eval``/``query`` could not answer; returns ``EXIT_ERROR``.

    One place so both commands word a bad request, a broken bundle and an
    unreadable path the same way.
    """
    if isinstance(e, RuneRequestError):
        print(f"bad request: {e.message}", file=stream)
    elif isinstance(e, RuneError):
        _print_errors(e, stream)
    else:
        print(f"{args.path}: {e}", file=stream)
    return EXIT_ERROR


def _json_arg(text: Optional[str], what: str, want: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RuneRequestError(f"--{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})", field=what)
    if not isinstance(value, want):
        kind = "a JSON object" if want is dict else "a JSON array"
        raise RuneRequestError(f"--{what} must be {kind}, got {type(value).__name__}", field=what)
    return value


def _request_json(args: argparse.Namespace) -> tuple[Optional[dict], Optional[list]]:
    """``--context`` and ``--entities`` (see ``_add_request``), parsed and checked."""
    return _json_arg(args.context, "context", dict), _json_arg(args.entities, "entities", list)


def _jsonable(v: Any) -> Any:
    from ..policy.policies import from_value

    v = from_value(v)
    if isinstance(v, Entity):
        return {"__entity": {"type": v.type, "id": v.id}}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _add_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="FILE_OR_DIR", help="a .rune file or a directory of .rune files (a bundle)")
    p.add_argument("-r", "--recursive", action="store_true", help="also load .rune files in subdirectories")


def _add_request(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--principal", required=required, metavar="ENTITY", help="""e.g. 'User::"alice"'""")
    p.add_argument("--action", required=required, metavar="ENTITY", help="""e.g. 'Action::"read"'""")
    p.add_argument("--resource", required=required, metavar="ENTITY", help="""e.g. 'Document::"d1"'""")
    p.add_argument("--context", metavar="JSON", help='a JSON object, e.g. \'{"mfa": true}\'')
    p.add_argument(
        "--entities",
        metavar="JSON",
        help='a JSON array of request entities: [{"uid": {"type": "User", "id": "alice"}, "attrs": {...}, "parents": [...]}]',
    )


# --------------------------------------------------------------------------
# rune eval


def _configure_eval(p: argparse.ArgumentParser) -> None:
    _add_path(p)
    _add_request(p, required=True)
    p.add_argument("--json", action="store_true", help="print the decision as one JSON object")


def run_eval(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Decide one request and print the decision, reasons and errors."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
        context, entities = _request_json(args)
        decision = engine.authorize(args.principal, args.action, args.resource, context, entities)
    except (RuneError, OSError) as e:
        return _print_failure(e, args, err)
    if args.json:
        print(json.dumps(decision.to_dict(), ensure_ascii=False), file=out)
    else:
        print(decision.decision, file=out)
        if decision.reasons:
            print(f"reasons: {', '.join(decision.reasons)}", file=out)
        for pid, msg in decision.errors:
            print(f"error in {pid}: {msg}", file=out)
    return EXIT_OK if decision.allowed else EXIT_NOT_PERMITTED


# --------------------------------------------------------------------------
# rune test


def _configure_test(p: argparse.ArgumentParser) -> None:
    _add_path(p)
    p.add_argument("-v", "--verbose", action="store_true", help="also list the tests that pass")


def run_test(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run the embedded ``[tests.*]``; exit non-zero on any failure."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
    except RuneError as e:
        n = _print_errors(e, err)
        print(f"{args.path}: {n} error{'s' if n != 1 else ''}", file=err)
        return EXIT_ERROR
    except OSError as e:
        print(f"{args.path}: {e}", file=err)
        return EXIT_ERROR
    results = engine.run_tests()
    failed = [r for r in results if not r.passed]
    for r in results:
        if not r.passed:
            print(r.render(), file=out)
        elif args.verbose:
            print(r.render(), file=out)
    if not results:
        print(f"{args.path}: no [tests.*] to run", file=out)
        return EXIT_OK
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    return EXIT_ERROR if failed else EXIT_OK


# --------------------------------------------------------------------------
# rune query


def _configure_query(p: argparse.ArgumentParser) -> None:
    _add_path(p)
    p.add_argument("atom", help="""a Datalog atom, e.g. 'can(User::"alice", A, D)'""")
    _add_request(p, required=False)
    p.add_argument("--json", action="store_true", help="print the answers as a JSON array of objects")


def run_query(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Answer an atom over the precomputed model (or a request's model)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
        context, entities = _request_json(args)
        rows = engine.query(
            args.atom,
            principal=args.principal,
            action=args.action,
            resource=args.resource,
            context=context,
            entities=entities,
        )
    except (RuneError, OSError) as e:
        return _print_failure(e, args, err)
    if args.json:
        print(json.dumps([{k: _jsonable(v) for k, v in row.items()} for row in rows], ensure_ascii=False), file=out)
        return EXIT_OK
    if not rows:
        print("no", file=out)
    elif rows == [{}]:
        print("yes", file=out)
    else:
        for row in rows:
            print(", ".join(f"{k} = {format_value(v)}" for k, v in row.items()), file=out)
    return EXIT_OK


# --------------------------------------------------------------------------
# Registration


def _subcommands() -> list:
    from .app import Subcommand

    return [
        Subcommand("eval", "decide one request and print the decision, reasons and errors", _configure_eval, run_eval),
        Subcommand("test", "run the embedded [tests.*] of a file or bundle", _configure_test, run_test),
        Subcommand("query", "answer a Datalog atom over the compiled model", _configure_query, run_query),
    ]


#: ``cli.SUBCOMMANDS.extend(ENGINE_SUBCOMMANDS)`` registers eval, test and query.
ENGINE_SUBCOMMANDS = _subcommands()


def register(subcommands: list) -> None:
    """Append eval/test/query to a ``SUBCOMMANDS`` list (idempotent)."""
    names = {s.name for s in subcommands}
    subcommands.extend(s for s in ENGINE_SUBCOMMANDS if s.name not in names)
