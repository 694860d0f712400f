"""Malformed ``.rune`` texts through the full loader, one table row each.

Every row is a small file with exactly one mistake.  The mistake's expected
position is marked in the text with ``‸`` (removed before loading): the
loader must raise exactly one error, of the expected class, at that line and
column.  Marking the position in the text itself keeps the table readable
and makes a wrong expectation obvious at a glance.

The loader is ``parser.bundle_from_text`` followed by ``checks.check_program``
(what ``rune check`` does).
"""

from __future__ import annotations

import os
import textwrap

import pytest

from rune_fast.errors import (
    RuneArityError,
    RuneCheckError,
    RuneDataError,
    RuneDuplicateIdError,
    RuneError,
    RuneHeadWildcardError,
    RuneLimitError,
    RuneSafetyError,
    RuneSourceError,
    RuneStratificationError,
    RuneSyntaxError,
    RuneUndefinedError,
    RuneVersionError,
)

from rune_fast.lang import parser
from rune_fast.lang.checks import check_program

MARK = "‸"
HEADER = 'version = "rune/1"\n'

# A small valid program the rule/policy rows build on: relations q/1, r/2.
BASE = HEADER + textwrap.dedent(
    """\
    [data]
    q = [1, 2]
    r = [[1, "a"], [2, "b"]]
    """
)


def rules(text: str) -> str:
    return BASE + "[rules]\n" + textwrap.dedent(text)


def policies(text: str, rules_text: str = "ok(X) :- q(X).\n") -> str:
    return BASE + "[rules]\n" + rules_text + "[policies]\n" + textwrap.dedent(text)


def embedded_test(name: str, body: str) -> str:
    return BASE + f"[tests.{name}]\n" + textwrap.dedent(body)


CASES = [
    # ---- file layout and version (docs/language.md §1)
    ("no_version", "‸[data]\nq = [1]\n", RuneVersionError),
    ("bad_version", 'version = ‸"rune/2"\n[data]\nq = [1]\n', RuneVersionError),
    ("unknown_section", HEADER + "[‸policy]\npermit(principal, action, resource);\n", RuneSyntaxError),
    ("rules_sub_name", HEADER + "[‸rules.extra]\np(1).\n", RuneSyntaxError),
    # ---- data (docs/language.md §3)
    ("ragged_rows", HEADER + "[data]\n‸member = [[1, 2], [3]]\n", RuneDataError),
    ("array_of_tables", HEADER + "[data]\n‸users = [{name = \"a\"}]\n", RuneDataError),
    ("nested_tuple", HEADER + "[data]\n‸edge = [[1, [2, 3]]]\n", RuneDataError),
    ("toml_syntax", HEADER + "[data]\nq = [1, 2\n‸r = 3\n", RuneSyntaxError),
    ("data_arity_vs_rule", BASE + "[rules]\np(X) :- ‸q(X, _).\n", RuneArityError),
    # ---- sources
    ("missing_source", HEADER + "[sources]\n‸member = \"no/such/file.csv\"\n", RuneSourceError),
    ("source_not_a_path", HEADER + "[sources]\n‸member = 42\n", RuneSourceError),
    # ---- rule syntax (docs/language.md §4)
    ("missing_dot", rules("p(X) :- q(X)\n‸r(X) :- q(X).\n"), RuneSyntaxError),
    ("double_equals", rules("p(X) :- q(X), X ‸== 1.\n"), RuneSyntaxError),
    ("unterminated_string", rules('p(X) :- r(X, ‸"abc).\n'), RuneSyntaxError),
    ("uppercase_relation", rules("p(X) :- ‸Q(X).\n"), RuneSyntaxError),
    ("wildcard_in_expr", rules("p(X) :- q(X), X > ‸_.\n"), RuneSyntaxError),
    ("count_with_target", rules("p(N) :- q(_), N = count ‸X : { q(X) }.\n"), RuneSyntaxError),
    ("sum_without_target", rules("p(N) :- q(_), N = sum ‸: { q(X) }.\n"), RuneSyntaxError),
    ("unknown_method", rules('p(X) :- r(_, X), X.‸startswith("a").\n'), RuneSyntaxError),
    ("chained_comparison", rules("p(X) :- q(X), 1 < X ‸< 3.\n"), RuneSyntaxError),
    ("int_out_of_range", rules("p(X) :- q(X), X < ‸99999999999999999999.\n"), RuneSyntaxError),
    ("empty_aggregate", rules("p(N) :- q(_), N = count : { ‸}.\n"), RuneSyntaxError),
    ("stray_character", rules("p(X) :- q(X) ‸$ 1.\n"), RuneSyntaxError),
    ("deep_nesting", rules("p(X) :- q(Y), X = " + "(" * 64 + "‸(" + "Y" + ")" * 65 + ".\n"), RuneLimitError),
    # ---- rule checks (docs/language.md §8)
    ("unsafe_head", rules("p(X, ‸Y) :- q(X).\n"), RuneSafetyError),
    ("unsafe_negation", rules("p(X) :- q(X), not r(X, ‸V).\n"), RuneSafetyError),
    ("unsafe_comparison", rules("p(X) :- q(X), X < ‸L.\n"), RuneSafetyError),
    ("unsafe_method", rules('p(X) :- q(X), ‸S.starts_with("a").\n'), RuneSafetyError),
    ("unsafe_fact", rules("p(‸X).\n"), RuneSafetyError),
    ("unsafe_self_assignment", rules("p(X) :- q(X), ‸Y = Y + 1.\n"), RuneSafetyError),
    ("aggregate_target_unbound", rules("p(T) :- q(_), T = sum ‸V : { r(_, _) }.\n"), RuneSafetyError),
    ("aggregate_key_unbound", rules("p(N) :- q(_), N = count : { r(‸X, _) }, X > 0.\n"), RuneSafetyError),
    ("head_wildcard", rules("p(X, ‸_) :- q(X).\n"), RuneHeadWildcardError),
    ("arity_between_rules", rules("p(X) :- q(X).\n‸p(X, X) :- q(X).\n"), RuneArityError),
    ("arity_reserved_parent", rules("p(X) :- ‸parent(X).\n"), RuneArityError),
    ("undefined_in_body", rules("p(X) :- ‸qq(X).\n"), RuneUndefinedError),
    ("undefined_in_negation", rules("p(X) :- q(X), not ‸banned(X).\n"), RuneUndefinedError),
    ("undefined_in_aggregate", rules("p(N) :- q(_), N = count : { ‸calls(_) }.\n"), RuneUndefinedError),
    ("negation_cycle", rules("a(X) :- q(X), ‸not b(X).\nb(X) :- q(X), a(X).\n"), RuneStratificationError),
    ("aggregate_cycle", rules("t(N) :- q(_), ‸N = count : { u(_) }.\nu(N) :- t(N).\n"), RuneStratificationError),
    ("request_relation_head", rules("‸principal(X) :- q(X).\n"), RuneCheckError),
    # ---- policy syntax (docs/language.md §5)
    ("policy_missing_semicolon", policies("permit(principal, action, resource)\n‸permit(principal, action, resource);\n"), RuneSyntaxError),
    ("policy_single_equals", policies('permit(principal ‸= User::"a", action, resource);\n'), RuneSyntaxError),
    ("policy_float", policies("permit(principal, action, resource) when { context.x > ‸1.5 };\n"), RuneSyntaxError),
    ("policy_missing_action", policies("permit(principal, ‸resource);\n"), RuneSyntaxError),
    ("policy_empty_when", policies("permit(principal, action, resource) when { ‸};\n"), RuneSyntaxError),
    ("policy_principal_in_list", policies('permit(principal in ‸[User::"a"], action, resource);\n'), RuneSyntaxError),
    ("policy_bad_token", policies("permit(principal, action, resource) when { ‸$ };\n"), RuneSyntaxError),
    ("policy_chained_eq", policies("permit(principal, action, resource) when { 1 == 1 ‸== 1 };\n"), RuneSyntaxError),
    ("policy_duplicate_id", policies('@id("x") permit(principal, action, resource);\n‸@id("x") forbid(principal, action, resource);\n'), RuneDuplicateIdError),
    # ---- policy checks
    ("policy_undefined_relation", policies("permit(principal, action, resource) when { ‸okk(principal) };\n"), RuneUndefinedError),
    ("policy_call_arity", policies("permit(principal, action, resource) when { ‸ok(principal, resource) };\n"), RuneArityError),
    # ---- embedded tests (docs/language.md §7)
    ("test_bad_expect", embedded_test("t1", "principal = 'User::\"a\"'\naction = 'Action::\"r\"'\nresource = 'Doc::\"d\"'\n‸expect = \"maybe\"\n"), RuneDataError),
    ("test_principal_not_entity", embedded_test("t2", "‸principal = \"alice\"\naction = 'Action::\"r\"'\nresource = 'Doc::\"d\"'\nexpect = \"permit\"\n"), RuneDataError),
    ("test_missing_expect", embedded_test("t3", "principal = 'User::\"a\"'\naction = 'Action::\"r\"'\nresource = 'Doc::\"d\"'\n"), RuneDataError),
]


def _position(marked: str) -> tuple[str, int, int]:
    """Strip the marker; return the text and the marker's 1-based line and column."""
    assert marked.count(MARK) <= 1, "at most one marker per case"
    idx = marked.find(MARK)
    text = marked.replace(MARK, "")
    if idx < 0:
        return text, -1, -1
    before = marked[:idx]
    line = before.count("\n") + 1
    col = idx - (before.rfind("\n") + 1) + 1
    return text, line, col


def load(text: str, path: str) -> None:
    bundle = parser.bundle_from_text(text, path)
    check_program(bundle.facts, bundle.rules, bundle.policies)


def test_table_is_large_and_names_are_unique():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 40


def test_base_programs_are_valid(tmp_path):
    load(BASE, str(tmp_path / "base.rune"))
    load(policies("permit(principal, action, resource) when { ok(1) };\n"), str(tmp_path / "p.rune"))


@pytest.mark.parametrize("name, marked, cls", CASES, ids=[c[0] for c in CASES])
def test_malformed(name, marked, cls, tmp_path):
    text, line, col = _position(marked)
    path = str(tmp_path / f"{name}.rune")
    with pytest.raises(RuneError) as ei:
        load(text, path)
    errs = ei.value.errors
    rendered = "\n".join(e.render() for e in errs)
    assert len(errs) == 1, rendered
    err = errs[0]
    assert type(err) is cls, rendered
    assert err.file == path, rendered
    if line == -1:  # no marker: the error is about the whole test table
        assert err.line > 0, rendered
    else:
        assert (err.line, err.column) == (line, col), rendered
        # The rendered error shows the offending line with a caret.
        assert err.source_line is not None and err.source_line.rstrip("\n") == text.split("\n")[line - 1], rendered
    assert f"{os.path.basename(path)}:{err.line}:{err.column}" in err.render()
