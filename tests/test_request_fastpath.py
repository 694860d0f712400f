"""The uncached request path's shortcuts against the slow paths they stand in for.

- ``flat_context`` (one-pass conversion of a flat context) against
  ``to_value``: same record, same kinds, same budget charged; never accepts
  what ``to_value`` refuses.
- Plans' ``like`` tests (string methods for the common glob shapes) against
  ``string_test``, the executor's own.
- Linked policy tests and fused selections (``Engine._plan``: policies
  reading the engine's data directly, a small selection in one function)
  against the plain per-policy tests run by ``PolicySet.run``
  (``policy_generator=generate_test`` turns both shortcuts off): same
  decisions, reasons and errors, in order, with and without
  ``strict_forbid``.
"""

from __future__ import annotations

import math
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rune_fast
from rune_fast.datalog.compiler import string_test
from rune_fast.errors import RuneRequestError
from rune_fast.limits import Limits
from rune_fast.policy.codegen import generate_test
from rune_fast.policy.values import CRecord, to_value
from rune_fast.request import budget_for, flat_context, flat_context_facts, parse_context
from rune_fast.request_plans.codegen import FunctionGen, Names
from rune_fast.request_plans import context_facts
from rune_fast.values import FALSE_KEY, INT_MAX, TRUE_KEY, Entity, FloatKey

# ---------------------------------------------------------------------------
# flat_context vs to_value


class Text(str):
    pass


class Num(int):
    pass


SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**64), 2**64),
    st.sampled_from([INT_MAX, INT_MAX + 1, -INT_MAX - 1, -INT_MAX - 2]),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
)
ODD = st.one_of(
    st.none(),
    st.just(Entity("User", "a")),
    st.just(Text("sub")),
    st.just(Num(3)),
    st.just({"inner": 1}),
    st.just([1, 2]),
    st.just({"type": "User", "id": "a"}),
    st.just('User::"a"'),
)
KEYS = st.one_of(st.text(max_size=6), st.sampled_from(["__entity", "__extn", "a" * 20]), st.just(7))
CONTEXTS = st.dictionaries(KEYS, st.one_of(SCALARS, SCALARS, ODD), max_size=5)
LIMITS = st.builds(
    Limits,
    max_value_depth=st.integers(0, 3),
    max_string_length=st.integers(0, 15),
    max_request_values=st.integers(0, 20),
    max_request_chars=st.integers(0, 60),
)


def _kinds(rec):
    return [(k, type(v), v if not (type(v) is float and math.isnan(v)) else "nan") for k, v in rec.items()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONTEXTS, st.one_of(st.just(Limits()), LIMITS))
def test_flat_context_converts_like_to_value(ctx, limits):
    slow_budget = budget_for(limits)
    try:
        want = to_value(ctx, "context", slow_budget)
    except RuneRequestError:
        want = None
    fast_budget = budget_for(limits)
    got = flat_context(ctx, limits, fast_budget) if ctx else None
    if got is None:
        # Refused: nothing charged (the caller starts over with to_value).
        fresh = budget_for(limits)
        assert (fast_budget.values, fast_budget.chars) == (fresh.values, fresh.chars)
        return
    assert want is not None, (ctx, limits)  # never accepts what to_value refuses
    assert type(got) is CRecord and got == want and _kinds(got) == _kinds(want)
    assert (fast_budget.values, fast_budget.chars) == (slow_budget.values, slow_budget.chars)
    assert flat_context(ctx, limits) == got  # without a budget: the same answer
    rec, facts = flat_context_facts(ctx, limits)
    # the facts: what the plans' own one-pass conversion gives, kinds included;
    # the record itself exactly when every value is its own key form
    want_facts = context_facts(rec)
    assert dict(facts) == want_facts and _key_kinds(facts) == _key_kinds(want_facts)
    assert (facts is rec) == all(type(v) in (str, int) for v in ctx.values())
    assert parse_context(ctx, limits) == want


def _key_kinds(facts: dict) -> list:
    return [(k, type(v), v if type(v) is not str else None) for k, v in facts.items()]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.one_of(
    st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3)),
    min_size=1, max_size=5))
def test_flat_context_facts_are_the_plans_facts(ctx):
    """Flat contexts only (booleans, floats, integers, strings): the facts of
    the one pass are ``context_facts`` of the record, entry by entry and kind
    by kind (``True`` is not ``1``, ``1.0`` not ``1``)."""
    rec, facts = flat_context_facts(ctx)
    want = context_facts(rec)
    assert list(facts) == list(want) and all(facts[k] is want[k] or
                                             (type(facts[k]) is type(want[k]) and facts[k] == want[k]) for k in want)
    assert (facts is rec) == all(type(v) in (str, int) for v in ctx.values())
    assert rec == CRecord(ctx) and _kinds(rec) == _kinds(ctx)


def _same_as_to_value(ctx: dict, limits: Limits) -> None:
    slow = budget_for(limits)
    try:
        want = to_value(ctx, "context", slow)
    except RuneRequestError:
        want = None
    fast = budget_for(limits)
    got = flat_context(ctx, limits, fast)
    if got is None:
        assert (fast.values, fast.chars) == (limits.max_request_values, limits.max_request_chars)
    else:
        assert want is not None and _kinds(got) == _kinds(want), (ctx, limits)
        assert (fast.values, fast.chars) == (slow.values, slow.chars), (ctx, limits)


def test_flat_context_limits_at_their_boundaries():
    """Every limit exactly met and exceeded by one (random contexts rarely land there)."""
    for ctx in ({"k": "abc"}, {"k": 1, "kk": "xy"}, {"a": True, "b": 2.5, "c": "zz", "d": 0}):
        n = len(ctx)
        chars = sum(len(k) for k in ctx) + sum(len(v) for v in ctx.values() if type(v) is str)
        longest = max([len(k) for k in ctx] + [len(v) for v in ctx.values() if type(v) is str])
        for values in (3 * n, 3 * n + 1, 3 * n + 2):
            for c in (chars - 1, chars, chars + 1):
                for s in (longest - 1, longest, longest + 1):
                    for depth in (0, 1):
                        _same_as_to_value(ctx, Limits(max_value_depth=depth, max_string_length=s,
                                                      max_request_values=values, max_request_chars=c))
    for v in (INT_MAX, INT_MAX + 1, -INT_MAX - 1, -INT_MAX - 2, math.inf, -math.inf, math.nan, 1e308):
        _same_as_to_value({"v": v}, Limits())


def test_flat_context_accepts_the_common_context():
    ctx = {"path": "/tmp/x", "steps": 3, "ok": True, "ratio": 0.5}
    assert dict(flat_context(ctx)) == ctx and type(flat_context(ctx)) is CRecord
    rec, facts = flat_context_facts({"path": "/tmp/x", "steps": 3})
    assert facts is rec
    rec, facts = flat_context_facts(ctx)  # booleans and floats have a key form of their own
    assert facts == {"path": "/tmp/x", "steps": 3, "ok": TRUE_KEY, "ratio": FloatKey((0.5,))}
    assert type(facts["ratio"]) is FloatKey and rec == CRecord(ctx)
    rec, facts = flat_context_facts({"f": False, "one": 1, "t": True, "x": 1.0})
    assert facts["f"] is FALSE_KEY and facts["t"] is TRUE_KEY and facts["one"] == 1 and type(facts["x"]) is FloatKey
    # What it leaves to to_value: nested values, entities, subclasses, odd keys, limits.
    for odd in ({"a": {"b": 1}}, {"a": [1]}, {"a": None}, {"a": Text("x")}, {"a": Num(1)},
                {"__entity": 'User::"a"'}, {"__extn": "x"}, {1: "x"}, {"a": INT_MAX + 1},
                {"a": math.inf}, {"a": math.nan}, {"a": Entity("User", "a")}):
        assert flat_context(odd) is None, odd
    assert flat_context({"a": "x" * 5}, Limits(max_string_length=4)) is None
    assert flat_context({"a": 1}, Limits(max_request_values=3)) is None  # needs 1 + 3 per entry
    assert dict(flat_context({"a": 1}, Limits(max_request_values=4))) == {"a": 1}


# ---------------------------------------------------------------------------
# like in the plans vs string_test

GLOB_CHARS = st.sampled_from(["a", "b", "*", "\\", "*", "ab"])
GLOBS = st.lists(GLOB_CHARS, max_size=6).map("".join)
SUBJECTS = st.one_of(st.lists(st.sampled_from(["a", "b", "*", "\\"]), max_size=8).map("".join),
                     st.integers(0, 3), st.just(Entity("User", "a")))


def _like_code(glob: str):
    gen = FunctionGen.__new__(FunctionGen)  # only like_test and bind_name are used
    gen.names = Names()
    code = gen.like_test("v", glob)
    return code, dict(gen.names.ns, type=type, str=str)


@settings(max_examples=300, deadline=None)
@given(GLOBS, st.lists(SUBJECTS, min_size=1, max_size=6))
def test_plan_like_matches_string_test(glob, subjects):
    code, ns = _like_code(glob)
    test = eval(compile(f"lambda v: {code}", "<like>", "eval"), ns)
    for s in subjects:
        assert test(s) == string_test("like", glob, s), (glob, s, code)


def test_plan_like_uses_string_methods_for_the_common_shapes():
    assert "in v" in _like_code("*id_rsa*")[0]
    assert ".startswith(" in _like_code("/tmp/*")[0]
    assert ".endswith(" in _like_code("*.env")[0]
    assert "== " in _like_code("exact")[0]
    assert "L" in _like_code("*curl *| sh*")[0]  # two middle pieces: the glob matcher


# ---------------------------------------------------------------------------
# Linked and fused policy tests vs plain tests

HEADER = 'version = "rune/1"\n'
DATA = """
[data]
parent = [['User::"a"', 'Group::"g"'], ['Group::"g"', 'Group::"top"'], ['Doc::"d1"', 'Folder::"f"']]
attr = [['User::"a"', "level", 3], ['User::"b"', "level", "high"], ['Doc::"d1"', "owner", 'User::"a"'],
        ['Doc::"d2"', "owner", 'User::"b"'], ['User::"a"', "tags", "x"], ['User::"a"', "tags", "y"]]
grant = [['User::"a"', 'Action::"read"', 'Doc::"d1"'], ['User::"b"', 'Action::"write"', 'Doc::"d2"']]
blocked = ['User::"c"']
flag = [[1], [true], [1.5]]
[rules]
can(U, A, D) :- grant(U, A, D).
can(U, Action::"read", D) :- attr(D, "owner", U).
mine(D) :- resource(D), principal(U), attr(D, "owner", U).
budget_ok(U) :- principal(U), attr(U, "level", L), context("need", N), L >= N.
tagged(T) :- context("tag", T), flag(T).
"""
POLICIES = [
    'permit(principal, action, resource) when { can(principal, action, resource) };',
    'permit(principal in Group::"top", action == Action::"read", resource);',
    'forbid(principal, action, resource) when { blocked(principal) };',
    'forbid(principal, action, resource) when { principal.level > 2 };',  # errors for a string level
    'permit(principal, action, resource) when { principal has tags && principal.tags.contains("x") };',
    'forbid(principal, action == Action::"write", resource) unless { mine(resource) };',
    'permit(principal, action, resource in Folder::"f") when { budget_ok(principal) };',
    'permit(principal, action, resource) when { can(_, action, resource) && tagged(_) };',
    'forbid(principal, action, resource) when { context.deny };',  # errors when deny is missing
    'permit(principal, action, resource) when { resource.owner == principal };',
    'forbid(principal is User, action, resource) when { can(principal, _, _) && !budget_ok(principal) };',
]
PRINCIPALS = ['User::"a"', 'User::"b"', 'User::"c"', 'Svc::"s"']
ACTIONS = ['Action::"read"', 'Action::"write"']
RESOURCES = ['Doc::"d1"', 'Doc::"d2"', 'Doc::"d3"']
CTX = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "need": st.sampled_from([1, 3, 5, 2.5, "x"]),
    "tag": st.sampled_from([1, True, 1.5, 1.0, "1"]),
    "deny": st.sampled_from([True, False, 1]),
}))


#: a non-empty set of the policies above, and a few requests over the entities and contexts above
POLICY_SETS = st.lists(st.sampled_from(POLICIES), min_size=1, max_size=len(POLICIES), unique=True)
REQUEST_LISTS = st.lists(st.tuples(st.sampled_from(PRINCIPALS), st.sampled_from(ACTIONS), st.sampled_from(RESOURCES),
                                   CTX), min_size=1, max_size=8)


def _outcome(d):
    return (d.decision, d.reasons, d.errors)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(POLICY_SETS, st.booleans(), REQUEST_LISTS)
def test_linked_and_fused_tests_decide_like_plain_tests(policies, strict, reqs):
    text = HEADER + DATA + "[policies]\n" + "\n".join(policies) + "\n"
    fast = rune_fast.load_text(text, cache_size=0, strict_forbid=strict)
    plain = rune_fast.load_text(text, cache_size=0, strict_forbid=strict, policy_generator=generate_test)
    assert fast._linking and not plain._linking
    for p, a, r, ctx in reqs + reqs:  # twice: memoized selections answer alike
        assert _outcome(fast.authorize(p, a, r, ctx)) == _outcome(plain.authorize(p, a, r, ctx)), (policies, p, a, r, ctx)
    assert fast._fused or not fast._plans  # a selection ran fused


def test_big_selections_keep_the_loop_over_linked_tests():
    """Beyond MAX_FUSED candidates the selection is not fused; its tests are still linked."""
    from rune_fast.policy.fused import MAX_FUSED

    many = "\n".join(f'permit(principal, action, resource) when {{ principal.level == {i} }};'
                     for i in range(MAX_FUSED + 1))
    text = HEADER + DATA + "[policies]\n" + many + "\n"
    fast = rune_fast.load_text(text, cache_size=0)
    plain = rune_fast.load_text(text, cache_size=0, policy_generator=generate_test)
    for p in PRINCIPALS:
        assert _outcome(fast.authorize(p, 'Action::"read"', 'Doc::"d1"', {"x": 1})) == \
            _outcome(plain.authorize(p, 'Action::"read"', 'Doc::"d1"', {"x": 1}))
    assert not fast._fused
    assert len(fast._linked) == MAX_FUSED + 1


@pytest.mark.parametrize("name", ["doc_sharing", "api_rate_limit", "agent_guardrails"])
def test_examples_pass_their_tests_on_the_fast_path(name):
    e = rune_fast.load(f"examples/{name}.rune", cache_size=0)
    assert all(t.passed for t in e.run_tests())
    for t in e.tests:  # and through authorize, as an application calls it
        d = e.authorize(t.principal, t.action, t.resource, t.context or None)
        assert d.decision == t.expect or (t.expect == "deny" and not d.allowed), (t.name, d)


def test_fused_selections_are_bounded(monkeypatch):
    """Past FUSED_SELECTIONS distinct candidate sets, selections run as a loop
    over linked tests (bounded memory), deciding alike."""
    import rune_fast.request_link as request_link

    monkeypatch.setattr(request_link, "FUSED_SELECTIONS", 1)
    text = HEADER + DATA + "[policies]\n" + "\n".join(POLICIES) + "\n"
    fast = rune_fast.load_text(text, cache_size=0)
    plain = rune_fast.load_text(text, cache_size=0, policy_generator=generate_test)
    for p in PRINCIPALS:
        for a in ACTIONS:
            for r in RESOURCES:
                for ctx in (None, {"need": 1, "tag": 1, "deny": False}):
                    assert _outcome(fast.authorize(p, a, r, ctx)) == _outcome(plain.authorize(p, a, r, ctx))
    assert len(fast._fused) == 1 and len(fast._plans) > 1


def test_straight_line_plans_are_pasted_and_the_others_called():
    """``mine`` and ``tagged`` compile to straight-line plans: the linked
    policies paste their bodies (no call of the plan); ``budget_ok`` loops
    over attribute rows and memoizes, so it is called. The property test
    above checks the decisions of both kinds against the plain tests."""
    from rune_fast.request_plans.paste import paster

    text = HEADER + DATA + "[policies]\n" + "\n".join(POLICIES) + "\n"
    e = rune_fast.load_text(text, cache_size=0)
    pastes = e._req_plans.paste_by_mask
    assert pastes[("mine", (True,))] is not None and pastes[("tagged", (False,))] is not None
    assert pastes[("budget_ok", (True,))] is None
    e.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', {"need": 1, "tag": 1})
    sources = [fn.__rune_source__ for fn, _bare in e._fused.values()]
    assert sources and any("d.load_cx()" in s for s in sources)  # tagged's body, pasted
    called = e._req_plans.by_mask[("tagged", (False,))]
    assert all(called not in fn.__globals__.values() for fn, _bare in e._fused.values())
    # unfit shapes: a loop, a memo, a callee, a hand-over
    assert paster("def F(ev):\n    for x in R:\n        return True\n    return False\n", {}) is None
    assert paster("def F(ev, *, G=None):\n    if G(ev):\n        return True\n    return False\n", {}) is None
    assert paster("def F(ev):\n    raise _FB('x')\n    return False\n", {}) is None
    deep = "".join("    " * (i + 1) + f"if v{i}:\n" for i in range(45))
    assert paster("def F(ev):\n" + deep + "    " * 46 + "return True\n    return False\n", {}) is None
    # names in string constants are left alone; locals, arguments and module names renamed
    paste = paster("def F(ev, a0):\n    v0 = a0\n    if v0 == 'v0 ev a0' and v0 in S1:\n"
                   "        return True\n    return False\n", {"S1": frozenset({"x"})})
    assert paste is not None
    consts: dict = {}
    lines = paste("Q_", ["arg"], "res", lambda v: consts.setdefault(id(v), f"K{len(consts)}"))
    # the copy ``v0 = a0`` is dropped: ``a0`` is read where ``v0`` was
    assert lines == ["if arg == 'v0 ev a0' and arg in K0:", "    res = True; break", "res = False; break"]
    # a copy is kept when either side is assigned again (each rule copy rebinds ``v0``)
    paste = paster("def F(ev, a0):\n    v0 = a0\n    if v0 in S1:\n        return True\n    v0 = K2\n"
                   "    v1 = v0\n    if v1 in S1:\n        return True\n    return False\n", {"S1": frozenset({"x"}), "K2": "y"})
    assert paste is not None
    consts.clear()
    assert paste("Q_", ["arg"], "res", lambda v: consts.setdefault(id(v), f"K{len(consts)}")) == [
        "Q_v0 = arg", "if Q_v0 in K0:", "    res = True; break", "Q_v0 = K1", "Q_v1 = Q_v0", "if Q_v1 in K0:",
        "    res = True; break", "res = False; break"]


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=3), st.one_of(
    st.integers(-5, 5), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3),
    st.just(Entity("User", "a")), st.lists(st.integers(), max_size=2)), max_size=5))
def test_load_cx_is_the_context_facts_in_key_form(ctx):
    """``RequestState.load_cx``: the top-level scalars of the context, each in
    key form (what ``context(K, V)`` holds); anything else has no fact."""
    from rune_fast.request_plans import RequestState
    from rune_fast.values import value_key

    want = {k: value_key(v) for k, v in ctx.items() if type(v) in (str, int, bool, float, Entity)}
    state = RequestState(Entity("User", "a"), Entity("Action", "r"), Entity("Doc", "d"), ctx)
    got = state.load_cx()
    assert got == want and state.cx is got
    assert all(type(got[k]) is type(want[k]) for k in want)


# ---------------------------------------------------------------------------
# Selections fused without the plans' per-request state ("bare"), routes


def _bare_selections(e) -> list:
    return [fn for fn, bare in e._fused.values() if bare]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(POLICY_SETS, st.booleans(), REQUEST_LISTS)
def test_bare_selections_decide_like_selections_with_the_state(policies, strict, reqs):
    """The same engine with every selection fused with the per-request state
    (``generate_bare_selection`` refusing): same outcomes, booleans and
    floats in the context included (``CTX``), memoized routes or not."""
    import rune_fast.request_link as request_link

    text = HEADER + DATA + "[policies]\n" + "\n".join(policies) + "\n"
    bare = rune_fast.load_text(text, cache_size=0, strict_forbid=strict)
    for p, a, r, ctx in reqs + reqs:
        bare.authorize(p, a, r, ctx)
    with mock.patch.object(request_link, "generate_bare_selection", lambda *args: None):
        stateful = rune_fast.load_text(text, cache_size=0, strict_forbid=strict)
        for p, a, r, ctx in reqs + reqs:
            assert _outcome(bare.authorize(p, a, r, ctx)) == _outcome(stateful.authorize(p, a, r, ctx)), (policies, p, a, r, ctx)
        assert not _bare_selections(stateful)


def test_bare_selection_reads_each_context_entry_once_and_no_state():
    """``mine`` and ``tagged`` are pasted: a selection asking only them is
    fused bare (no ``d`` at all), reading ``tag`` once at the top although
    two policies paste ``tagged``; one asking ``budget_ok`` (called) keeps
    the state."""
    pols = [POLICIES[7], 'forbid(principal, action, resource) when { tagged(_) && principal == User::"c" };',
            POLICIES[5]]
    text = HEADER + DATA + "[policies]\n" + "\n".join(pols) + "\n"
    e = rune_fast.load_text(text, cache_size=0)
    assert _outcome(e.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', {"tag": True})) == \
        ("permit", ("policy0",), ())
    (src,) = [fn.__rune_source__ for fn in _bare_selections(e)]
    assert src.startswith("def run(p, a, r, c, cx):")
    assert src.count("cx.get(") == 1 and "load_cx" not in src and "budget" not in src
    assert "d." not in src and "(d" not in src
    e2 = rune_fast.load_text(HEADER + DATA + "[policies]\n" + POLICIES[6] + "\n", cache_size=0)
    e2.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', {"need": 1})
    assert e2._fused and not _bare_selections(e2)  # budget_ok is called: the state stays


def test_context_changes_between_requests_are_seen():
    """Nothing of one request's context is kept: the same dict, mutated, and
    the same triple with other contexts, answer from the context given."""
    text = HEADER + DATA + "[policies]\n" + POLICIES[7] + "\n"
    fast = rune_fast.load_text(text, cache_size=0)
    plain = rune_fast.load_text(text, cache_size=0, policy_generator=generate_test)
    ctx: dict = {"tag": 1}
    seen = set()
    for tag in (1, True, 1.5, 1.0, "1", 2, False, 1):
        ctx["tag"] = tag
        for e in (fast, plain):
            seen.add((repr(tag), e.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', ctx).decision))
        assert _outcome(fast.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', ctx)) == \
            _outcome(plain.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', ctx))
    assert ("1", "permit") in seen and ("True", "permit") in seen and ("1.0", "deny") in seen
    assert ("False", "deny") in seen and ("'1'", "deny") in seen


def test_routes_follow_the_raw_triple_and_are_bounded(monkeypatch):
    """Every spelling of an entity decides alike; past ROUTE_ENTRIES routes
    requests are still decided (without a route memo)."""
    import rune_fast.request_link as request_link

    text = HEADER + DATA + "[policies]\n" + "\n".join(POLICIES) + "\n"
    plain = rune_fast.load_text(text, cache_size=0, policy_generator=generate_test)
    for limit in (request_link.ROUTE_ENTRIES, 1):
        monkeypatch.setattr(request_link, "ROUTE_ENTRIES", limit)
        fast = rune_fast.load_text(text, cache_size=0)
        for p in PRINCIPALS:
            ent = Entity.parse(p)
            for form in (p, ent, (ent.type, ent.id)):
                for ctx in (None, {}, {"need": 1, "tag": True}, {"tag": 1.5, "deny": False}):
                    got = fast.authorize(form, 'Action::"read"', ("Doc", "d1"), ctx)
                    assert _outcome(got) == _outcome(plain.authorize(p, 'Action::"read"', 'Doc::"d1"', ctx))
        assert len(fast._routes) <= limit and fast._routes


def test_paster_without_the_state():
    """The prologue goes, each context entry becomes the caller's local,
    ``ev.p`` the request's ``p``; anything else of ``ev``, or a reassigned
    entry, cannot be pasted without the state."""
    from rune_fast.request_plans.paste import paster

    ns = {"K0": "path", "S1": frozenset({"x"})}
    src = ("def F(ev, a0):\n    cx = ev.cx\n    if cx is None:\n        cx = ev.load_cx()\n"
           "    cK0 = cx.get(K0)\n    v0 = a0\n    if v0 == ev.p and cK0 in S1 and 'k' in cx:\n"
           "        return True\n    return False\n")
    paste = paster(src, ns)
    assert paste is not None
    consts: dict = {}
    const = lambda v: consts.setdefault(id(v), f"K{len(consts)}")  # noqa: E731
    locals_: dict = {}
    lines = paste("Q_", ["arg"], "res", const, lambda key: locals_.setdefault(key, f"CX{len(locals_)}"))
    assert lines == ["if arg == p and CX0 in K0 and 'k' in cx:", "    res = True; break", "res = False; break"]
    assert locals_ == {"path": "CX0"}
    # with the state: unchanged
    assert paste("Q_", ["arg"], "res", const)[:2] == ["Q_cx = d.cx", "if Q_cx is None:"]
    for body in ("    if ev.budget:\n        return True\n", "    if ev.pp:\n        return True\n",
                 "    cK0 = 3\n", "    if ev.ctx:\n        return True\n"):
        bad = paster(src.replace("    return False\n", body + "    return False\n"), ns)
        assert bad is not None and bad("Q_", ["arg"], "res", const, lambda key: "CX") is None


@pytest.mark.parametrize("cache_size", [0, 16])
def test_unhashable_entities_take_the_slow_path(cache_size):
    """A Cedar-JSON dict entity (unhashable) is parsed, not looked up in the
    routes, with and without a decision cache, with and without a context."""
    text = HEADER + DATA + "[policies]\n" + "\n".join(POLICIES) + "\n"
    fast = rune_fast.load_text(text, cache_size=cache_size)
    plain = rune_fast.load_text(text, cache_size=0, policy_generator=generate_test)
    for ctx in (None, {}, {"need": 1, "tag": True}):
        for _ in range(2):
            got = fast.authorize({"type": "User", "id": "a"}, 'Action::"read"', {"type": "Doc", "id": "d1"}, ctx)
            assert _outcome(got) == _outcome(plain.authorize('User::"a"', 'Action::"read"', 'Doc::"d1"', ctx))
