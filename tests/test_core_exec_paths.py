"""The executor's shortcuts give the models of the plain paths (compiled core vs pure twin vs reference).

* A recursive rule's first pass starts from its stratum-member atom (like its
  delta variants), so no index exists only for that pass: the result must not
  depend on it, also when facts are given for the recursive relation itself.
* Indexes that a stratum never probes are not maintained row by row while it
  runs; they are built in one pass when it ends. Later strata, requests and
  ``Model.match``/``contains`` probe them: they must hold every row.
* The last join of a plan writes the head row straight into the emit buffer:
  heads with constants, rows with checks (a variable repeated in one atom) and
  heads of several widths go through it.
* A join followed by a whole-row probe (``not path(S, X)``, ``edge(Y, 3)``)
  prefetches that probe's slot from rows ahead, with keys mixing the row's
  columns, outer registers and constants: only a hint, results unchanged.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.datalog import Program, _core, _pycore

import reference_datalog

RULES = """\
path(X, Y) :- edge(X, Y).
path(X, Z) :- path(X, Y), edge(Y, Z).
sg(X, Y) :- par(X, P), par(Y, P), X != Y.
sg(X, Y) :- par(X, A), sg(A, B), par(Y, B).
twice(X, Z) :- path(X, Y), path(Y, Z).
hop(X, Z) :- start(X), sg(X, Y), path(Y, Z).
loop(Z) :- edge(Z, Z).
tagged(X, "t", Y, 7) :- path(X, Y), edge(Y, Y).
unreached(S, X) :- start(S), edge(X, _), not path(S, X).
into3(X) :- edge(X, Y), edge(Y, 3).
"""

NODES = st.integers(0, 6)
PAIRS = st.lists(st.tuples(NODES, NODES), max_size=12)


def models(facts: dict) -> list:
    out = []
    for core in (_core, _pycore):
        program = Program(RULES, _core_module=core)
        out.append((program, program.evaluate(facts)))
    return out


@settings(max_examples=120, deadline=None, derandomize=True)
@given(PAIRS, PAIRS, PAIRS, PAIRS, st.lists(st.tuples(NODES), max_size=3))
def test_given_facts_for_recursive_relations(edge, par, path, sg, start):
    facts = {"edge": edge, "par": par, "path": path, "sg": sg, "start": start}
    (program, compiled), (_, pure) = models(facts)
    ref = reference_datalog.evaluate(program.rules, program.info.strata, facts)
    for name in ("path", "sg", "twice", "hop", "loop", "tagged", "unreached", "into3"):
        want = {tuple(v for _, v in row) for row in ref.get(name, frozenset())}
        assert set(compiled.rows(name)) == want, name
        assert set(pure.rows(name)) == want, name


def test_deferred_indexes_hold_every_row_after_the_stratum():
    """path's (0,) index is probed only by a later stratum; path grows by
    thousands of rows (many catch-up batches) before that stratum runs."""
    n = 120
    facts = {"edge": [(i, i + 1) for i in range(n)], "par": [], "start": [(0,)]}
    program = Program(RULES)
    assert (0,) in program.compiled.rel("path").index_cols
    model = program.evaluate(facts)
    want_path = {(i, j) for i in range(n + 1) for j in range(i + 1, n + 1)}
    assert set(model.rows("path")) == want_path
    # Model.match and contains probe the index itself
    for x in (0, 1, 57, n - 1, n):
        assert sorted(model.match("path", [x])) == [(j,) for j in range(x + 1, n + 1)]
        assert model.contains("path", [x, None]) == (x < n)
    assert set(model.rows("twice")) == {(i, k) for i in range(n + 1) for k in range(i + 2, n + 1)}
    assert set(model.rows("unreached")) == {(0, 0)}
    assert set(model.rows("into3")) == {(1,)}


REQUEST_RULES = """\
r(X, Y) :- principal(X), e(X, Y).
r(X, Z) :- r(X, Y), e(Y, Z).
s(Y, Z) :- u(Y), r(Y, Z).
t(Z) :- s(_, Z), not e(Z, _).
"""


def test_request_overlays_get_their_deferred_indexes():
    """r is a per-request overlay whose (0,) index only the next stratum probes."""
    static = {"e": [(i, i + 1) for i in range(40)] + [(5, 20), (20, 3)], "u": [(0,), (5,), (7,)]}
    for core in (_core, _pycore):
        program = Program(REQUEST_RULES, _core_module=core)
        assert (0,) in program.compiled.rel("r").index_cols
        base = program.evaluate(static)
        for who in ([(0,)], [(5,)], [(7,), (0,)], [(99,)]):
            extended = base.with_request({"principal": who})
            full = program.evaluate({**static, "principal": who})
            for name in ("r", "s", "t"):
                assert set(extended.rows(name)) == set(full.rows(name)), (core.__name__, who, name)
            if who == [(5,)]:
                assert sorted(extended.match("r", [5]))[:3] == [(3,), (4,), (5,)]


def test_fused_heads_with_constants_checks_and_mixed_widths():
    text = """\
w1(X) :- e(X, X).
w2(X, "k") :- e(X, Y), e(Y, X).
w3(X, Y, X) :- e(X, Y).
w5(1, X, Y, Y, "z") :- e(X, Y), f(Y).
w1(X) :- f(X), e(X, _).
"""
    facts = {"e": [(1, 1), (1, 2), (2, 1), (3, 3), (4, 5)], "f": [(1,), (2,), (5,)]}
    results = []
    for core in (_core, _pycore):
        m = Program(text, _core_module=core).evaluate(facts)
        results.append({name: set(m.rows(name)) for name in ("w1", "w2", "w3", "w5")})
    assert results[0] == results[1]
    assert results[0] == {
        "w1": {(1,), (3,), (2,)},
        "w2": {(1, "k"), (2, "k"), (3, "k")},
        "w3": {(1, 1, 1), (1, 2, 1), (2, 1, 2), (3, 3, 3), (4, 5, 4)},
        "w5": {(1, 1, 1, 1, "z"), (1, 1, 2, 2, "z"), (1, 2, 1, 1, "z"), (1, 4, 5, 5, "z")},
    }
