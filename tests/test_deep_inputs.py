"""Huge flat chains (`a || b || ...`, `X + X + ...`) never crash the loader:
long boolean chains work, anything too deep to compile is a located
max_nesting limit error."""

from __future__ import annotations

import pytest

import rune_fast
from rune_fast.errors import RuneLimitError


def policy(cond: str) -> str:
    return f'version = "rune/1"\n[policies]\npermit(principal, action, resource) when {{ {cond} }};\n'


@pytest.mark.parametrize("n", [2, 3, 1000, 5000])
def test_long_or_chain_is_evaluated_flat(n):
    engine = rune_fast.load_text(policy(" || ".join(f"context.x == {i}" for i in range(n))), cache_size=0)
    assert engine.authorize('U::"a"', 'A::"r"', 'D::"d"', context={"x": n - 1}).decision == "permit"
    assert engine.authorize('U::"a"', 'A::"r"', 'D::"d"', context={"x": n}).decision == "deny"


@pytest.mark.parametrize("n", [2, 3, 2000])
def test_long_and_chain_is_evaluated_flat(n):
    engine = rune_fast.load_text(policy(" && ".join(f"context.x != {i + 1}" for i in range(n))), cache_size=0)
    assert engine.authorize('U::"a"', 'A::"r"', 'D::"d"', context={"x": 0}).decision == "permit"
    assert engine.authorize('U::"a"', 'A::"r"', 'D::"d"', context={"x": n}).decision == "deny"


def test_chain_operands_must_be_booleans():
    engine = rune_fast.load_text(policy("context.x == 1 || context.x || context.x == 2"), cache_size=0)
    d = engine.authorize('U::"a"', 'A::"r"', 'D::"d"', context={"x": 5})
    assert d.decision == "deny" and d.errors  # a type error skips the policy, reported


def test_too_deep_arithmetic_in_a_policy_is_a_limit_error():
    with pytest.raises(RuneLimitError) as info:
        rune_fast.load_text(policy("(" + " + ".join("1" for _ in range(5000)) + ") == 5000"))
    assert info.value.limit == "max_nesting" and info.value.line == 3


def test_too_deep_arithmetic_in_a_rule_is_a_limit_error():
    text = 'version = "rune/1"\n[data]\nv = [1]\n[rules]\nr(Y) :- v(X), Y = ' + " + ".join(["X"] * 5000) + ".\n"
    with pytest.raises(RuneLimitError) as info:
        rune_fast.load_text(text)
    assert info.value.limit == "max_nesting" and info.value.line == 5


def _deep(n: int) -> dict:
    root: dict = {}
    cur = root
    for _ in range(n):
        cur["a"] = {}
        cur = cur["a"]
    return root


@pytest.mark.parametrize("cache_size", [0, 16])
def test_deeply_nested_request_is_a_request_error(cache_size):
    engine = rune_fast.load_text(policy("true"), cache_size=cache_size)
    with pytest.raises(rune_fast.RuneRequestError) as info:
        engine.authorize('U::"a"', 'A::"r"', 'D::"d"', context=_deep(5000))
    assert info.value.field.startswith("context.a") and "max_value_depth" in info.value.message
    with pytest.raises(rune_fast.RuneRequestError) as info:
        engine.authorize('U::"a"', 'A::"r"', 'D::"d"',
                         entities=[{"uid": {"type": "U", "id": "a"}, "attrs": _deep(5000), "parents": []}])
    assert info.value.field.startswith("entities[0].attrs.a") and "max_value_depth" in info.value.message
