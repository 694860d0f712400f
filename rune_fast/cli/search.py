"""``rune search resources|subjects|actions``: who may do what, from the command line.

Each form prints one entity per line (in the engine's stable order) and,
when there are more, the ``--page-token`` to pass for the next page; with
``--json`` one object ``{"ok": true, "results": [{"type", "id"}...],
"next_token": ...}``. Exit codes (``common.EXIT_CODES``): 0 with results, 1
with none, 5 when the bundle does not load, 6 for a malformed request or
page token.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ..errors import RuneError
from .common import (
    EXIT_NEGATIVE,
    EXIT_OK,
    Subcommand,
    add_path,
    print_json,
    report_load_failure,
    report_request_failure,
)
from .engine_commands import _json_arg, _load

__all__ = ["COMMANDS", "run_search"]


def _common(p: argparse.ArgumentParser) -> None:
    add_path(p)
    p.add_argument("--context", metavar="JSON", help='a JSON object, e.g. \'{"mfa": true}\'')
    p.add_argument("--entities", metavar="JSON", help="a JSON array of request entities (uid, attrs, parents)")
    p.add_argument("--limit", type=int, default=100, help="results per page (1-10000, default 100)")
    p.add_argument("--page-token", metavar="TOKEN", help="the token printed after the previous page")
    p.add_argument("--json", action="store_true", help="print the page (or the errors) as one JSON object")


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    r = sub.add_parser("resources", help="resources of a type the principal may do the action on")
    _common(r)
    r.add_argument("--principal", required=True, metavar="ENTITY", help="""e.g. 'User::"alice"'""")
    r.add_argument("--action", required=True, metavar="ENTITY", help="""e.g. 'Action::"read"'""")
    r.add_argument("--type", required=True, metavar="TYPE", help="the resource type, e.g. Document")
    r.add_argument("--within", metavar="ENTITY", help="""only resources in this entity, e.g. 'Folder::"eng"'""")
    s = sub.add_parser("subjects", help="principals of a type that may do the action on the resource")
    _common(s)
    s.add_argument("--action", required=True, metavar="ENTITY")
    s.add_argument("--resource", required=True, metavar="ENTITY")
    s.add_argument("--type", required=True, metavar="TYPE", help="the principal type, e.g. User")
    a = sub.add_parser("actions", help="actions the principal may do on the resource")
    _common(a)
    a.add_argument("--principal", required=True, metavar="ENTITY")
    a.add_argument("--resource", required=True, metavar="ENTITY")


def run_search(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """One page of a search; exit 1 when it is empty."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        engine = _load(args)
    except (RuneError, OSError) as e:
        return report_load_failure(e, args, out, err)
    try:
        kw: dict[str, Any] = {
            "context": _json_arg(args.context, "context", dict),
            "entities": _json_arg(args.entities, "entities", list),
            "limit": args.limit,
            "page_token": args.page_token,
        }
        if args.what == "resources":
            page = engine.search_resources(args.principal, args.action, args.type, within=args.within, **kw)
        elif args.what == "subjects":
            page = engine.search_subjects(args.action, args.resource, args.type, **kw)
        else:
            page = engine.search_actions(args.principal, args.resource, **kw)
    except RuneError as e:
        return report_request_failure(e, args, out, err)
    code = EXIT_OK if page.results else EXIT_NEGATIVE
    if args.json:
        print_json({"ok": True, **page.to_dict()}, out)
        return code
    for ent in page.results:
        print(ent, file=out)
    if not page.results:
        print("none", file=out)
    if page.next_token:
        print(f"more: --page-token {page.next_token}", file=out)
    return code


#: The subcommands of this module, in ``rune --help`` order.
COMMANDS: tuple[Subcommand, ...] = (
    Subcommand("search", "list the resources, subjects or actions a request pattern allows", _configure, run_search),
)
