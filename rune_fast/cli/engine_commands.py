"""``rune eval``, ``rune test`` and ``rune query``: the subcommands that need an Engine.

Exit codes are the command line's (``common.EXIT_CODES``): ``eval`` exits 0
on permit, 3 on deny, 4 on forbid; ``test`` 0 when every test passes (or
there are none), 1 on any failure; ``query`` 0 with answers, 1 with none;
all three exit 5 when the bundle does not load and ``eval``/``query`` 6 on a
malformed request. With ``--json`` each prints exactly one JSON value on
stdout, errors included, so a script never parses stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, TextIO

from ..errors import RuneError, RuneRequestError
from ..values import Entity, format_value
from .common import (
    EXIT_DENY,
    EXIT_FORBID,
    EXIT_NEGATIVE,
    EXIT_OK,
    Subcommand,
    add_path,
    print_json,
    report_load_failure,
    report_request_failure,
)

__all__ = ["COMMANDS", "run_eval", "run_test", "run_query"]


def _load(args: argparse.Namespace) -> Any:
    from ..engine import load

    return load(args.path, recursive=getattr(args, "recursive", False), cache_size=0)


def _json_arg(text: Optional[str], what: str, want: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise RuneRequestError(
            f"--{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})", field=what
        ) from None
    except RecursionError:
        raise RuneRequestError(f"--{what} is nested too deeply to be a request", field=what) from None
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
    add_path(p)
    _add_request(p, required=True)
    p.add_argument("--json", action="store_true", help="print the decision (or the errors) as one JSON object")
    p.add_argument("--explain", action="store_true",
                   help="also explain the decision: proof trees for a permit/forbid, the failing parts for a deny")


def run_eval(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Decide one request and print the decision, reasons and errors."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
    except (RuneError, OSError) as e:
        return report_load_failure(e, args, out, err)
    try:
        context, entities = _request_json(args)
        if getattr(args, "explain", False):
            explanation = engine.explain(args.principal, args.action, args.resource, context, entities)
            decision = explanation.decision
        else:
            explanation = None
            decision = engine.authorize(args.principal, args.action, args.resource, context, entities)
    except RuneError as e:
        return report_request_failure(e, args, out, err)
    if args.json:
        extra = {"explanation": explanation.to_dict()} if explanation is not None else {}
        print_json({"ok": True, **decision.to_dict(), **extra}, out)
    elif explanation is not None:
        print(explanation.render(), file=out, end="")
    else:
        print(decision.decision, file=out)
        if decision.reasons:
            print(f"reasons: {', '.join(decision.reasons)}", file=out)
        for pid, msg in decision.errors:
            print(f"error in {pid}: {msg}", file=out)
    return {"permit": EXIT_OK, "forbid": EXIT_FORBID}.get(decision.decision, EXIT_DENY)


# --------------------------------------------------------------------------
# rune test


def _configure_test(p: argparse.ArgumentParser) -> None:
    add_path(p)
    p.add_argument("-v", "--verbose", action="store_true", help="also list the tests that pass")
    p.add_argument("--json", action="store_true", help="print the results (or the load errors) as one JSON object")


def _result_dict(r: Any) -> dict[str, Any]:
    return {
        "name": r.name,
        "passed": r.passed,
        "expected": r.expected,
        "actual": r.actual,
        "reasons": list(r.reasons),
        "errors": [{"policy": p, "message": m} for p, m in r.errors],
        "file": r.file,
        "line": r.line,
        "column": r.column,
    }


def run_test(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run the embedded ``[tests.*]``; exit non-zero on any failure."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
    except (RuneError, OSError) as e:
        return report_load_failure(e, args, out, err)
    results = engine.run_tests()
    failed = [r for r in results if not r.passed]
    code = EXIT_NEGATIVE if failed else EXIT_OK
    if getattr(args, "json", False):
        print_json(
            {
                "ok": not failed,
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "results": [_result_dict(r) for r in results],
            },
            out,
        )
        return code
    for r in results:
        if not r.passed or args.verbose:
            print(r.render(), file=out)
    if not results:
        print(f"{args.path}: no [tests.*] to run", file=out)
        return EXIT_OK
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    return code


# --------------------------------------------------------------------------
# rune query


def _configure_query(p: argparse.ArgumentParser) -> None:
    add_path(p)
    p.add_argument("atom", help="""a Datalog atom, e.g. 'can(User::"alice", A, D)'""")
    _add_request(p, required=False)
    p.add_argument(
        "--json", action="store_true", help='print {"answers": [{VAR: value, ...}, ...]} (or the errors) as JSON'
    )


def run_query(args: argparse.Namespace, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Answer an atom over the precomputed model (or a request's model); exit 1 on no answer."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
    except (RuneError, OSError) as e:
        return report_load_failure(e, args, out, err)
    try:
        context, entities = _request_json(args)
        rows = engine.query(
            args.atom,
            principal=args.principal,
            action=args.action,
            resource=args.resource,
            context=context,
            entities=entities,
        )
    except RuneError as e:
        return report_request_failure(e, args, out, err)
    code = EXIT_OK if rows else EXIT_NEGATIVE
    if args.json:
        print_json({"ok": True, "answers": [{k: _jsonable(v) for k, v in row.items()} for row in rows]}, out)
        return code
    if not rows:
        print("no", file=out)
    elif rows == [{}]:
        print("yes", file=out)
    else:
        for row in rows:
            print(", ".join(f"{k} = {format_value(v)}" for k, v in row.items()), file=out)
    return code


#: The subcommands of this module, in ``rune --help`` order.
COMMANDS: tuple[Subcommand, ...] = (
    Subcommand("eval", "decide one request and print the decision, reasons and errors", _configure_eval, run_eval),
    Subcommand("test", "run the embedded [tests.*] of a file or bundle", _configure_test, run_test),
    Subcommand("query", "answer a Datalog atom over the compiled model", _configure_query, run_query),
)
