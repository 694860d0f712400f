"""The vocabulary and value checks of an embedded ``[tests.NAME]`` table (docs/language.md §7).

An embedded test is a request written as TOML: its keys, the accepted
``expect`` values, entity references given as tables or strings, and a
``context`` that must be JSON-like and bounded in depth.  The parser
(``parser._FileParser.embedded_test``) reports problems with these values
as located ``RuneDataError``s; what counts as a problem, and how a value is
shown in the message, is kept here, apart from the file parser.
"""

from __future__ import annotations

from typing import Any, Optional

from .sources import (
    describe_bad_value,
)
from ..values import INT_MAX, INT_MIN, Entity, parse_entity_literal


_TEST_KEYS = ("principal", "action", "resource", "context", "entities", "expect", "description")
_EXPECT = ("permit", "deny", "forbid")
_ENTITY_EXAMPLES = {
    "principal": "'User::\"alice\"'",
    "action": "'Action::\"read\"'",
    "resource": "'Document::\"d1\"'",
}


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return describe_bad_value(v)


def _entity_ref(v: Any) -> Optional[Entity]:
    """``'User::"alice"'`` or ``{type = "User", id = "alice"}`` (Cedar JSON) -> Entity."""
    if isinstance(v, str):
        return parse_entity_literal(v)
    if isinstance(v, dict) and set(v) == {"type", "id"}:
        ty, ident = v["type"], v["id"]
        if isinstance(ty, str) and isinstance(ident, str) and parse_entity_literal(str(Entity(ty, ident))):
            return Entity(ty, ident)
    return None


def _json_problem(v: Any, max_depth: int, depth: int = 0) -> str:
    """Why ``v`` cannot travel as a JSON request value ("" if it can).

    Context and attrs are handed to the engine exactly as a JSON request
    would be, so TOML-only kinds (dates, times) are refused here.
    """
    if depth > max_depth:
        return f"is nested more than {max_depth} deep"
    t = type(v)
    if t is str or t is bool:
        return ""
    if t is int:
        return "" if INT_MIN <= v <= INT_MAX else f"holds {describe_bad_value(v)}"
    if t is float:
        return "" if v == v else f"holds {describe_bad_value(v)}"
    if t is list:
        for x in v:
            why = _json_problem(x, max_depth, depth + 1)
            if why:
                return why
        return ""
    if t is dict:
        for x in v.values():
            why = _json_problem(x, max_depth, depth + 1)
            if why:
                return why
        return ""
    return f"holds {describe_bad_value(v)}"
