"""Relations reserve room from the last evaluation's sizes: a hint that never changes a result.

Evaluating a program again (a reload, a benchmark's next round) reserves
each relation's rows and dedup set up front from the sizes the previous
evaluation ended with. Facts that shrink or grow between evaluations, and
reservations smaller or larger than what comes, must give the same models.
"""

from __future__ import annotations

import pytest

from rune_fast.datalog import Program, _core, _pycore
from rune_fast.datalog.compiler import RESERVE_FROM

CORES = pytest.mark.parametrize("core", [_core, _pycore], ids=["compiled", "pure"])

RULES = "path(X, Y) :- edge(X, Y).\npath(X, Z) :- path(X, Y), edge(Y, Z).\n"


def closure(n: int) -> set:
    return {(i, j) for i in range(n + 1) for j in range(i + 1, n + 1)}


@CORES
def test_evaluations_that_grow_and_shrink_give_fresh_results(core):
    program = Program(RULES, _core_module=core)
    path_slot = program.compiled.slot_of["path"]
    for n in (150, 20, 150, 200, 0, 90):
        model = program.evaluate({"edge": [(i, i + 1) for i in range(n)]})
        assert set(model.rows("path")) == closure(n)
        assert len(model.rows("path")) == len(closure(n))       # no row twice
        assert program.compiled.size_hints[path_slot] == len(closure(n))
    assert len(closure(150)) >= RESERVE_FROM                     # the hint was really used


@CORES
def test_reserve_keeps_rows_and_lets_the_relation_grow_past_it(core):
    rel = core.Relation("r", 2, [[0]])
    rel.reserve(-5)
    rel.reserve(0)
    for i in range(10):
        rel.add((2 * i + 1, 3))
    rel.reserve(50_000)                                          # after rows: they stay
    rel.reserve(2**40)                                           # absurd: ignored
    for i in range(70_000):
        rel.add((2 * i + 1, 5))
    assert len(rel) == 70_010
    assert rel.add((1, 3)) is False and rel.add((1, 5)) is False
    assert rel.contains((139_999, 5)) and not rel.contains((140_001, 5))
    assert sorted(rel.match(0, (7,))) == [(7, 3), (7, 5)]
