"""``Relation.value_rows``: rows of ids -> tuples of Python values, on both cores.

The compiled core builds the result list at its final size, shares one int
object per small non-negative integer and checks every id before building
anything; each of these must give exactly what the obvious conversion gives
(odd id ``2v+1`` -> ``v``, even id ``2k`` -> ``table[k]``), base rows of an
overlay first.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.datalog import _core, _pycore
from rune_fast.datalog.symbols import INLINE_MAX, INLINE_MIN
from rune_fast.values import Entity

CORES = pytest.mark.parametrize("core", [_core, _pycore], ids=["compiled", "pure"])

TABLE = ["a", "", "é" * 3, 1.5, True, False, 2**70, Entity("User", "u")]

#: ids: inline integers around the shared range (0 .. 65535) and the inline
#: limits, and every table entry
inline_ints = st.one_of(st.integers(-3, 3), st.integers(65_530, 65_540), st.integers(0, 2_000),
                        st.sampled_from([INLINE_MIN, INLINE_MAX]))
ids = st.one_of(inline_ints.map(lambda v: 2 * v + 1), st.integers(0, len(TABLE) - 1).map(lambda k: 2 * k))


def expected(rows):
    return tuple(tuple(i >> 1 if i & 1 else TABLE[i >> 1] for i in row) for row in rows)


def relation(core, arity, rows, base=None):
    rel = core.Relation("r", arity, [], base)
    for row in rows:
        rel.add(row)
    return rel


def distinct(rows):
    return list(dict.fromkeys(rows))


@CORES
@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 4), st.data())
def test_value_rows_converts_every_id(core, arity, data):
    # sizes on both sides of the shared-int threshold (256 rows)
    rows = distinct(data.draw(st.lists(st.tuples(*[ids] * arity), max_size=400)))
    got = relation(core, arity, rows).value_rows(TABLE)
    assert got == expected(rows)
    assert all(type(a) is type(b) for g, e in zip(got, expected(rows)) for a, b in zip(g, e))


@CORES
@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.data())
def test_overlay_rows_follow_base_rows(core, data):
    base_rows = distinct(data.draw(st.lists(st.tuples(ids, ids), max_size=300)))
    own_rows = [r for r in distinct(data.draw(st.lists(st.tuples(ids, ids), max_size=300))) if r not in base_rows]
    base = relation(core, 2, base_rows)
    top = relation(core, 2, own_rows, base)
    assert top.value_rows(TABLE) == expected(base_rows + own_rows)


@CORES
def test_many_rows_share_small_ints_and_stay_correct(core):
    rows = [(2 * i + 1, 2 * (i * 7919 % 70_000) + 1, 2 * (i % len(TABLE))) for i in range(3_000)]
    got = relation(core, 3, rows).value_rows(TABLE)
    assert got == expected(rows)


def test_rows_are_left_out_of_the_cyclic_gc_and_outlive_their_relation():
    # an immutable tuple of rows of scalars can never be part of a cycle: the
    # collector must never walk a big result (nor any of its rows)
    import gc

    base = relation(_core, 2, [(2 * i + 1, 0) for i in range(300)])
    top = relation(_core, 2, [(1, 2 * 7), (3, 2 * 7)], base)
    got = top.value_rows(TABLE)
    assert type(got) is tuple and not gc.is_tracked(got)
    assert not any(gc.is_tracked(row) for row in got)
    del top, base
    gc.collect()
    assert got == expected([(2 * i + 1, 0) for i in range(300)] + [(1, 14), (3, 14)])
    assert got[-1][1] is TABLE[7]


@CORES
def test_value_set_is_the_set_of_the_rows(core):
    rows = [(2 * i + 1, 2 * (i % len(TABLE))) for i in range(600)]
    rel = relation(core, 2, rows)
    got = rel.value_set(TABLE)
    assert type(got) is frozenset and got == frozenset(expected(rows))


def test_value_sets_are_left_out_of_the_cyclic_gc():
    import gc

    from rune_fast.datalog import Program

    model = Program("p(X, Y) :- e(X, Y).").evaluate({"e": [(i, f"v{i}") for i in range(1_000)]})
    got = model.relation("p")
    assert not gc.is_tracked(got) and got == {(i, f"v{i}") for i in range(1_000)}
    assert model.relation("p") is got       # built once per model


def test_an_id_outside_the_table_raises_before_any_tuple_is_built():
    rel = relation(_core, 2, [(1, 3)] * 1 + [(5, 2 * len(TABLE))])
    with pytest.raises(IndexError):
        rel.value_rows(TABLE)
    assert rel.value_rows(TABLE + ["extra"]) == ((0, 1), (2, "extra"))
