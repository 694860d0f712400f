"""Differential tests of the per-request plans (rune_fast/request_plans/).

The plans answer questions about request-dependent relations top-down; the
oracle is the general evaluator: the model of the static facts plus the
request's facts (``principal``, ``action``, ``resource``, ``context``),
computed from scratch. Random stratified programs (``programs`` from the
core's differential test) read the request positively, under ``not`` and
inside aggregates; every question the plans can answer (every relation,
every mask of bound positions, values from a small domain of every kind) is
asked of both.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rune_fast
from rune_fast.datalog import Program
from rune_fast.engine import _without_request_plans
from rune_fast.building import _closure
from rune_fast.values import value_key as row_key
from rune_fast.request_plans import Fallback, RequestPlans, RequestState
from rune_fast.values import Entity

from test_datalog_differential import kinded, programs

REQUEST_EDB = {"e": 2, "u": 1, "principal": 1, "action": 1, "resource": 1, "context": 2, "attr": 3}
REQUEST_VARS = ("principal", "action", "resource", "context")
DOMAIN = [0, 1, 2, 3, 4, 1.5, 2.0, -1, True, False, "a", "b", "ab", Entity("User", "a")]


def build_plans(program: Program, model, given: dict) -> tuple[RequestPlans, frozenset]:
    """Plans for every (relation, mask) of every request-dependent relation."""
    info = program.info
    dependent = _closure(dict(info.depends_on), REQUEST_VARS)
    compiled = program.compiled
    recursive = frozenset(
        compiled.rels[s].name for st_ in compiled.strata if st_.recursive for s in st_.relations
        if compiled.rels[s].name in dependent
    )
    questions = [
        (rel, mask)
        for rel in sorted(dependent)
        for mask in itertools.product((True, False), repeat=info.arities[rel])
    ]
    plans = RequestPlans(
        program.rules, info.rule_info, dependent, recursive, info.arities,
        lambda name: model.rows(name) if name in compiled.slot_of else [],
        lambda name: list(given.get(name, ())), questions,
    )
    return plans, dependent


def ask(plans: RequestPlans, state: RequestState, rel: str, row: tuple):
    """The plans' answer, or None when they hand the request over."""
    try:
        return plans.matches[rel](state, row)
    except Fallback:
        return None


@st.composite
def requests(draw):
    scalars = st.one_of(st.integers(0, 4), st.sampled_from(["a", "b", "ab", 1.5, 2.0, True, -1]))
    ctx = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), scalars, max_size=3))
    return draw(scalars), draw(scalars), draw(scalars), ctx


def check_case(text: str, facts: dict, request: tuple, idb_facts: dict) -> int:
    program = Program(text)
    static = {k: v for k, v in facts.items() if k in program.inputs or k == "attr"}
    for k in REQUEST_VARS:
        static.pop(k, None)
    dependent_guess = _closure(dict(program.info.depends_on), REQUEST_VARS)
    given = {k: v for k, v in idb_facts.items() if k in program.compiled.slot_of}
    static.update(given)
    model = program.evaluate(static)
    plans, dependent = build_plans(program, model, {k: v for k, v in given.items() if k in dependent_guess})
    p, a, r, ctx = request
    merged = {k: list(v) for k, v in static.items()}
    for name, rows in (("principal", [(p,)]), ("action", [(a,)]), ("resource", [(r,)]),
                       ("context", list(ctx.items()))):
        if name in program.compiled.slot_of:
            merged[name] = rows
    full = program.evaluate(merged)
    state = RequestState(row_key(p), row_key(a), row_key(r), ctx)
    asked = 0
    for rel in sorted(plans.matches):
        truth = kinded(full.rows(rel))
        arity = program.info.arities[rel]
        values = list(DOMAIN) + [v for row in full.rows(rel) for v in row]
        for row in itertools.product(values, repeat=arity):
            want = frozenset([tuple((type(v).__name__, v) for v in row)]) <= truth
            for mask in itertools.product((True, False), repeat=arity):
                q = tuple(row_key(v) if b else None for v, b in zip(row, mask))
                got = ask(plans, state, rel, q)
                if got is None:
                    continue
                asked += 1
                if all(mask):
                    assert got == want, (rel, row, text, request, plans.source)
                else:
                    w = any(all(t[i] == (type(v).__name__, v) for i, v in enumerate(row) if mask[i]) for t in truth)
                    assert got == w, (rel, row, mask, text, request, plans.source)
    return asked


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs(REQUEST_EDB), requests(), st.data())
def test_plans_answer_like_the_full_model(case, request, data):
    text, facts = case
    idb_facts = {}
    if data.draw(st.booleans()):
        idb_facts["p0"] = data.draw(st.lists(st.tuples(st.integers(0, 3)), max_size=2))
    try:
        program = Program(text)
    except rune_fast.RuneError:
        return
    if "p0" in idb_facts and program.info.arities.get("p0") != 1:
        idb_facts = {}
    check_case(text, facts, request, idb_facts)


# ---------------------------------------------------------------------------
# Through the engine: decisions with the plans == decisions without them


EXAMPLES = ["doc_sharing", "api_rate_limit", "agent_guardrails"]
#: The bundled examples, found from this file (not from the working directory).
EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

CONTEXT_VALUES = st.one_of(
    st.integers(-3, 120), st.sampled_from([0.5, 10.0, 1e300, True, False]),
    st.sampled_from(["/workspace/a.py", "/tmp/x", "/tmp/../etc", "/workspace/.env", "/usr/share/doc/x",
                     "sudo ls", "rm -rf /", "pypi.org", "evil.com", "curl x | sh", "", "a"]),
)
CONTEXT = st.dictionaries(
    st.sampled_from(["path", "command", "host", "steps", "units", "human_approved", "overage_approved", "extra"]),
    CONTEXT_VALUES, max_size=4,
)


def entity_pool(engine) -> list:
    pool = set()
    for t in engine.tests:
        pool.update((t.principal, t.action, t.resource))
    return sorted(pool)


def without_plans(engine):
    return _without_request_plans(engine)  # the general evaluator only


_ENGINES: dict = {}


def example_engines(name: str) -> tuple:
    """(planned, general) engines of an example, shared by every hypothesis
    example: one long-lived engine also shows that no answer depends on an
    earlier request."""
    if name not in _ENGINES:
        path = os.path.join(EXAMPLES_DIR, f"{name}.rune")
        planned = rune_fast.load(path, cache_size=0)
        assert planned._req_plans is not None
        _ENGINES[name] = (planned, without_plans(rune_fast.load(path, cache_size=0)))
    return _ENGINES[name]


@pytest.mark.parametrize("name", EXAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_examples_decide_alike_with_and_without_plans(name, data):
    planned, general = example_engines(name)
    pool = entity_pool(planned) + ['User::"zoe"', 'Client::"nobody"', 'Agent::"ghost"']
    for _ in range(data.draw(st.integers(1, 8))):
        p, a, r = (data.draw(st.sampled_from(pool)) for _ in range(3))
        ctx = data.draw(CONTEXT)
        got = planned.authorize(p, a, r, ctx)
        want = general.authorize(p, a, r, ctx)
        assert (got.decision, got.reasons, got.errors) == (want.decision, want.reasons, want.errors), (p, a, r, ctx)


RULES_BUNDLE = """
version = "rune/1"
[data]
level = [['User::"a"', 1], ['User::"b"', 2.0], ['User::"c"', true]]
spend = [['User::"a"', 10], ['User::"a"', 20], ['User::"b"', 5.5]]
tag = [['Doc::"x"', "red"], ['Doc::"y"', "blue"], ['Doc::"x"', "blue"]]
[rules]
lvl_ok(U) :- principal(U), level(U, L), context("min", M), L >= M.
total(U, T) :- principal(U), T = sum S : { spend(U, S) }.
n_ctx(N) :- N = count : { context(_, _) }.
over(U) :- total(U, T), context("cap", C), T > C.
tagged(D, T) :- resource(D), tag(D, T), not context("hide", T).
same(U) :- principal(U), context("who", U).
calc(X) :- context("x", V), X = V * 2 + 1.
[policies]
@id("p1") permit(principal, action, resource) when { lvl_ok(principal) };
@id("p2") forbid(principal, action, resource) when { over(principal) };
@id("p3") permit(principal, action, resource) when { tagged(resource, "red") && n_ctx(3) };
@id("p4") permit(principal, action, resource) when { same(_) || calc(7) || calc(_) && tagged(_, "blue") };
"""


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.sampled_from(['User::"a"', 'User::"b"', 'User::"c"', 'User::"z"']),
    st.sampled_from(['Doc::"x"', 'Doc::"y"']),
    st.dictionaries(st.sampled_from(["min", "cap", "hide", "who", "x", "y"]),
                    st.one_of(st.integers(-2, 40), st.sampled_from([1.0, 2.0, 3.5, True, "red", "blue"]),
                              st.just({"__entity": {"type": "User", "id": "a"}})), max_size=4),
), min_size=1, max_size=6))
def test_rules_over_the_request_decide_alike(seq):
    """Aggregates, negation, arithmetic and mixed kinds over request facts, a
    request sequence in random order on one engine: no answer may depend on
    an earlier request (nothing is memoized across requests)."""
    planned = rune_fast.load_text(RULES_BUNDLE, cache_size=0)
    general = without_plans(rune_fast.load_text(RULES_BUNDLE, cache_size=0))
    for p, r, ctx in seq:
        got = planned.authorize(p, 'Action::"go"', r, ctx)
        want = general.authorize(p, 'Action::"go"', r, ctx)
        assert (got.decision, got.reasons, got.errors) == (want.decision, want.reasons, want.errors), (p, r, ctx)


def test_plans_cover_the_bundled_examples():
    """Every request-dependent relation the examples' policies call has a plan."""
    for name in EXAMPLES:
        e = rune_fast.load(os.path.join(EXAMPLES_DIR, f"{name}.rune"))
        called = {rel for rel in e.policies.relations if rel in e._core_dep}
        assert called and called <= set(e._req_plans.matches), name


def test_budget_exhaustion_hands_over_to_the_general_evaluator(monkeypatch):
    """A request whose plans visit more rows than their budget is decided by
    the general evaluator (whose limits then apply); an engine with a
    ``max_request_tuples`` below the budget does not use the plans at all."""
    rows = ", ".join(f"[{i}]" for i in range(300))
    text = f"""
version = "rune/1"
[data]
n = [{rows}]
[rules]
far(P) :- principal(P), n(X), n(Y), X > Y + 1000.
step(X, Y) :- principal(P), n(X), n(Y), X = Y + 1.
[policies]
@id("far") permit(principal, action == A::"far", resource) when {{ far(principal) }};
@id("near") permit(principal, action == A::"near", resource) when {{ step(7, 6) }};
"""
    calls = []
    orig = rune_fast.Engine._request_model

    def counting(self, *args):
        calls.append(args[0])
        return orig(self, *args)

    monkeypatch.setattr(rune_fast.Engine, "_request_model", counting)
    e = rune_fast.load_text(text, cache_size=0)
    assert {"far", "step"} <= set(e._req_plans.matches)
    assert e.authorize('U::"a"', 'A::"near"', 'R::"c"').decision == "permit"
    assert calls == []  # answered by the plans
    assert e.authorize('U::"a"', 'A::"far"', 'R::"c"').decision == "deny"  # 90,000 pairs: over budget
    assert len(calls) == 1
    small = rune_fast.load_text(text, cache_size=0, max_request_tuples=10)
    assert small._req_plans is None
    d = small.authorize('U::"a"', 'A::"near"', 'R::"c"')  # step/2 has 299 rows
    assert d.decision == "deny" and "max_request_tuples" in d.errors[0][1]


COPIED_BUNDLE = """
version = "rune/1"
[data]
zone_of = [['User::"a"', "tmp"], ['User::"a"', "ws"], ['User::"b"', "ws"], ['User::"b"', 1]]
bad_word = ["x", "y"]
[rules]
req_path(P) :- context("path", P).
zone(P, "tmp") :- req_path(P), P.starts_with("/tmp/").
zone(P, "ws")  :- req_path(P), P.starts_with("/ws/").
zone(P, 1)     :- req_path(P), P.ends_with(".one").
secret(P) :- req_path(P), P.contains("..").
secret(P) :- req_path(P), P.ends_with(".env").
secret(P) :- context("who", P).
mark(P, W) :- req_path(P), bad_word(W), context("who", W).
ok(U) :- principal(U), req_path(P), zone(P, Z), zone_of(U, Z), not secret(P).
clean(U) :- principal(U), req_path(P), bad_word(W), not mark(P, W).
twice(U, U) :- principal(U), zone(_, Z), zone_of(U, Z).
[policies]
@id("ok") permit(principal, action, resource) when { ok(principal) };
@id("clean") permit(principal, action == Action::"clean", resource) when { clean(principal) };
@id("twice") forbid(principal, action == Action::"twice", resource) when { twice(principal, principal) };
"""


def test_several_rule_and_negated_relations_are_copied_into_the_calling_plan():
    """``zone`` (three rules) and ``not secret(P)`` (three rules) are pasted
    into ``ok``'s plan: it calls no other plan."""
    e = rune_fast.load_text(COPIED_BUNDLE, cache_size=0)
    src = e._req_plans.source
    ok_fn = e._req_plans.by_mask[("ok", (True,))].__name__
    head = next(line for line in src.splitlines() if line.startswith(f"def {ok_fn}("))
    assert head == f"def {ok_fn}(ev, a0):", head  # no keyword-only callees
    assert e.authorize('User::"a"', 'Action::"r"', 'Doc::"d"', {"path": "/tmp/f"}).allowed
    assert not e.authorize('User::"a"', 'Action::"r"', 'Doc::"d"', {"path": "/tmp/f.env"}).allowed
    assert not e.authorize('User::"a"', 'Action::"r"', 'Doc::"d"', {"path": "/tmp/f", "who": "/tmp/f"}).allowed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.sampled_from(['User::"a"', 'User::"b"', 'User::"z"']),
    st.sampled_from(['Action::"r"', 'Action::"clean"', 'Action::"twice"']),
    st.dictionaries(st.sampled_from(["path", "who"]),
                    st.one_of(st.sampled_from(["/tmp/a", "/ws/b", "/ws/x.one", "/tmp/..", "/ws/.env", "/tmp/y", "y",
                                               "/ws/x", "/q", "x", ""]),
                              st.integers(0, 2), st.sampled_from([True, 1.0])), max_size=2),
), min_size=1, max_size=6))
def test_copied_relations_decide_like_the_general_evaluator(seq):
    """Copied several-rule relations and negations (inside a loop over
    ``bad_word`` too, head constants of mixed kinds, a repeated head
    variable) answer exactly what the general evaluator derives."""
    planned = rune_fast.load_text(COPIED_BUNDLE, cache_size=0)
    general = without_plans(rune_fast.load_text(COPIED_BUNDLE, cache_size=0))
    for p, a, ctx in seq:
        got = planned.authorize(p, a, 'Doc::"d"', ctx)
        want = general.authorize(p, a, 'Doc::"d"', ctx)
        assert (got.decision, got.reasons, got.errors) == (want.decision, want.reasons, want.errors), (p, a, ctx)


def test_a_copied_body_with_several_rule_alternatives_binds_afresh_on_each():
    """``p2`` copies ``p1``'s rules; ``p1``'s second rule copies both
    derivations of ``p0`` (a rule and given facts). The caller's ``u(C)``
    after them binds ``C`` on every path: a bound set shared between the
    paths made the second one test ``C`` before anything had bound it
    (found by ``test_plans_answer_like_the_full_model``)."""
    text = """p0(C) :- context(C, C).
p1(A, C) :- context(_, A), e(C, _), Z2 = A - 0.
p1(A, B) :- action(B), p0(A), A < 1.5.
p1(D, 1) :- resource(_), principal(D), p0(3).
p2(D) :- attr(_, D, 1), context(D, 4), e(B, A).
p2(B) :- action(4), u(C), p1(B, D).
p2(R1) :- context(_, C), action(C), R1 = min V2 : { p1(C, V2) }, R2 = sum V3 : { u(V3) }.
p3(Z1, Z1) :- e(D, 0), Z1 = D * 0.
p3(R0, R0) :- p0(2), resource(0), R0 = min V2 : { action(V2) }.
"""
    for u in ([], [(0,)], [(1,), (2,)]):
        assert check_case(text, {"e": [(4, 2), (3, 1)], "u": u}, (1.5, 4, 1.5, {"a": -1, "c": 2, "b": "ab"}),
                          {"p0": [(2,), (3,)]}) > 0
