"""The policy layer on its own: every operator of docs/language.md §5, Cedar's error
semantics, scopes, the decision rule and the candidate index.

Data comes from ``FactData`` built from plain dicts (the ``PolicyData``
protocol), so nothing here depends on the Datalog core. Every test runs with
the production code generator and the reference evaluator of
tests/reference_policies.py.
"""

from __future__ import annotations

import random

import pytest

from rune_fast.lang import ast as A
from rune_fast.errors import RuneLimitError, RuneRequestError, RuneSyntaxError
from rune_fast.policy.codegen import generate_test
from rune_fast.policy.policies import (
    MISSING,
    CRecord,
    CSet,
    FactData,
    OverlayData,
    ancestor_closure,
    cedar_eq,
    compile_policies,
    from_value,
    to_value,
)
from rune_fast.lang.policy_parser import parse_policies
from rune_fast.values import Entity

U = Entity("User", "alice")
BOB = Entity("User", "bob")
READ = Entity("Action", "read")
WRITE = Entity("Action", "write")
DOC = Entity("Doc", "d1")
G_ENG = Entity("Group", "eng")
G_STAFF = Entity("Group", "staff")
G_ALL = Entity("Group", "all")
F_ROOT = Entity("Folder", "root")
F_SUB = Entity("Folder", "sub")


def world() -> FactData:
    return FactData(
        parents={
            U: [G_ENG],
            G_ENG: [G_STAFF],
            G_STAFF: [G_ALL],
            DOC: [F_SUB],
            F_SUB: [F_ROOT],
            READ: [Entity("Action", "readish")],
            Entity("Action", "readish"): [Entity("Action", "any")],
        },
        attrs={
            U: {"level": 3, "name": "alice", "active": True, "manager": BOB, "score": 2.5},
            BOB: {"level": 1},
            DOC: {"owner": U, "labels": CSet(["red", "blue"]), "classification": "secret"},
        },
        relations={
            "can": [(U, READ, DOC), (BOB, WRITE, DOC)],
            "member": [(U, G_ENG)],
            "flag": [()],
        },
    )


import reference_policies  # noqa: E402  (tests/ is on sys.path)

#: The production generator and the reference evaluator (tests/reference_policies.py):
#: every operator test runs on both, so each checks the other.
GENERATORS = {"codegen": generate_test, "reference": reference_policies.generate}


@pytest.fixture(params=sorted(GENERATORS))
def backend(request) -> str:
    return request.param


def parse(text: str) -> tuple:
    policies, errors = parse_policies(text, "<test>")
    assert not errors, [e.render() for e in errors]
    return policies


def decide(text, backend, principal=U, action=READ, resource=DOC, context=None, data=None):
    pset = compile_policies(parse(text), generator=GENERATORS[backend])
    return pset.evaluate(principal, action, resource, to_value(context or {}), data or world())


def ev(expr: str, backend: str, **kw):
    """Evaluate one condition: True / False / ("error", message)."""
    kind, _reasons, errors = decide(f'@id("t") permit(principal, action, resource) when {{ {expr} }};', backend, **kw)
    if errors:
        return ("error", errors[0][1])
    return kind == "permit"


def is_error(result, fragment: str = "") -> bool:
    return isinstance(result, tuple) and result[0] == "error" and fragment in result[1]


CTX = {
    "mfa": True,
    "n": 5,
    "s": "hello",
    "tags": ["a", "b"],
    "rec": {"x": 1, "inner": {"ok": True}},
    "who": {"__entity": {"type": "User", "id": "alice"}},
}

# ---------------------------------------------------------------------------
# Literals and equality


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("true", True),
        ("false", False),
        ("1 == 1", True),
        ("1 == 2", False),
        ("1 == true", False),
        ("true == 1", False),
        ('"a" == "a"', True),
        ('"1" == 1', False),
        ('User::"alice" == User::"alice"', True),
        ('User::"alice" == Admin::"alice"', False),
        ('principal == "User::\\"alice\\""', False),
        ("[1, 2] == [2, 1]", True),
        ("[1, 1, 2] == [2, 1]", True),
        ("[1] == [true]", False),
        ("[] == []", True),
        ("{a: 1, b: 2} == {b: 2, a: 1}", True),
        ("{a: 1} == {a: true}", False),
        ("{a: 1} == {a: 1, b: 2}", False),
        ("{} == {}", True),
        ("{a: [1, 2]} == {a: [2, 1]}", True),
        ("1 != 2", True),
        ("1 != true", True),
        ("principal != principal", False),
        ("principal == context.who", True),
        ("principal.manager == User::\"bob\"", True),
    ],
)
def test_equality(backend, expr, expected):
    assert ev(expr, backend, context=CTX) is expected


def test_float_attributes_compare_numerically(backend):
    assert ev("principal.score > 2", backend) is True
    assert ev("principal.score < 3", backend) is True
    assert is_error(ev("principal.score + 1 > 0", backend), "expected long")


# ---------------------------------------------------------------------------
# Boolean operators


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("true && true", True),
        ("true && false", False),
        ("false && (1 < \"a\")", False),  # short-circuit: no error
        ("false && 1", False),
        ("true || 1", True),
        ("true || principal.nope", True),
        ("false || true", True),
        ("!false", True),
        ("!!true", True),
    ],
)
def test_boolean_operators(backend, expr, expected):
    assert ev(expr, backend) is expected


@pytest.mark.parametrize(
    "expr", ["true && 1", "1 && true", "1 || true", "false || 1", "!1", '!"x"', "1", '"yes"', "principal"]
)
def test_boolean_operators_need_booleans(backend, expr):
    assert is_error(ev(expr, backend), "expected bool")


def test_unless_with_non_boolean_is_an_error(backend):
    kind, reasons, errors = decide('@id("u") permit(principal, action, resource) unless { 1 };', backend)
    assert kind == "deny" and errors and errors[0][0] == "u"


# ---------------------------------------------------------------------------
# Comparisons and arithmetic


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 4", False),
        ("4 >= 4", True),
        ("-1 < 0", True),
        ("1 + 2 == 3", True),
        ("5 - 7 == -2", True),
        ("3 * 4 == 12", True),
        ("-(3) == -3", True),
        ("principal.level * 2 == 6", True),
        ("context.n - 1 == 4", True),
        ("-9223372036854775808 < 0", True),
        ("9223372036854775807 > 0", True),
        ("9223372036854775807 - 1 > 0", True),
    ],
)
def test_arithmetic_and_comparison(backend, expr, expected):
    assert ev(expr, backend, context=CTX) is expected


@pytest.mark.parametrize(
    "expr,fragment",
    [
        ("9223372036854775807 + 1 > 0", "overflow"),
        ("-9223372036854775807 - 2 > 0", "overflow"),
        ("9223372036854775807 * 2 > 0", "overflow"),
        ("-(-9223372036854775807 - 1) > 0", "overflow"),
        ('"a" < "b"', "expected long"),
        ("true < false", "expected long"),
        ("1 < true", "expected long"),
        ('1 + "a" == 1', "expected long"),
        ("true + 1 == 2", "expected long"),
        ("-true == 1", "expected long"),
        ("[1] < [2]", "expected long"),
    ],
)
def test_arithmetic_errors(backend, expr, fragment):
    assert is_error(ev(expr, backend), fragment)


# ---------------------------------------------------------------------------
# in


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("principal in principal", True),
        ('principal in Group::"eng"', True),
        ('principal in Group::"staff"', True),
        ('principal in Group::"all"', True),  # three levels up
        ('principal in Group::"other"', False),
        ('Group::"staff" in principal', False),
        ('Nobody::"x" in Nobody::"x"', True),  # reflexive even if unknown
        ('principal in [Group::"other", Group::"all"]', True),
        ('principal in [Group::"other"]', False),
        ("principal in []", False),
        ('resource in Folder::"root"', True),
        ("principal in [principal]", True),
        ('action in Action::"any"', True),
        ('principal in context.who', True),
        ('principal in (if true then Group::"eng" else Group::"x")', True),
    ],
)
def test_in(backend, expr, expected):
    assert ev(expr, backend, context=CTX) is expected


@pytest.mark.parametrize(
    "expr",
    ['principal in [Group::"eng", 1]', "principal in 1", '1 in [User::"alice"]', '"x" in Group::"eng"', "principal in [1]"],
)
def test_in_type_errors(backend, expr):
    assert is_error(ev(expr, backend), "type error")


def test_in_set_with_non_entity_errors_even_when_a_member_matches(backend):
    # Cedar checks every element of the set before answering.
    assert is_error(ev('principal in [principal, 1]', backend), "type error")


# ---------------------------------------------------------------------------
# has, attributes, records


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("principal has level", True),
        ("principal has nope", False),
        ('principal has "level"', True),
        ('Nobody::"x" has level', False),
        ("context has mfa", True),
        ("context has nope", False),
        ("context.rec has x", True),
        ("context.rec.inner has ok", True),
        ("{a: 1} has a", True),
        ("principal.level == 3", True),
        ('principal["level"] == 3', True),
        ('context["rec"]["inner"]["ok"]', True),
        ("context.rec.x == 1", True),
        ('resource.labels == ["blue", "red"]', True),  # several attr facts read as a set
        ('resource.labels.contains("red")', True),
        ("resource.owner == principal", True),
        ("resource.owner.level == 3", True),  # attribute of an entity-valued attribute
        ("principal has nope && principal.nope == 1", False),  # the guard idiom
    ],
)
def test_attributes(backend, expr, expected):
    assert ev(expr, backend, context=CTX) is expected


@pytest.mark.parametrize(
    "expr,fragment",
    [
        ("principal.nope == 1", "does not have the attribute `nope`"),
        ('Nobody::"x".level == 1', "does not have the attribute"),
        ("context.nope", "record does not have the attribute `nope`"),
        ("context.rec.y == 1", "record does not have the attribute `y`"),
        ("(1).x == 1", "type error"),
        ("1 has x", "type error"),
        ('"s" has x', "type error"),
        ("[1] has x", "type error"),
    ],
)
def test_attribute_errors(backend, expr, fragment):
    assert is_error(ev(expr, backend, context=CTX), fragment)


# ---------------------------------------------------------------------------
# like, is, if-then-else


@pytest.mark.parametrize(
    "value,pattern,expected",
    [
        ("hello", '"hello"', True),
        ("hello", '"hell"', False),
        ("hello", '"h*"', True),
        ("hello", '"*o"', True),
        ("hello", '"*ll*"', True),
        ("hello", '"h*l*o"', True),
        ("hello", '"h*x*o"', False),
        ("hello", '"*"', True),
        ("", '"*"', True),
        ("", '""', True),
        ("ab", '"a*b*"', True),
        ("aXbXc", '"a*b*c"', True),
        ("abc", '"a*c*"', True),
        ("aa", '"a*a*a"', False),
        ("a*b", '"a\\*b"', True),
        ("aXb", '"a\\*b"', False),
        ("a*bc", '"a\\**"', True),
        ("ab*", '"*\\*"', True),
    ],
)
def test_like(backend, value, pattern, expected):
    assert ev(f"context.s like {pattern}", backend, context={"s": value}) is expected


def test_like_needs_a_string(backend):
    assert is_error(ev('1 like "x"', backend), "expected string")
    assert is_error(ev('principal like "*"', backend), "expected string")


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("principal is User", True),
        ("principal is Doc", False),
        ('principal is User in Group::"staff"', True),
        ('principal is User in Group::"nope"', False),
        ('principal is Doc in principal.nope', False),  # `in` not evaluated when the type differs
        ('resource is Doc in [Folder::"root"]', True),
    ],
)
def test_is(backend, expr, expected):
    assert ev(expr, backend) is expected


def test_is_needs_an_entity(backend):
    assert is_error(ev("1 is User", backend), "type error")


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("if true then true else false", True),
        ("if false then true else false", False),
        ("if true then true else principal.nope", True),  # branch not taken: no error
        ("if false then principal.nope else true", True),
        ("(if principal.level > 2 then 10 else 0) == 10", True),
        ('(if true then 1 else "a") == 1', True),
    ],
)
def test_if_then_else(backend, expr, expected):
    assert ev(expr, backend) is expected


def test_if_needs_a_boolean(backend):
    assert is_error(ev("if 1 then true else true", backend), "expected bool")


# ---------------------------------------------------------------------------
# Sets and methods


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("[1, 2].contains(2)", True),
        ("[1, 2].contains(3)", False),
        ("[1, true].contains(1)", True),
        ("[true].contains(1)", False),
        ("[1].contains(true)", False),
        ("[[1, 2], [3]].contains([2, 1])", True),
        ("[{a: 1}].contains({a: 1})", True),
        ("[1].contains([1])", False),
        ("[principal].contains(User::\"alice\")", True),
        ("context.tags.contains(\"a\")", True),
        ("[1, 2, 3].containsAll([1, 3])", True),
        ("[1, 2].containsAll([1, 4])", False),
        ("[1, 2].containsAll([])", True),
        ("[1, 2].containsAny([4, 2])", True),
        ("[1, 2].containsAny([])", False),
        ("[].isEmpty()", True),
        ("[1].isEmpty()", False),
        ("context.tags.isEmpty()", False),
        ("[1, 1].containsAll([1]) && [1, 1] == [1]", True),
    ],
)
def test_set_methods(backend, expr, expected):
    assert ev(expr, backend, context=CTX) is expected


@pytest.mark.parametrize(
    "expr",
    ["(1).contains(1)", "[1].containsAll(1)", "(1).containsAll([1])", "[1].containsAny(\"a\")", "(\"s\").isEmpty()",
     "context.rec.contains(1)"],
)
def test_set_method_type_errors(backend, expr):
    assert is_error(ev(expr, backend, context=CTX), "expected set")


def test_set_and_record_literals_evaluate_their_items(backend):
    assert ev("[principal.level, 1].contains(3)", backend) is True
    assert is_error(ev("[principal.nope].isEmpty()", backend), "nope")
    assert ev("{a: principal.level}.a == 3", backend) is True
    assert is_error(ev("{a: principal.nope} == {}", backend), "nope")


# ---------------------------------------------------------------------------
# Relation calls


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("can(principal, action, resource)", True),
        ("can(principal, Action::\"write\", resource)", False),
        ("can(User::\"bob\", Action::\"write\", resource)", True),
        ("can(principal, _, _)", True),
        ("can(_, Action::\"write\", _)", True),
        ("can(_, Action::\"delete\", _)", False),
        ("member(principal, Group::\"eng\")", True),
        ("nothing(principal)", False),
        ("flag()", True),
        ("principal(principal)", True),
        ("principal(User::\"bob\")", False),
        ("resource(_)", True),
        ("action(Action::\"read\")", True),
        ('context("n", 5)', True),
        ('context("n", 6)', False),
        ('context("rec", _)', False),  # only scalar entries are context facts
        ('context(_, "hello")', True),
        ("can(principal, action, [1])", False),
    ],
)
def test_relation_calls(backend, expr, expected):
    assert ev(expr, backend, context=CTX) is expected


def test_relation_call_argument_errors_propagate(backend):
    assert is_error(ev("can(principal.nope, action, resource)", backend), "nope")


def test_relation_calls_are_collected():
    pset = compile_policies(parse('permit(principal, action, resource) when { can(principal, _, resource) && m(_) };'))
    assert pset.relations == {"can", "m"}
    assert ("can", (True, False, True)) in pset.patterns


# ---------------------------------------------------------------------------
# Decisions


POLICIES = """
@id("permit-read") permit(principal, action == Action::"read", resource);
@id("permit-level") permit(principal, action, resource) when { principal.level > 2 };
@id("forbid-secret") forbid(principal, action, resource) when { resource.classification == "secret" && principal.level < 2 };
@id("forbid-broken") forbid(principal, action, resource) when { principal.nope };
@id("permit-broken") permit(principal, action, resource) when { resource.nope == 1 };
"""


def test_permit_reasons_are_all_satisfied_permits_and_errors_are_reported(backend):
    kind, reasons, errors = decide(POLICIES, backend)
    assert kind == "permit"
    assert reasons == ("permit-read", "permit-level")
    assert [pid for pid, _ in errors] == ["forbid-broken", "permit-broken"]


def test_forbid_overrides_permit(backend):
    kind, reasons, errors = decide(POLICIES, backend, principal=BOB)
    assert kind == "forbid" and reasons == ("forbid-secret",)
    assert [pid for pid, _ in errors] == ["forbid-broken", "permit-broken"]


def test_default_deny(backend):
    kind, reasons, errors = decide(POLICIES, backend, principal=BOB, action=WRITE, resource=Entity("Doc", "x"))
    assert (kind, reasons) == ("deny", ())
    # Doc::"x" has no attributes at all: three policies error.
    assert [pid for pid, _ in errors] == ["forbid-secret", "forbid-broken", "permit-broken"]


def test_erroring_forbid_does_not_forbid(backend):
    kind, reasons, errors = decide(
        '@id("p") permit(principal, action, resource); @id("f") forbid(principal, action, resource) when { 1 + true };',
        backend,
    )
    assert (kind, reasons) == ("permit", ("p",)) and errors[0][0] == "f"


def test_no_policies_denies(backend):
    assert compile_policies((), generator=GENERATORS[backend]).evaluate(U, READ, DOC, CRecord(), world()) == ("deny", (), ())


def test_policy_ids_default_to_position():
    pset = compile_policies(parse('permit(principal, action, resource); @id("x") permit(principal, action, resource);'))
    assert [p.id for p in pset] == ["policy0", "x"]


def test_when_and_unless_combine(backend):
    text = '@id("p") permit(principal, action, resource) when { principal.level > 1 } unless { principal.active } when { 1 };'
    # unless is true: not satisfied, and the third condition is never evaluated
    assert decide(text, backend) == ("deny", (), ())


def test_condition_order_stops_at_first_false(backend):
    text = '@id("p") permit(principal, action, resource) when { false } when { principal.nope };'
    assert decide(text, backend) == ("deny", (), ())


# ---------------------------------------------------------------------------
# Scopes


@pytest.mark.parametrize(
    "scope,expected",
    [
        ("principal, action, resource", True),
        ('principal == User::"alice", action, resource', True),
        ('principal == User::"bob", action, resource', False),
        ('principal in Group::"all", action, resource', True),
        ('principal in Group::"nope", action, resource', False),
        ("principal is User, action, resource", True),
        ("principal is Group, action, resource", False),
        ('principal is User in Group::"staff", action, resource', True),
        ('principal is User in Group::"nope", action, resource', False),
        ('principal is Group in Group::"staff", action, resource', False),
        ('principal, action == Action::"read", resource', True),
        ('principal, action == Action::"write", resource', False),
        ('principal, action in Action::"any", resource', True),
        ('principal, action in Action::"readish", resource', True),
        ('principal, action in [Action::"write", Action::"readish"], resource', True),
        ('principal, action in [Action::"write"], resource', False),
        ('principal, action, resource == Doc::"d1"', True),
        ('principal, action, resource == Doc::"d2"', False),
        ('principal, action, resource in Folder::"root"', True),
        ('principal, action, resource in Folder::"other"', False),
        ("principal, action, resource is Doc", True),
        ("principal, action, resource is Folder", False),
        ('principal, action, resource is Doc in Folder::"sub"', True),
        ('principal, action, resource is Doc in Folder::"other"', False),
    ],
)
def test_scopes(backend, scope, expected):
    kind, _, errors = decide(f"permit({scope});", backend)
    assert not errors
    assert (kind == "permit") is expected


def test_scope_is_checked_before_conditions(backend):
    # The condition would error, but the scope excludes the request first.
    assert decide('permit(principal == User::"bob", action, resource) when { principal.nope };', backend) == ("deny", (), ())


# ---------------------------------------------------------------------------
# The index: same answers as evaluating every policy with its scope as a condition


def _scope_as_condition(parts: list) -> str:
    conds = []
    for var, part in zip(("principal", "action", "resource"), parts):
        if part != var:
            conds.append(f"({part})")
    return " && ".join(conds) or "true"


def test_index_matches_unindexed_evaluation(backend):
    rng = random.Random(7)
    users = [Entity("User", f"u{i}") for i in range(8)]
    groups = [Entity("Group", f"g{i}") for i in range(4)]
    docs = [Entity("Doc", f"d{i}") for i in range(4)] + [Entity("Folder", "f0")]
    actions = [Entity("Action", a) for a in ("read", "write", "grp", "top")]
    parents = {u: rng.sample(groups, rng.randint(0, 2)) for u in users}
    parents[groups[0]] = [groups[1]]
    parents[groups[1]] = [groups[2]]
    parents[actions[0]] = [actions[2]]
    parents[actions[2]] = [actions[3]]
    parents[docs[0]] = [docs[-1]]
    data = FactData(parents=parents, attrs={u: {"level": i} for i, u in enumerate(users)})
    pscopes = ["principal", "principal == {u}", "principal in {g}", "principal is User", "principal is Group",
               "principal is User in {g}"]
    ascopes = ["action", "action == {a}", "action in {a}", "action in [{a}, {a2}]"]
    rscopes = ["resource", "resource == {d}", "resource is Doc", "resource is Folder", "resource in {d}",
               "resource is Doc in {d}"]
    for _trial in range(20):
        indexed, flat = [], []
        for i in range(rng.randint(5, 40)):
            parts = [
                rng.choice(pscopes).format(u=rng.choice(users), g=rng.choice(groups)),
                rng.choice(ascopes).format(a=rng.choice(actions), a2=rng.choice(actions)),
                rng.choice(rscopes).format(d=rng.choice(docs)),
            ]
            scope = ", ".join(parts)
            effect = rng.choice(["permit", "permit", "forbid"])
            cond = rng.choice(["", " when { principal.level > 3 }", " unless { principal.level == 5 }"])
            indexed.append(f'@id("p{i}") {effect}({scope}){cond};')
            flat.append(f'@id("p{i}") {effect}(principal, action, resource) when {{ {_scope_as_condition(parts)} }}{cond};')
        a_set = compile_policies(parse("\n".join(indexed)), generator=GENERATORS[backend])
        b_set = compile_policies(parse("\n".join(flat)), generator=GENERATORS[backend])
        for _ in range(60):
            req = (rng.choice(users + groups[:1]), rng.choice(actions), rng.choice(docs))
            assert a_set.evaluate(*req, CRecord(), data) == b_set.evaluate(*req, CRecord(), data), req


def test_principal_equality_index_with_many_policies(backend):
    text = "\n".join(f'@id("u{i}") permit(principal == User::"u{i}", action, resource);' for i in range(500))
    pset = compile_policies(parse(text), generator=GENERATORS[backend])
    data = FactData()
    assert pset.evaluate(Entity("User", "u42"), READ, DOC, CRecord(), data) == ("permit", ("u42",), ())
    assert pset.evaluate(Entity("User", "zz"), READ, DOC, CRecord(), data) == ("deny", (), ())
    general, by_p, _ = pset.candidates(Entity("User", "u42"), READ, DOC, data)
    assert general == () and len(by_p) == 500


def test_candidates_skip_other_types_and_actions():
    pset = compile_policies(parse(
        'permit(principal is User, action == Action::"read", resource is Doc);'
        'permit(principal is Group, action, resource);'
        'permit(principal, action == Action::"write", resource);'
        'permit(principal, action, resource == Folder::"x");'
    ))
    general, by_p, _ = pset.candidates(U, READ, DOC, FactData())
    assert [pid for _, pid, _, _ in general] == ["policy0"] and by_p is None


def test_reasons_keep_bundle_order_with_principal_index(backend):
    text = (
        '@id("b") permit(principal, action, resource);'
        '@id("a") permit(principal == User::"alice", action, resource);'
        '@id("c") permit(principal, action, resource);'
    )
    assert decide(text, backend)[1] == ("b", "a", "c")


def test_memo_is_per_action_and_type():
    pset = compile_policies(parse('permit(principal, action in Action::"grp", resource);'))
    data = FactData(parents={READ: [Entity("Action", "grp")]})
    assert pset.evaluate(U, READ, DOC, CRecord(), data)[0] == "permit"
    assert pset.evaluate(U, WRITE, DOC, CRecord(), data)[0] == "deny"
    assert pset.evaluate(U, READ, F_ROOT, CRecord(), data)[0] == "permit"


# ---------------------------------------------------------------------------
# Data layer


def test_overlay_adds_parents_and_overrides_attributes(backend):
    base = world()
    new_group = Entity("Group", "temp")
    overlay = OverlayData(
        base,
        parents={U: [new_group], new_group: [Entity("Group", "outer")]},
        attrs={U: to_value({"level": 9, "extra": [1]})},
    )
    text = '@id("x") permit(principal in Group::"outer", action, resource) when { principal.level == 9 && principal.name == "alice" && principal in Group::"all" };'
    pset = compile_policies(parse(text), generator=GENERATORS[backend])
    assert pset.evaluate(U, READ, DOC, CRecord(), overlay) == ("permit", ("x",), ())
    assert pset.evaluate(U, READ, DOC, CRecord(), base)[0] == "deny"
    # A request parent above a static ancestor is also seen from below.
    overlay2 = OverlayData(base, parents={G_STAFF: [new_group]})
    assert overlay2.is_in(U, new_group) and not base.is_in(U, new_group)
    assert overlay2.is_in(U, G_ALL)


def test_ancestor_closure_handles_cycles_and_depth():
    chain = {i: [i + 1] for i in range(3000)}
    closure = ancestor_closure(chain)
    assert len(closure[0]) == 3000 and 3000 in closure[0]
    cyc = ancestor_closure({"a": ["b"], "b": ["c"], "c": ["a", "d"]})
    assert cyc["a"] == {"a", "b", "c", "d"}
    assert cyc["b"] == {"a", "b", "c", "d"}


def test_fact_data_from_facts_reads_multi_valued_attributes():
    data = FactData.from_facts([(U, G_ENG)], [(U, "role", "a"), (U, "role", "b"), (U, "level", 1), (U, 7, "x")])
    assert data.get_attr(U, "role") == CSet(["a", "b"])
    assert data.get_attr(U, "level") == 1
    assert data.get_attr(U, "nope") is MISSING
    assert data.is_in(U, G_ENG)


def test_matches_uses_projection_and_fallback():
    class Fallback:
        def contains(self, rel, row):
            return rel == "big" and row[0] == 1

    data = FactData(relations={"r": [(1, 2), (3, 4)]}, fallback=Fallback())
    assert data.matches("r", (1, None)) and not data.matches("r", (2, None))
    assert data.matches("r", (None, 4))
    assert data.contains("big", (1, 2)) and data.matches("big", (1, None))
    assert not data.contains("other", (1,))


# ---------------------------------------------------------------------------
# Values


def test_to_value_conversions():
    v = to_value({"a": [1, True, "x"], "e": {"__entity": {"type": "User", "id": "u"}}, "r": {"k": 1.5}})
    assert type(v) is CRecord
    assert v["a"] == CSet([1, True, "x"]) and len(v["a"]) == 3
    assert v["e"] == Entity("User", "u")
    assert from_value(v)["r"] == {"k": 1.5}


@pytest.mark.parametrize(
    "bad",
    [{"a": None}, {"a": 2**63}, {"a": {"__extn": {"fn": "ip", "arg": "1"}}}, {"a": object()}, {1: 2},
     {"a": float("nan")}, {"e": {"__entity": {"type": "", "id": "x"}}}],
)
def test_to_value_rejects(bad):
    with pytest.raises(RuneRequestError):
        to_value(bad)


def test_cedar_eq_kinds():
    assert cedar_eq(1, 1.0) and not cedar_eq(1, True) and not cedar_eq("a", Entity("a", "a"))
    assert cedar_eq(CSet([1, 2]), CSet([2, 1])) and not cedar_eq(CSet([1]), CSet([True]))
    assert CRecord(a=1) != CRecord(a=True) and hash(CRecord(a=1)) == hash(CRecord(a=1))


# ---------------------------------------------------------------------------
# Compilation


def test_generated_code_uses_constants_not_text():
    pset = compile_policies(parse('permit(principal, action, resource) when { principal.name == "x\\"); import os; (\\"" };'))
    pol = pset.policies[0]
    assert "import" not in pol.source and "def test(" in pol.source
    assert pset.evaluate(U, READ, DOC, CRecord(), world())[0] == "deny"


def test_too_deep_for_generated_code_is_a_located_limit_error_not_a_fallback():
    expr: A.Expr = A.Lit(True)
    for _ in range(150):
        expr = A.IfThenElse(A.Binary("==", A.Lit(1), A.VarRef("context")), A.Lit(False), expr)
    policy = A.Policy("permit", "deep", A.ScopeConstraint("any"), A.ScopeConstraint("any"), A.ScopeConstraint("any"),
                      (A.Condition("when", expr),))
    with pytest.raises(RuneLimitError) as info:
        compile_policies([policy])
    assert info.value.limit == "max_nesting"


def test_generated_code_compiles_at_the_nesting_limit():
    # The parser allows max_nesting levels; the generator must compile the
    # deepest policy the parser accepts (there is no evaluator to fall back to).
    forms = (
        lambda inner: f"if context has x then false else ({inner})",
        lambda inner: f"(context has x || ({inner}))",
        lambda inner: f"(principal is User && ({inner}))",
        lambda inner: f"!(!({inner}))",
    )
    for form in forms:
        for depth in range(64, 0, -1):
            expr = "true"
            for _ in range(depth):
                expr = form(expr)
            policies, errors = parse_policies(f'@id("d") permit(principal, action, resource) when {{ {expr} }};', "<t>")
            if not errors:
                break
        assert depth >= 10
        pset = compile_policies(policies)
        assert pset.evaluate(U, READ, DOC, CRecord(), world()) == ("permit", ("d",), ())


def test_out_of_range_literal_is_rejected_at_compile_time():
    policy = A.Policy("permit", "x", A.ScopeConstraint("any"), A.ScopeConstraint("any"), A.ScopeConstraint("any"),
                      (A.Condition("when", A.Binary("==", A.Lit(2**64), A.Lit(1))),))
    with pytest.raises(RuneSyntaxError):
        compile_policies([policy])


def test_overlay_reads_parent_and_attr_from_a_request_model(backend):
    class RequestModel:
        """Stands for the request's Datalog model (``match`` by prefix)."""

        rows = {
            "parent": [(U, G_ENG), (G_ENG, Entity("Group", "derived"))],
            "attr": [(U, "badge", "gold"), (U, "role", "a"), (U, "role", "b")],
        }

        def match(self, name, prefix):
            n = len(prefix)
            return [r[n:] for r in self.rows[name] if r[:n] == prefix]

    data = OverlayData(FactData(), attrs={U: to_value({"level": 4})}, hierarchy=RequestModel())
    text = (
        '@id("x") permit(principal in Group::"derived", action, resource) '
        'when { principal.badge == "gold" && principal.role == ["b", "a"] && principal.level == 4 && !(principal has nope) };'
    )
    pset = compile_policies(parse(text), generator=GENERATORS[backend])
    assert pset.evaluate(U, READ, DOC, CRecord(), data) == ("permit", ("x",), ())
    assert not data.is_in(U, G_STAFF)


def test_ancestor_closure_fast_path_matches_the_general_algorithm():
    from rune_fast.policy.data import _closure_with_cycles

    rng = random.Random(3)
    for trial in range(30):
        n = rng.randint(1, 60)
        graph = {i: rng.sample(range(i + 1, n + 5), rng.randint(0, 3)) for i in range(n)}
        if trial % 3 == 0:  # add a cycle sometimes
            graph[n - 1] = graph.get(n - 1, []) + [0]
        assert ancestor_closure(graph) == _closure_with_cycles({k: tuple(v) for k, v in graph.items()})
    shared = ancestor_closure({("d", i): [("f", 1)] for i in range(100)} | {("f", 1): [("f", 0)]})
    assert len({id(v) for k, v in shared.items() if k[0] == "d"}) == 1  # one set for all siblings
