"""Load-time checks (rune_fast.lang.checks): built from ASTs directly, and from text.

The AST half does not depend on the parsers; the text half is skipped until
``rune_fast.lang.parser`` exists.
"""

from __future__ import annotations

import dataclasses

import pytest

from rune_fast.lang import ast as A
from rune_fast.lang import checks
from rune_fast.lang.checks import (
    ROLE_AGGREGATE,
    ROLE_ASSIGN,
    ROLE_ATOM,
    ROLE_FILTER,
    ROLE_METHOD,
    ROLE_NEGATION,
    check_program,
    classify_body,
    classify_rule,
)
from rune_fast.errors import (
    RuneArityError,
    RuneCheckError,
    RuneDuplicateIdError,
    RuneError,
    RuneErrors,
    RuneHeadWildcardError,
    RuneSafetyError,
    RuneStratificationError,
    RuneUndefinedError,
)
from rune_fast.values import Entity

F = "t.rune"


# ---------------------------------------------------------------- builders


def L(line: int, col: int = 1) -> A.Loc:
    return A.Loc(F, line, col, f"<line {line}>")


def V(name: str, line: int = 0, col: int = 1) -> A.Var:
    return A.Var(name, L(line, col))


def W(line: int = 0, col: int = 1) -> A.Wildcard:
    return A.Wildcard(L(line, col))


def K(value) -> A.Const:
    return A.Const(value)


def at(name: str, *args, line: int = 0, col: int = 1) -> A.Atom:
    args = tuple(K(a) if not isinstance(a, (A.Var, A.Wildcard, A.Const)) else a for a in args)
    return A.Atom(name, args, L(line, col))


def neg(atom: A.Atom, col: int | None = None) -> A.Negation:
    return A.Negation(atom, L(atom.loc.line, col if col is not None else max(atom.loc.col - 4, 1)))


def cmp(op, left, right, line=0, col=1) -> A.Comparison:
    return A.Comparison(op, left, right, L(line, col))


def binop(op, left, right) -> A.BinOp:
    return A.BinOp(op, left, right, left.loc)


def meth(var, method="starts_with", arg="/tmp/", line=0, col=1) -> A.MethodCall:
    return A.MethodCall(var, method, arg, L(line, col))


def agg(result, func, target, *body, line=0, col=1) -> A.Aggregate:
    return A.Aggregate(result, func, target, tuple(body), L(line, col))


def relocate(node, line: int):
    """Give every node built without a line (line 0) the line ``line``.

    Keeps the tests short: body literals sit on their rule's line unless a
    test says otherwise.
    """
    if isinstance(node, tuple):
        return tuple(relocate(n, line) for n in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, A.Loc):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.name == "loc":
            if value.line == 0:
                changes["loc"] = L(line, value.col)
        elif isinstance(value, tuple) or (dataclasses.is_dataclass(value) and not isinstance(value, A.Loc)):
            changes[f.name] = relocate(value, line)
    return dataclasses.replace(node, **changes)


def rule(head: A.Atom, *body) -> A.Rule:
    line = head.loc.line or 1
    head = relocate(head, line)
    return A.Rule(head, relocate(tuple(body), line), head.loc)


def facts(rel: str, rows, line: int = 1) -> A.FactSet:
    rows = tuple(tuple(r) if isinstance(r, (list, tuple)) else (r,) for r in rows)
    arity = len(rows[0]) if rows else 1
    return A.FactSet(rel, arity, rows, L(line, 1))


ANY = A.ScopeConstraint("any")


def policy(*exprs, effect="permit", pid="p", line=1) -> A.Policy:
    conds = tuple(A.Condition("when", relocate(e, line), L(line, 1)) for e in exprs)
    return A.Policy(effect, pid, ANY, ANY, ANY, conds, (), L(line, 1))


def call(name, *args, line=0, col=1) -> A.RelCall:
    return A.RelCall(name, tuple(args), L(line, col))


PR = A.VarRef("principal")
RS = A.VarRef("resource")


def errors_of(exc: RuneError) -> list[RuneError]:
    return exc.errors


def one(exc_info) -> RuneError:
    errs = errors_of(exc_info.value)
    assert len(errs) == 1, [e.render() for e in errs]
    return errs[0]


def where(err: RuneError) -> tuple[type, int, int]:
    return (type(err), err.line, err.column)


# ---------------------------------------------------------------- valid programs


def test_valid_program_info():
    fs = [
        facts("has_role", [("alice", "admin"), ("bob", "viewer")], line=2),
        facts("role_permission", [("admin", "read"), ("admin", "write")], line=3),
        facts("edge", [(1, 2), (2, 3)], line=4),
    ]
    rules = [
        rule(at("user_can", V("U"), V("P"), line=10),
             at("has_role", V("U"), V("R")), at("role_permission", V("R"), V("P"))),
        rule(at("path", V("X"), V("Y"), line=11), at("edge", V("X"), V("Y"))),
        rule(at("path", V("X"), V("Z"), line=12), at("path", V("X"), V("Y")), at("edge", V("Y"), V("Z"))),
        rule(at("me", V("U"), line=13), at("principal", V("U"))),
        rule(at("my_perm", V("P"), line=14), at("me", V("U")), at("user_can", V("U"), V("P"))),
        rule(at("not_me", V("U"), line=15), at("has_role", V("U"), W()), neg(at("me", V("U")))),
    ]
    pols = [policy(call("my_perm", A.Lit("read")))]
    info = check_program(fs, rules, pols)
    assert info.arities["user_can"] == 2
    assert info.arities["principal"] == 1 and info.arities["attr"] == 3 and info.arities["context"] == 2
    assert info.idb == {"user_can", "path", "me", "my_perm", "not_me"}
    assert info.edb == {"has_role", "role_permission", "edge"}
    assert info.request_dependent == {"me", "my_perm", "not_me"}
    flat = [r for s in info.strata for r in s]
    assert sorted(flat) == sorted(info.idb)
    assert ("path",) in info.strata
    pos = {r: i for i, s in enumerate(info.strata) for r in s}
    assert pos["me"] < pos["my_perm"] and pos["user_can"] < pos["my_perm"] and pos["me"] < pos["not_me"]
    assert len(info.rule_info) == len(rules)
    assert info.depends_on["my_perm"] == {"me", "user_can"}


def test_strata_respect_negation_and_group_recursive_components():
    rules = [
        rule(at("b", V("X"), line=1), at("a", V("X"))),
        rule(at("c", V("X"), line=2), at("a", V("X")), neg(at("b", V("X")))),
        rule(at("d", V("X"), line=3), at("e", V("X"))),
        rule(at("e", V("X"), line=4), at("d", V("X"))),
        rule(at("e", V("X"), line=5), at("c", V("X"))),
        rule(at("n", V("C"), line=6), at("a", W()), agg(V("C"), "count", None, at("e", W()))),
    ]
    info = check_program([facts("a", [1, 2])], rules, [])
    pos = {r: i for i, s in enumerate(info.strata) for r in s}
    assert pos["b"] < pos["c"] < pos["d"] == pos["e"] < pos["n"]
    assert set(info.strata[pos["d"]]) == {"d", "e"}
    assert info.request_dependent == frozenset()


def test_request_dependence_through_parent_attr_and_recursion():
    rules = [
        rule(at("anc", V("X"), V("Y"), line=1), at("parent", V("X"), V("Y"))),
        rule(at("anc", V("X"), V("Z"), line=2), at("anc", V("X"), V("Y")), at("parent", V("Y"), V("Z"))),
        rule(at("level", V("E"), V("L"), line=3), at("attr", V("E"), "level", V("L"))),
        rule(at("static", V("X"), line=4), at("base", V("X"))),
        rule(at("ctx_ok", line=5), at("context", "mfa", True)),
        rule(at("uses", V("X"), line=6), at("static", V("X")), neg(at("ctx_ok"))),
    ]
    info = check_program([facts("base", [1])], rules, [])
    assert info.request_dependent == {"anc", "level", "ctx_ok", "uses"}
    assert "static" not in info.request_dependent


def test_parent_and_attr_may_have_facts_and_rules():
    e1, e2 = Entity("Group", "a"), Entity("Group", "b")
    fs = [facts("parent", [(e1, e2)]), facts("attr", [(e1, "level", 3)]), facts("member", [(e2, e1)])]
    rules = [rule(at("parent", V("X"), V("Y"), line=3), at("member", V("X"), V("Y")))]
    info = check_program(fs, rules, [])
    assert "parent" in info.idb and "parent" in info.edb


def test_empty_fact_set_defines_relation_without_fixing_arity():
    fs = [A.FactSet("blocked", 1, (), L(1))]
    rules = [rule(at("ok", V("U"), line=2), at("user", V("U"), V("N")), neg(at("blocked", V("U"), W())))]
    info = check_program(fs + [facts("user", [("a", 1)])], rules, [])
    assert info.arities["blocked"] == 2


# ---------------------------------------------------------------- classify_body


def test_classify_assignment_chain_in_any_order():
    body = (
        cmp("=", V("Z", 1, 30), binop("*", V("Y", 1, 34), K(2)), col=30),
        cmp("=", V("Y", 1, 20), binop("+", V("X", 1, 24), K(1)), col=20),
        at("num", V("X"), col=5),
        cmp(">", V("Z"), K(10), col=40),
    )
    info = classify_body(body)
    roles = [li.role for li in info.literals]
    assert roles == [ROLE_ASSIGN, ROLE_ASSIGN, ROLE_ATOM, ROLE_FILTER]
    assert info.literals[0].target == "Z" and info.literals[0].needs == ("Y",)
    assert info.literals[1].target == "Y" and info.literals[1].needs == ("X",)
    assert info.schedule == (2, 1, 0, 3)
    assert info.problems == ()
    assert info.positive == {"X"} and info.bound == {"X", "Y", "Z"}


def test_classify_equality_between_bound_vars_is_a_filter():
    body = (at("p", V("X"), V("Y")), cmp("=", V("X"), V("Y")))
    info = classify_body(body)
    assert info.literals[1].role == ROLE_FILTER
    assert info.literals[1].needs == ("X", "Y")


def test_classify_reversed_assignment_and_second_assignment_is_comparison():
    body = (at("p", V("X")), cmp("=", binop("+", V("X"), K(1)), V("Y")), cmp("=", V("Y"), K(3)))
    info = classify_body(body)
    assert info.literals[1].role == ROLE_ASSIGN and info.literals[1].target == "Y"
    assert info.literals[2].role == ROLE_FILTER


def test_classify_roles_of_every_literal_kind():
    body = (
        at("path", V("P")),
        neg(at("blocked", V("P"), W())),
        meth(V("P")),
        agg(V("N"), "count", None, at("hit", V("P"), W())),
        cmp("<", V("N"), K(5)),
    )
    info = classify_body(body, outside=["P", "N"])
    assert [li.role for li in info.literals] == [ROLE_ATOM, ROLE_NEGATION, ROLE_METHOD, ROLE_AGGREGATE, ROLE_FILTER]
    ag = info.literals[3]
    assert ag.keys == ("P",) and ag.binds == ("N",) and ag.body is not None
    assert ag.body.bound == {"P"}
    assert info.problems == ()
    # Tests come right after the atoms that bind them; the filter on N after the aggregate.
    assert info.schedule.index(4) > info.schedule.index(3)


def test_classify_aggregate_result_already_bound_is_a_test():
    body = (at("q", V("X"), V("N")), agg(V("N"), "count", None, at("r", V("X"), W())))
    info = classify_body(body)
    assert info.literals[1].role == ROLE_AGGREGATE and info.literals[1].binds == ()
    assert info.literals[1].keys == ("X",)


def test_classify_rule_reports_head_once():
    r = rule(at("p", V("X", 1, 3), line=1), at("q", V("Y")), cmp(">", V("X", 1, 20), K(1), col=20))
    info = classify_rule(r)
    assert [(p.var, p.loc.col) for p in info.problems] == [("X", 3)]


# ---------------------------------------------------------------- safety


def test_unbound_head_variable():
    r = rule(at("p", V("X", 3, 3), V("Y", 3, 6), line=3, col=1), at("q", V("X", 3, 13), col=11))
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("q", [1])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 3, 6)
    assert "Y" in err.message and "head" in err.message


def test_fact_rule_must_be_ground():
    r = rule(at("p", V("X", 2, 3), line=2))
    with pytest.raises(RuneSafetyError) as ei:
        check_program([], [r], [])
    assert where(one(ei)) == (RuneSafetyError, 2, 3)


def test_unbound_in_negation_names_variable_and_suggests_wildcard():
    r = rule(at("ok", V("U"), line=4), at("user", V("U")), neg(at("banned", V("U"), V("R", 4, 30)), col=20))
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("user", [1]), facts("banned", [(1, 2)])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 4, 30)
    assert "R" in err.message and "negated" in err.message and "_" in err.message


def test_wildcard_in_negation_is_fine():
    r = rule(at("ok", V("U"), line=4), at("user", V("U")), neg(at("banned", V("U"), W())))
    check_program([facts("user", [1]), facts("banned", [(1, 2)])], [r], [])


def test_unbound_in_comparison():
    r = rule(at("p", V("X"), line=5), at("q", V("X")), cmp("<", V("X"), V("L", 5, 22), col=18))
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("q", [1])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 5, 22) and "L" in err.message and "comparison" in err.message


def test_unbound_in_method_call():
    r = rule(at("p", V("X"), line=6), at("q", V("X")), meth(V("P", 6, 20), line=6, col=20))
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("q", [1])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 6, 20) and "P" in err.message and "method" in err.message


def test_circular_equalities_are_unsafe():
    r = rule(at("p", line=7), at("q", W()), cmp("=", V("X", 7, 15), V("Y", 7, 19), col=15))
    with pytest.raises(RuneErrors) as ei:
        check_program([facts("q", [1])], [r], [])
    assert [where(e) for e in errors_of(ei.value)] == [(RuneSafetyError, 7, 15), (RuneSafetyError, 7, 19)]


def test_wildcard_in_comparison_is_unsafe():
    r = rule(at("p", V("X"), line=8), at("q", V("X")), cmp(">", V("X"), W(8, 20), line=8, col=16))
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("q", [1])], [r], [])
    assert where(one(ei)) == (RuneSafetyError, 8, 20)


def test_aggregate_ok_and_group_keys():
    r = rule(
        at("total", V("U"), V("T"), line=9),
        at("user", V("U")),
        agg(V("T"), "sum", V("C"), at("call", V("U"), W(), V("C")), line=9, col=30),
    )
    info = check_program([facts("user", ["a"]), facts("call", [("a", "x", 3)])], [r], [])
    li = info.rule_info[0].literals[1]
    assert li.keys == ("U",) and li.binds == ("T",)


def test_aggregate_target_must_be_bound_inside():
    r = rule(
        at("total", V("U"), V("T"), line=9),
        at("user", V("U")),
        agg(V("T"), "sum", V("C", 9, 28), at("call", V("U"), W(), W()), line=9, col=22),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("user", ["a"]), facts("call", [("a", "x", 3)])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 9, 28) and "C" in err.message


def test_head_variable_only_inside_aggregate_is_unsafe():
    r = rule(
        at("total", V("U", 10, 7), V("T"), line=10),
        agg(V("T"), "sum", V("C"), at("call", V("U"), W(), V("C")), line=10, col=20),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("call", [("a", "x", 3)])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 10, 7) and "U" in err.message


def test_aggregate_key_shared_with_comparison_must_be_bound_outside():
    r = rule(
        at("big", line=11),
        agg(V("N"), "count", None, at("call", V("U", 11, 25), W(), W()), line=11, col=10),
        cmp("=", V("U", 11, 40), V("N"), col=40),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("call", [("a", "x", 3)])], [r], [])
    err = one(ei)
    assert (err.line, err.column) == (11, 25) and "group-by" in err.message


def test_aggregate_inner_negation_uses_local_binding():
    ok = rule(
        at("n", V("C"), line=1),
        at("dummy", W()),
        agg(V("C"), "count", None, at("user", V("U")), neg(at("blocked", V("U")))),
    )
    check_program([facts("dummy", [1]), facts("user", [1]), facts("blocked", [2])], [ok], [])
    bad = rule(
        at("n", V("C"), line=2),
        at("dummy", W()),
        agg(V("C"), "count", None, at("user", W()), neg(at("blocked", V("U", 2, 50)))),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("dummy", [1]), facts("user", [1]), facts("blocked", [2])], [bad], [])
    assert where(one(ei)) == (RuneSafetyError, 2, 50)


def test_aggregate_result_inside_its_body_is_rejected():
    r = rule(
        at("n", V("C"), line=3),
        at("dummy", W()),
        agg(V("C"), "count", None, at("user", V("C", 3, 33)), line=3, col=20),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("dummy", [1]), facts("user", [1])], [r], [])
    err = one(ei)
    assert (err.line, err.column) == (3, 33) and "its own aggregate" in err.message


def test_assignment_from_aggregate_result():
    r = rule(
        at("double", V("D"), line=1),
        cmp("=", V("D"), binop("*", V("N"), K(2))),
        agg(V("N"), "count", None, at("user", W())),
    )
    info = check_program([facts("user", [1])], [r], [])
    lits = info.rule_info[0].literals
    assert lits[0].role == ROLE_ASSIGN and lits[1].role == ROLE_AGGREGATE
    assert info.rule_info[0].schedule == (1, 0)


# ---------------------------------------------------------------- head wildcard


def test_wildcard_in_head():
    r = rule(at("p", V("X"), W(12, 9), line=12), at("q", V("X")))
    with pytest.raises(RuneHeadWildcardError) as ei:
        check_program([facts("q", [1])], [r], [])
    assert where(one(ei)) == (RuneHeadWildcardError, 12, 9)


# ---------------------------------------------------------------- arity


def test_arity_facts_vs_body_names_both_places():
    fs = [facts("member", [("a", "g")], line=2)]
    r = rule(at("p", V("X"), line=9), at("member", V("X"), col=12))
    with pytest.raises(RuneArityError) as ei:
        check_program(fs, [r], [])
    err = one(ei)
    assert where(err) == (RuneArityError, 9, 12)
    assert "t.rune:2:1" in err.message and "arity 1" in err.message and "arity 2" in err.message


def test_arity_two_heads():
    r1 = rule(at("p", V("X"), line=1), at("q", V("X")))
    r2 = rule(at("p", V("X"), V("X"), line=2), at("q", V("X")))
    with pytest.raises(RuneArityError) as ei:
        check_program([facts("q", [1])], [r1, r2], [])
    err = one(ei)
    assert where(err) == (RuneArityError, 2, 1) and "t.rune:1:1" in err.message


def test_arity_of_reserved_and_request_relations():
    r1 = rule(at("p", V("X"), line=1), at("parent", V("X"), col=9))
    r2 = rule(at("q", V("X"), line=2), at("principal", V("X"), V("X"), col=9))
    with pytest.raises(RuneErrors) as ei:
        check_program([], [r1, r2], [])
    errs = errors_of(ei.value)
    assert [where(e) for e in errs] == [(RuneArityError, 1, 9), (RuneArityError, 2, 9)]
    assert "parent" in errs[0].message and "arity 2" in errs[0].message


def test_arity_in_policy_call_and_inside_aggregate():
    fs = [facts("can", [("a", "b")], line=1)]
    r = rule(at("n", V("C"), line=2), at("can", W(), W()), agg(V("C"), "count", None, at("can", W(), col=30)))
    pol = policy(A.Binary("&&", call("can", PR, line=5, col=12), call("can", PR, RS, line=5, col=30)), line=5)
    with pytest.raises(RuneErrors) as ei:
        check_program(fs, [r], [pol])
    assert [where(e) for e in errors_of(ei.value)] == [(RuneArityError, 2, 30), (RuneArityError, 5, 12)]


# ---------------------------------------------------------------- undefined


def test_undefined_in_body_with_suggestion():
    fs = [facts("has_role", [("a", "r")])]
    r = rule(at("p", V("X"), line=3), at("has_rol", V("X"), V("Y"), col=9))
    with pytest.raises(RuneUndefinedError) as ei:
        check_program(fs, [r], [])
    err = one(ei)
    assert where(err) == (RuneUndefinedError, 3, 9)
    assert "has_rol" in err.message and "did you mean has_role" in err.message


def test_undefined_in_negation_and_aggregate():
    r = rule(
        at("p", V("X"), V("N"), line=4),
        at("q", V("X")),
        neg(at("nope", V("X"), col=20)),
        agg(V("N"), "count", None, at("gone", V("X"), col=40)),
    )
    with pytest.raises(RuneErrors) as ei:
        check_program([facts("q", [1])], [r], [])
    assert [where(e) for e in errors_of(ei.value)] == [(RuneUndefinedError, 4, 20), (RuneUndefinedError, 4, 40)]


def test_undefined_in_policy_nested_expression():
    inner = A.IfThenElse(
        A.Lit(True),
        A.Unary("!", call("can_reed", PR, RS, line=7, col=25)),
        A.Method(A.SetLit((A.Lit(1),)), "contains", (A.Lit(1),)),
    )
    pol = policy(inner, line=7)
    with pytest.raises(RuneUndefinedError) as ei:
        check_program([facts("can_read", [("a", "b")])], [], [pol])
    err = one(ei)
    assert where(err) == (RuneUndefinedError, 7, 25) and "did you mean can_read" in err.message


def test_request_and_reserved_relations_are_defined():
    r = rule(
        at("p", V("X"), line=1),
        at("principal", V("X")), at("action", W()), at("resource", W()), at("context", "k", W()),
        at("parent", V("X"), W()), at("attr", V("X"), "a", W()),
    )
    check_program([], [r], [policy(call("parent", PR, W()), call("attr", PR, A.Lit("x"), W()))])


def test_request_relation_cannot_have_rules_or_facts():
    r = rule(at("principal", V("X"), line=2, col=1), at("q", V("X")))
    fs = [facts("q", [1]), facts("context", [("k", 1)], line=1)]
    with pytest.raises(RuneErrors) as ei:
        check_program(fs, [r], [])
    errs = errors_of(ei.value)
    assert [where(e) for e in errs] == [(RuneCheckError, 1, 1), (RuneCheckError, 2, 1)]


# ---------------------------------------------------------------- stratification


def test_negation_cycle_reports_chain():
    rules = [
        rule(at("a", V("X"), line=1), at("base", V("X")), neg(at("b", V("X")), col=20)),
        rule(at("b", V("X"), line=2), at("a", V("X"))),
    ]
    with pytest.raises(RuneStratificationError) as ei:
        check_program([facts("base", [1])], rules, [])
    err = one(ei)
    assert where(err) == (RuneStratificationError, 1, 20)
    assert "a -> not b -> a" in err.message


def test_self_negation():
    rules = [rule(at("p", V("X"), line=3), at("base", V("X")), neg(at("p", V("X")), col=15))]
    with pytest.raises(RuneStratificationError) as ei:
        check_program([facts("base", [1])], rules, [])
    err = one(ei)
    assert where(err) == (RuneStratificationError, 3, 15) and "p -> not p" in err.message


def test_aggregate_cycle():
    rules = [
        rule(at("total", V("N"), line=4), at("base", W()), agg(V("N"), "count", None, at("item", W()), col=30)),
        rule(at("item", V("N"), line=5), at("total", V("N"))),
    ]
    with pytest.raises(RuneStratificationError) as ei:
        check_program([facts("base", [1])], rules, [])
    err = one(ei)
    assert where(err) == (RuneStratificationError, 4, 30)
    assert "total -> aggregate over item -> total" in err.message and "aggregate" in err.message


def test_long_cycle_chain():
    rules = [
        rule(at("a", V("X"), line=1), at("b", V("X"))),
        rule(at("b", V("X"), line=2), at("c", V("X"))),
        rule(at("c", V("X"), line=3), at("base", V("X")), neg(at("a", V("X")), col=25)),
        rule(at("c", V("X"), line=4), at("base", V("X"))),
    ]
    with pytest.raises(RuneStratificationError) as ei:
        check_program([facts("base", [1])], rules, [])
    err = one(ei)
    assert where(err) == (RuneStratificationError, 3, 25)
    assert "c -> not a -> b -> c" in err.message


def test_positive_recursion_is_fine():
    rules = [
        rule(at("reach", V("X"), V("Y"), line=1), at("edge", V("X"), V("Y"))),
        rule(at("reach", V("X"), V("Z"), line=2), at("reach", V("X"), V("Y")), at("reach", V("Y"), V("Z"))),
    ]
    info = check_program([facts("edge", [(1, 2)])], rules, [])
    assert info.strata == [("reach",)]


# ---------------------------------------------------------------- policies


def test_duplicate_policy_ids():
    p1 = policy(A.Lit(True), pid="same", line=1)
    p2 = policy(A.Lit(True), pid="same", line=4)
    p3 = policy(A.Lit(True), pid="", line=6)
    p4 = policy(A.Lit(True), pid="", line=7)
    with pytest.raises(RuneDuplicateIdError) as ei:
        check_program([], [], [p1, p2, p3, p4])
    err = one(ei)
    assert where(err) == (RuneDuplicateIdError, 4, 1) and "t.rune:1:1" in err.message


# ---------------------------------------------------------------- all errors at once


def test_several_independent_errors_are_all_reported():
    fs = [facts("q", [1], line=1)]
    rules = [
        rule(at("p", V("X", 2, 3), line=2), at("q", V("Y"))),                      # safety
        rule(at("r", W(3, 3), line=3), at("q", W())),                               # head wildcard
        rule(at("s", V("X"), line=4), at("q", V("X"), V("X"), col=9)),              # arity
        rule(at("t", V("X"), line=5), at("qq", V("X"), col=9)),                     # undefined
        rule(at("u", V("X"), line=6), at("q", V("X")), neg(at("v", V("X")), col=15)),
        rule(at("v", V("X"), line=7), at("u", V("X"))),                             # stratification
    ]
    pols = [policy(call("nothing", PR, line=9, col=20), line=9)]
    with pytest.raises(RuneErrors) as ei:
        check_program(fs, rules, pols)
    got = sorted((where(e) for e in errors_of(ei.value)), key=lambda w: (w[1], w[2]))
    assert got == [
        (RuneSafetyError, 2, 3),
        (RuneHeadWildcardError, 3, 3),
        (RuneArityError, 4, 9),
        (RuneUndefinedError, 5, 9),
        (RuneStratificationError, 6, 15),
        (RuneUndefinedError, 9, 20),
    ]
    text = ei.value.render()
    assert text.count("t.rune:") >= 6


def test_errors_without_locations_still_render():
    r = A.Rule(A.Atom("p", (A.Var("X"),)), (A.Atom("q", ()),))
    with pytest.raises(RuneErrors) as ei:
        check_program([], [r], [])
    for e in errors_of(ei.value):
        assert isinstance(e.render(), str)


def test_deep_dependency_chain_has_no_recursion_limit():
    n = 5000
    rules = [rule(at("r0", V("X"), line=1), at("base", V("X")))]
    rules += [rule(at(f"r{i}", V("X"), line=i + 1), at(f"r{i - 1}", V("X"))) for i in range(1, n)]
    info = check_program([facts("base", [1])], rules, [])
    assert info.strata[0] == ("r0",) and info.strata[-1] == (f"r{n - 1}",)


# ---------------------------------------------------------------- from text


def load(text: str):
    from rune_fast.lang import parser

    bundle = parser.bundle_from_text(text, "t.rune")
    return check_program(bundle.facts, bundle.rules, bundle.policies)


HEADER = 'version = "rune/1"\n'


def test_text_valid_program():
    info = load(HEADER + """
[data]
has_role = [["alice", "admin"]]
role_permission = [["admin", "read"]]

[rules]
user_can(U, P) :- has_role(U, R), role_permission(R, P).
total(U, T) :- has_role(U, _), T = count : { role_permission(_, _) }.
me(U) :- principal(U).

[policies]
permit(principal, action, resource) when { user_can("alice", "read") };
""")
    assert info.strata and info.request_dependent == {"me"}


def _marked(body: str) -> tuple[str, int]:
    """Strip the ``‸`` marker from a rule line; return the line and the marker column."""
    col = body.index("‸") + 1
    return body.replace("‸", ""), col


TEXT_PREFIX = HEADER + "[data]\nq = [1]\nbanned = [[1, 2]]\n[rules]\n"  # rules start on line 6


@pytest.mark.parametrize(
    "body, cls",
    [
        ("p(‸X) :- q(Y).", RuneSafetyError),
        ("p(X) :- q(X), not banned(X, ‸Y).", RuneSafetyError),
        ("p(X) :- q(X), X < ‸L.", RuneSafetyError),
        ('p(X) :- q(X), ‸P.starts_with("/").', RuneSafetyError),
        ("p(T) :- q(_), T = sum ‸V : { banned(_, _) }.", RuneSafetyError),
        ("p(X, ‸_) :- q(X).", RuneHeadWildcardError),
        ("p(X) :- ‸q(X, X).", RuneArityError),
        ("p(X) :- ‸qq(X).", RuneUndefinedError),
        ("p(X) :- q(X), ‸not p(X).", RuneStratificationError),
        ("p(N) :- q(_), ‸N = count : { p(_) }.", RuneStratificationError),
    ],
)
def test_text_errors(body, cls):
    body, col = _marked(body)
    with pytest.raises(RuneError) as ei:
        load(TEXT_PREFIX + body + "\n")
    errs = errors_of(ei.value)
    rendered = [e.render() for e in errs]
    assert len(errs) == 1, rendered
    assert (type(errs[0]), errs[0].line, errs[0].column) == (cls, 6, col), rendered
    assert errs[0].source_line == body
    assert body in errs[0].render() and "^" in errs[0].render()


def test_text_several_errors_all_reported():
    text = TEXT_PREFIX + (
        "p(X) :- q(Y).\n"                          # 6: unsafe X (head, col 3)
        "r(X, _) :- q(X).\n"                       # 7: wildcard in head (col 6)
        "s(X) :- banned(X).\n"                     # 8: arity (col 9)
        "t(X) :- q(X), not u(X).\n"                # 9: cycle (col 15)
        "u(X) :- t(X).\n"
        "[policies]\n"
        "permit(principal, action, resource) when { nope(principal) };\n"  # 12: undefined (col 44)
    )
    with pytest.raises(RuneErrors) as ei:
        load(text)
    got = sorted(((type(e), e.line, e.column) for e in errors_of(ei.value)), key=lambda w: (w[1], w[2]))
    assert got == [
        (RuneSafetyError, 6, 3),
        (RuneHeadWildcardError, 7, 6),
        (RuneArityError, 8, 9),
        (RuneStratificationError, 9, 15),
        (RuneUndefinedError, 12, 44),
    ]


def test_unbound_aggregate_key_does_not_cascade():
    # X is a key that nothing binds; N and D still count as bound so that only
    # the real mistake is reported.
    r = rule(
        at("p", V("D"), line=4),
        at("q", W()),
        agg(V("N"), "count", None, at("q", V("X", 4, 30)), col=20),
        cmp("=", V("D"), binop("*", V("N"), K(2)), col=40),
        cmp(">", V("X", 4, 50), K(0), col=50),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("q", [1])], [r], [])
    err = one(ei)
    assert where(err) == (RuneSafetyError, 4, 30) and "group-by" in err.message


def test_sibling_aggregates_sharing_a_variable_make_it_a_key():
    # Documented choice: a variable shared by two aggregate bodies is a
    # group-by key of both, so it must be bound outside.
    r = rule(
        at("p", V("A"), V("B"), line=5),
        at("q", W()),
        agg(V("A"), "count", None, at("q", V("V", 5, 30))),
        agg(V("B"), "count", None, at("q", V("V", 5, 50))),
    )
    with pytest.raises(RuneSafetyError) as ei:
        check_program([facts("q", [1])], [r], [])
    assert where(one(ei)) == (RuneSafetyError, 5, 30)  # once per variable and rule


def test_nested_aggregate_keys():
    # inner count groups by U (bound by the outer aggregate body), outer sum groups by G.
    inner = agg(V("K"), "count", None, at("call", V("U"), W()))
    outer = agg(V("T"), "sum", V("K"), at("member", V("U"), V("G")), inner)
    r = rule(at("load", V("G"), V("T"), line=1), at("group", V("G")), outer)
    info = check_program(
        [facts("group", ["g"]), facts("member", [("u", "g")]), facts("call", [("u", 1)])], [r], []
    )
    lit = info.rule_info[0].literals[1]
    assert lit.keys == ("G",)
    assert lit.body.literals[1].keys == ("U",)


def test_classify_is_linear_enough_for_long_bodies():
    import time

    n = 2000
    body = [cmp("=", V(f"X{i}"), binop("+", V(f"X{i - 1}"), K(1))) for i in range(n, 0, -1)]
    body.append(at("q", V("X0")))
    body += [cmp(">", V(f"X{i}"), K(0)) for i in range(n)]
    start = time.perf_counter()
    info = classify_body(body)
    # A hang guard against a blow-up, not a timing expectation (asv measures speed).
    assert time.perf_counter() - start < 30.0
    assert info.problems == () and len(info.bound) == n + 1


def test_public_constants_match_the_architecture_contract():
    assert checks.REQUEST_RELATIONS == {"principal": 1, "action": 1, "resource": 1, "context": 2}
    assert checks.RESERVED_RELATIONS == {"parent": 2, "attr": 3}
    assert {"principal", "action", "resource", "context", "parent", "attr"} == checks.REQUEST_BASE
