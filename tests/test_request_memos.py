"""Memos on the decision path must never let one request decide another.

Regression tests for the candidate-memo wrong permit (a rule derived the
action's ``parent`` from the request, and the first request's selection of
policies was reused for later ones), for the entity facts kept out of the
core while the request's model answered ``in`` and attribute reads, and a
differential test: random request sequences, in random orders, against one
long-lived engine (every memo and the decision cache warm) and against a
fresh engine per request (every memo cold), and each fresh decision against
an oracle built from the reference Datalog and policy evaluators (no
precomputed model, no per-request strata, no overlays). All must be equal.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_datalog
import reference_policies
import rune_fast
from rune_fast.engine import Engine
from rune_fast.lang import parser
from rune_fast.policy.policies import FactData, OverlayData, compile_policies, context_rows

HEADER = 'version = "rune/1"\n'

ARCHIVE = HEADER + """
[data]
attr = [['Doc::"old"', "archived", true], ['Doc::"live"', "archived", false]]
[rules]
parent(A, Action::"archive_ops") :- action(A), resource(R), attr(R, "archived", true).
[policies]
permit(principal, action in Action::"archive_ops", resource);
"""

ARCHIVE_NO_DATA = HEADER + """
[rules]
parent(A, Action::"archive_ops") :- action(A), resource(R), attr(R, "archived", true).
[policies]
permit(principal, action in Action::"archive_ops", resource);
"""

EVE, DELETE, OLD, LIVE = 'User::"eve"', 'Action::"delete"', 'Doc::"old"', 'Doc::"live"'


GENERATORS = {"codegen": None, "reference": reference_policies.generate}


def backends() -> list[str]:
    return sorted(GENERATORS)


def load(text: str, cache_size: int, backend: str) -> Engine:
    return rune_fast.load_text(text, cache_size=cache_size, policy_generator=GENERATORS[backend])


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("cache_size", [0, 4096])
def test_action_parent_derived_from_data_is_not_memoized(backend, cache_size):
    e = load(ARCHIVE, cache_size, backend)
    assert e.authorize(EVE, DELETE, OLD).decision == "permit"
    assert e.authorize(EVE, DELETE, LIVE).decision == "deny"
    assert e.authorize(EVE, DELETE, OLD).decision == "permit"
    e2 = load(ARCHIVE, cache_size, backend)
    assert e2.authorize(EVE, DELETE, LIVE).decision == "deny"
    assert e2.authorize(EVE, DELETE, OLD).decision == "permit"


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("cache_size", [0, 4096])
def test_action_parent_derived_from_request_entities_is_not_memoized(backend, cache_size):
    e = load(ARCHIVE_NO_DATA, cache_size, backend)
    old = [{"uid": {"type": "Doc", "id": "old"}, "attrs": {"archived": True}}]
    live = [{"uid": {"type": "Doc", "id": "live"}, "attrs": {"archived": False}}]
    assert e.authorize(EVE, DELETE, OLD, entities=old).decision == "permit"
    assert e.authorize(EVE, DELETE, LIVE, entities=live).decision == "deny"
    assert e.authorize(EVE, DELETE, LIVE).decision == "deny"
    # The action's own parents given by the request, then not.
    own = [{"uid": {"type": "Action", "id": "delete"}, "parents": [{"type": "Action", "id": "archive_ops"}]}]
    assert e.authorize(EVE, DELETE, LIVE, entities=own).decision == "permit"
    assert e.authorize(EVE, DELETE, LIVE).decision == "deny"


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("cache_size", [0, 4096])
def test_action_parent_derived_from_request_entity_attributes(backend, cache_size):
    text = HEADER + """
[rules]
parent(X, G) :- attr(X, "group", G).
[policies]
permit(principal, action in Action::"ops", resource);
"""
    e = load(text, cache_size, backend)
    grouped = [{"uid": {"type": "Action", "id": "delete"}, "attrs": {"group": {"__entity": {"type": "Action", "id": "ops"}}}}]
    other = [{"uid": {"type": "Doc", "id": "x"}, "attrs": {"n": 1}}]
    assert e.authorize(EVE, DELETE, LIVE, entities=grouped).decision == "permit"
    assert e.authorize(EVE, DELETE, LIVE, entities=other).decision == "deny"
    e2 = load(text, cache_size, backend)
    assert e2.authorize(EVE, DELETE, LIVE, entities=other).decision == "deny"
    assert e2.authorize(EVE, DELETE, LIVE, entities=grouped).decision == "permit"


@pytest.mark.parametrize("backend", backends())
def test_stored_hierarchy_is_seen_when_rules_derive_attributes_per_request(backend):
    # ``parent`` is read by no rule, ``attr`` is derived from the request: the
    # request's model answers ``in``, so it must hold the stored parents.
    text = HEADER + """
[data]
parent = [['User::"mallory"', 'Group::"bad"']]
[rules]
attr(R, "seen", true) :- resource(R).
[policies]
permit(principal, action, resource);
forbid(principal in Group::"bad", action, resource);
"""
    e = load(text, 0, backend)
    assert e.authorize('User::"mallory"', 'Action::"x"', 'Doc::"d"').decision == "forbid"


@pytest.mark.parametrize("backend", backends())
def test_stored_attributes_are_seen_when_rules_derive_parents_per_request(backend):
    text = HEADER + """
[data]
attr = [['User::"mallory"', "banned", true]]
[rules]
parent(R, Folder::"f") :- resource(R).
[policies]
permit(principal, action, resource);
forbid(principal, action, resource) when { principal.banned };
"""
    e = load(text, 0, backend)
    d = e.authorize('User::"mallory"', 'Action::"x"', 'Doc::"d"')
    assert d.decision == "forbid" and not d.errors


# ---------------------------------------------------------------------------
# Differential: warm engine vs fresh engines

RULES = [
    'parent(A, Action::"ops") :- action(A), resource(R), attr(R, "archived", true).',
    'parent(P, Group::"g") :- principal(P), context("admin", true).',
    'attr(R, "level", 3) :- resource(R), attr(R, "archived", true).',
    'parent(X, G) :- attr(X, "group", G).',
    'parent(R, Folder::"f") :- resource(R), context("n", 1).',
    'attr(P, "banned", true) :- principal(P), parent(P, Group::"bad").',
    'parent(A, Action::"ops") :- action(A), principal(P), attr(P, "role", "admin").',
    # Request-dependent relations that are not parent/attr (the planned path):
    'banned(P) :- principal(P), parent(P, Group::"bad").',
    'archived(R) :- resource(R), attr(R, "archived", true).',
    'ok(P, R) :- principal(P), resource(R), context("admin", true).',
    'ok(P, R) :- principal(P), resource(R), parent(R, Folder::"f").',
]

POLICIES = [
    'permit(principal, action in Action::"ops", resource);',
    'permit(principal in Group::"g", action, resource);',
    'forbid(principal, action, resource) when { principal has banned && principal.banned };',
    'permit(principal, action == Action::"read", resource in Folder::"f");',
    'forbid(principal, action in Action::"ops", resource) when { resource has level && resource.level > 2 };',
    'permit(principal, action, resource) when { resource has archived };',
    'forbid(principal in Group::"bad", action, resource);',
    'forbid(principal, action in [Action::"ops", Action::"read"], resource is Doc) when { resource.archived };',
    'permit(principal is User, action, resource) unless { context.admin };',
    'forbid(principal, action, resource) when { banned(principal) };',
    'permit(principal, action == Action::"read", resource) when { archived(resource) };',
    'permit(principal, action, resource) when { ok(principal, resource) };',
    'forbid(principal, action == Action::"delete", resource) unless { ok(_, resource) };',
]

DATA = [
    """attr = [['Doc::"old"', "archived", true], ['Doc::"live"', "archived", false]]""",
    """parent = [['User::"mallory"', 'Group::"bad"'], ['Doc::"live"', 'Folder::"f"']]""",
]

PRINCIPALS = ['User::"eve"', 'User::"mallory"']
ACTIONS = ['Action::"delete"', 'Action::"read"']
RESOURCES = ['Doc::"old"', 'Doc::"live"', 'Doc::"new"']


def _uid(text: str) -> dict:
    e = rune_fast.Entity.parse(text)
    return {"type": e.type, "id": e.id}


REQUEST_ENTITIES = [
    {"uid": _uid('Doc::"new"'), "attrs": {"archived": True}},
    {"uid": _uid('Doc::"live"'), "attrs": {"archived": True}},
    {"uid": _uid('Action::"delete"'), "parents": [_uid('Action::"ops"')]},
    {"uid": _uid('User::"eve"'), "attrs": {"group": {"__entity": _uid('Group::"g"')}}},
    {"uid": _uid('Action::"read"'), "attrs": {"group": {"__entity": _uid('Action::"ops"')}}},
    {"uid": _uid('User::"eve"'), "parents": [_uid('Group::"bad"')]},
    {"uid": _uid('User::"mallory"'), "attrs": {"role": "admin"}},
]


@st.composite
def bundles(draw):
    rules = draw(st.lists(st.sampled_from(RULES), min_size=1, max_size=4, unique=True))
    defined = {r.split("(", 1)[0] for r in rules}
    usable = [p for p in POLICIES if all(n in defined for n in ("banned", "archived", "ok") if f"{n}(" in p)]
    policies = draw(st.lists(st.sampled_from(usable), min_size=1, max_size=5, unique=True))
    data = draw(st.lists(st.sampled_from(DATA), min_size=1, max_size=2, unique=True))
    return (HEADER + "[data]\n" + "\n".join(data) + "\n[rules]\n" + "\n".join(rules)
            + "\n[policies]\n" + "\n".join(policies) + "\n")


@st.composite
def requests(draw):
    ctx = draw(st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "admin": st.booleans(), "n": st.sampled_from([1, 1.0, 2])})))
    picked = draw(st.lists(st.integers(0, len(REQUEST_ENTITIES) - 1), max_size=2, unique=True))
    uids = set()
    ents = []
    for i in picked:
        ent = REQUEST_ENTITIES[i]
        key = (ent["uid"]["type"], ent["uid"]["id"])
        if key not in uids:
            uids.add(key)
            ents.append(ent)
    entities = draw(st.sampled_from([None, ents])) if ents else None
    return (draw(st.sampled_from(PRINCIPALS)), draw(st.sampled_from(ACTIONS)),
            draw(st.sampled_from(RESOURCES)), ctx, entities)


def _outcome(d):
    return (d.decision, d.reasons, d.errors)


def oracle(bundle, engine: Engine, req) -> tuple:
    """The decision computed without any of the engine's machinery: the
    reference Datalog evaluator over stored facts + the request's facts (no
    precomputed model, no per-request strata, no overlays of the core), the
    hierarchy and attributes read from that model, request attributes laid
    over them, and the reference policy evaluator."""
    p, a, r, ctx, ents = engine._parse_request(*req)
    facts: dict = {}
    for fs in bundle.facts:
        facts.setdefault(fs.relation, []).extend(fs.rows)
    facts.update(principal=[(p,)], action=[(a,)], resource=[(r,)], context=context_rows(ctx))
    if ents is not None:
        facts["parent"] = facts.get("parent", []) + ents.parent_rows
        facts["attr"] = facts.get("attr", []) + ents.attr_rows
    ref = reference_datalog.evaluate(engine.rules, engine.info.strata, facts)
    model = {name: {tuple(v for _kind, v in row) for row in rows} for name, rows in ref.items()}
    data = FactData.from_facts(model.get("parent", ()), model.get("attr", ()), relations=model)
    if ents is not None and ents.attrs:
        data = OverlayData(data, None, ents.attrs)
    pset = compile_policies(bundle.policies, generator=reference_policies.generate)
    return pset.evaluate(p, a, r, ctx, data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bundles(), st.lists(requests(), min_size=3, max_size=10), st.sampled_from([0, 64]),
       st.sampled_from(backends()), st.randoms())
def test_warm_engine_decides_like_fresh_engines(text, reqs, cache_size, backend, rnd):
    bundle = parser.bundle_from_text(text, "<diff>")
    warm = Engine(bundle, cache_size=cache_size, policy_generator=GENERATORS[backend])
    # Each request twice, in a random order: hits of every memo and the cache.
    order = reqs + reqs
    rnd.shuffle(order)
    expected: dict = {}
    for req in order:
        key = repr(req)
        if key not in expected:
            fresh = Engine(bundle, cache_size=0, policy_generator=GENERATORS[backend])
            expected[key] = _outcome(fresh.authorize(*req))
            assert expected[key] == oracle(bundle, fresh, req), (text, req)
        assert _outcome(warm.authorize(*req)) == expected[key], (text, req)
    # The batch path shares the memos: same answers.
    batch = warm.authorize_batch([dict(zip(("principal", "action", "resource", "context", "entities"), r))
                                  for r in order])
    assert [_outcome(d) for d in batch] == [expected[repr(r)] for r in order]
