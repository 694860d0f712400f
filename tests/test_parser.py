"""The file-level front end (rune_fast.lang.parser): sections, version, TOML data
shapes, sources, embedded tests, collected errors and bundles."""

from __future__ import annotations

import os
import textwrap

import pytest

from rune_fast.lang import parser
from rune_fast.lang.ast import FactSet
from rune_fast.errors import (
    RuneArityError,
    RuneDataError,
    RuneDuplicateIdError,
    RuneError,
    RuneErrors,
    RuneLimitError,
    RuneSourceError,
    RuneSyntaxError,
    RuneVersionError,
)
from rune_fast.limits import Limits
from rune_fast.values import Entity

V = 'version = "rune/1"\n'


def parse(text: str, **kw):
    return parser.parse_text(textwrap.dedent(text), "t.rune", **kw)


def errors_of(text: str, dedent: bool = True, **kw) -> list[RuneError]:
    with pytest.raises(RuneError) as ei:
        parser.parse_text(textwrap.dedent(text) if dedent else text, "t.rune", **kw)
    errs = ei.value.errors
    for e in errs:  # every error is fully located
        assert e.file == "t.rune"
        assert e.line >= 1 and e.column >= 1
        assert e.source_line is not None
        e.render()
    return errs


def facts(text: str) -> dict[str, FactSet]:
    return {fs.relation: fs for fs in parse(text).facts}


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        type(x) is type(y) and (same(x, y) if type(x) is tuple else x == y) for x, y in zip(a, b)
    )


# --------------------------------------------------------------------------
# Version header


@pytest.mark.parametrize("v", ["rune/1", "rune/1.0", "rune/1.12"])
def test_supported_versions(v):
    assert parse(f'version = "{v}"\n').version == v


def test_version_after_comments_and_blank_lines_literal_string_and_bom():
    rf = parser.parse_text("\ufeff# policy\n\n   \n# more\nversion = 'rune/1.2'  # comment\n\n# tail\n[data]\nx = 1\n")
    assert rf.version == "rune/1.2"
    assert rf.facts[0].rows == ((1,),)


def test_crlf_line_endings():
    rf = parser.parse_text('version = "rune/1"\r\n[data]\r\nx = [1, 2]\r\n[metadata]\r\nname = "n"\r\n')
    assert rf.facts[0].rows == ((1,), (2,))
    assert rf.metadata == {"name": "n"}


@pytest.mark.parametrize("text", ['version = "rune/2"\n', 'version = "rune/1.x"\n', 'version = "1"\n'])
def test_unsupported_version_names_supported_ones(text):
    (e,) = errors_of(text)
    assert isinstance(e, RuneVersionError)
    assert "rune/1" in e.message and "rune/1.N" in e.message
    assert (e.line, e.column) == (1, 11)


def test_empty_file_is_a_version_error():
    (e,) = errors_of("")
    assert isinstance(e, RuneVersionError) and (e.line, e.column) == (1, 1)


# --------------------------------------------------------------------------
# At least 20 malformed inputs, each with class, line and column

MALFORMED = [
    # (name, text, class, line, column)
    ("no version", "[data]\nx = 1\n", RuneVersionError, 1, 1),
    ("version not a string", "version = 1\n", RuneVersionError, 1, 1),
    ("version indented, wrong", "# c\n\n  version = \"rune/3\"\n", RuneVersionError, 3, 13),
    ("version is not the first line", "name = \"x\"\nversion = \"rune/1\"\n", RuneVersionError, 1, 1),
    ("junk before first section", V + "foo = 1\n[data]\n", RuneSyntaxError, 2, 1),
    ("unknown section", V + "[foo]\nx = 1\n", RuneSyntaxError, 2, 2),
    ("rules with sub-name", V + "[rules.x]\n", RuneSyntaxError, 2, 2),
    ("policies as array of tables", V + "[[policies]]\n", RuneSyntaxError, 2, 3),
    ("tests without a name", V + "[tests]\nprincipal = 1\n", RuneSyntaxError, 2, 2),
    ("TOML syntax error", V + "[data]\nx = [1,\n2,,]\n", RuneSyntaxError, 4, 3),
    ("unterminated string", V + "[data]\nx = \"abc\ny = 1\n", RuneSyntaxError, 3, 9),
    ("data declared twice", V + "[data]\nx = 1\n[rules]\n[data]\ny = 2\n", RuneSyntaxError, 5, 6),
    ("ragged inner arrays", V + "[data]\n\nx = [[1, 2], [3]]\n", RuneDataError, 4, 1),
    ("array of tables", V + "[data]\nx = [{a = 1}]\n", RuneDataError, 3, 1),
    ("[[data.x]]", V + "[[data.x]]\na = 1\n", RuneDataError, 2, 3),
    ("[[data]]", V + "[[data]]\na = 1\n", RuneDataError, 2, 3),
    ("nested array in a tuple", V + "[data]\n  x = [[1, [2]], [3, [4]]]\n", RuneDataError, 3, 3),
    ("TOML date", V + "[data]\nwhen = 1979-05-27\n", RuneDataError, 3, 1),
    ("TOML datetime in an array", V + "[data]\nx = [\n  1979-05-27T07:32:00Z,\n]\n", RuneDataError, 3, 1),
    ("arrays mixed with scalars", V + "[data]\nx = [1, [2]]\n", RuneDataError, 3, 1),
    ("not a relation name", V + "[data]\nMember = [1]\n", RuneDataError, 3, 1),
    ("quoted key not a relation", V + "[data]\nx = 1\n  \"user-roles\" = 1\n", RuneDataError, 4, 3),
    ("integer overflow", V + "[data]\nx = 99999999999999999999\n", RuneDataError, 3, 1),
    ("nan", V + "[data]\nx = [1.0, nan]\n", RuneDataError, 3, 1),
    ("subtable key located", V + "[data]\n[data.agent]\n  name = [[1], [2, 3]]\n", RuneDataError, 4, 3),
    ("inline table located at its key", V + "[data]\n\nagent = { name = [1, [2]] }\n", RuneDataError, 4, 1),
    ("test principal not an entity", V + "[tests.t]\nprincipal = \"alice\"\naction = 'Action::\"r\"'\n"
     "resource = 'D::\"d\"'\nexpect = \"permit\"\n", RuneDataError, 3, 1),
    ("test expect invalid", V + "[tests.t]\nprincipal = 'User::\"a\"'\naction = 'Action::\"r\"'\n"
     "resource = 'D::\"d\"'\nexpect = \"allow\"\n", RuneDataError, 6, 1),
    ("test unknown key", V + "[tests.t]\nprincipal = 'User::\"a\"'\naction = 'Action::\"r\"'\n"
     "resource = 'D::\"d\"'\nexpect = \"permit\"\n  expected = \"deny\"\n", RuneDataError, 7, 3),
    ("test context not a table", V + "[tests.t]\nprincipal = 'User::\"a\"'\naction = 'Action::\"r\"'\n"
     "resource = 'D::\"d\"'\nexpect = \"permit\"\ncontext = 3\n", RuneDataError, 7, 1),
    ("test context with a date", V + "[tests.t]\nprincipal = 'User::\"a\"'\naction = 'Action::\"r\"'\n"
     "resource = 'D::\"d\"'\nexpect = \"permit\"\ncontext = { at = 2024-01-01 }\n", RuneDataError, 7, 1),
    ("test entity uid malformed", V + "[tests.t]\nprincipal = 'User::\"a\"'\naction = 'Action::\"r\"'\n"
     "resource = 'D::\"d\"'\nexpect = \"permit\"\nentities = [{ uid = \"alice\" }]\n", RuneDataError, 7, 1),
    ("[[tests.x]]", V + "[[tests.x]]\nprincipal = 'User::\"a\"'\n", RuneDataError, 2, 3),
    ("source not a path", V + "[sources]\nx = 1\n", RuneSourceError, 3, 1),
    ("source unknown key", V + "[sources]\n\nx = { path = \"a.csv\", heder = true }\n", RuneSourceError, 4, 1),
    ("source header not a bool", V + "[sources]\nx = { path = \"a.csv\", header = \"yes\" }\n", RuneSourceError, 3, 1),
    ("indented header of another section", V + "[data]\nx = 1\n  [metadata]\ny = 1\n", RuneSyntaxError, 4, 3),
    ("TOML error in metadata", V + "[metadata]\nname = \n", RuneSyntaxError, 3, 8),
]


@pytest.mark.parametrize("name, text, cls, line, col", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(name, text, cls, line, col):
    errs = errors_of(text, dedent=False)
    assert len(errs) == 1, [e.render() for e in errs]
    (e,) = errs
    assert type(e) is cls, e.render()
    assert (e.line, e.column) == (line, col), e.render()


def test_at_least_twenty_malformed_cases():
    assert len(MALFORMED) >= 20


def test_data_shape_error_says_what_is_accepted():
    (e,) = errors_of(V + "[data]\nx = [{a = 1}]\n")
    assert "'x'" in e.message and "array of tables" in e.message
    assert "array of arrays" in e.message and "array of scalars" in e.message


def test_non_utf8_file_is_located(tmp_path):
    p = tmp_path / "bad.rune"
    p.write_bytes(b'version = "rune/1"\n[data]\nx = "\xff"\n')
    with pytest.raises(RuneSyntaxError) as ei:
        parser.parse_file(p)
    assert (ei.value.line, ei.value.column, ei.value.file) == (3, 6, str(p))
    assert "UTF-8" in ei.value.message


def test_missing_file_names_the_path(tmp_path):
    p = str(tmp_path / "nope.rune")
    with pytest.raises(RuneError) as ei:
        parser.parse_file(p)
    assert p in ei.value.message and ei.value.file == p


# --------------------------------------------------------------------------
# Errors are collected across sections


def test_three_mistakes_in_three_sections_are_all_reported():
    text = (
        V
        + "[data]\n"  # 2
        + "x = [[1, 2], [3]]\n"  # 3: ragged
        + "[sources]\n"  # 4
        + "s = 5\n"  # 5: not a path
        + "[tests.t]\n"  # 6
        + "principal = 'User::\"a\"'\n"
        + "action = 'Action::\"r\"'\n"
        + "resource = 'D::\"d\"'\n"
        + "expect = \"maybe\"\n"  # 10: bad expect
    )
    errs = errors_of(text, dedent=False)
    assert [(type(e), e.line, e.column) for e in errs] == [
        (RuneDataError, 3, 1),
        (RuneSourceError, 5, 1),
        (RuneDataError, 10, 1),
    ]
    with pytest.raises(RuneErrors):
        parser.parse_text(text)


def test_missing_version_does_not_hide_other_errors():
    errs = errors_of("[data]\nx = [1, [2]]\n[tests.a]\nexpect = 'deny'\n", dedent=False)
    assert [type(e) for e in errs] == [RuneVersionError, RuneDataError, RuneDataError, RuneDataError, RuneDataError]
    assert errs[0].line == 1


def test_one_broken_test_does_not_hide_another():
    text = V + "[tests.a]\nprincipal = \n[tests.b]\nexpect = 'nope'\n"
    errs = errors_of(text, dedent=False)
    assert errs[0].line == 3 and isinstance(errs[0], RuneSyntaxError)
    assert any(isinstance(e, RuneDataError) and "[tests.b]" in e.message for e in errs)


# --------------------------------------------------------------------------
# [data] shapes


def test_array_of_arrays_is_n_ary():
    f = facts(V + "[data]\nrole = [['alice', 'admin'], ['bob', 'viewer']]\n")
    assert f["role"].arity == 2
    assert f["role"].rows == (("alice", "admin"), ("bob", "viewer"))
    assert type(f["role"].rows) is tuple and type(f["role"].rows[0]) is tuple


def test_array_of_scalars_is_unary():
    f = facts(V + "[data]\nadmins = ['alice', 'bob']\n")
    assert (f["admins"].arity, f["admins"].rows) == (1, (("alice",), ("bob",)))


@pytest.mark.parametrize("toml, value", [("'s'", "s"), ("42", 42), ("-2.5", -2.5), ("true", True), ("inf", float("inf"))])
def test_scalar_is_one_unary_fact(toml, value):
    f = facts(V + f"[data]\nx = {toml}\n")
    assert same(f["x"].rows, ((value,),))


def test_tables_flatten_to_dotted_relations():
    text = V + textwrap.dedent(
        """\
        [data]
        agent.name = "bot"
        limits = { daily = 10, hourly = [1, 2] }
        [data.org.team]
        members = [["a", 1]]
        """
    )
    f = facts(text)
    assert f["agent.name"].rows == (("bot",),)
    assert f["limits.daily"].rows == ((10,),)
    assert f["limits.hourly"].rows == ((1,), (2,))
    assert f["org.team.members"].rows == (("a", 1),)
    assert (f["org.team.members"].loc.line, f["org.team.members"].loc.col) == (6, 1)
    assert f["agent.name"].loc.line == 3


def test_kinds_are_preserved():
    f = facts(V + "[data]\nx = [[1, true, 1.0, '1', 'User::\"1\"']]\n")
    assert same(f["x"].rows, ((1, True, 1.0, "1", Entity("User", "1")),))


def test_entity_literals_in_data():
    text = V + textwrap.dedent(
        r"""
        [data]
        member = [['User::"alice"', 'Group::"admins"'], ["User::\"bob\"", 'Group::"devs"']]
        ns = ['App::Doc::"d1"']
        escaped = ['User::"a\"b"', 'User::"\u00e9"']
        not_entities = ['User::alice', 'User::"a" ', ' User::"a"', 'user', '::"x"', 'User::"a"b"']
        """
    )
    f = facts(text)
    assert f["member"].rows == (
        (Entity("User", "alice"), Entity("Group", "admins")),
        (Entity("User", "bob"), Entity("Group", "devs")),
    )
    assert f["ns"].rows == ((Entity("App::Doc", "d1"),),)
    assert f["escaped"].rows == ((Entity("User", 'a"b'),), (Entity("User", "\u00e9"),))
    assert all(type(r[0]) is str for r in f["not_entities"].rows)


def test_entity_is_never_a_string():
    f = facts(V + "[data]\nx = ['User::\"a\"']\n")
    (row,) = f["x"].rows
    assert isinstance(row[0], Entity) and row[0] != 'User::"a"'


def test_large_columns_take_the_fast_paths_with_the_same_meaning():
    rows = ",\n".join(
        f"  ['User::\"u{i}\"', 'Group::\"g{i % 5}\"', '{'Doc' if i % 2 else 'Folder'}::\"d{i}\"', 'plain{i % 3}', {i}]"
        for i in range(300)
    )
    f = facts(V + f"[data]\nbig = [\n{rows}\n]\n")
    r = f["big"].rows
    assert len(r) == 300
    assert r[7] == (Entity("User", "u7"), Entity("Group", "g2"), Entity("Doc", "d7"), "plain1", 7)
    assert r[8][2] == Entity("Folder", "d8")


def test_empty_relation_and_zero_arity():
    f = facts(V + "[data]\nblocked = []\nflag = [[]]\n")
    assert (f["blocked"].arity, f["blocked"].rows) == (1, ())
    assert (f["flag"].arity, f["flag"].rows) == (0, ((),))


def test_empty_table_gives_no_relation():
    assert facts(V + "[data]\nagent = {}\n") == {}


def test_multiline_arrays_with_rows_in_column_zero_are_not_headers():
    text = V + "[data]\nx = [\n[1],\n[true],\n['a'],\n[\"b\"],\n[maybe]\n]\n"
    # [maybe] looks exactly like a header, so it ends [data] (documented limit)
    errs = errors_of(text, dedent=False)
    assert any("unknown section [maybe]" in e.message for e in errs)
    f = facts(V + "[data]\nx = [\n[1],\n[2]\n]\ny = [\n[true],\n[false]\n]\nz = [\n['a'],\n[\"b\"]\n]\n")
    assert f["x"].rows == ((1,), (2,)) and f["y"].rows == ((True,), (False,)) and f["z"].rows == (("a",), ("b",))


def test_data_subtable_after_rules_is_the_same_document():
    text = V + "[data]\nx = 1\n[rules]\n[data.agent]\nname = 'a'\n"
    f = facts(text)
    assert set(f) == {"x", "agent.name"}
    assert f["agent.name"].loc.line == 6


def test_max_nesting_limit_for_data_tables():
    text = V + "[data]\na.b.c.d.e = 1\n"
    with pytest.raises(RuneLimitError) as ei:
        parse(text, limits=Limits(max_nesting=3))
    assert ei.value.limit == "max_nesting" and ei.value.line == 3


# --------------------------------------------------------------------------
# [metadata], [sources], [tests]


def test_metadata_is_free_form():
    rf = parse(V + "[metadata]\nname = 'demo'\nowner = { team = 'sec' }\nsince = 2024-01-01\n")
    assert rf.metadata["name"] == "demo" and rf.metadata["owner"] == {"team": "sec"}
    assert str(rf.metadata["since"]) == "2024-01-01"


def test_source_specs_resolve_relative_to_the_file(tmp_path):
    text = V + "[sources]\nmember = 'facts/member.csv'\nlevel = { path = '/abs/level.jsonl', header = true }\n" \
        "agent.name = 'n.csv'\n"
    rf = parser.parse_text(text, str(tmp_path / "p.rune"))
    specs = {s.relation: s for s in rf.sources}
    assert specs["member"].path == str(tmp_path / "facts" / "member.csv")
    assert specs["member"].header is False and specs["member"].loc.line == 3
    assert specs["level"].path == "/abs/level.jsonl" and specs["level"].header is True
    assert specs["agent.name"].path == str(tmp_path / "n.csv")
    rf2 = parser.parse_text(text, base_dir=str(tmp_path / "x"))
    assert {s.relation: s for s in rf2.sources}["member"].path == str(tmp_path / "x" / "facts" / "member.csv")


def test_embedded_test_full():
    text = V + textwrap.dedent(
        """\
        [tests.alice_reads]
        description = "alice may read her doc"
        principal = 'User::"alice"'
        action    = 'Action::"read"'
        resource  = 'Document::"d1"'
        context   = { mfa = true, ip = "10.0.0.1", owner = 'User::"alice"', n = [1, 2] }
        expect    = "permit"
        entities = [
          { uid = { type = "User", id = "alice" }, attrs = { dept = "eng" }, parents = [{ type = "Group", id = "g" }, 'Team::"t"'] },
          { uid = 'Document::"d1"' },
        ]

        [tests.bob_denied]
        principal = 'User::"bob"'
        action    = 'Action::"read"'
        resource  = 'Document::"d1"'
        expect    = "deny"
        [tests.bob_denied.context]
        mfa = false
        """
    )
    t1, t2 = parse(text).tests
    assert t1.name == "alice_reads" and t1.expect == "permit"
    assert (t1.principal, t1.action, t1.resource) == (
        Entity("User", "alice"), Entity("Action", "read"), Entity("Document", "d1"))
    assert t1.context == {"mfa": True, "ip": "10.0.0.1", "owner": 'User::"alice"', "n": [1, 2]}
    e1, e2 = t1.entities
    assert e1.uid == Entity("User", "alice") and e1.attrs == {"dept": "eng"}
    assert e1.parents == (Entity("Group", "g"), Entity("Team", "t"))
    assert e2.uid == Entity("Document", "d1") and e2.attrs == {} and e2.parents == ()
    assert t1.loc.line == 2
    assert t2.context == {"mfa": False} and t2.expect == "deny" and t2.entities == ()


@pytest.mark.parametrize("expect", ["permit", "deny", "forbid"])
def test_expect_values(expect):
    text = V + f"[tests.t]\nprincipal = 'U::\"a\"'\naction = 'A::\"r\"'\nresource = 'R::\"x\"'\nexpect = '{expect}'\n"
    assert parse(text).tests[0].expect == expect


def test_expect_error_names_allowed_values():
    text = V + "[tests.t]\nprincipal = 'U::\"a\"'\naction = 'A::\"r\"'\nresource = 'R::\"x\"'\nexpect = 'allow'\n"
    (e,) = errors_of(text, dedent=False)
    assert "permit, deny, forbid" in e.message


def test_quoted_test_names():
    text = V + "[tests.\"alice reads\"]\nprincipal = 'U::\"a\"'\naction = 'A::\"r\"'\nresource = 'R::\"x\"'\nexpect = 'deny'\n"
    assert parse(text).tests[0].name == "alice reads"


# --------------------------------------------------------------------------
# [rules] and [policies]


def test_empty_code_sections():
    rf = parse(V + "[rules]\n# nothing yet\n\n[policies]\n\n")
    assert rf.rules == () and rf.policies == ()


def test_rules_and_policies_sections_repeat_and_keep_file_lines():
    text = V + textwrap.dedent(
        """\
        [rules]
        a(X) :- b(X).
        [data]
        b = [1]
        [rules]

        c(X) :- a(X).
        [policies]
        // a Cedar comment
        @id("p1")
        permit(principal, action, resource) when { a(1) };
        [policies]
        forbid(principal, action, resource) unless { c(1) };
        """
    )
    rf = parse(text)
    assert [r.head.name for r in rf.rules] == ["a", "c"]
    assert [r.loc.line for r in rf.rules] == [3, 8]
    assert [p.id for p in rf.policies] == ["p1", ""]
    assert [p.effect for p in rf.policies] == ["permit", "forbid"]
    assert rf.policies[1].loc.line == 14


def test_rule_and_policy_errors_are_collected_with_data_errors():
    text = V + "[data]\nx = [1, [2]]\n[rules]\np(X) :- q(X)\nr(X) :- s(X).\n[policies]\npermit(principal action, resource);\n"
    errs = errors_of(text, dedent=False)
    assert [e.line for e in errs] == [3, 6, 8]
    assert isinstance(errs[0], RuneDataError) and all(isinstance(e, RuneSyntaxError) for e in errs[1:])


def test_example_policies_parse():
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    names = sorted(n for n in os.listdir(examples) if n.endswith(".rune"))
    assert names
    for n in names:
        rf = parser.parse_file(os.path.join(examples, n))
        assert rf.version.startswith("rune/1")


# --------------------------------------------------------------------------
# Size limit


def test_text_size_limit():
    text = V + "[data]\nx = '" + "a" * 200 + "'\n"
    with pytest.raises(RuneLimitError) as ei:
        parser.parse_text(text, limits=Limits(max_file_bytes=100))
    assert ei.value.limit == "max_file_bytes"
    parser.parse_text(text, limits=Limits(max_file_bytes=1000))


def test_text_size_limit_counts_utf8_bytes():
    text = V + "[data]\nx = '" + "\u00e9" * 60 + "'\n"  # 60 chars, 120 bytes
    with pytest.raises(RuneLimitError):
        parser.parse_text(text, limits=Limits(max_file_bytes=len(text) + 10))


def test_file_size_limit_refused_before_reading(tmp_path, monkeypatch):
    p = tmp_path / "big.rune"
    p.write_text(V + "[data]\nx = '" + "a" * 500 + "'\n")

    def no_open(*a, **k):
        raise AssertionError("the file was opened")

    monkeypatch.setattr("builtins.open", no_open)
    with pytest.raises(RuneLimitError) as ei:
        parser.parse_file(p, limits=Limits(max_file_bytes=100))
    assert ei.value.limit == "max_file_bytes" and ei.value.file == str(p)
    with pytest.raises(RuneLimitError):
        parser.load_bundle(p, limits=Limits(max_file_bytes=100))


# --------------------------------------------------------------------------
# Bundles


def write(d, name, text):
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


A_RUNE = V + """\
[data]
member = [['User::"alice"', 'Group::"admins"']]
blocked = []
[policies]
@id("first")
permit(principal, action, resource);
permit(principal, action, resource);
[tests.a]
principal = 'User::"alice"'
action = 'Action::"read"'
resource = 'Doc::"d"'
expect = "permit"
"""

B_RUNE = V + """\
[metadata]
name = "b"
[data]
member = [['User::"bob"', 'Group::"devs"']]
blocked = ["mallory", "eve"]
[sources]
level = "facts/level.csv"
[rules]
ok(U) :- member(U, _).
[policies]
forbid(principal, action, resource) when { ok(principal) };
"""


def test_directory_bundle_merges_files(tmp_path):
    write(tmp_path, "b.rune", B_RUNE)
    write(tmp_path, "a.rune", A_RUNE)
    write(tmp_path, "facts/level.csv", "alice,3\nbob,1\n")
    write(tmp_path, "notes.txt", "not a policy")
    b = parser.load_bundle(tmp_path)
    assert [os.path.basename(f.path) for f in b.files] == ["a.rune", "b.rune"]
    f = {fs.relation: fs for fs in b.facts}
    assert f["member"].rows == (
        (Entity("User", "alice"), Entity("Group", "admins")),
        (Entity("User", "bob"), Entity("Group", "devs")),
    )
    assert f["member"].loc.file.endswith("a.rune")
    assert (f["blocked"].arity, f["blocked"].rows) == (1, (("mallory",), ("eve",)))
    assert f["level"].rows == (("alice", 3), ("bob", 1))
    assert [p.id for p in b.policies] == ["first", "policy1", "policy2"]
    assert [p.effect for p in b.policies] == ["permit", "permit", "forbid"]
    assert [r.head.name for r in b.rules] == ["ok"]
    assert [t.name for t in b.tests] == ["a"]
    assert b.metadata == {"name": "b"}
    assert sorted(b.watched_paths) == sorted(
        os.path.abspath(p) for p in (tmp_path / "a.rune", tmp_path / "b.rune", tmp_path / "facts" / "level.csv")
    )
    assert all(os.path.isabs(p) for p in b.watched_paths)
    assert len(b.content_hash) == 64


def test_content_hash_covers_sources(tmp_path):
    write(tmp_path, "b.rune", B_RUNE)
    csv = write(tmp_path, "facts/level.csv", "alice,3\n")
    h1 = parser.load_bundle(tmp_path).content_hash
    assert parser.load_bundle(tmp_path).content_hash == h1
    csv.write_text("alice,4\n")
    h2 = parser.load_bundle(tmp_path).content_hash
    assert h2 != h1
    write(tmp_path, "b.rune", B_RUNE + "\n# comment\n")
    assert parser.load_bundle(tmp_path).content_hash not in (h1, h2)


def test_single_file_is_a_bundle_of_one(tmp_path):
    p = write(tmp_path, "a.rune", A_RUNE)
    b = parser.load_bundle(str(p))
    assert len(b.files) == 1 and b.watched_paths == (os.path.abspath(p),)
    assert [pol.id for pol in b.policies] == ["first", "policy1"]


def test_policy_ids_are_positions_in_bundle_order(tmp_path):
    write(tmp_path, "1.rune", V + "[policies]\npermit(principal, action, resource);\n")
    write(tmp_path, "2.rune", V + "[policies]\n@id(\"x\")\nforbid(principal, action, resource);\n"
          "permit(principal, action, resource);\n")
    assert [p.id for p in parser.load_bundle(tmp_path).policies] == ["policy0", "x", "policy2"]


def test_duplicate_policy_ids_name_both_places(tmp_path):
    write(tmp_path, "a.rune", V + "[policies]\n@id(\"p\")\npermit(principal, action, resource);\n")
    write(tmp_path, "b.rune", V + "\n[policies]\n@id(\"p\")\nforbid(principal, action, resource);\n")
    with pytest.raises(RuneDuplicateIdError) as ei:
        parser.load_bundle(tmp_path)
    e = ei.value
    assert e.file.endswith("b.rune") and e.line == 4
    assert "a.rune:3:1" in e.message and "'p'" in e.message


def test_generated_id_clashing_with_explicit_id(tmp_path):
    write(tmp_path, "a.rune", V + "[policies]\n@id(\"policy1\")\npermit(principal, action, resource);\n"
          "permit(principal, action, resource);\n")
    with pytest.raises(RuneDuplicateIdError) as ei:
        parser.load_bundle(tmp_path)
    assert ei.value.line == 5 and "@id" in ei.value.message


def test_duplicate_test_names_across_files(tmp_path):
    write(tmp_path, "a.rune", A_RUNE)
    write(tmp_path, "b.rune", A_RUNE.replace('@id("first")', '@id("second")'))
    with pytest.raises(RuneDuplicateIdError) as ei:
        parser.load_bundle(tmp_path)
    assert ei.value.file.endswith("b.rune") and "test name 'a'" in ei.value.message
    assert "a.rune:" in ei.value.message


def test_arity_mismatch_between_files_names_both_places(tmp_path):
    write(tmp_path, "a.rune", V + "[data]\nm = [[1, 2]]\n")
    write(tmp_path, "b.rune", V + "[data]\n\nm = [1]\n")
    with pytest.raises(RuneArityError) as ei:
        parser.load_bundle(tmp_path)
    e = ei.value
    assert e.file.endswith("b.rune") and (e.line, e.column) == (4, 1)
    assert "a.rune:3:1" in e.message


def test_arity_mismatch_between_data_and_source(tmp_path):
    write(tmp_path, "a.rune", V + "[data]\nm = [[1, 2]]\n[sources]\nm = 'm.csv'\n")
    write(tmp_path, "m.csv", "1\n")
    with pytest.raises(RuneArityError) as ei:
        parser.load_bundle(tmp_path)
    assert ei.value.line == 5


def test_empty_relation_takes_the_arity_of_its_other_places(tmp_path):
    write(tmp_path, "a.rune", V + "[data]\nm = []\n")
    write(tmp_path, "b.rune", V + "[data]\nm = [[1, 2]]\n")
    (fs,) = parser.load_bundle(tmp_path).facts
    assert (fs.arity, fs.rows) == (2, ((1, 2),))


def test_recursive_bundles_and_dotfiles(tmp_path):
    write(tmp_path, "a.rune", V + "[data]\nx = [1]\n")
    write(tmp_path, "sub/b.rune", V + "[data]\nx = [2]\n")
    write(tmp_path, ".#a.rune", "garbage")
    write(tmp_path, ".hidden/c.rune", "garbage")
    assert parser.load_bundle(tmp_path).facts[0].rows == ((1,),)
    b = parser.load_bundle(tmp_path, recursive=True)
    assert b.facts[0].rows == ((1,), (2,))
    assert len(b.files) == 2


def test_empty_directory_is_an_error(tmp_path):
    write(tmp_path, "x.txt", "")
    with pytest.raises(RuneError) as ei:
        parser.load_bundle(tmp_path)
    assert "no .rune files" in ei.value.message


def test_nonexistent_path_is_an_error(tmp_path):
    with pytest.raises(RuneError) as ei:
        parser.load_bundle(tmp_path / "nope")
    assert "nope" in ei.value.message


def test_missing_source_is_located_at_its_entry(tmp_path):
    write(tmp_path, "a.rune", V + "[sources]\n\nlevel = 'facts/none.csv'\n")
    with pytest.raises(RuneSourceError) as ei:
        parser.load_bundle(tmp_path)
    e = ei.value
    assert e.file.endswith("a.rune") and (e.line, e.column) == (4, 1)
    assert str(tmp_path / "facts" / "none.csv") in e.message


def test_bundle_collects_errors_of_all_files_and_sources(tmp_path):
    write(tmp_path, "a.rune", V + "[data]\nx = [1, [2]]\n")
    write(tmp_path, "b.rune", 'version = "rune/9"\n')
    write(tmp_path, "c.rune", V + "[sources]\ns = 'missing.csv'\nt = 't.csv'\n")
    write(tmp_path, "t.csv", "a,1\nb\n")
    with pytest.raises(RuneErrors) as ei:
        parser.load_bundle(tmp_path)
    got = [(os.path.basename(e.file), e.line, type(e).__name__) for e in ei.value.errors]
    assert got == [
        ("a.rune", 3, "RuneDataError"),
        ("b.rune", 1, "RuneVersionError"),
        ("c.rune", 3, "RuneSourceError"),
        ("t.csv", 2, "RuneSourceError"),
    ]


def test_same_source_file_for_two_relations_is_watched_once(tmp_path):
    write(tmp_path, "a.rune", V + "[sources]\nx = 'f.csv'\ny = 'f.csv'\n")
    write(tmp_path, "f.csv", "1,2\n")
    b = parser.load_bundle(tmp_path)
    assert len(b.watched_paths) == 2
    assert [fs.relation for fs in b.facts] == ["x", "y"]


def test_bundle_from_text(tmp_path):
    write(tmp_path, "m.jsonl", '["User::\\"a\\"", 1]\n')
    text = V + "[sources]\nm = 'm.jsonl'\n[policies]\npermit(principal, action, resource);\n"
    b = parser.bundle_from_text(text, "mem.rune", base_dir=str(tmp_path))
    assert b.facts[0].rows == ((Entity("User", "a"), 1),)
    assert b.watched_paths == (os.path.abspath(tmp_path / "m.jsonl"),)
    assert [p.id for p in b.policies] == ["policy0"]
    assert b.content_hash != parser.bundle_from_text(text + "\n", "mem.rune", base_dir=str(tmp_path)).content_hash
    plain = parser.bundle_from_text(V + "[data]\nx = 1\n")
    assert plain.watched_paths == () and len(plain.content_hash) == 64


def test_rune_file_content_hash(tmp_path):
    p = write(tmp_path, "a.rune", A_RUNE)
    assert parser.parse_file(p).content_hash == parser.parse_text(p.read_text()).content_hash
