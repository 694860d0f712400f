"""Request validation: entity forms, size limits, equality and cacheability.

- Type names and ids are validated by one function with full-match
  semantics: ``"User\\n"`` (accepted by a ``$``-anchored pattern) must never
  become a type that escapes ``forbid(principal is User, ...)``. A property
  test throws random characters around type names and ids in every entity
  form and checks the only outcomes: ``RuneRequestError``, or exactly the
  decision of the canonical entity.
- Request sizes are bounded by documented ``Limits`` that fail with
  ``RuneRequestError`` before anything expensive is built.
- ``context(K, V)`` in a policy matches like a relation (by kind), as rules
  and ``query`` do; requests with only context or only entities are cached.
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rune_fast
from rune_fast import Entity, RuneRequestError

HEADER = 'version = "rune/1"\n'

GUARD = HEADER + """
[policies]
@id("all") permit(principal, action, resource);
@id("users") forbid(principal is User, action, resource);
@id("mallory") forbid(principal == Admin::"mallory", action, resource);
@id("res") forbid(principal, action, resource is Secret);
"""


@pytest.fixture(scope="module")
def guard():
    return rune_fast.load_text(GUARD, cache_size=64)


@pytest.mark.parametrize(
    "principal",
    [
        ("User\n", "bob"),
        {"type": "User\n", "id": "bob"},
        {"__entity": {"type": "User\n", "id": "bob"}},
        Entity("User\n", "mallory"),
        'User\n::"bob"',
        'User::"bob"\n',
        ("User ", "bob"),
        (" User", "bob"),
        ("Üser", "bob"),
        ("User::", "bob"),
        ("", "bob"),
        ("User", "bo\ud800b"),
        ("User", 1),
        (1, "bob"),
    ],
)
def test_type_names_and_ids_are_validated_with_full_match(guard, principal):
    with pytest.raises(RuneRequestError) as info:
        guard.authorize(principal, 'Action::"a"', 'Doc::"d"')
    assert info.value.field == "principal"


def test_bad_entities_in_request_entities_and_context_are_rejected(guard):
    with pytest.raises(RuneRequestError):
        guard.authorize('User::"a"', 'Action::"a"', 'Doc::"d"',
                        entities=[{"uid": {"type": "User\n", "id": "a"}}])
    with pytest.raises(RuneRequestError):
        guard.authorize('User::"a"', 'Action::"a"', 'Doc::"d"',
                        entities=[{"uid": {"type": "User", "id": "a"}, "parents": [("Group\n", "g")]}])
    with pytest.raises(RuneRequestError):
        guard.authorize('User::"a"', 'Action::"a"', 'Doc::"d"', context={"who": {"__entity": {"type": "User\n", "id": "a"}}})
    with pytest.raises(RuneRequestError):
        guard.authorize('User::"a"', 'Action::"a"', 'Doc::"d"', context={"who": Entity("User\n", "a")})
    with pytest.raises(ValueError):
        Entity.parse('User::"a"\n')


# -- property: random characters around type names and ids ------------------


def reference_type_ok(ty: str) -> bool:
    """Obviously-correct check of ``Name(::Name)*`` (ASCII), by hand."""
    head = string.ascii_letters + "_"
    tail = head + string.digits
    parts = ty.split("::")
    return all(p and p[0] in head and all(c in tail for c in p[1:]) for p in parts)


def reference_id_ok(ident: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in ident)


#: What may surround a type name or an id: mostly nothing or one suspicious
#: character (a final newline is what a ``$``-anchored pattern lets through),
#: sometimes any short text.
JUNK = st.one_of(
    st.just(""),
    st.sampled_from(["\n", "\r\n", " ", "\t", "\x00", "\x0b", "\x85", "\u2028", "::", ":", '"', "\\", "_", "a", "\ud800"]),
    st.text(max_size=3),
)
BASE_TYPES = st.sampled_from(["User", "Admin", "Ns::User", "Secret", "Doc"])
BASE_IDS = st.sampled_from(["bob", "mallory", "", "a b"])


def expected(ty: str, ident: str, resource_type: str = "Doc") -> str:
    if ty == "User" or (ty == "Admin" and ident == "mallory") or resource_type == "Secret":
        return "forbid"
    return "permit"


@settings(max_examples=300, deadline=None)
@given(BASE_TYPES, BASE_IDS, JUNK, JUNK, JUNK, JUNK, st.sampled_from(["tuple", "dict", "wrapped", "entity", "literal"]),
       st.sampled_from(["principal", "resource"]))
def test_entity_forms_are_rejected_or_canonical(guard, ty, ident, pre_t, post_t, pre_i, post_i, form, where):
    t = pre_t + ty + post_t
    i = pre_i + ident + post_i
    if form == "tuple":
        raw = (t, i)
    elif form == "dict":
        raw = {"type": t, "id": i}
    elif form == "wrapped":
        raw = {"__entity": {"type": t, "id": i}}
    elif form == "entity":
        raw = Entity(t, i)
    else:
        raw = t + "::" + json.dumps(i)
    valid = reference_type_ok(t) and reference_id_ok(i)
    args = [('User::"x"' if where == "resource" else raw), 'Action::"a"', (raw if where == "resource" else 'Doc::"d"')]
    try:
        d = guard.authorize(*args)
    except RuneRequestError as e:
        assert not valid, (raw, e)
        return
    assert valid, raw
    if where == "principal":
        assert d.decision == expected(t, i), (raw, d)
    else:
        assert d.decision == expected("User", "x", t), (raw, d)


@settings(max_examples=150, deadline=None)
@given(JUNK, JUNK, st.sampled_from(["User", "Ns::User"]), st.sampled_from(["mallory", "x"]))
def test_entity_literal_junk_is_rejected(guard, pre, post, ty, ident):
    text = pre + ty + "::" + json.dumps(ident) + post
    exact = pre == "" and post == ""
    try:
        d = guard.authorize(text, 'Action::"a"', 'Doc::"d"')
    except RuneRequestError:
        assert not exact or not reference_type_ok(ty)
        return
    # Accepted: it must spell exactly one entity of a valid type.
    e = rune_fast.Entity.parse(text)
    assert text[: text.index('::"')] == e.type and reference_type_ok(e.type)
    assert json.loads(text[len(e.type) + 2:]) == e.id
    assert d.decision == expected(e.type, e.id)


# -- request size limits -------------------------------------------------------


def test_huge_entity_literal_is_refused_unread():
    e = rune_fast.load_text(GUARD, max_id_length=100)
    huge = 'User::"' + "a" * 10_000_000 + '"'
    with pytest.raises(RuneRequestError) as info:
        e.authorize(huge, 'Action::"a"', 'Doc::"d"')
    assert "max_id_length" in info.value.message and info.value.field == "principal"
    assert len(info.value.message) < 400  # the message does not quote the input
    with pytest.raises(RuneRequestError):
        e.authorize(("User", "a" * 101), 'Action::"a"', 'Doc::"d"')
    assert e.authorize(("User", "a" * 100), 'Action::"a"', 'Doc::"d"').decision == "forbid"


def test_default_id_limit_applies():
    e = rune_fast.load_text(GUARD)
    limit = rune_fast.Limits().max_id_length
    with pytest.raises(RuneRequestError):
        e.authorize({"type": "User", "id": "x" * (limit + 1)}, 'Action::"a"', 'Doc::"d"')
    assert e.authorize({"type": "User", "id": "x" * limit}, 'Action::"a"', 'Doc::"d"').decision == "forbid"


@pytest.mark.parametrize(
    "kwargs, limit_name",
    [
        ({"context": {"s": "x" * 101}}, "max_string_length"),
        ({"context": {f"k{i}": i for i in range(300)}}, "max_request_values"),
        ({"context": {"a": [[[[["deep"]]]]]}}, "max_value_depth"),
        ({"context": {"a": ["y" * 90] * 20}}, "max_request_chars"),
        ({"entities": [{"uid": {"type": "U", "id": str(i)}} for i in range(11)]}, "max_request_entities"),
        ({"entities": [{"uid": {"type": "U", "id": "a"}, "parents": [("G", str(i)) for i in range(300)]}]},
         "max_request_values"),
        ({"entities": [{"uid": {"type": "U", "id": "a"}, "attrs": {"t": "z" * 101}}]}, "max_string_length"),
    ],
)
def test_request_size_limits(kwargs, limit_name):
    e = rune_fast.load_text(GUARD, max_string_length=100, max_request_values=200, max_value_depth=4,
                            max_request_chars=1000, max_request_entities=10)
    with pytest.raises(RuneRequestError) as info:
        e.authorize('User::"a"', 'Action::"a"', 'Doc::"d"', **kwargs)
    assert limit_name in info.value.message


def test_query_with_deep_context_is_a_request_error():
    e = rune_fast.load_text(HEADER + "[rules]\nok(V) :- context(\"x\", V).\n")
    deep: dict = {}
    cur = deep
    for _ in range(5000):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(RuneRequestError):
        e.query("ok(V)", context=deep)
    assert e.query("ok(V)", context={"x": 3}) == [{"V": 3}]


def test_entity_memo_keeps_only_short_ids():
    e = rune_fast.load_text(GUARD, cache_size=0, max_id_length=300_000)
    for i in range(50):
        e.authorize(f'User::"{i:06d}' + "a" * 262_144 + '"', 'Action::"a"', 'Doc::"d"')
    e.authorize('User::"short"', 'Action::"a"', 'Doc::"d"')
    memo = e._ent_memo
    assert memo and max(len(ent.id) for ent in memo.values()) <= 64
    assert Entity("User", "short") in memo.values()


# -- one equality, cacheability ---------------------------------------------------


def test_context_relation_matches_by_kind_like_rules_and_query():
    e = rune_fast.load_text(HEADER + """
[rules]
ok(1) :- context("x", 1).
[policies]
@id("ctx") permit(principal, action, resource) when { context("x", 1) };
@id("rule") permit(principal, action, resource) when { ok(1) };
@id("eq") permit(principal, action, resource) when { context.x == 1 };
""")
    for v, want in ((1, ("ctx", "rule", "eq")), (1.0, ("eq",)), (True, ())):
        d = e.authorize('U::"a"', 'A::"b"', 'R::"c"', context={"x": v})
        assert d.reasons == want, v
        assert bool(e.query("ok(X)", context={"x": v})) == ("rule" in want)


def test_requests_with_only_context_or_only_entities_are_cached():
    e = rune_fast.load_text(GUARD, cache_size=16)
    req = ('User::"a"', 'Action::"a"', 'Doc::"d"')
    assert not e.authorize(*req, context={"n": 1}).cached
    assert e.authorize(*req, context={"n": 1}).cached
    assert not e.authorize(*req, context={"n": 1.0}).cached
    assert not e.authorize(*req, context={"n": True}).cached
    ents = [{"uid": {"type": "User", "id": "a"}, "attrs": {"k": [1, 2]}}]
    assert not e.authorize(*req, entities=ents).cached
    assert e.authorize(*req, entities=ents).cached
    assert e.cache_len() == 4
