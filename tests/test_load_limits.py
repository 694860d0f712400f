"""Limits bound memory and time while building a model, and say where (issue #8, finding 8).

Every exhaustion is a ``RuneLimitError`` naming the limit and located at the
rule that was running; the planner is near-linear in the length of a body.
Each test runs on the compiled core and on its pure twin.
"""

from __future__ import annotations

import time

import pytest

import rune_fast
from rune_fast.datalog import Program, _pycore
from rune_fast.errors import RuneLimitError
from rune_fast.lang.checks import check_program
from rune_fast.lang.rules_parser import parse_rules
from rune_fast.datalog.compiler import CompiledProgram


@pytest.fixture(params=["default", "pure"])
def core(request):
    return None if request.param == "default" else _pycore


def wide_rule(width: int) -> str:
    args = ", ".join("X" if k % 2 == 0 else "Y" for k in range(width))
    return f"w({args}) :- n(X), n(Y)."


def test_wide_heads_are_bounded_by_bytes_not_tuple_counts(core):
    # 100 x 100 = 10,000 tuples: far below max_tuples, but 64 columns each.
    p = Program("# a comment line\n" + wide_rule(64), max_model_bytes=1 << 20, _core_module=core)
    with pytest.raises(RuneLimitError) as info:
        p.evaluate({"n": [(i,) for i in range(100)]})
    err = info.value
    assert err.limit == "max_model_bytes"
    assert "'w'" in str(err)
    assert (err.file, err.line) == ("<rules>", 2)
    # the same rows fit in a budget that is large enough
    ok = Program(wide_rule(64), max_model_bytes=10_000 * 64 * 8, _core_module=core)
    assert ok.evaluate({"n": [(i,) for i in range(100)]}).size("w") == 10_000


def test_aggregate_matches_count_as_work(core):
    # 300 tuples derived, but 89,700 aggregate matches collected (X is a group key).
    p = Program("c(X, N) :- n(X), N = count : { n(Y), Y != X }.", max_tuples=50_000, _core_module=core)
    with pytest.raises(RuneLimitError) as info:
        p.evaluate({"n": [(i,) for i in range(300)]})
    assert info.value.limit == "max_tuples"
    assert "aggregate" in str(info.value)
    assert info.value.line == 1
    ok = Program("c(X, N) :- n(X), N = count : { n(Y), Y != X }.", max_tuples=100_000, _core_module=core)
    assert ok.evaluate({"n": [(i,) for i in range(300)]}).relation("c") == {(i, 299) for i in range(300)}


def test_load_has_a_time_budget(core):
    # ~27 million aggregate matches: seconds of work, stopped at the budget.
    text = "n(X) :- m(X).\nc(X, N) :- n(X), N = count : { n(Y), n(Z), Z != X }.\n"
    p = Program(text, load_deadline_ms=1, _core_module=core)
    start = time.perf_counter()
    with pytest.raises(RuneLimitError) as info:
        p.evaluate({"m": [(i,) for i in range(300)]})
    assert info.value.limit == "load_deadline_ms"
    assert info.value.line == 2
    assert time.perf_counter() - start < 10  # generous: the budget is 1 ms


def test_engine_load_errors_name_the_file_and_rule_line(core, monkeypatch):
    from rune_fast.datalog import compiler

    if core is not None:
        monkeypatch.setattr(compiler, "core", core)
    text = ('version = "rune/1"\n[data]\nn = [[1], [2], [3]]\n[rules]\n'
            "loop(X) :- n(X).\nloop(Y) :- loop(X), Y = X + 1.\n")
    with pytest.raises(RuneLimitError) as info:
        rune_fast.load_text(text, path="bundle.rune", max_tuples=1000)
    assert (info.value.file, info.value.line, info.value.limit) == ("bundle.rune", 6, "max_tuples")


def test_a_4000_literal_body_plans_fast_and_runs_on_both_cores(core):
    n = 4000
    rules, errors = parse_rules(f"p(X) :- {', '.join(f'q{i}(X)' for i in range(n))}.", "<rules>", 1, 64)
    assert not errors
    facts_decl = []
    from rune_fast.lang import ast as A

    for i in range(n):
        facts_decl.append(A.FactSet(f"q{i}", 1, (), rules[0].loc))
    info = check_program(facts_decl, rules, ())
    start = time.perf_counter()
    compiled = CompiledProgram(rules, info, core_module=core)
    planning = time.perf_counter() - start
    assert planning < 5.0, planning  # the quadratic planner took ~16 s (measured ~0.1 s now)
    p = Program(rules, _core_module=core)
    facts = {f"q{i}": [(1,), (2,)] if i % 2 else [(1,)] for i in range(n)}
    assert p.evaluate(facts).relation("p") == {(1,)}
    assert compiled.strata


def test_a_rule_longer_than_max_rule_literals_is_a_located_limit_error(core):
    # The core recurses once per literal: an unbounded body could overflow the C stack.
    body = ", ".join(f"q{i}(X)" for i in range(60))
    with pytest.raises(RuneLimitError) as info:
        Program(f"\np(X) :- {body}.", max_rule_literals=50, _core_module=core)
    assert (info.value.limit, info.value.line) == ("max_rule_literals", 2)
    Program(f"p(X) :- {body}.", max_rule_literals=60, _core_module=core)
