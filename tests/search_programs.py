"""Random small bundles and requests for the search and explain property tests,
plus the obviously-correct references: brute-force search (``authorize`` over
every candidate) computed from the public API only.

The programs mix everything search and explain must get right: recursive
rules (groups, folders), negation, rules that read the request, forbid
policies, ``unless``, attribute comparisons that can error, context, ``in``
over the hierarchy, and request entities that add parents and attributes.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass

from hypothesis import strategies as st

from rune_fast import Entity

USERS = [f'User::"u{i}"' for i in range(3)]
GROUPS = [f'Group::"g{i}"' for i in range(3)]
DOCS = [f'Doc::"d{i}"' for i in range(4)]
FOLDERS = [f'Folder::"f{i}"' for i in range(3)]
ACTIONS = [f'Action::"a{i}"' for i in range(3)]

RULES = {
    "groups": [
        "in_group(M, G) :- member(M, G).",
        "in_group(M, G) :- member(M, H), in_group(H, G).",
    ],
    "below": [
        "below(R, F) :- located(R, F).",
        "below(R, F) :- located(R, P), below(P, F).",
    ],
    "can": [
        "can(U, A, R) :- in_group(U, G), grant(G, A, F), below(R, F).",
        "can(U, A, R) :- owner(R, U), A = Action::\"a0\".",
    ],
    "hidden": ['hidden(R) :- attr(R, "level", L), L > 1, not pinned(R).'],
    "cleared": ['cleared(U, R) :- principal(U), resource(R), attr(U, "level", C), attr(R, "level", L), C >= L.'],
    "parent_from_located": ["parent(R, F) :- located(R, F).", "parent(U, G) :- member(U, G)."],
    "ctx": ['flagged(R) :- resource(R), context("flag", true).'],
}

POLICIES = [
    'permit(principal, action, resource) when { can(principal, action, resource) };',
    'permit(principal in Group::"g0", action == Action::"a1", resource in Folder::"f0");',
    'forbid(principal, action, resource is Doc) when { classified(resource) } unless { cleared(principal, resource) };',
    'forbid(principal, action, resource) when { hidden(resource) };',
    'permit(principal is User, action in [Action::"a0", Action::"a2"], resource is Doc) when { context.flag } unless { hidden(resource) };',
    'forbid(principal, action, resource) when { context.level < resource.level };',
    'permit(principal, action, resource is Doc) when { resource has owner && resource.owner == principal };',
    'permit(principal == User::"u1", action, resource) when { flagged(resource) && !suspended(principal) };',
    'forbid(principal, action == Action::"a2", resource) unless { principal has level && principal.level > 0 };',
    'permit(principal, action, resource in Folder::"f1") when { principal.level >= 1 };',
]


def _rows(draw, a: list, b: list, n: int, least: int = 0) -> list:
    return draw(st.lists(st.tuples(st.sampled_from(a), st.sampled_from(b)).filter(lambda t: t[0] != t[1]),
                         min_size=least, max_size=n, unique=True))


@st.composite
def programs(draw) -> str:
    """The text of one random bundle."""
    member = _rows(draw, USERS + GROUPS, GROUPS, 8, 2)
    located = _rows(draw, DOCS + FOLDERS, FOLDERS, 8, 3)
    grant = draw(st.lists(st.tuples(st.sampled_from(GROUPS), st.sampled_from(ACTIONS), st.sampled_from(FOLDERS)),
                          min_size=1, max_size=6, unique=True))
    owner = _rows(draw, DOCS, USERS, 3)
    levels = draw(st.lists(st.tuples(st.sampled_from(USERS + DOCS), st.integers(0, 3)), max_size=5,
                           unique_by=lambda t: t[0]))
    pinned = draw(st.lists(st.sampled_from(DOCS), max_size=2, unique=True))
    suspended = draw(st.lists(st.sampled_from(USERS), max_size=1, unique=True))
    classified = draw(st.lists(st.sampled_from(DOCS), max_size=2, unique=True))
    parent_by_rule = draw(st.booleans())
    pols = draw(st.lists(st.sampled_from(POLICIES[1:]), max_size=4, unique=True))
    if draw(st.integers(0, 3)):  # the relation-lookup permit, most of the time
        pols.insert(0, POLICIES[0])
    if not pols:
        pols = [POLICIES[0]]

    def lit(rows):
        return "[" + ", ".join("[" + ", ".join(json.dumps(v) if not isinstance(v, str) or "::" not in v
                                                else repr(v) for v in r) + "]" for r in rows) + "]"

    lines = ['version = "rune/1"', "", "[data]"]
    lines.append(f"member = {lit(member)}")
    lines.append(f"located = {lit(located)}")
    lines.append(f"grant = {lit(grant)}")
    lines.append(f"owner = {lit(owner)}")
    lines.append(f"pinned = {lit([[d] for d in pinned])}")
    lines.append(f"suspended = {lit([[u] for u in suspended])}")
    lines.append(f"classified = {lit([[d] for d in classified])}")
    attrs = [[e, "level", n] for e, n in levels] + [[d, "owner", u] for d, u in owner]
    lines.append(f"attr = {lit(attrs)}")
    if not parent_by_rule:
        lines.append(f"parent = {lit(located + member)}")
    lines += ["", "[rules]"]
    for name, rs in RULES.items():
        if name == "parent_from_located" and not parent_by_rule:
            continue
        lines += rs
    lines += ["", "[policies]"]
    lines += pols
    return "\n".join(lines) + "\n"


@st.composite
def request_parts(draw) -> tuple:
    """(context, entities) of a random request."""
    ctx = {}
    if draw(st.booleans()):
        ctx["flag"] = draw(st.booleans())
    if draw(st.booleans()):
        ctx["level"] = draw(st.integers(0, 3))
    ents = None
    if draw(st.booleans()):
        ents = []
        uids = draw(st.lists(st.sampled_from(DOCS + ['Doc::"new"', 'User::"u0"', 'User::"new"']), max_size=2, unique=True))
        for uid in uids:
            item = {"uid": uid}
            attrs = {}
            if draw(st.booleans()):
                attrs["level"] = draw(st.integers(0, 3))
            if draw(st.booleans()):
                attrs["owner"] = {"__entity": {"type": "User", "id": draw(st.sampled_from(["u1", "u2", "u9"]))}}
            if attrs:
                item["attrs"] = attrs
            if draw(st.booleans()):
                item["parents"] = draw(st.lists(st.sampled_from(FOLDERS + GROUPS), max_size=2, unique=True))
            ents.append(item)
    return (ctx or None), ents


# ---------------------------------------------------------------------------
# The brute-force oracle


def _collect(x, out: set) -> None:
    if isinstance(x, Entity):
        out.add(x)
    elif isinstance(x, (str, int, float, bool)) or x is None:
        return
    elif isinstance(x, dict):
        for v in x.values():
            _collect(v, out)
    elif isinstance(x, (list, tuple, set, frozenset)):
        for v in x:
            _collect(v, out)
    elif is_dataclass(x):
        for f in fields(x):
            if f.name != "loc":
                _collect(getattr(x, f.name), out)


def _ent(x) -> Entity:
    return x if isinstance(x, Entity) else Entity.parse(x)


def all_candidates(engine, context, entities) -> set:
    """Every entity the engine or the request mentions (the documented candidate set)."""
    out: set = set()
    for rows in engine.model.relations().values():
        _collect(list(rows), out)
    _collect(engine.rules, out)
    _collect([p.policy for p in engine.policies], out)
    _collect(context or {}, out)
    for item in entities or []:
        out.add(_ent(item["uid"]))
        out.update(_ent(p) for p in item.get("parents", []))
        for v in (item.get("attrs") or {}).values():
            if isinstance(v, dict) and "__entity" in v:
                out.add(Entity(v["__entity"]["type"], v["__entity"]["id"]))
    return out


def ancestors(engine, entities, e: Entity, principal, action, resource, context) -> set:
    """Reflexive ``in`` targets of ``e`` under the request's hierarchy."""
    parents: dict = {}
    if "parent" in engine.model.compiled.slot_of:
        rows = engine.query("parent(X, Y)", principal=principal, action=action, resource=resource,
                            context=context, entities=entities)
        for b in rows:
            parents.setdefault(b["X"], set()).add(b["Y"])
    for row in engine.model.relations().get("parent", ()):
        parents.setdefault(row[0], set()).add(row[1])
    for item in entities or []:
        for p in item.get("parents", []):
            parents.setdefault(_ent(item["uid"]), set()).add(_ent(p))
    seen = {e}
    todo = [e]
    while todo:
        n = todo.pop()
        for p in parents.get(n, ()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def brute_resources(engine, principal, action, rtype, context, entities, within=None) -> list:
    out = []
    for r in sorted(all_candidates(engine, context, entities)):
        if r.type != rtype:
            continue
        if within is not None and _ent(within) not in ancestors(engine, entities, r, principal, action, r, context):
            continue
        if engine.authorize(principal, action, r, context, entities).allowed:
            out.append(r)
    return out


def brute_subjects(engine, action, resource, ptype, context, entities) -> list:
    return [p for p in sorted(all_candidates(engine, context, entities))
            if p.type == ptype and engine.authorize(p, action, resource, context, entities).allowed]


def brute_actions(engine, principal, resource, context, entities) -> list:
    return [a for a in sorted(all_candidates(engine, context, entities))
            if (a.type == "Action" or a.type.endswith("::Action"))
            and engine.authorize(principal, a, resource, context, entities).allowed]
