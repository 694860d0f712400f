"""The fast paths of building an engine give what the plain paths give.

Each fast path (docs/performance.md, "Building the engine") is checked
against a small per-cell or per-row reference written here, on generated
inputs shaped to reach it: long columns with repeated values (the
distinct-value path), entity columns of several types (the split path),
attribute rows with and without duplicates, and section texts with header
and key lines in every position.
"""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.lang import columns as column_conversion
from rune_fast.lang import sections, sources
from rune_fast.policy.data import FactData, _attribute_records_general, attribute_records
from rune_fast.policy.values import CRecord, CSet
from rune_fast.values import INT_MAX, INT_MIN, Entity, parse_entity_literal

# --------------------------------------------------------------------------
# convert_column == one cell at a time


def reference_column(col):
    """docs/language.md §3 ([data]), one cell at a time: ``(values, -1)`` or
    ``(..., index of the first bad cell)``."""
    out = []
    for i, c in enumerate(col):
        t = type(c)
        if t is str:
            ent = parse_entity_literal(c)
            out.append(ent if ent is not None else c)
        elif t is bool:
            out.append(c)
        elif t is int:
            if not INT_MIN <= c <= INT_MAX:
                return None, i
            out.append(c)
        elif t is float:
            if math.isnan(c):
                return None, i
            out.append(c)
        else:
            return None, i
    return tuple(out), -1


def same(a, b) -> bool:
    """Equal cell by cell, kinds included (``1``, ``True`` and ``1.0`` differ),
    and ``-0.0`` kept apart from ``0.0``."""
    return len(a) == len(b) and all(
        type(x) is type(y) and x == y and (type(x) is not float or math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b)
    )


entity_cells = st.one_of(
    st.builds('{}::"{}"'.format, st.sampled_from(["User", "Group", "Doc", "App::Doc", "A_1"]),
              st.text(alphabet="az09 :", max_size=4)),
    st.sampled_from(['User::""', 'User::"x:"', 'A::B::"b::"', 'User::"a\\"b"', 'User::"tab\there"',
                     'User::"\\u0041"', 'User::"lone\ud800"', 'User::"x"y"', 'User::"', '::"x"', 'user x::"y"',
                     '1User::"x"', 'User::"line\nbreak"', 'User::"x"\n', 'Doc::"é"']),
)
string_cells = st.one_of(entity_cells, st.text(max_size=5), st.sampled_from(["", "owner", "1", "true", "::", '"']))
scalar_cells = st.one_of(
    string_cells,
    st.integers(-3, 3),
    st.sampled_from([INT_MIN, INT_MAX, INT_MAX + 1, INT_MIN - 1, 2**63]),
    st.booleans(),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, float("inf"), float("nan"), 9.223372036854776e18]),
)
bad_cells = st.sampled_from([None, [1], {"a": 1}])


def columns(cells):
    """Columns of 1-150 cells, repeated up to 8x so that long columns with
    repeated values (the distinct-value paths) come up."""
    return st.builds(lambda cs, k: cs * k, st.lists(cells, min_size=1, max_size=100), st.integers(1, 8))


def check_column(col) -> None:
    expected, bad = reference_column(col)
    vals, got_bad = sources.convert_column(col, sources.EntityCache())
    assert got_bad == bad
    if bad < 0:
        assert same(vals, expected)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(columns(entity_cells))
def test_entity_columns_match_the_reference(col):
    check_column(col)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(columns(string_cells))
def test_string_columns_match_the_reference(col):
    check_column(col)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(columns(scalar_cells))
def test_mixed_columns_match_the_reference(col):
    check_column(col)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(columns(scalar_cells), bad_cells, st.integers(0, 10**6))
def test_the_first_bad_cell_is_reported(col, bad, where):
    col = list(col)
    col.insert(where % (len(col) + 1), bad)
    check_column(col)


def test_several_entity_types_in_one_column():
    col = [f'{("User", "Document", "App::Folder")[i % 3]}::"x{i}"' for i in range(300)]
    vals, bad = sources.convert_column(col, sources.EntityCache())
    assert bad == -1 and same(vals, reference_column(col)[0])
    # one type string per type, shared by its entities
    assert len({id(v.type) for v in vals}) == 3


def test_the_split_path_checks_that_every_cell_starts_with_a_type():
    # quotes, cell ends and the split agree, yet neither cell is T::"id"
    for col in (['ab"', 'X::"y::"z"'], ['X::"y::"z"', 'ab"'], ['Doc::"d"', 'ab"', 'X::"y::"z"']):
        check_column(col)
        check_column(col * 40)


def test_lone_surrogates_never_make_entities():
    # entity_problem refuses them; the column fast paths must agree
    col = ['User::"a\ud800"', 'User::"b"'] * 50
    vals, _ = sources.convert_column(col, sources.EntityCache())
    assert vals[0] == 'User::"a\ud800"' and vals[1] == Entity("User", "b")
    vals, _ = sources.convert_column(['User::"a\udfff"', 'Doc::"b"'], sources.EntityCache())
    assert vals == ('User::"a\udfff"', Entity("Doc", "b"))


def test_a_file_shares_one_object_per_repeated_value():
    cache = sources.EntityCache()
    owners = [f'User::"u{i % 10}"' for i in range(200)]
    names = ["owner", "folder"] * 100
    a, _ = sources.convert_column(owners, cache)
    b, _ = sources.convert_column(names, cache)
    c, _ = sources.convert_column(list(reversed(owners)), cache)
    assert len({id(x) for x in a}) == 10 and len({id(x) for x in b}) == 2
    assert {id(x) for x in a} == {id(x) for x in c}  # across columns too


def test_mostly_distinct_columns_take_the_direct_path():
    col = [f'User::"u{i}"' for i in range(1000)]
    assert column_conversion._distinct_if_repeated(col) is None
    assert column_conversion._distinct_if_repeated(col[:500] * 2) is not None
    # values in runs (three attr rows per entity): a strided sample would miss it
    runs = [f'Doc::"d{i // 3}"' for i in range(3000)]
    assert column_conversion._distinct_if_repeated(runs) is not None


# --------------------------------------------------------------------------
# attribute_records == the general path == a naive reference

ENTS = [Entity("User", "a"), Entity("User", "b"), Entity("Doc", "a")]


def reference_records(rows):
    """Several values of one (entity, name) form a set; names must be strings;
    a relation is a set of rows (``1`` and ``True`` in a row are equal rows,
    as Python sets see them: whichever comes first in set order)."""
    vals: dict = {}
    for e, name, v in set(rows):
        if type(name) is str:
            vals.setdefault(e, {}).setdefault(name, []).append(v)
    return {e: {n: (vs[0] if len(vs) == 1 else CSet(vs)) for n, vs in d.items()} for e, d in vals.items()}


attr_rows = st.lists(
    st.tuples(
        st.sampled_from(ENTS),
        st.sampled_from(["owner", "level", "tags", "x", 7, True]),
        st.sampled_from([1, 2, True, False, "a", "b", 1.5, ENTS[0], ENTS[2]]),
    ),
    max_size=40,
)


def records_equal(a, b) -> bool:
    return a.keys() == b.keys() and all(
        type(a[e]) is CRecord and a[e] == CRecord(b[e]) for e in a
    )


@settings(max_examples=200, deadline=None, derandomize=True)
@given(attr_rows, st.booleans())
def test_attribute_records_match_the_reference(rows, as_list):
    # rows whose values are 1/True conflated make the reference's pick
    # depend on set order; compare only inputs without such a pair
    keyed = {(e, n, type(v), v) for e, n, v in rows}
    if len({(e, n, v) for e, n, _, v in keyed}) != len(keyed):
        return
    src = list(rows) if as_list else tuple(rows)
    expected = reference_records(rows)
    assert records_equal(attribute_records(src), expected)
    assert records_equal(_attribute_records_general(src), expected)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(ENTS), st.sampled_from(["a", "b", "c"]), st.integers(0, 3)),
                max_size=30, unique_by=lambda r: r[:2]))
def test_the_one_pass_path_keeps_row_order(rows):
    # no (entity, name) twice and string names: the one-pass result stands,
    # entities in first-seen order and names in row order
    expected: dict = {}
    for e, n, v in rows:
        expected.setdefault(e, []).append((n, v))
    assert [(e, list(r.items())) for e, r in attribute_records(rows).items()] == list(expected.items())


def test_repeated_and_multi_valued_rows_read_as_sets():
    u = ENTS[0]
    recs = attribute_records([(u, "role", "a"), (u, "role", "a"), (u, "level", 1)])
    assert recs[u]["role"] == "a" and recs[u]["level"] == 1
    recs = attribute_records([(u, "role", "a"), (u, "role", "b"), (u, 7, "x")])
    assert recs[u] == CRecord({"role": CSet(["a", "b"])})
    data = FactData.from_facts([], [(u, "role", "a"), (u, "role", "b")])
    assert data.get_attr(u, "role") == CSet(["a", "b"])


# --------------------------------------------------------------------------
# Section scans == the line-anchored patterns they replace

REF_HEADER_START = re.compile(r"^\[\[?[ \t]*[A-Za-z_]", re.M)
REF_KEY_LINE = re.compile(rf"^[ \t]*({sections._PATH})[ \t]*=", re.M)

lines = st.sampled_from([
    "[data]", "[[tests.t]]", "[ data . x ]", "[true]", "  [1, 2],", "['a', 'b'],", "[_x]",
    "key = 1", "a.b = 2", '  "q k" = 3', "x=4", "\tk\t= 5", "# c", "", "\r", "=", "a. = 1", "[", "k = [",
    "[rules]", "p(X) :- q(X).", "  ['a=b', 1],", "a == b", "k = 1 # = 2", "  [k = 1]", "= k",
])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(lines, max_size=25), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_section_scans_match_line_anchored_patterns(parts, eol, final_eol):
    text = eol.join(parts) + (eol if final_eol else "")
    assert sections._header_candidates(text) == [m.start() for m in REF_HEADER_START.finditer(text)]
    starts = [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for start in starts[:3] + starts[-2:]:
        for end in (len(text), (start + len(text)) // 2):
            ref = [(m.start(), m.start(1), m.group(1)) for m in REF_KEY_LINE.finditer(text, start, end)]
            assert list(sections._key_lines(text, start, end)) == ref


def test_mixed_literals_that_miss_the_fast_paths_still_convert():
    # the distinct cells of a whole array: plain strings next to literals
    # that the column fast paths refuse (an escape, a newline)
    col = ["a", 'User::"x\\u0041"', 'Doc::"line\nbreak"', 'Doc::"d"', "b"] * 20
    check_column(col)


# --------------------------------------------------------------------------
# A [data] array of rows == per cell


def data_parser():
    from rune_fast.lang import parser

    text = 'version = "rune/1"\n[data]\nr = 1\n'
    p = parser._FileParser(text, "<t>", parser.DEFAULT_LIMITS, ".")
    chunks = sections._split(text)
    return p, sections._KeyIndex(p.src, [c for c in chunks if c.keys[0] == "data"], 1)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(1, 4).flatmap(lambda w: st.lists(st.lists(scalar_cells, min_size=w, max_size=w), min_size=1,
                                                     max_size=60)),
       st.integers(1, 4), st.one_of(st.none(), bad_cells), st.integers(0, 10**6))
def test_data_rows_match_the_reference(rows, k, bad, where):
    rows = [list(r) for r in rows] * k
    if bad is not None:
        i = where % len(rows)
        rows[i][where % len(rows[i])] = bad
    p, index = data_parser()
    fs = p.fact_set(("r",), rows, index)
    cells = [reference_column(r) for r in rows]
    if any(b >= 0 for _, b in cells):
        assert fs is None and len(p.errors) == 1
        return
    assert fs is not None and not p.errors and fs.arity == len(rows[0])
    assert len(fs.rows) == len(rows) and all(same(a, b) for a, b in zip(fs.rows, (c for c, _ in cells)))
