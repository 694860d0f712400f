"""Bulk interning of facts (``intern_rows``) gives exactly the ids ``Symbols.intern`` gives.

Both cores intern facts without a Python call per value for strings,
entities and inline integers; the ids (and the order in which new values
enter the table) must be those of interning the same values one by one, row
after row, including values an ancestor table already knows.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.datalog import _core, _pycore
from rune_fast.datalog.symbols import INLINE_MAX, INLINE_MIN, Symbols
from rune_fast.values import INT_MAX, INT_MIN, Entity

CORES = pytest.mark.parametrize("core", [_core, _pycore], ids=["compiled", "pure"])

values = st.one_of(
    st.sampled_from(["a", "b", "", "é", "x" * 40]),
    st.text(max_size=3),
    st.integers(-5, 5),
    st.sampled_from([INLINE_MIN, INLINE_MAX, INLINE_MIN - 1, INLINE_MAX + 1, INT_MIN, INT_MAX]),
    st.booleans(),
    st.floats(allow_nan=False, width=32),
    st.builds(Entity, st.sampled_from(["User", "Doc"]), st.sampled_from(["a", "b", "c"])),
)


def one_by_one(parent_values, rows, arity):
    root = Symbols()
    for v in parent_values:
        root.intern(v)
    syms = Symbols(root)
    ids = [tuple([syms.intern(v) for v in row]) for row in rows]   # row after row
    return ids, syms.table()


@CORES
@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(values, max_size=6), st.integers(1, 4), st.data())
def test_same_ids_as_interning_one_by_one(core, parent_values, arity, data):
    # (more rows than the 16 the compiled loop looks ahead)
    rows = data.draw(st.lists(st.tuples(*[values] * arity), min_size=1, max_size=40))
    expected, table = one_by_one(parent_values, rows, arity)
    root = Symbols()
    for v in parent_values:
        root.intern(v)
    syms = Symbols(root)
    got = core.intern_rows(syms, rows, arity)
    assert len(got) == len(rows) and got.arity == arity
    assert list(got) == expected
    assert syms.table() == table
    assert all(type(i) is int for row in got for i in row)
    # inserted whole into a relation: the same rows as one by one, duplicates dropped
    rel = core.Relation("r", arity, [])
    assert got.insert_into(rel) == len(set(expected))
    assert sorted(rel.rows()) == sorted(set(expected))
    with pytest.raises(ValueError):
        got.insert_into(core.Relation("wider", arity + 1, []))


@CORES
def test_many_rows_go_in_by_batches(core):
    # more rows than one insert batch, with repeats across batch boundaries
    syms = Symbols()
    rows = [(f"u{i % 700}", i % 13) for i in range(5_000)]
    got = core.intern_rows(syms, rows, 2)
    rel = core.Relation("r", 2, [[0]])
    assert got.insert_into(rel) == len(set(rows))
    want = {(syms.intern(a), syms.intern(b)) for a, b in rows}
    assert set(rel.rows()) == want and len(rel.rows()) == len(want)
    assert sorted(rel.match(0, (syms.intern("u5"),))) == sorted(r for r in want if r[0] == syms.intern("u5"))


@CORES
def test_repeats_right_after_the_dedup_set_grows_are_still_found(core):
    # no index: the relation takes batches through its own insert loop, which
    # keeps the dedup set's size in locals and must take them again when a
    # row makes the set grow; every row comes twice in a row, and the whole
    # list twice, so repeats land just after each growth, in the same batch
    syms = Symbols()
    rows = [(i, i * 7 % 11) for i in range(3_000) for _ in (0, 1)]
    rel = core.Relation("r", 2, [])
    assert core.intern_rows(syms, rows, 2).insert_into(rel) == 3_000
    assert core.intern_rows(syms, rows, 2).insert_into(rel) == 0
    assert len(rel.rows()) == 3_000 and set(rel.rows()) == {(2 * a + 1, 2 * b + 1) for a, b in rows}


@CORES
def test_rows_it_cannot_take_are_left_to_the_caller(core):
    syms = Symbols()
    assert core.intern_rows(syms, [(1, 2), (3,)], 2) is None           # wrong width
    assert core.intern_rows(syms, [(1, 2), [3, 4]], 2) is None         # not a tuple
    assert core.intern_rows(syms, [(1, 2), Entity("A", "b")], 2) is None  # a NamedTuple is not a row
    assert core.intern_rows(syms, [], 2) is None
    with pytest.raises(TypeError):
        core.intern_rows(syms, [(1, None)], 2)
    with pytest.raises(OverflowError):
        core.intern_rows(syms, [(1, INT_MAX + 1)], 2)
    with pytest.raises(TypeError):                      # entities are pairs of strings
        core.intern_rows(syms, [(1, Entity("User", 7))], 2)
    with pytest.raises(TypeError):
        core.intern_rows(syms, [(1, 2)], 2).insert_into(None)
    # both cores stop at the first bad row, keeping what the rows before it interned
    fresh = Symbols()
    assert core.intern_rows(fresh, [("new", 1), ("other",)], 2) is None
    assert fresh.table() == ["new"]


@CORES
def test_a_list_changed_while_interning_is_checked_row_by_row(core):
    # Symbols.intern (called for floats) may run while the list changes: here
    # it changes the list itself, at a known row
    class Meddling(Symbols):
        __slots__ = ("action",)

        def intern(self, value):
            if type(value) is float and self.action is not None:
                self.action()
                self.action = None
            return super().intern(value)

    for change, want in ((lambda rows: rows.clear(), None),
                         (lambda rows: rows.__setitem__(slice(30, None), [None] * 70), None),
                         (lambda rows: rows.__setitem__(slice(30, None), [("z", 0)] * 70), "same")):
        rows = [(f"u{i}", 1.5 if i == 20 else i) for i in range(100)]
        syms = Meddling()
        syms.action = lambda: change(rows)
        got = core.intern_rows(syms, rows, 2)
        if want is None:
            assert got is None
        else:   # the rows as they are when their turn comes
            assert list(got) == [tuple(syms.lookup(v) for v in row) for row in rows]


@pytest.mark.parametrize("kind", [list, tuple, set, frozenset])
def test_program_facts_in_any_collection_give_the_same_model(kind):
    from rune_fast.datalog import Program
    from rune_fast.errors import RuneDataError

    prog = Program("reach(X, Y) :- edge(X, Y).\nreach(X, Z) :- reach(X, Y), edge(Y, Z).\n")
    edges = [("a", "b"), ("b", "c"), (1, "a"), ("c", 2.5)]
    expected = prog.evaluate({"edge": edges}).relation("reach")
    assert prog.evaluate({"edge": kind(edges)}).relation("reach") == expected
    # a bad row is still named, whatever the collection (the fast path gives up, the row loop reports)
    with pytest.raises(RuneDataError, match="arity 2"):
        prog.evaluate({"edge": kind([("a", "b"), ("c",)])})


def test_a_list_changed_by_another_thread_while_interning_is_never_read_out_of_bounds():
    # The bulk path hands the GIL over while it works; a list another thread
    # shrinks or rewrites meanwhile must give a model of some version of the
    # list or a data error, never a read past its end or of a non-row.
    import threading
    import time

    from rune_fast.datalog import Program
    from rune_fast.errors import RuneDataError

    prog = Program("seen(X) :- item(X, _).")
    for change in ("shrink", "rewrite"):
        rows = [(f"u{i}", i) for i in range(400_000)]
        started = threading.Event()

        def meddle():
            started.wait()
            time.sleep(0.002)
            if change == "shrink":
                del rows[1_000:]
            else:
                rows[200_000:] = [None] * 200_000

        t = threading.Thread(target=meddle)
        t.start()
        started.set()
        try:
            model = prog.evaluate({"item": rows})
        except RuneDataError:
            assert change == "rewrite"
        else:
            assert 1_000 <= model.size("seen") <= 400_000
        t.join()


def test_a_relation_given_twice_in_bulk_gets_both_parts():
    # a Mapping whose items() names a relation twice: both parts go in
    from collections.abc import Mapping

    from rune_fast.datalog import Program

    class Twice(Mapping):
        def __init__(self, parts):
            self.parts = parts

        def __getitem__(self, key):
            raise KeyError(key)

        def __iter__(self):
            return iter(name for name, _ in self.parts)

        def __len__(self):
            return len(self.parts)

        def items(self):
            return list(self.parts)

    prog = Program("seen(X, Y) :- edge(X, Y).")
    parts = [("edge", [("a", 1), ("b", 2)]), ("edge", [("c", 3), ("a", 1)])]
    assert prog.evaluate(Twice(parts)).relation("seen") == {("a", 1), ("b", 2), ("c", 3)}
