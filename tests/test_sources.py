"""[sources] fact files: CSV and JSON lines (rune_fast.lang.sources).

The column-wise fast paths are checked against a naive per-cell reference, so
that speed never changes what a cell means.
"""

from __future__ import annotations

import gc
import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.lang import sources
from rune_fast.lang.ast import Loc, SourceSpec
from rune_fast.errors import RuneError, RuneLimitError, RuneSourceError
from rune_fast.limits import Limits
from rune_fast.values import INT_MAX, INT_MIN, Entity, parse_entity_literal

ENTRY = Loc("policy.rune", 7, 1, 'member = "member.csv"')


def spec_for(path, relation="member", header=False) -> SourceSpec:
    return SourceSpec(relation, str(path), header, ENTRY)


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def load(tmp_path, name, content, **kw):
    p = write(tmp_path, name, content, "wb" if isinstance(content, bytes) else "w")
    return sources.load_source(spec_for(p, header=kw.pop("header", False)), **kw)


def errors_of(tmp_path, name, content, **kw) -> list[RuneError]:
    with pytest.raises(RuneError) as ei:
        load(tmp_path, name, content, **kw)
    return ei.value.errors


# --------------------------------------------------------------------------
# CSV


def test_csv_typed_cells(tmp_path):
    fs = load(
        tmp_path,
        "m.csv",
        'alice,42,-7,007,true,false,User::"alice",2.5,True,,App::Doc::"d 1"\n',
    )
    assert fs.relation == "member"
    assert fs.arity == 11
    row = fs.rows[0]
    assert row == ("alice", 42, -7, 7, True, False, Entity("User", "alice"), "2.5", "True", "", Entity("App::Doc", "d 1"))
    assert type(row[1]) is int and type(row[4]) is bool
    assert isinstance(row[6], Entity)
    assert fs.loc == ENTRY


def test_csv_quoted_cells_and_embedded_newlines(tmp_path):
    fs = load(tmp_path, "m.csv", '"a,b","User::""bob""","line1\nline2"\nc,d,e\n')
    assert fs.rows == (("a,b", Entity("User", "bob"), "line1\nline2"), ("c", "d", "e"))


def test_csv_cells_are_not_trimmed(tmp_path):
    fs = load(tmp_path, "m.csv", "a, 1\n")
    assert fs.rows == (("a", " 1"),)


def test_csv_entity_with_escape_in_id(tmp_path):
    fs = load(tmp_path, "m.csv", '"User::""a\\""b"""\n')
    assert fs.rows == ((Entity("User", 'a"b'),),)


def test_csv_header_is_skipped(tmp_path):
    fs = load(tmp_path, "m.csv", "user,group\nalice,admins\nbob,devs\n", header=True)
    assert fs.rows == (("alice", "admins"), ("bob", "devs"))


def test_csv_header_only_gives_empty_relation_with_header_arity(tmp_path):
    fs = load(tmp_path, "m.csv", "user,group,since\n", header=True)
    assert fs.rows == () and fs.arity == 3


def test_csv_without_header_keeps_first_row(tmp_path):
    fs = load(tmp_path, "m.csv", "user,group\nalice,admins\n")
    assert fs.rows[0] == ("user", "group")


def test_csv_blank_lines_skipped_and_bom_ignored(tmp_path):
    fs = load(tmp_path, "m.csv", "\ufeffa,1\n\n\nb,2\n")
    assert fs.rows == (("a", 1), ("b", 2))


def test_csv_empty_file(tmp_path):
    fs = load(tmp_path, "m.csv", "")
    assert fs.rows == () and fs.arity == 1


def test_csv_ragged_row_names_file_and_line(tmp_path):
    errs = errors_of(tmp_path, "m.csv", "a,1\n\nb,2\nc\nd,4\ne,5,6\n")
    assert [type(e) for e in errs] == [RuneSourceError, RuneSourceError]
    assert [(e.line, e.column) for e in errs] == [(4, 1), (6, 1)]
    assert errs[0].file.endswith("m.csv")
    assert "1 fields" in errs[0].message and "has 2" in errs[0].message
    assert "policy.rune:7:1" in errs[0].message  # the [sources] entry
    assert errs[0].source_line == "c"


def test_csv_ragged_against_header(tmp_path):
    errs = errors_of(tmp_path, "m.csv", "u,g\na,b,c\n", header=True)
    assert len(errs) == 1 and errs[0].line == 2
    assert "header" in errs[0].message


def test_csv_integer_overflow_is_located(tmp_path):
    errs = errors_of(tmp_path, "m.csv", "a,1\nb,99999999999999999999\n")
    (e,) = errs
    assert isinstance(e, RuneSourceError)
    assert (e.line, e.column) == (2, 3)
    assert "64-bit" in e.message


def test_csv_integer_bounds(tmp_path):
    fs = load(tmp_path, "m.csv", f"{INT_MIN}\n{INT_MAX}\n")
    assert fs.rows == ((INT_MIN,), (INT_MAX,))
    (e,) = errors_of(tmp_path, "n.csv", f"{INT_MIN - 1}\n")
    assert e.line == 1


def test_csv_not_utf8_is_located(tmp_path):
    (e,) = errors_of(tmp_path, "m.csv", b"a,1\nb,\xff\xfe\n")
    assert isinstance(e, RuneSourceError)
    assert (e.line, e.column) == (2, 3)
    assert "UTF-8" in e.message


def test_csv_malformed_is_located(tmp_path):
    big = "x" * (200_000)
    errs = errors_of(tmp_path, "m.csv", f'a,1\n"{big}",2\n')
    assert errs[0].line >= 1 and "malformed CSV" in errs[0].message


# --------------------------------------------------------------------------
# JSON lines


def test_jsonl_values(tmp_path):
    fs = load(
        tmp_path,
        "m.jsonl",
        '["alice", 3, 2.5, true, "User::\\"bob\\"", "007"]\n\n["b", -1, 1e3, false, "x", "1"]\n',
    )
    assert fs.arity == 6
    assert fs.rows == (
        ("alice", 3, 2.5, True, Entity("User", "bob"), "007"),
        ("b", -1, 1000.0, False, "x", "1"),
    )


def test_ndjson_extension_and_zero_arity(tmp_path):
    fs = load(tmp_path, "m.ndjson", "[]\n[]\n")
    assert fs.arity == 0 and fs.rows == ((), ())


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ('["a", 1]\n["b", null]\n', 2, "null"),
        ('["a", 1]\n\n["b", {"x": 1}]\n', 3, "table/object"),
        ('["a", 1]\n["b", [2]]\n', 2, "nested array"),
        ('["a", 1]\n{"b": 2}\n', 2, "expected one JSON array"),
        ('["a", 1]\n"b"\n', 2, "scalar"),
        ('["a", 1]\n["b", 2\n', 2, "invalid JSON"),
        ('["a", 1]\n["b", NaN]\n', 2, "NaN"),
        ('["a", 1], ["b", 2]\n', 1, "invalid JSON"),
        ('["a", 1]\n["b", 99999999999999999999]\n', 2, "64-bit"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, content, line, fragment):
    errs = errors_of(tmp_path, "m.jsonl", content)
    assert isinstance(errs[0], RuneSourceError)
    assert errs[0].file.endswith("m.jsonl")
    assert errs[0].line == line
    assert errs[0].column >= 1
    assert fragment in errs[0].message


def test_jsonl_invalid_json_column(tmp_path):
    (e,) = errors_of(tmp_path, "m.jsonl", '  ["a", 1,]\n')
    assert (e.line, e.column) == (1, 11)


def test_jsonl_ragged(tmp_path):
    errs = errors_of(tmp_path, "m.jsonl", '["a", 1]\n\n["b"]\n')
    assert len(errs) == 1 and errs[0].line == 3 and "ragged" in errs[0].message


def test_jsonl_every_bad_line_reported(tmp_path):
    errs = errors_of(tmp_path, "m.jsonl", '[1]\n{}\n[2]\nnull\n')
    assert [e.line for e in errs] == [2, 4]


# --------------------------------------------------------------------------
# Reading: missing files, limits


def test_missing_source_is_located_at_the_entry(tmp_path):
    spec = spec_for(tmp_path / "nope.csv")
    with pytest.raises(RuneSourceError) as ei:
        sources.load_source(spec)
    e = ei.value
    assert (e.file, e.line, e.column) == ("policy.rune", 7, 1)
    assert str(tmp_path / "nope.csv") in e.message
    assert e.source_line == 'member = "member.csv"'


def test_source_size_limit_checked_before_reading(tmp_path, monkeypatch):
    p = write(tmp_path, "m.csv", "a,1\n" * 100)

    def no_open(*a, **k):  # the limit must be enforced from stat(), without reading
        raise AssertionError("opened a file larger than the limit")

    monkeypatch.setattr("builtins.open", no_open)
    with pytest.raises(RuneLimitError) as ei:
        sources.load_source(spec_for(p), limits=Limits(max_file_bytes=50))
    assert ei.value.limit == "max_file_bytes"
    assert ei.value.line == 7


def test_source_format_by_extension():
    assert sources.source_format("a/b.JSONL") == "jsonl"
    assert sources.source_format("a/b.ndjson") == "jsonl"
    assert sources.source_format("a/b.csv") == "csv"
    assert sources.source_format("a/b.txt") == "csv"


# --------------------------------------------------------------------------
# Column fast paths == the naive per-cell meaning

_INT = re.compile(r"-?[0-9]+\Z")


def reference_cell(s: str):
    """docs/language.md §3 ([sources]), one cell at a time."""
    if _INT.match(s):
        return int(s)
    if s == "true":
        return True
    if s == "false":
        return False
    ent = parse_entity_literal(s)
    return ent if ent is not None else s


def same(a, b) -> bool:
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b))


cells = st.one_of(
    st.sampled_from(
        ['User::"alice"', 'User::"bob"', 'Group::"g"', "true", "false", "12", "-3", "007", "alice",
         "", 'User::"a\\"b"', 'User::"tab\there"', 'User::alice', 'A::B::"x"', "1.5", "-", "True",
         'User::"x"y"', 'User::""', "::\"x\"", 'User::"line\nbreak"']
    ),
    st.from_regex(r'[A-Z][a-z]{0,3}::"[a-z0-9 ]{0,4}"', fullmatch=True),
    st.from_regex(r"-?[0-9]{1,4}", fullmatch=True),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(cells, min_size=1, max_size=150), st.integers(1, 40))
def test_csv_column_typing_matches_reference(col, repeat):
    col = tuple(col * (1 + repeat // 10))  # long columns reach the dedupe path
    assert same(sources.type_csv_column(col), tuple(map(reference_cell, col)))


@pytest.mark.parametrize(
    "col",
    [
        tuple(f'User::"u{i}"' for i in range(500)),  # one type, unique: str-method path
        tuple(f'{"User" if i % 2 else "Group"}::"u{i}"' for i in range(500)),  # several types: regex path
        tuple(f'User::"u{i % 7}"' for i in range(500)),  # repeated: dedupe path
        tuple(str(i - 250) for i in range(500)),  # integers
        tuple(f"name{i}" for i in range(500)),  # plain strings
        tuple((f'User::"u{i}"' if i % 3 else f"plain{i}") for i in range(500)),  # mixed
        tuple((f'User::"u{i}"' if i != 250 else 'User::"a\\u0041"') for i in range(500)),  # an escape
    ],
)
def test_csv_column_fast_paths(col):
    assert same(sources.type_csv_column(col), tuple(map(reference_cell, col)))


def test_convert_column_keeps_kinds_apart():
    cache = sources.EntityCache()
    vals, bad = sources.convert_column((1, True, 1.0, "1", 'User::"1"'), cache)
    assert bad == -1
    assert same(vals, (1, True, 1.0, "1", Entity("User", "1")))


@pytest.mark.parametrize(
    "col, bad",
    [((1, 2, 2**63), 2), ((1.0, float("nan")), 1), (("a", None), 1), (("a", [1]), 1), ((True, {"a": 1}), 1)],
)
def test_convert_column_reports_first_bad_value(col, bad):
    assert sources.convert_column(col, sources.EntityCache())[1] == bad


def test_entity_fast_path_shares_the_type_string():
    col = tuple(f'User::"u{i}"' for i in range(1000))
    vals = sources.type_csv_column(col)
    assert len({id(v.type) for v in vals}) == 1


def test_paused_gc_restores_state_and_nests():
    was = gc.isenabled()
    try:
        gc.enable()
        with sources.paused_gc():
            assert not gc.isenabled()
            with sources.paused_gc():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled()
        gc.disable()
        with sources.paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_gc_restored_after_an_error(tmp_path):
    was = gc.isenabled()
    gc.enable()
    try:
        errors_of(tmp_path, "m.csv", "a,1\nb\n")
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_large_jsonl_round_trip(tmp_path):
    rows = [[f'User::"u{i}"', f'Group::"g{i % 10}"', i, i / 2] for i in range(5000)]
    p = write(tmp_path, "m.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    fs = sources.load_source(spec_for(p))
    assert fs.arity == 4 and len(fs.rows) == 5000
    assert fs.rows[4999] == (Entity("User", "u4999"), Entity("Group", "g9"), 4999, 2499.5)


def test_large_csv_round_trip(tmp_path):
    p = write(tmp_path, "m.csv", "".join(f'User::"u{i}",Group::"g{i % 10}",{i}\n' for i in range(5000)))
    fs = sources.load_source(spec_for(p))
    assert fs.rows[123] == (Entity("User", "u123"), Entity("Group", "g3"), 123)
    assert os.path.getsize(p) > 0


def test_csv_crlf_and_whitespace_lines(tmp_path):
    fs = load(tmp_path, "m.csv", "a,1\r\nb,2\r\n")
    assert fs.rows == (("a", 1), ("b", 2))


def test_csv_plain_and_quoted_files_mean_the_same(tmp_path):
    plain = load(tmp_path, "p.csv", 'a,User::"x",1\nb,Group::"y",true\n')
    quoted = load(tmp_path, "q.csv", '"a",User::"x",1\nb,"Group::""y""",true\n')
    assert same(plain.rows, quoted.rows)


csv_cells = st.one_of(cells, st.text(alphabet=',"\n\r ab1', max_size=5))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(csv_cells, min_size=n, max_size=n), min_size=1, max_size=30)),
    st.sampled_from(["\n", "\r\n"]),
)
def test_csv_file_matches_csv_module_and_reference(tmp_path_factory, rows, eol):
    import csv
    import io

    if eol == "\n":  # the writer quotes only the characters of its line terminator
        rows = [[c.replace("\r", "") for c in r] for r in rows]
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol).writerows(rows)
    # the csv module writes an all-empty row of arity 1 as a blank line, which is skipped
    expected = [r for r in csv.reader(io.StringIO(buf.getvalue(), newline="")) if r]
    d = tmp_path_factory.mktemp("csv")
    p = d / "m.csv"
    p.write_text(buf.getvalue(), encoding="utf-8", newline="")
    fs = sources.load_source(spec_for(p))
    assert same(fs.rows, tuple(tuple(map(reference_cell, r)) for r in expected))
