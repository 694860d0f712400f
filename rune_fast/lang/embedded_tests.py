"""The vocabulary and value checks of an embedded ``[tests.NAME]`` table (docs/language.md §7).

An embedded test is a request written as TOML: its keys, the accepted
``expect`` values, entity references given as tables or strings, request
entities, and a ``context`` that must be JSON-like and bounded in depth.
Reading one into an ``EmbeddedTest`` is a job of its own, apart from cutting
and parsing the file; it is a mixin of the file parser
(``parser._FileParser``) so that every problem is a located
``RuneDataError`` reported with the rest of the file's errors.
"""

from __future__ import annotations

from typing import Any, Optional

from .ast import EmbeddedTest, Loc, RequestEntity
from ..errors import RuneDataError
from .sources import describe_bad_value
from ..values import INT_MAX, INT_MIN, Entity, parse_entity_literal
from .sections import SectionMixin, _KeyIndex

__all__ = ["EmbeddedTests"]


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


class EmbeddedTests(SectionMixin):
    """Mixin of ``parser._FileParser``: the ``[tests.NAME]`` sections.

    What it reads from the parser is declared by ``SectionMixin``.
    """

    # -- [tests.NAME]
    def embedded_test(self, name: str, t: dict, index: _KeyIndex) -> Optional[EmbeddedTest]:
        header = index.find(())
        ok = True
        label = f"[tests.{name}]"
        for k in t:
            if k not in _TEST_KEYS:
                self.error_at(RuneDataError, f"{label}: unknown key {k!r}; a test has "
                              f"{', '.join(_TEST_KEYS)}", index.find((k,)))
                ok = False
        ents: dict[str, Entity] = {}
        for k in ("principal", "action", "resource"):
            if k not in t:
                self.error_at(RuneDataError, f"{label}: missing {k} (an entity literal such as "
                              f"{_ENTITY_EXAMPLES[k]})", header)
                ok = False
                continue
            v = t[k]
            e = parse_entity_literal(v) if isinstance(v, str) else None
            if e is None:
                self.error_at(RuneDataError, f"{label}: {k} must be an entity literal written as a TOML literal "
                              f"string, such as {_ENTITY_EXAMPLES[k]}; found {_show(v)}", index.find((k,)))
                ok = False
            else:
                ents[k] = e
        context = t.get("context", {})
        if not isinstance(context, dict):
            self.error_at(RuneDataError, f"{label}: context must be a table such as {{ mfa = true }}; found "
                          f"{_show(context)}", index.find(("context",)))
            ok = False
        else:
            why = _json_problem(context, self.limits.max_nesting)
            if why:
                self.error_at(RuneDataError, f"{label}: context {why}", index.find(("context",)))
                ok = False
        entities = self.request_entities(label, t.get("entities", []), index.find(("entities",)))
        if entities is None:
            ok = False
        expect = t.get("expect")
        if expect is None:
            self.error_at(RuneDataError, f"{label}: missing expect (one of {', '.join(_EXPECT)})", header)
            ok = False
        elif expect not in _EXPECT:
            self.error_at(RuneDataError, f"{label}: expect must be one of {', '.join(_EXPECT)}; found "
                          f"{_show(expect)}", index.find(("expect",)))
            ok = False
        if not ok:
            return None
        return EmbeddedTest(name, ents["principal"], ents["action"], ents["resource"], context,
                            entities or (), str(expect), header)

    def request_entities(self, label: str, v: Any, loc: Loc) -> Optional[tuple[RequestEntity, ...]]:
        form = ("an array of tables { uid = { type = \"User\", id = \"alice\" }, attrs = { ... }, "
                "parents = [ ... ] } (uid and parents may also be entity literal strings)")
        if not isinstance(v, list):
            self.error_at(RuneDataError, f"{label}: entities must be {form}", loc)
            return None
        out = []
        for i, item in enumerate(v, 1):
            if not isinstance(item, dict):
                self.error_at(RuneDataError, f"{label}: entities element {i} is {_show(item)}; expected {form}", loc)
                return None
            unknown = [k for k in item if k not in ("uid", "attrs", "parents")]
            if unknown:
                self.error_at(RuneDataError, f"{label}: entities element {i}: unknown key {unknown[0]!r} "
                              "(expected uid, attrs, parents)", loc)
                return None
            uid = _entity_ref(item.get("uid"))
            if uid is None:
                self.error_at(RuneDataError, f"{label}: entities element {i}: uid must be "
                              "{ type = \"User\", id = \"alice\" } or 'User::\"alice\"'; found "
                              f"{_show(item.get('uid'))}", loc)
                return None
            attrs = item.get("attrs", {})
            why = _json_problem(attrs, self.limits.max_nesting) if isinstance(attrs, dict) else "must be a table"
            if why:
                self.error_at(RuneDataError, f"{label}: entities element {i}: attrs {why}", loc)
                return None
            parents_raw = item.get("parents", [])
            parents = [_entity_ref(p) for p in parents_raw] if isinstance(parents_raw, list) else [None]
            if any(p is None for p in parents):
                self.error_at(RuneDataError, f"{label}: entities element {i}: parents must be an array of "
                              "entities ({ type = ..., id = ... } or entity literal strings)", loc)
                return None
            out.append(RequestEntity(uid, attrs, tuple(parents)))  # type: ignore[arg-type]
        return tuple(out)
