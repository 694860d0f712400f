"""Direct tests of the rule semantics (docs/language.md §4) through the public Datalog API, on both cores."""

from __future__ import annotations

import os
import threading

import pytest

import rune_fast
from rune_fast.datalog import _pycore
from rune_fast.datalog import COMPILED, Program
from rune_fast.errors import RuneDataError, RuneError, RuneLimitError, RuneSyntaxError
from rune_fast.values import Entity


@pytest.fixture(params=["default", "pure"])
def make(request):
    """Build programs on the selected core (compiled unless RUNE_FAST_PURE=1) and on the pure twin."""
    module = None if request.param == "default" else _pycore
    return lambda text, **kw: Program(text, _core_module=module, **kw)


def test_compiled_extension_is_the_one_imported():
    if os.environ.get("RUNE_FAST_PURE") == "1":
        assert COMPILED is False
        return
    from rune_fast.datalog import _core
    from rune_fast.datalog import compiler

    assert COMPILED is True
    assert compiler.core is _core
    assert _core.__file__.endswith((".so", ".pyd"))


def test_transitive_closure(make):
    p = make("path(X, Y) :- edge(X, Y).\npath(X, Z) :- path(X, Y), edge(Y, Z).")
    m = p.evaluate({"edge": [(1, 2), (2, 3), (3, 1)]})
    assert m.relation("path") == {(a, b) for a in (1, 2, 3) for b in (1, 2, 3)}
    assert len(m) == 3 + 9


def test_mutual_recursion(make):
    p = make("even(0).\neven(N) :- odd(M), succ(M, N).\nodd(N) :- even(M), succ(M, N).")
    m = p.evaluate({"succ": [(i, i + 1) for i in range(6)]})
    assert m.relation("even") == {(0,), (2,), (4,), (6,)}
    assert m.relation("odd") == {(1,), (3,), (5,)}


def test_negation_and_wildcard(make):
    p = make("ok(U) :- user(U), not banned(U, _).")
    m = p.evaluate({"user": [("a",), ("b",)], "banned": [("b", "spam")]})
    assert m.relation("ok") == {("a",)}


def test_negation_of_empty_relation_with_no_bound_columns(make):
    p = make("quiet(U) :- user(U), not alarm(_).")
    assert p.evaluate({"user": [("a",)], "alarm": []}).relation("quiet") == {("a",)}
    assert p.evaluate({"user": [("a",)], "alarm": [(1,)]}).relation("quiet") == frozenset()


def test_comparisons_numeric_across_int_and_float(make):
    p = make('big(X) :- v(X), X > 1.5.\neq(X) :- v(X), X = 2.\nstr_lt(X) :- v(X), X < "z".')
    m = p.evaluate({"v": [(1,), (2,), (2.0,), (3.5,), ("a",), (True,)]})
    assert sorted(m.rows("big"), key=repr) == [(2,), (2.0,), (3.5,)]
    assert sorted(m.rows("eq"), key=repr) == [(2,), (2.0,)]
    assert m.rows("str_lt") == ()  # ordering non-numbers is false in rules


def test_kinds_do_not_unify(make):
    p = make("both(X) :- a(X), b(X).")
    m = p.evaluate({"a": [(1,), (True,), ("1",)], "b": [(1.0,), (True,), (1,)]})
    assert sorted(m.rows("both"), key=repr) == [(1,), (True,)]


def test_entities(make):
    p = make('admin(U) :- role(U, Role::"admin").')
    alice, bob = Entity("User", "alice"), Entity("User", "bob")
    m = p.evaluate({"role": [(alice, Entity("Role", "admin")), (bob, Entity("Role", "dev"))]})
    assert m.relation("admin") == {(alice,)}
    assert m.query('admin(U)') == [{"U": alice}]


def test_arithmetic_and_assignment(make):
    p = make("r(X, Y) :- v(X), Y = X * 2 + 1.\nd(X, Q, M) :- v(X), Q = X / -2, M = X % -2.")
    m = p.evaluate({"v": [(7,), (-7,)]})
    assert m.relation("r") == {(7, 15), (-7, -13)}
    # truncation toward zero, remainder takes the dividend's sign (C semantics)
    assert m.relation("d") == {(7, -3, 1), (-7, 3, -1)}


def test_float_arithmetic(make):
    p = make("r(Y) :- v(X), Y = X / 2.")
    assert p.evaluate({"v": [(3.0,)]}).relation("r") == {(1.5,)}


def test_overflow_and_division_by_zero_derive_nothing_and_are_reported(make):
    p = make("r(X, Y) :- v(X), Y = X * X.\nq(X, Y) :- v(X), Y = 10 / X.")
    big = 2**62
    m = p.evaluate({"v": [(big,), (3,), (0,)]})
    assert m.relation("r") == {(3, 9), (0, 0)}
    assert m.relation("q") == {(3, 3), (big, 0)}
    text = " ".join(m.diagnostics)
    assert "overflow" in text and "division by zero" in text


def test_large_integers_beyond_inline_range(make):
    p = make("r(Y) :- v(X), Y = X + 1.")
    m = p.evaluate({"v": [(2**62 - 1,), (2**63 - 2,)]})
    assert m.relation("r") == {(2**62,), (2**63 - 1,)}


def test_string_methods(make):
    p = make(
        'tmp(P) :- path(P), P.starts_with("/tmp/").\n'
        'log(P) :- path(P), P.ends_with(".log").\n'
        'sec(P) :- path(P), P.contains("secret").\n'
        'lk(P) :- path(P), P.like("/var/*/x\\*y").\n'  # rune text: "/var/*/x\*y", \* is a literal star
    )
    m = p.evaluate({"path": [("/tmp/a.log",), ("/etc/secret",), ("/var/q/x*y",), ("/var/q/xzy",), (5,)]})
    assert m.relation("tmp") == {("/tmp/a.log",)}
    assert m.relation("log") == {("/tmp/a.log",)}
    assert m.relation("sec") == {("/etc/secret",)}
    assert m.relation("lk") == {("/var/q/x*y",)}


def test_two_rules_with_different_methods_do_not_share_results(make):
    p = make('a(P) :- s(P), P.starts_with("x").\nb(P) :- s(P), P.ends_with("z").')
    m = p.evaluate({"s": [("xy",), ("yz",)]})
    assert m.relation("a") == {("xy",)}
    assert m.relation("b") == {("yz",)}


def test_aggregates(make):
    p = make(
        "total(U, T) :- user(U), T = sum C : { call(U, _, C) }.\n"
        "n(U, N) :- user(U), N = count : { call(U, _, _) }.\n"
        "lo(U, M) :- user(U), M = min C : { call(U, _, C) }.\n"
        "hi(U, M) :- user(U), M = max C : { call(U, _, C) }.\n"
        "avg(U, M) :- user(U), M = mean C : { call(U, _, C) }.\n"
    )
    m = p.evaluate({"user": [("a",), ("b",)], "call": [("a", 1, 5), ("a", 2, 5), ("a", 3, 2)]})
    # distinct matches: the two calls costing 5 both count
    assert m.relation("total") == {("a", 12)}
    assert m.relation("n") == {("a", 3), ("b", 0)}  # count of nothing is 0
    assert m.relation("lo") == {("a", 2)}           # min of nothing derives nothing
    assert m.relation("hi") == {("a", 5)}
    assert m.relation("avg") == {("a", 4.0)}


def test_aggregate_over_non_numbers_is_reported(make):
    p = make("t(T) :- T = sum X : { v(X) }.")
    m = p.evaluate({"v": [(1,), ("x",)]})
    assert m.relation("t") == frozenset()
    assert any("sum" in d for d in m.diagnostics)


def test_aggregate_sum_overflow(make):
    p = make("t(T) :- T = sum X : { v(X) }.")
    m = p.evaluate({"v": [(2**63 - 1,), (1,)]})
    assert m.relation("t") == frozenset()
    assert any("overflow" in d for d in m.diagnostics)


def test_aggregate_with_bound_result_is_a_test(make):
    p = make("three(U) :- user(U), k(N), N = count : { item(U, _) }.")
    m = p.evaluate({"user": [("a",), ("b",)], "k": [(3,)], "item": [("a", 1), ("a", 2), ("a", 3), ("b", 1)]})
    assert m.relation("three") == {("a",)}


def test_zero_arity_relations(make):
    p = make("alarm :- sensor(X), X > 10.\nquiet :- not alarm.")
    assert p.evaluate({"sensor": [(3,)]}).relation("quiet") == {()}
    m = p.evaluate({"sensor": [(30,)]})
    assert m.relation("alarm") == {()} and m.relation("quiet") == frozenset()


def test_facts_in_rules_and_constants_in_heads(make):
    p = make('color(red).\ncolor("dark blue").\nwarm(X, 1) :- color(X), X = red.')
    m = p.evaluate({})
    assert m.relation("color") == {("red",), ("dark blue",)}
    assert m.relation("warm") == {("red", 1)}


def test_query(make):
    p = make("path(X, Y) :- edge(X, Y).\npath(X, Z) :- path(X, Y), edge(Y, Z).")
    m = p.evaluate({"edge": [(1, 2), (2, 3)]})
    assert m.query("path(1, X)") == [{"X": 2}, {"X": 3}]
    assert m.query("path(X, X)") == []
    assert m.query("path(_, 3)") == [{}]
    with pytest.raises(RuneSyntaxError):
        m.query("path(1, X")
    with pytest.raises(RuneSyntaxError):
        m.query("path(1)")


def test_contains_and_match(make):
    p = make("path(X, Y) :- edge(X, Y).")
    m = p.evaluate({"edge": [(1, 2), (1, 3)]})
    assert m.contains("path", (1, 2))
    assert not m.contains("path", (2, 1))
    assert m.contains("path", (1, None))
    assert not m.contains("path", (None, 1))
    assert not m.contains("path", ("unknown", None))
    assert sorted(m.match("path", (1,))) == [(2,), (3,)]


@pytest.mark.parametrize(
    "facts, fragment",
    [
        ({"nope": [(1,)]}, "unknown relation 'nope'"),
        ({"edge": [(1,)]}, "arity 2"),
        ({"edge": [(1, None)]}, "unsupported value None"),
        ({"edge": [(1, [2])]}, "unsupported value [2]"),
        ({"edge": [(1, 2**64)]}, "64 bits"),
        ({"edge": [(1, float("nan"))]}, "NaN"),
        ({"edge": "12"}, "iterable of rows"),
        ({"edge": [5]}, "not a tuple"),
    ],
)
def test_bad_facts_are_rejected_with_the_relation_and_row(make, facts, fragment):
    p = make("path(X, Y) :- edge(X, Y).")
    with pytest.raises(RuneDataError) as info:
        p.evaluate(facts)
    assert fragment in str(info.value)


def test_program_errors_are_located():
    with pytest.raises(RuneError) as info:
        Program("p(X) :- q(Y).")
    assert info.value.line == 1


def test_limit_on_derived_tuples_names_the_relation(make):
    p = make("n(X) :- start(X).\nn(Y) :- n(X), Y = X + 1.", max_tuples=1000)
    with pytest.raises(RuneLimitError) as info:
        p.evaluate({"start": [(0,)]})
    assert info.value.limit == "max_tuples"
    assert "'n'" in str(info.value)


def test_concurrent_evaluation_gives_identical_models():
    # No load deadline: eight threads share one GIL (and, under RUNE_FAST_PURE=1,
    # run the pure core) on a possibly loaded runner; this tests sharing, not speed.
    p = Program("path(X, Y) :- edge(X, Y).\npath(X, Z) :- path(X, Y), edge(Y, Z).\n"
                "far(X) :- path(0, X), not edge(0, X).", load_deadline_ms=0)
    # ~n² path tuples. The pure core (RUNE_FAST_PURE=1, test_pure_mode.py)
    # is ~20x slower: a smaller graph keeps its 25 evaluations to about a
    # second while each one still spans many thread switches.
    n = 150 if COMPILED else 60
    facts = {"edge": [(i, i + 1) for i in range(n)] + [(i, (i * 7) % n) for i in range(n)]}
    expected = p.evaluate(facts)
    results: list = []
    errors: list = []

    def work():
        try:
            for _ in range(3):
                m = p.evaluate(facts)
                results.append((m.relation("path"), m.relation("far")))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert len(results) == 24
    assert all(r == (expected.relation("path"), expected.relation("far")) for r in results)


def test_with_request_extends_without_mutating(make):
    p = make("anc(X, Y) :- parent(X, Y).\nanc(X, Z) :- anc(X, Y), parent(Y, Z).\n"
             "mine(D) :- principal(U), owner(D, U).\nnot_mine(D) :- owner(D, _), not mine(D).")
    base = p.evaluate({"parent": [(1, 2)], "owner": [("d1", "a"), ("d2", "b")]})
    req = base.with_request({"principal": [("a",)], "parent": [(2, 3)]})
    assert req.relation("anc") == {(1, 2), (2, 3), (1, 3)}
    assert req.relation("mine") == {("d1",)}
    assert req.relation("not_mine") == {("d2",)}
    assert base.relation("anc") == {(1, 2)}
    assert base.relation("mine") == frozenset()
    assert base.relation("not_mine") == {("d1",), ("d2",)}
    with pytest.raises(RuneDataError):
        base.with_request({"owner": [("d3", "a")]})


def test_with_request_on_a_request_model_adds_to_its_facts(make):
    # a request model extended again equals the base model extended once with
    # both requests' facts (rows of both, each once)
    p = make("seen(X) :- principal(X).\nseen(X) :- e(X).\n"
             "anc(X, Y) :- parent(X, Y).\nanc(X, Z) :- anc(X, Y), parent(Y, Z).")
    base = p.evaluate({"e": [("a",)]})
    first = base.with_request({"principal": [("b",)], "parent": [(1, 2)]})
    twice = first.with_request({"principal": iter([("c",), ("a",)]), "parent": [(2, 3)]})
    once = base.with_request({"principal": [("b",), ("c",), ("a",)], "parent": [(1, 2), (2, 3)]})
    for name in ("seen", "anc"):
        assert sorted(twice.rows(name)) == sorted(once.rows(name)) == sorted(set(once.rows(name)))
    assert twice.relation("seen") == {("a",), ("b",), ("c",)}
    assert first.relation("seen") == {("a",), ("b",)}                  # not changed
    with pytest.raises(RuneDataError, match="mapping"):
        base.with_request([("principal", ("a",))])


def test_entities_hold_strings_only(make):
    # results are kept out of the cyclic GC because no value can refer to
    # anything but strings: an entity with another kind of id is refused
    p = make("p(X) :- e(X).")
    for rows in ([(Entity("T", object()),)], [(Entity("T", "ok"),), (Entity(1, "x"),)]):
        with pytest.raises(RuneDataError, match="strings"):
            p.evaluate({"e": rows})
    assert p.evaluate({"e": [(Entity("T", "ok"),)]}).relation("p") == {(Entity("T", "ok"),)}


def test_package_exports_datalog():
    assert rune_fast.datalog.Program is Program
