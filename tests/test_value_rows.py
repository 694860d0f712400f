"""``Relation.value_rows``: rows of ids -> tuples of Python values, on both cores.

The compiled core builds the result tuple at its final size, shares one int
object per small non-negative integer and checks every id (before building
anything, below 65,536 rows; as it goes, past that); each of these must give
exactly what the obvious conversion gives
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
    import sys

    # values no one else holds: ints past CPython's cached 0..256 (shared
    # through the core's small-int table), a string built at run time
    table = ["".join(["fresh", "-", "value"])]
    base = relation(_core, 2, [(2 * (1000 + i % 3) + 1, 2 * i + 1) for i in range(300)])
    top = relation(_core, 2, [(2 * 70_000 + 1, 0), (3, 0)], base)
    got = top.value_rows(table)
    assert type(got) is tuple and not gc.is_tracked(got)
    assert not any(gc.is_tracked(row) for row in got)
    number, text = got[0][0], table.pop()
    held = sys.getrefcount(number), sys.getrefcount(text)
    del top, base
    gc.collect()
    assert got == tuple((1000 + i % 3, i) for i in range(300)) + ((70_000, "fresh-value"), (1, "fresh-value"))
    del got
    # the result held exactly one reference per cell, and gave them all back
    assert (held[0] - sys.getrefcount(number), held[1] - sys.getrefcount(text)) == (100, 2)


@CORES
def test_an_overlay_cannot_sit_on_an_overlay(core):
    # dedup, counts and reads look one level down only: a second level would
    # give duplicates and lose rows, so it is refused
    top = relation(core, 2, [(1, 1)], relation(core, 2, [(3, 3)]))
    with pytest.raises(ValueError, match="overlay"):
        relation(core, 2, [(5, 5)], top)


def test_reading_rows_while_another_thread_changes_the_relation_or_table():
    # value_rows hands the GIL over as it goes: rows appended meanwhile (the
    # array may move) are not in the result, and a table emptied meanwhile
    # raises instead of being read past its end
    import threading
    import time

    def meanwhile(change):
        started = threading.Event()

        def run():
            started.wait()
            time.sleep(0.002)
            change()

        t = threading.Thread(target=run)
        t.start()
        started.set()
        return t

    base = relation(_core, 2, [(2 * i + 1, 0) for i in range(300_000)])
    top = relation(_core, 2, [(1, 2)], base)
    t = meanwhile(lambda: [top.add((5, 2 * i + 1)) for i in range(100_000)])
    got = top.value_rows(TABLE)
    t.join()
    assert got[:300_000] == tuple((i, "a") for i in range(300_000))
    assert got[300_000] == (0, "")
    assert all(row == (2, i) for i, row in enumerate(got[300_001:]))

    table = ["a", "b", "c"]
    rel = relation(_core, 2, [(2 * i + 1, 2 * (i % 3)) for i in range(300_000)])
    t = meanwhile(table.clear)
    try:
        got = rel.value_rows(table)
    except IndexError:
        pass
    else:  # (the other thread came late)
        assert got == tuple((i, "abc"[i % 3]) for i in range(300_000))
    t.join()


def test_an_id_outside_the_table_raises_before_any_tuple_is_built():
    rel = relation(_core, 2, [(1, 3)] * 1 + [(5, 2 * len(TABLE))])
    with pytest.raises(IndexError):
        rel.value_rows(TABLE)
    assert rel.value_rows(TABLE + ["extra"]) == ((0, 1), (2, "extra"))


def test_past_the_checking_pass_rows_are_still_right_and_a_bad_id_gives_back_what_it_took():
    # 70,000 rows: no checking pass first (the shared table covers every
    # small int); ids are checked while the rows are built
    import sys

    text = "".join(["held", "-", "here"])
    table = [text]
    rows = [(2 * i + 1, 2 * (i % 3 + 65_534) + 1, 0) for i in range(70_000)]
    got = relation(_core, 3, rows).value_rows(table)
    assert got == tuple((i, i % 3 + 65_534, text) for i in range(70_000))
    del got
    held = sys.getrefcount(text)
    bad = relation(_core, 3, rows[:-1] + [(1, 1, 2 * len(table))])
    with pytest.raises(IndexError):
        bad.value_rows(table)
    assert sys.getrefcount(text) == held          # the rows built before it were freed
    assert bad.value_rows(table + ["x"])[-1] == (0, 0, "x")


@CORES
@pytest.mark.parametrize("n", [1, 70_000], ids=["checked-first", "checked-while-building"])
@pytest.mark.parametrize("bad", [-2, -2_000_000])
def test_a_negative_table_id_raises_instead_of_reading_before_the_table(core, n, bad):
    # even ids index the table; a negative one must be refused like one past
    # its end (not read before the list, nor counted from its end)
    rel = relation(core, 1, [(2 * i + 1,) for i in range(n - 1)] + [(bad,)])
    with pytest.raises(IndexError):
        rel.value_rows(TABLE)
