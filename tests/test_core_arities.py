"""Mixed arities in one program: every relation keeps its own row width, on both cores.

Heads of one width are derived from bodies of other widths, in the same
stratum and across strata, up to the 64-column limit: a row buffer sized for
the wrong relation (the bug of an earlier bulk-insertion attempt) would mix
columns of different relations or write past an array.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_fast.datalog import Program, _core, _pycore

WIDTHS = [1, 2, 3, 7, 8, 9, 33, 63, 64]


def program_for(widths: list[int]) -> tuple[str, dict, dict]:
    """Rules copying a base relation into heads of each width, plus the expected rows."""
    rules = []
    facts = {"base": [(i, i + 1, i + 2) for i in range(20)]}
    expected = {}
    prev = None
    for n, w in enumerate(widths):
        args = ", ".join(["A", "B", "C"][k % 3] for k in range(w))
        body = "base(A, B, C)" if prev is None else f"{prev[0]}({prev[1]}), base(A, B, C)"
        rules.append(f"r{n}({args}) :- {body}.")
        expected[f"r{n}"] = {tuple((i, i + 1, i + 2)[k % 3] for k in range(w)) for i in range(20)}
        prev = (f"r{n}", ", ".join(["A", "B", "C"][k % 3] for k in range(w)))
    # a recursive stratum mixing two widths
    rules.append("wide(A, B, C, A, B, C, A, B) :- base(A, B, C).")
    rules.append("wide(B, C, A, B, C, A, B, C) :- wide(A, B, C, _, _, _, _, _), narrow(A).")
    rules.append("narrow(A) :- wide(A, _, _, _, _, _, _, _).")
    return "\n".join(rules), facts, expected


@pytest.mark.parametrize("core", [_core, _pycore], ids=["compiled", "pure"])
def test_heads_of_every_width(core):
    text, facts, expected = program_for(WIDTHS + WIDTHS[::-1])
    model = Program(text, _core_module=core).evaluate(facts)
    for name, rows in expected.items():
        assert model.relation(name) == rows, name


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.lists(st.integers(1, 64), min_size=1, max_size=6))
def test_both_cores_agree_on_random_width_chains(widths):
    text, facts, expected = program_for(widths)
    compiled = Program(text, _core_module=_core).evaluate(facts)
    pure = Program(text, _core_module=_pycore).evaluate(facts)
    names = list(expected) + ["wide", "narrow"]
    for name in names:
        assert sorted(compiled.rows(name)) == sorted(pure.rows(name)), name
    for name, rows in expected.items():
        assert compiled.relation(name) == rows, name
