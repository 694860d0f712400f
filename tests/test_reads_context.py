"""``Engine.reads_context``: whether any decision can depend on the context.

The middleware keys its decision memo on the context only when a policy can
read it, so ``False`` must be a guarantee: the property test checks that an
engine claiming ``False`` answers every request the same with any context
or none. The unit cases check that each way of reading the context (directly,
through rules, through a hierarchy or attributes derived from it) says
``True``, so the memo is not keyed too coarsely.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search_programs import ACTIONS, DOCS, FOLDERS, POLICIES, USERS, programs, request_parts

import rune_fast

HEADER = 'version = "rune/1"\n'


@pytest.mark.parametrize("text, reads", [
    ('[policies]\npermit(principal, action, resource);', False),
    ('[policies]\npermit(principal, action, resource) when { context.mfa };', True),
    ('[policies]\nforbid(principal, action, resource) unless { context has mfa };', True),
    ('[policies]\npermit(principal, action, resource) when { context("mfa", true) };', True),
    ('[policies]\npermit(principal, action, resource) when { [1, context.n].contains(2) };', True),
    ('[policies]\npermit(principal, action, resource) when { {"a": context}.a has b };', True),
    ('[policies]\npermit(principal, action, resource) when { if true then true else context.x };', True),
    ('[policies]\npermit(principal, action, resource) when { resource.owner == context.who };', True),
    ('[policies]\npermit(principal, action, resource) when { "x" like "x*" && principal == resource };', False),
    # through rules: called (directly or not) or not called at all
    ('[rules]\nmfa(U) :- principal(U), context("mfa", true).\n[policies]\n'
     'permit(principal, action, resource) when { mfa(principal) };', True),
    ('[rules]\nmfa(U) :- principal(U), context("mfa", true).\nok(U) :- mfa(U).\n[policies]\n'
     'permit(principal, action, resource) when { ok(principal) };', True),
    ('[rules]\nmfa(U) :- principal(U), context("mfa", true).\n[policies]\n'
     'permit(principal, action, resource);', False),
    ('[rules]\nowns(U, R) :- principal(U), resource(R).\n[policies]\n'
     'permit(principal, action, resource) when { owns(principal, resource) };', False),
    # a hierarchy or attributes derived from the context: every `in` and attribute read may see it
    ('[rules]\nparent(U, Group::"vip") :- principal(U), context("vip", true).\n[policies]\n'
     'permit(principal in Group::"vip", action, resource);', True),
    ('[rules]\nattr(U, "gold", true) :- principal(U), context("vip", true).\n[policies]\n'
     'permit(principal, action, resource) when { principal has gold };', True),
])
def test_reads_context_cases(text: str, reads: bool) -> None:
    assert rune_fast.load_text(HEADER + text).reads_context is reads


def test_each_context_reading_policy_of_the_random_programs_is_seen() -> None:
    base = (HEADER + '[data]\nsuspended = [[\'User::"nobody"\']]\n'
            + '[rules]\nflagged(R) :- resource(R), context("flag", true).\n[policies]\n')
    for p in POLICIES:
        needs = "context" in p or "flagged(" in p
        text = base + p + "\n"
        if "can(" in p or "hidden(" in p or "classified(" in p or "cleared(" in p:
            continue  # rules the small base does not define
        assert rune_fast.load_text(text).reads_context is needs, p


CONTEXTS = st.fixed_dictionaries({}, optional={"flag": st.booleans(), "level": st.integers(0, 3),
                                               "who": st.sampled_from(USERS)})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=programs(), data=st.data())
def test_an_engine_that_does_not_read_the_context_answers_alike_with_any(text: str, data: st.DataObject) -> None:
    eng = rune_fast.load_text(text)
    if eng.reads_context:
        return
    fresh = rune_fast.load_text(text, cache_size=0)
    for _ in range(4):
        p = data.draw(st.sampled_from(USERS))
        a = data.draw(st.sampled_from(ACTIONS))
        r = data.draw(st.sampled_from(DOCS + FOLDERS))
        _, ents = data.draw(request_parts())
        ctx = data.draw(CONTEXTS)
        with_ctx = fresh.authorize(p, a, r, ctx, ents)
        without = fresh.authorize(p, a, r, None, ents)
        assert (with_ctx.decision, with_ctx.reasons, with_ctx.errors) == (without.decision, without.reasons, without.errors)
