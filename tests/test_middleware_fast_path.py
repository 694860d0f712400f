"""The Falcon adapter's memo fast path (``RuneMiddleware.process_resource``).

A warm, allowed (principal, method, route) is answered by the adapter itself
from the guard's memo. These tests pin down that it is only an
optimisation: the same answers, counts and records as ``Guard.decide``, the
principal resolver run exactly once per request, never an answer from a
replaced engine, never a shortcut when the context matters or when the
decision is being logged.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import falcon
import falcon.testing
import pytest
from prometheus_client import CollectorRegistry
from rune_fast.middleware import Guard
from rune_fast.middleware.falcon import RuneMiddleware

import rune_fast

ALLOW_ALICE = """version = "rune/1"
[policies]
@id("alice")
permit(principal == User::"alice", action == Action::"GET", resource == Route::"/docs/{doc_id}");
"""
ALLOW_BOB = ALLOW_ALICE.replace("alice", "bob")
# reads the context: the memo must key on the path, and no shortcut applies
CONTEXT_POLICY = """version = "rune/1"
[policies]
@id("ctx")
permit(principal, action, resource) when { context.path == "/docs/open" };
"""


class Holder:
    """An engine source whose engine a test swaps (a reload)."""

    def __init__(self, text: str) -> None:
        self.engine: Any = rune_fast.load_text(text)


class Doc:
    def on_get(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        resp.media = {"doc": doc_id, "allowed": req.context.rune.allowed}


def build(text: str, *, fast: bool = True, **guard_kw: Any) -> tuple[falcon.testing.TestClient, Guard, Holder, list]:
    holder = Holder(text)
    calls: list = []

    def principal(req: Any) -> Any:
        calls.append(req.path)
        u = req.get_header("X-User")
        if u == "boom":
            raise RuntimeError("resolver failed")
        return ("User", u) if u else None

    guard_kw.setdefault("audit_logger", None)
    guard = Guard(holder, principal=principal, name="fast_path", metrics_registry=CollectorRegistry(), **guard_kw)
    mw = RuneMiddleware(guard)
    mw._fast = fast and mw._fast  # the reference: the same middleware with the shortcut off
    app = falcon.App(middleware=[mw])
    app.add_route("/docs/{doc_id}", Doc())
    return falcon.testing.TestClient(app), guard, holder, calls


def get(client: falcon.testing.TestClient, user: str | None, doc: str = "d1") -> tuple[int, Any]:
    r = client.simulate_get(f"/docs/{doc}", headers={"X-User": user} if user else {})
    body = r.json
    if isinstance(body, dict):
        body.pop("decision_id", None)  # unique per request
    return r.status_code, body


def test_shortcut_is_taken_only_in_the_memo_by_route_mode() -> None:
    client, guard, _, _ = build(ALLOW_ALICE)
    assert guard.memo_fast_path
    assert not Guard(Holder(ALLOW_ALICE), principal=None, audit_logger=None, metrics=False).memo_fast_path
    assert not Guard(Holder(ALLOW_ALICE), principal=lambda r: None, action=lambda r: 'Action::"x"',
                     audit_logger=None, metrics=False).memo_fast_path


@pytest.mark.parametrize("seed", range(5))
def test_same_answers_and_counts_as_without_the_shortcut(seed: int) -> None:
    rng = random.Random(seed)
    fast, g_fast, h_fast, calls_fast = build(ALLOW_ALICE)
    slow, g_slow, h_slow, calls_slow = build(ALLOW_ALICE, fast=False)
    for i in range(200):
        if rng.random() < 0.03:  # a reload to the other policy
            text = ALLOW_BOB if "alice" in h_fast.engine.version or rng.random() < 0.5 else ALLOW_ALICE
            h_fast.engine = h_slow.engine = rune_fast.load_text(text)
        user = rng.choice(["alice", "bob", "carol", None, "boom"])
        doc = rng.choice(["d1", "d2"])
        assert get(fast, user, doc) == get(slow, user, doc), (i, user, doc)
    # one resolver call per request, hit or miss, on both
    assert len(calls_fast) == len(calls_slow) == 200
    assert g_fast.metrics is not None and g_slow.metrics is not None
    assert g_fast.metrics.snapshot()[0] == g_slow.metrics.snapshot()[0]


def test_a_reload_is_never_answered_from_the_old_memo() -> None:
    client, _, holder, _ = build(ALLOW_ALICE)
    for _ in range(3):
        assert get(client, "alice")[0] == 200
    holder.engine = rune_fast.load_text(ALLOW_BOB)
    assert get(client, "alice")[0] == 403
    assert get(client, "bob")[0] == 200


def test_a_resolver_that_raises_on_a_warm_route_is_a_deny() -> None:
    client, guard, _, calls = build(ALLOW_ALICE)
    assert get(client, "alice")[0] == 200
    assert get(client, "alice")[0] == 200  # warm
    n = len(calls)
    status, _ = get(client, "boom")
    assert status == 403
    assert len(calls) == n + 1  # not run a second time by decide()
    assert guard.metrics is not None
    assert any(o == "error" for (o, _mode) in guard.metrics.snapshot()[0])


def test_context_reading_policies_are_not_shortcut() -> None:
    client, guard, _, _ = build(CONTEXT_POLICY)
    assert get(client, "alice", "open")[0] == 200
    assert get(client, "alice", "open")[0] == 200
    # same principal, method and route template, another path: another answer
    assert get(client, "alice", "closed")[0] == 403


def test_logged_decisions_are_recorded_on_warm_routes(caplog: pytest.LogCaptureFixture) -> None:
    client, _, _, _ = build(ALLOW_ALICE, audit_logger="rune_fast.test_fast_path", audit_level=logging.INFO)
    with caplog.at_level(logging.INFO, logger="rune_fast.test_fast_path"):
        for _ in range(4):
            assert get(client, "alice")[0] == 200
    records = [r for r in caplog.records if r.name == "rune_fast.test_fast_path"]
    assert len(records) == 4
