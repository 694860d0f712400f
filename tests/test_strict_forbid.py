"""Cedar's forbid-error semantics and the opt-in strict mode.

Cedar skips a policy whose condition errors, forbids included: with
``context.age`` the string ``"17"``, ``forbid ... when { context.age < 18 }``
errors and the request is permitted by the other policies (the error is in
the decision). ``strict_forbid=True`` makes such a request ``deny`` instead.
"""

from __future__ import annotations

import pytest

import rune_fast

TEXT = """version = "rune/1"
[policies]
@id("all") permit(principal, action, resource);
@id("minors") forbid(principal, action, resource) when { context.age < 18 };
@id("docs-only") forbid(principal, action, resource is Secret) when { principal.clearance < 3 };
@id("broken-permit") permit(principal, action, resource) when { context.nope };
"""

REQ = ('User::"kid"', 'Action::"watch"', 'Film::"f"')


@pytest.mark.parametrize("cache_size", [0, 16])
def test_cedar_default_skips_an_erroring_forbid(cache_size):
    e = rune_fast.load_text(TEXT, cache_size=cache_size)
    d = e.authorize(*REQ, context={"age": "17"})
    assert d.decision == "permit" and d.reasons == ("all",)
    assert [p for p, _ in d.errors] == ["minors", "broken-permit"]


@pytest.mark.parametrize("cache_size", [0, 16])
def test_strict_mode_denies_when_a_forbid_errors(cache_size):
    e = rune_fast.load_text(TEXT, cache_size=cache_size, strict_forbid=True)
    for _ in range(2):  # and the cached answer is the same
        d = e.authorize(*REQ, context={"age": "17"})
        assert d.decision == "deny" and not d.allowed and d.reasons == ()
        assert [p for p, _ in d.errors] == ["minors", "broken-permit"]
    # Only a *forbid* that errors denies: an erroring permit does not.
    d = e.authorize(*REQ, context={"age": 30})
    assert d.decision == "permit" and [p for p, _ in d.errors] == ["broken-permit"]
    # A satisfied forbid still decides forbid.
    d = e.authorize(*REQ, context={"age": 12})
    assert d.decision == "forbid" and d.reasons == ("minors",)
    # A forbid whose scope does not match is not evaluated, so cannot error.
    d = e.authorize('User::"x"', 'Action::"read"', 'Doc::"d"', context={"age": 40})
    assert d.decision == "permit"
    d = e.authorize('User::"x"', 'Action::"read"', 'Secret::"s"', context={"age": 40})
    assert d.decision == "deny" and [p for p, _ in d.errors] == ["docs-only", "broken-permit"]


def test_strict_mode_through_the_store(tmp_path):
    path = tmp_path / "p.rune"
    path.write_text(TEXT)
    store = rune_fast.PolicyStore(str(path), watch=False, strict_forbid=True)
    try:
        assert store.engine.authorize(*REQ, context={"age": "17"}).decision == "deny"
        assert store.engine.run_tests() == []
    finally:
        store.close()
