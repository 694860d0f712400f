"""The one ``like`` matcher (rune_fast/like.py): correct, linear, shared by rules and policies.

Correctness is checked against an obviously-correct reference, a regex
``fullmatch`` of the translated glob, on small inputs where backtracking is
harmless. Linearity is checked where backtracking is not harmless: the
pattern ``*a*b*c*d*e*f*g*`` on a 200 KB string (a regex took ~26 s on it,
holding the GIL) must finish inside the request deadline.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rune_fast
from rune_fast.datalog import Program, _pycore
from rune_fast.errors import RuneLimitError
from rune_fast.lang import ast as A
from rune_fast.lang.lexer import like_pattern_from_glob
from rune_fast.like import WILDCARD, glob_matcher, like_matcher, pattern_from_glob

PATHOLOGICAL = "*a*b*c*d*e*f*g*"


def reference_tuple(pattern, s: str) -> bool:
    rx = "".join(".*" if p is None else re.escape(p) for p in pattern)
    return re.fullmatch(rx, s, re.S) is not None


def reference_glob(glob: str, s: str) -> bool:
    """Translate the escaped glob character by character into a regex."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), s, re.S) is not None


small_text = st.text(alphabet="ab*\\", max_size=10)
pieces = st.lists(st.one_of(st.none(), st.text(alphabet="ab", max_size=3)), max_size=6)


def test_wildcard_is_the_ast_marker():
    assert WILDCARD is A.LIKE_WILDCARD
    assert like_pattern_from_glob is pattern_from_glob


@settings(max_examples=200, deadline=None, derandomize=True)
@given(pieces, st.text(alphabet="ab", max_size=10))
def test_tuple_patterns_agree_with_regex(pattern, s):
    assert like_matcher(pattern)(s) == reference_tuple(pattern, s)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(small_text, st.text(alphabet="ab*\\", max_size=10))
def test_escaped_globs_agree_with_regex(glob, s):
    assert glob_matcher(glob)(s) == reference_glob(glob, s)


@pytest.mark.parametrize("glob, s, expected", [
    ("ab*ba", "aba", False),        # prefix and suffix may not overlap
    ("ab*ba", "abba", True),
    ("a*a*a", "aaa", True),
    ("a*a*a", "aa", False),
    ("*", "", True),
    ("", "", True),
    ("", "x", False),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("a\\\\*", "a\\zz", True),
    ("x*\n*y", "x\n\ny", True),     # the wildcard crosses newlines
])
def test_examples(glob, s, expected):
    assert glob_matcher(glob)(s) is expected


def test_pathological_pattern_is_linear():
    s = "x" * 200_000 + "abcdefg"
    m = glob_matcher(PATHOLOGICAL)
    start = time.perf_counter()
    for _ in range(20):
        assert m(s)
        assert not m(s[:-1])
    assert time.perf_counter() - start < 5.0  # a regex needed ~26 s for ONE of these 40 calls


@pytest.mark.parametrize("core", [None, _pycore], ids=["default", "pure"])
def test_rule_like_on_a_long_string_finishes_within_the_deadline(core):
    p = Program(f'hit(S) :- context("s", S), S.like("{PATHOLOGICAL}").', deadline_ms=5000, _core_module=core)
    model = p.evaluate({})
    long_hit = "x" * 200_000 + "abcdefg"
    long_miss = "x" * 200_000 + "abcdef"
    # A slow matcher would raise RuneLimitError(deadline_ms) here (the core
    # checks the clock after every string method), not hang.
    assert model.with_request({"context": [("s", long_hit)]}).relation("hit") == {(long_hit,)}
    assert model.with_request({"context": [("s", long_miss)]}).relation("hit") == frozenset()


@pytest.mark.parametrize("core", [None, _pycore], ids=["default", "pure"])
def test_an_expired_deadline_stops_at_the_first_string_method(core):
    # A handful of steps never reach the periodic clock check: only the check
    # after a string method can notice the deadline.
    p = Program('hit(S) :- context("s", S), S.like("*a*").', deadline_ms=1e-6, _core_module=core)
    model = p.evaluate({})
    with pytest.raises(RuneLimitError) as info:
        model.with_request({"context": [("s", "x" * 1000 + "a")]})
    assert info.value.limit == "deadline_ms"


def test_policy_like_on_a_long_context_string():
    engine = rune_fast.load_text(
        'version = "rune/1"\n[policies]\n'
        f'permit(principal, action, resource) when {{ context.s like "{PATHOLOGICAL}" }};\n',
        deadline_ms=5000,
    )
    hit = {"s": "x" * 200_000 + "abcdefg"}
    miss = {"s": "x" * 200_000 + "abcdef"}
    d = engine.authorize('User::"u"', 'Action::"a"', 'Doc::"d"', context=hit)
    assert d.allowed and not d.errors
    d = engine.authorize('User::"u"', 'Action::"a"', 'Doc::"d"', context=miss)
    assert not d.allowed and not d.errors
