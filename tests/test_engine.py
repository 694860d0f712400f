"""The Engine: loading, authorize (all input forms), bad requests, request
entities and per-request rules, the decision cache, fail-closed behaviour,
batches, queries, embedded tests and the eval/test/query subcommands."""

from __future__ import annotations

import json
import os
import threading

import pytest

import rune_fast
from rune_fast import Entity, RuneError, RuneRequestError
from rune_fast.engine import ENGINE_ERROR_ID, Decision, Engine, load, load_text
from rune_fast.test_report import TestResult

BUNDLE = r'''
version = "rune/1"

[data]
member = [
  ['User::"alice"', 'Group::"eng"'],
  ['User::"bob"',   'Group::"ops"'],
  ['Group::"eng"',  'Group::"staff"'],
]
parent = [
  ['User::"alice"', 'Group::"eng"'],
  ['User::"bob"',   'Group::"ops"'],
  ['Group::"eng"',  'Group::"staff"'],
  ['Doc::"d1"',     'Folder::"f1"'],
  ['Action::"read"', 'Action::"readish"'],
]
attr = [
  ['User::"alice"', "clearance", 3],
  ['User::"bob"',   "clearance", 1],
  ['User::"bob"',   "suspended", true],
  ['Doc::"d1"',     "owner", 'User::"alice"'],
  ['Doc::"d1"',     "level", 2],
  ['Doc::"d2"',     "owner", 'User::"bob"'],
  ['Doc::"d2"',     "level", 5],
]
grant = [['Group::"staff"', 'Folder::"f1"']]

[rules]
in_group(M, G) :- member(M, G).
in_group(M, G) :- member(M, H), in_group(H, G).
can_read(U, D) :- in_group(U, G), grant(G, F), parent(D, F).
cleared(U, D) :- principal(U), resource(D), attr(U, "clearance", C), attr(D, "level", L), C >= L.
mfa_ok(U) :- principal(U), context("mfa", true).

[policies]
@id("read-granted")
permit(principal, action in Action::"readish", resource is Doc)
  when { can_read(principal, resource) };

@id("owner")
permit(principal is User, action, resource is Doc)
  when { resource has owner && resource.owner == principal };

@id("suspended")
forbid(principal, action, resource)
  when { principal has suspended && principal.suspended };

@id("clearance")
forbid(principal, action, resource is Doc)
  unless { cleared(principal, resource) };

@id("admin-mfa")
permit(principal in Group::"admins", action, resource)
  when { mfa_ok(principal) };

[tests.alice_reads_d1]
principal = 'User::"alice"'
action    = 'Action::"read"'
resource  = 'Doc::"d1"'
expect    = "permit"

[tests.bob_is_suspended]
principal = 'User::"bob"'
action    = 'Action::"read"'
resource  = 'Doc::"d2"'
expect    = "forbid"

[tests.wrong_on_purpose]
principal = 'User::"carol"'
action    = 'Action::"read"'
resource  = 'Doc::"d1"'
expect    = "permit"
'''

ALICE = 'User::"alice"'
READ = 'Action::"read"'
D1 = 'Doc::"d1"'


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_text(BUNDLE)


def fresh(**kw) -> Engine:
    return load_text(BUNDLE, **kw)


# ---------------------------------------------------------------------------
# Loading


def test_exports():
    assert rune_fast.load is load and rune_fast.load_text is load_text
    assert rune_fast.Engine is Engine and rune_fast.Decision is Decision


def test_load_file_and_directory(tmp_path):
    f = tmp_path / "a.rune"
    f.write_text(BUNDLE)
    e1 = load(str(f))
    assert e1.authorize(ALICE, READ, D1).allowed
    assert str(f) in e1.watched_paths or os.path.abspath(str(f)) in e1.watched_paths
    e2 = load(tmp_path)
    assert e2.authorize(ALICE, READ, D1).allowed
    assert e1.version and len(e1.version) >= 16


def test_version_is_content_hash():
    assert fresh().version == fresh().version
    assert load_text(BUNDLE.replace('"clearance", 3', '"clearance", 4')).version != fresh().version


def test_load_errors_are_rune_errors():
    with pytest.raises(RuneError):
        load_text('version = "rune/1"\n[policies]\npermit(principal, action resource);\n')
    with pytest.raises(RuneError):
        load("/nonexistent/path.rune")
    with pytest.raises(TypeError):
        load_text(BUNDLE, no_such_limit=3)


def test_repr_and_introspection(engine):
    assert "Engine" in repr(engine)
    assert engine.policy_ids == ("read-granted", "owner", "suspended", "clearance", "admin-mfa")
    assert engine.cache_size == 4096


# ---------------------------------------------------------------------------
# authorize


@pytest.mark.parametrize(
    "principal,action,resource",
    [
        (ALICE, READ, D1),
        (("User", "alice"), ("Action", "read"), ("Doc", "d1")),
        (Entity("User", "alice"), Entity("Action", "read"), Entity("Doc", "d1")),
        (Entity("User", "alice"), READ, ("Doc", "d1")),
        ({"type": "User", "id": "alice"}, READ, D1),
    ],
)
def test_authorize_entity_forms(principal, action, resource):
    e = fresh()
    d = e.authorize(principal, action, resource)
    assert d.decision == "permit" and d.allowed and bool(d)
    assert d.reasons == ("read-granted", "owner")
    assert d.errors == () and d.cached is False and d.version == e.version


def test_forbid_and_deny(engine):
    d = engine.authorize('User::"bob"', READ, 'Doc::"d2"')
    assert d.decision == "forbid" and not d.allowed and not d
    assert set(d.reasons) == {"suspended", "clearance"}
    d = engine.authorize('User::"carol"', READ, 'Folder::"f1"')
    assert d.decision == "deny" and d.reasons == ()
    # carol has no clearance attribute: cleared() derives nothing -> forbid by "clearance"
    d = engine.authorize('User::"carol"', READ, D1)
    assert d.decision == "forbid" and d.reasons == ("clearance",)


def test_per_request_rules_use_the_request(engine):
    # alice (3) is cleared for d1 (level 2) but not for d2 (level 5)
    assert engine.authorize(ALICE, 'Action::"write"', D1).decision == "permit"
    assert engine.authorize(ALICE, 'Action::"write"', 'Doc::"d2"').decision == "forbid"


def test_context_reaches_rules_and_policies():
    e = fresh()
    admin = [{"uid": {"type": "User", "id": "root"}, "parents": [{"type": "Group", "id": "admins"}], "attrs": {"clearance": 9}}]
    d = e.authorize('User::"root"', READ, D1, {"mfa": True}, admin)
    assert d.decision == "permit" and "admin-mfa" in d.reasons
    assert e.authorize('User::"root"', READ, D1, {"mfa": False}, admin).decision == "deny"
    assert e.authorize('User::"root"', READ, D1, {"mfa": 1}, admin).decision == "deny"  # 1 is not true


def test_request_entities_override_attributes_and_add_parents():
    e = fresh()
    # bob is suspended in the data; the request says otherwise for this request only
    ents = [{"uid": 'User::"bob"', "attrs": {"suspended": False, "clearance": 9}, "parents": []}]
    d = e.authorize('User::"bob"', READ, 'Doc::"d2"', None, ents)
    assert d.decision == "permit" and d.reasons == ("owner",)
    assert e.authorize('User::"bob"', READ, 'Doc::"d2"').decision == "forbid"
    # a new parent: carol joins eng (-> staff) for this request; rules see it too
    ents = [{"uid": {"type": "User", "id": "carol"}, "attrs": {"clearance": 5}, "parents": ['Group::"eng"']}]
    assert e.authorize('User::"carol"', READ, D1, None, ents).decision == "deny"  # can_read reads member, not parent
    text = BUNDLE.replace("when { can_read(principal, resource) };", 'when { principal in Group::"staff" };')
    e2 = load_text(text)
    assert e2.authorize('User::"carol"', READ, D1, None, ents).decision == "permit"
    assert e2.authorize('User::"carol"', READ, D1).decision != "permit"


def test_request_entity_attr_facts_reach_rules():
    e = fresh()
    ents = [{"uid": 'User::"carol"', "attrs": {"clearance": 7}}]
    d = e.authorize('User::"carol"', 'Action::"write"', D1, None, ents)
    assert d.decision == "deny" and d.reasons == ()  # cleared now, but nothing permits
    assert e.authorize('User::"carol"', 'Action::"write"', D1).decision == "forbid"


# ---------------------------------------------------------------------------
# Bad requests


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(principal="User::alice"), "principal"),
        (dict(principal='User::"alice'), "principal"),
        (dict(principal=("User", "alice", "x")), "principal"),
        (dict(principal=("", "alice")), "principal"),
        (dict(principal=("User", 3)), "principal"),
        (dict(principal=None), "principal"),
        (dict(principal=["User", "alice"]), "principal"),
        (dict(action=42), "action"),
        (dict(resource={"type": "Doc"}), "resource"),
        (dict(context="mfa=true"), "context"),
        (dict(context=[1, 2]), "context"),
        (dict(context={"a": None}), "context.a"),
        (dict(context={"a": {"b": object()}}), "context.a.b"),
        (dict(context={"n": 2**70}), "context.n"),
        (dict(context={1: 2}), "context"),
        (dict(entities="nope"), "entities"),
        (dict(entities={"uid": ALICE}), "entities"),
        (dict(entities=[{"attrs": {}}]), "entities[0].uid"),
        (dict(entities=[{"uid": "bad"}]), "entities[0].uid"),
        (dict(entities=[{"uid": ALICE, "parents": "Group::\"x\""}]), "entities[0].parents"),
        (dict(entities=[{"uid": ALICE, "parents": ["bad"]}]), "entities[0].parents[0]"),
        (dict(entities=[{"uid": ALICE, "attrs": [1]}]), "entities[0].attrs"),
        (dict(entities=[{"uid": ALICE, "extra": 1}]), "entities[0]"),
        (dict(entities=[{"uid": ALICE}, {"uid": ALICE}]), "entities[1].uid"),
        (dict(entities=[3]), "entities[0]"),
    ],
)
def test_bad_requests_raise_request_error(engine, kwargs, field):
    req = dict(principal=ALICE, action=READ, resource=D1, context=None, entities=None)
    req.update(kwargs)
    with pytest.raises(RuneRequestError) as info:
        engine.authorize(**req)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)  # and never a bare TypeError/KeyError


def test_bad_requests_are_not_cached(engine):
    for _ in range(2):
        with pytest.raises(RuneRequestError):
            engine.authorize("User::alice", READ, D1)


# ---------------------------------------------------------------------------
# Cache


def test_cache_hits_are_flagged_and_cheap():
    e = fresh()
    first = e.authorize(ALICE, READ, D1)
    second = e.authorize(ALICE, READ, D1)
    assert not first.cached and second.cached
    assert second.decision == first.decision and second.reasons == first.reasons
    assert e.authorize(ALICE, READ, D1) is second  # a hit allocates nothing
    assert e.cache_len() == 1


def test_cache_keys_include_context_and_entities():
    e = fresh()
    admin = [{"uid": 'User::"root"', "parents": ['Group::"admins"'], "attrs": {"clearance": 9}}]
    assert e.authorize('User::"root"', READ, D1, {"mfa": True}, admin).allowed
    assert not e.authorize('User::"root"', READ, D1, {"mfa": 1}, admin).allowed  # True vs 1 kept apart
    assert not e.authorize('User::"root"', READ, D1, {"mfa": 1.0}, admin).allowed
    assert not e.authorize('User::"root"', READ, D1, {"mfa": True}, None).allowed
    hit = e.authorize('User::"root"', READ, D1, {"mfa": True}, admin)
    assert hit.cached and hit.allowed


def test_cache_disabled():
    e = fresh(cache_size=0)
    e.authorize(ALICE, READ, D1)
    assert not e.authorize(ALICE, READ, D1).cached
    assert e.cache_len() == 0 and e.cache_size == 0


def test_cache_is_bounded_and_keeps_hot_entries():
    e = fresh(cache_size=10)
    e.authorize(ALICE, READ, D1)
    for i in range(200):
        e.authorize(ALICE, READ, f'Doc::"x{i}"')
        assert e.authorize(ALICE, READ, D1).cached  # hit at least once per generation: survives
        assert e.cache_len() <= 10
    e.clear_cache()
    assert not e.authorize(ALICE, READ, D1).cached


def test_new_engine_starts_with_an_empty_cache():
    e1 = fresh()
    e1.authorize(ALICE, READ, D1)
    assert e1.authorize(ALICE, READ, D1).cached
    assert not fresh().authorize(ALICE, READ, D1).cached


def test_cache_size_validation():
    with pytest.raises(ValueError):
        fresh(cache_size=-1)


def test_concurrent_authorize_is_consistent():
    e = fresh(cache_size=64)
    requests = [(ALICE, READ, D1), ('User::"bob"', READ, 'Doc::"d2"')] + [('User::"carol"', READ, f'Doc::"z{i}"') for i in range(100)]
    expected = {r: fresh(cache_size=0).authorize(*r).decision for r in requests}
    failures = []

    def worker(seed: int) -> None:
        for k in range(600):
            r = requests[(seed * 7 + k) % len(requests)]
            if e.authorize(*r).decision != expected[r]:
                failures.append(r)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---------------------------------------------------------------------------
# Fail closed


def test_internal_failure_denies_with_the_error(monkeypatch):
    e = fresh()
    assert e.authorize(ALICE, READ, D1).allowed

    def broken(entity, name):
        raise RuntimeError("disk on fire")

    class BrokenRecord(dict):
        def get(self, name, default=None):
            broken(None, name)

    e.clear_cache()
    # Attribute reads fail: through ``get_attr`` (FactData has __slots__:
    # patch the class for this test) and, on the linked fast path, through
    # the attribute map the generated code reads directly.
    monkeypatch.setattr(type(e._static), "get_attr", lambda self, entity, name: broken(entity, name))
    attrs = e._static.attr_map()
    saved = dict(attrs)
    for k in saved:
        attrs[k] = BrokenRecord(saved[k])
    try:
        d = e.authorize(ALICE, READ, D1)
        assert d.decision == "deny" and not d.allowed and d.reasons == ()
        assert d.errors and d.errors[0][0] == ENGINE_ERROR_ID and "disk on fire" in d.errors[0][1]
    finally:
        attrs.update(saved)
    # never cached: once the fault is gone the engine answers normally again
    monkeypatch.undo()
    assert e.authorize(ALICE, READ, D1).allowed


def test_internal_failure_in_a_forbid_never_permits(monkeypatch):
    e = fresh()
    # bob would be permitted as owner of d2 if the forbids were skipped
    ents = [{"uid": 'User::"bob"', "attrs": {"clearance": 9}}]
    orig = Engine._request_model

    def boom(self, *args):
        raise KeyError("internal")

    monkeypatch.setattr(Engine, "_request_model", boom)
    d = e.authorize('User::"bob"', READ, 'Doc::"d2"', None, ents)
    assert d.decision == "deny" and d.errors[0][0] == ENGINE_ERROR_ID
    monkeypatch.setattr(Engine, "_request_model", orig)


def test_limit_while_evaluating_rules_denies():
    e = load_text(BUNDLE, max_request_tuples=0)
    d = e.authorize(ALICE, 'Action::"write"', D1)
    assert d.decision == "deny"
    assert d.errors and d.errors[0][0] == ENGINE_ERROR_ID and "max_request_tuples" in d.errors[0][1]


# ---------------------------------------------------------------------------
# Batch


def test_authorize_batch(engine):
    out = engine.authorize_batch([
        {"principal": ALICE, "action": READ, "resource": D1},
        (ALICE, 'Action::"write"', 'Doc::"d2"'),
        ('User::"root"', READ, D1, {"mfa": True}, [{"uid": 'User::"root"', "parents": ['Group::"admins"'], "attrs": {"clearance": 5}}]),
    ])
    assert [d.decision for d in out] == ["permit", "forbid", "permit"]


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"principal": ALICE, "action": READ}, "requests[1].resource"),
        ({"principal": "nope", "action": READ, "resource": D1}, "requests[1].principal"),
        ({"principal": ALICE, "action": READ, "resource": D1, "extra": 1}, "requests[1].extra"),
        ((ALICE, READ), "requests[1]"),
        ("text", "requests[1]"),
    ],
)
def test_authorize_batch_validates_everything_first(engine, bad, field):
    with pytest.raises(RuneRequestError) as info:
        engine.authorize_batch([(ALICE, READ, D1), bad])
    assert info.value.field == field


# ---------------------------------------------------------------------------
# Query


def test_query_static_model(engine):
    rows = engine.query('can_read(U, Doc::"d1")')
    assert {r["U"] for r in rows} == {Entity("User", "alice"), Entity("Group", "eng")}
    assert engine.query('in_group(User::"alice", Group::"staff")') == [{}]
    assert engine.query('in_group(User::"bob", Group::"staff")') == []


def test_query_with_a_request(engine):
    assert engine.query("cleared(U, D)") == []
    rows = engine.query("cleared(U, D)", principal=ALICE, resource=D1)
    assert rows == [{"U": Entity("User", "alice"), "D": Entity("Doc", "d1")}]
    assert engine.query("mfa_ok(U)", principal=ALICE, context={"mfa": True}) == [{"U": Entity("User", "alice")}]
    with pytest.raises(RuneRequestError):
        engine.query("cleared(U, D)", principal="bad")


def test_query_errors(engine):
    with pytest.raises(RuneError):
        engine.query("no_such_relation(X)")
    with pytest.raises(RuneError):
        engine.query("can_read(X")


# ---------------------------------------------------------------------------
# Embedded tests


def test_run_tests(engine):
    results = engine.run_tests()
    assert [r.name for r in results] == ["alice_reads_d1", "bob_is_suspended", "wrong_on_purpose"]
    assert [r.passed for r in results] == [True, True, False]
    bad = results[2]
    assert isinstance(bad, TestResult) and bad.expected == "permit" and bad.actual == "forbid"
    assert bad.line > 0 and "expected permit, got forbid" in bad.render()


def test_run_tests_does_not_touch_the_cache():
    e = fresh()
    e.run_tests()
    assert e.cache_len() == 0


# ---------------------------------------------------------------------------
# Decision


def test_decision_is_frozen_and_serializable(engine):
    d = engine.authorize(ALICE, READ, D1)
    with pytest.raises(Exception):
        d.decision = "deny"  # type: ignore[misc]
    assert not hasattr(d, "__dict__")
    data = d.to_dict()
    assert json.loads(json.dumps(data))["reasons"] == ["read-granted", "owner"]


def test_policy_errors_are_reported_and_cached_with_them():
    text = BUNDLE.replace('@id("owner")', '@id("broken")\npermit(principal, action, resource) when { principal.nope };\n@id("owner")')
    e = load_text(text)
    d = e.authorize(ALICE, READ, D1)
    assert d.allowed and d.errors == (("broken", '`User::"alice"` does not have the attribute `nope`'),)
    again = e.authorize(ALICE, READ, D1)
    assert again.cached and again.errors == d.errors


# ---------------------------------------------------------------------------
# Hierarchies and attributes derived by rules


DERIVED = r'''
version = "rune/1"

[data]
attr = [['User::"alice"', "team", 'Team::"red"']]
vip_flag = ["vip"]

[rules]
parent(U, Group::"vip") :- principal(U), context("vip", true).
parent(U, T) :- attr(U, "team", T).
attr(U, "badge", "gold") :- principal(U), context("vip", true).

[policies]
@id("vip") permit(principal in Group::"vip", action, resource);
@id("red") permit(principal in Team::"red", action == Action::"red", resource);
@id("badge") permit(principal, action == Action::"badge", resource) when { principal has badge && principal.badge == "gold" };
'''


def test_parent_and_attr_derived_per_request():
    e = load_text(DERIVED)
    assert e.authorize(ALICE, READ, D1, {"vip": True}).reasons == ("vip",)
    assert e.authorize(ALICE, READ, D1, {"vip": False}).decision == "deny"
    assert e.authorize(ALICE, 'Action::"badge"', D1, {"vip": True}).reasons == ("vip", "badge")
    assert e.authorize(ALICE, 'Action::"badge"', D1).decision == "deny"


def test_parent_derived_from_request_entity_attributes():
    e = load_text(DERIVED)
    assert e.authorize(ALICE, 'Action::"red"', D1).allowed  # from the stored attr
    bob = [{"uid": 'User::"bob"', "attrs": {"team": {"__entity": {"type": "Team", "id": "red"}}}}]
    assert e.authorize('User::"bob"', 'Action::"red"', D1, None, bob).allowed
    assert not e.authorize('User::"bob"', 'Action::"red"', D1).allowed


def test_engine_is_immutable(engine):
    with pytest.raises(AttributeError):
        engine.version = "x"
    with pytest.raises(AttributeError):
        engine.policies = None


# ---------------------------------------------------------------------------
# Relation calls: snapshots, lazy tries, kinds kept apart

RELS = r'''
version = "rune/1"

[data]
can = [
  ['User::"a"', 'Action::"read"', 'Doc::"1"'],
  ['User::"a"', 'Action::"edit"', 'Doc::"2"'],
  ['User::"b"', 'Action::"read"', 'Doc::"2"'],
]
setting = [["x", 1], ["y", true], ["z", 2.5]]

[policies]
@id("exact") permit(principal, action, resource) when { can(principal, action, resource) };
@id("any-action") permit(principal, action == Action::"any", resource) when { can(principal, _, resource) };
@id("setting") permit(principal, action == Action::"setting", resource) when { setting(context.k, context.v) };
'''


@pytest.mark.parametrize("limit", [0, 10**9])
def test_relation_calls_with_and_without_snapshots(monkeypatch, limit):
    import rune_fast.engine as engine_module

    monkeypatch.setattr(engine_module, "SNAPSHOT_LIMIT", limit)
    e = load_text(RELS, cache_size=0)
    assert e.authorize('User::"a"', 'Action::"read"', 'Doc::"1"').reasons == ("exact",)
    assert e.authorize('User::"a"', 'Action::"read"', 'Doc::"2"').decision == "deny"
    assert e.authorize('User::"b"', 'Action::"read"', 'Doc::"2"').allowed
    assert e.authorize('User::"a"', 'Action::"any"', 'Doc::"2"').reasons == ("any-action",)
    assert e.authorize('User::"b"', 'Action::"any"', 'Doc::"1"').decision == "deny"
    assert e.authorize('User::"zz"', 'Action::"read"', 'Doc::"1"').decision == "deny"

    def setting(k, v):
        return e.authorize('User::"a"', 'Action::"setting"', 'Doc::"1"', {"k": k, "v": v}).allowed

    assert setting("x", 1) and not setting("x", True) and not setting("x", 1.0)
    assert setting("y", True) and not setting("y", 1)
    assert setting("z", 2.5) and not setting("z", 2)


def test_query_sees_entity_facts_kept_out_of_the_core():
    # No rule reads attr/parent here, so the engine keeps them out of the
    # Datalog core; queries must still answer over them.
    engine = rune_fast.load_text(
        'version = "rune/1"\n[data]\n'
        "attr = [['Doc::\"d1\"', \"owner\", 'User::\"alice\"']]\n"
        "parent = [['Doc::\"d1\"', 'Folder::\"f\"']]\n"
        "[policies]\n"
        'permit(principal, action, resource) when { resource.owner == principal };\n'
    )
    assert engine.query('attr(D, "owner", U)') == [{"D": Entity("Doc", "d1"), "U": Entity("User", "alice")}]
    assert engine.query('parent(Doc::"d1", F)') == [{"F": Entity("Folder", "f")}]
    assert engine.authorize('User::"alice"', 'Action::"read"', 'Doc::"d1"').allowed
    assert engine.authorize('Doc::"d1"', 'Action::"read"', 'Doc::"d1"').decision == "deny"
    assert engine.authorize('User::"bob"', 'Action::"read"', 'Folder::"f"').decision == "deny"


def test_engine_model_holds_every_fact():
    engine = rune_fast.load_text(
        'version = "rune/1"\n[data]\n'
        "attr = [['Doc::\"d1\"', \"owner\", 'User::\"alice\"']]\n"
        "parent = [['Doc::\"d1\"', 'Folder::\"f\"']]\n"
        "[policies]\n"
        'permit(principal, action, resource) when { resource.owner == principal };\n'
    )
    assert engine.model.relation("attr") == {(Entity("Doc", "d1"), "owner", Entity("User", "alice"))}
    assert engine.model.relation("parent") == {(Entity("Doc", "d1"), Entity("Folder", "f"))}
    assert engine.model is engine.model
