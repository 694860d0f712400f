"""The Falcon adapter in falcon.App and falcon.asgi.App (falcon.testing, no network).

Every case runs against both app kinds through one fixture, as Falcon's own
middleware tests do; the real-server versions are in
test_middleware_servers.py.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import falcon.testing
import pytest
from rune_fast.middleware import DRY_RUN, Guard, RouteRule, rule
from rune_fast.middleware.falcon import (
    RuneMiddleware,
    authorize_hook,
    authorize_hook_async,
    read_body,
    read_body_async,
)

import rune_fast

POLICY = """version = "rune/1"
[data]
owner = [['Document::"a1"', 'User::"alice"']]
[policies]
@id("owner")
permit(principal, action, resource is Document) when { owner(resource, principal) };
@id("me")
permit(principal, action == Action::"GET", resource == Route::"/me");
"""
ENGINE = rune_fast.load_text(POLICY)


class Holder:
    def __init__(self) -> None:
        self.engine: Any = ENGINE


def make_app(asgi: bool, **guard_kw: Any) -> tuple[Any, Holder]:
    holder = Holder()

    def principal_sync(req: Any) -> Any:
        if req.get_header("X-Body"):
            read_body(req, 16)
        u = req.get_header("X-User")
        return ("User", u) if u else None

    async def principal_async(req: Any) -> Any:
        if req.get_header("X-Body"):
            await read_body_async(req, 16)
        u = req.get_header("X-User")
        return ("User", u) if u else None

    guard_kw.setdefault("principal", principal_async if asgi else principal_sync)
    guard_kw.setdefault("decision_headers", True)  # the tests read them on allowed responses too
    guard = Guard(holder, www_authenticate="Bearer", metrics=False, **guard_kw)
    dry = Guard(holder, principal=guard.principal, mode=DRY_RUN, metrics=False, decision_headers=True)

    def respond(req: Any, resp: Any, **params: Any) -> None:
        d = req.context.rune
        resp.media = {"params": params, "decision": d.to_dict() if d is not None else None, "body_len": len(req.context.get("rune_body") or b"")}

    def mk() -> Any:
        """A fresh responder function (rules are stored on the function)."""
        if asgi:
            async def r(self: Any, req: Any, resp: Any, **params: Any) -> None:
                respond(req, resp, **params)
            return r

        def r2(self: Any, req: Any, resp: Any, **params: Any) -> None:
            respond(req, resp, **params)
        return r2

    _r = mk()
    hook = (authorize_hook_async if asgi else authorize_hook)(dry, resource='Document::"{doc_id}"')

    class Doc:
        rune_rule = {"GET": RouteRule(action='Action::"read"', resource='Document::"{doc_id}"'),
                     "DELETE": RouteRule(resource='Document::"{doc_id}"', hide=True)}
        on_get = _r
        on_delete = _r
        on_put = rule(resource=("Document", "{doc_id}"), action='Action::"edit"')(mk())

    class Me:
        on_get = _r
        on_post = _r
        on_options = _r

    class Health:
        rune_rule = RouteRule(exempt=True)
        on_get = _r

    class Dry:
        on_get = rule(exempt=True)(falcon.before(hook)(mk()))

    app = (falcon.asgi.App if asgi else falcon.App)(middleware=[RuneMiddleware(guard)])
    app.add_route("/docs/{doc_id}", Doc())
    app.add_route("/me", Me())
    app.add_route("/health", Health())
    app.add_route("/dry/{doc_id}", Dry())
    return app, holder


@pytest.fixture(params=["wsgi", "asgi"])
def client(request: Any) -> Any:
    app, holder = make_app(request.param == "asgi")
    c = falcon.testing.TestClient(app)
    c.holder = holder
    return c


ALICE = {"X-User": "alice"}


def test_allow_sets_headers_and_the_handler_sees_the_decision(client: Any) -> None:
    r = client.simulate_get("/docs/a1", headers=ALICE)
    assert r.status_code == 200
    assert r.json["decision"]["reasons"] == ["owner"] and r.json["params"] == {"doc_id": "a1"}
    assert r.headers["X-Rune-Policy-Version"] == ENGINE.version and r.headers["X-Rune-Decision-Id"]


def test_deny_is_problem_json(client: Any) -> None:
    r = client.simulate_get("/docs/b1", headers=ALICE)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert r.json["status"] == 403 and r.json["decision_id"] == r.headers["X-Rune-Decision-Id"]


def test_401_503_404_exempt_options(client: Any) -> None:
    r = client.simulate_get("/docs/a1")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    h = client.simulate_delete("/docs/b1", headers=ALICE)
    assert h.status_code == 404 and "X-Rune-Decision-Id" not in h.headers
    assert h.json == client.simulate_get("/no/such/route").json  # the framework's own 404
    assert client.simulate_delete("/docs/a1", headers=ALICE).status_code == 200
    e = client.simulate_get("/health")
    assert e.status_code == 200 and e.json["decision"] is None
    o = client.simulate_options("/me")
    assert o.status_code == 200 and o.json["decision"] is None
    client.holder.engine = None
    u = client.simulate_get("/docs/a1", headers=ALICE)
    assert u.status_code == 503 and u.headers["Retry-After"]


def test_per_route_overrides(client: Any) -> None:
    assert client.simulate_get("/me", headers={"X-User": "zoe"}).json["decision"]["reasons"] == ["me"]
    assert client.simulate_post("/me", headers={"X-User": "zoe"}).status_code == 403  # Action::"POST"
    assert client.simulate_put("/docs/a1", headers=ALICE).status_code == 200          # @rule on the responder
    assert client.simulate_put("/docs/b1", headers=ALICE).status_code == 403


def test_dry_run_hook(client: Any) -> None:
    r = client.simulate_get("/dry/b1", headers=ALICE)
    assert r.status_code == 200 and r.json["decision"]["allowed"] is False
    assert r.headers["X-Rune-Decision-Id"]


def test_body_read_by_a_resolver_is_bounded(client: Any) -> None:
    ok = client.simulate_get("/docs/a1", headers={**ALICE, "X-Body": "1"}, body=b"0123456789")
    assert ok.status_code == 200 and ok.json["body_len"] == 10  # the handler can reuse it
    big = client.simulate_get("/docs/a1", headers={**ALICE, "X-Body": "1"}, body=b"x" * (10 * 1024 * 1024))
    assert big.status_code == 413 and big.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/docs/%62%31", "/docs/b1%2F..%2Fa1", "/docs/%ff", "/docs/a1%00", "/docs/..%2Fa1"])
def test_odd_paths_never_allow(client: Any, path: str) -> None:
    r = client.simulate_get(path, headers=ALICE)
    assert 400 <= r.status_code < 500


def test_resolver_raising_is_a_403_never_a_500() -> None:
    for asgi in (False, True):
        app, _ = make_app(asgi, principal=lambda req: {}["missing"])
        r = falcon.testing.TestClient(app).simulate_get("/docs/a1", headers=ALICE)
        assert r.status_code == 403 and "missing" not in r.text


def test_websocket_handshake_in_falcon_asgi() -> None:
    app, _ = make_app(True)

    class Sock:
        rune_rule = RouteRule(action='Action::"read"', resource='Document::"{doc_id}"')

        async def on_websocket(self, req: Any, ws: Any, doc_id: str) -> None:
            await ws.accept()
            await ws.send_media({"allowed": req.context.rune.allowed})
            await ws.receive_text()  # keep the connection open until the client has read

    app.add_route("/ws/{doc_id}", Sock())
    c = falcon.testing.TestClient(app)

    async def run() -> None:
        async with c as conductor:
            async with conductor.simulate_ws("/ws/a1", headers=ALICE) as ws:
                assert await ws.receive_json() == {"allowed": True}
                await ws.send_text("bye")
            for headers, code in ((ALICE, 3403), ({}, 3401)):
                with pytest.raises(falcon.errors.WebSocketDisconnected) as e:
                    async with conductor.simulate_ws("/ws/b1", headers=headers):
                        pass
                assert e.value.code == code  # refused at the handshake

    import asyncio

    asyncio.run(run())


def test_options_from_a_source() -> None:
    mw = RuneMiddleware(ENGINE, principal=lambda r: None)
    assert isinstance(mw.guard, Guard)
    with pytest.raises(TypeError):
        RuneMiddleware(mw.guard, mode="enforce")


def test_a_misdeclared_rule_fails_closed() -> None:
    class Bad:
        rune_rule = "exempt"

        def on_get(self, req: Any, resp: Any) -> None:
            resp.media = {"reached": True}

    app = falcon.App(middleware=[RuneMiddleware(Guard(ENGINE, metrics=False))])
    app.add_route("/bad", Bad())
    r = falcon.testing.TestClient(app).simulate_get("/bad", extras={"REMOTE_USER": "alice"})
    assert r.status_code == 403 and "reached" not in r.text


class _SpyEngine:
    """An engine stand-in that counts (or breaks) ``explain`` and delegates the rest."""

    def __init__(self, fail: bool = False) -> None:
        self.explained = 0
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        return getattr(ENGINE, name)

    def explain(self, *args: Any) -> Any:
        self.explained += 1
        if self.fail:
            raise RuntimeError("explain bug")
        return ENGINE.explain(*args)


def _explain_app(asgi: bool, mode: str, engine: Any, plain: bool) -> Any:
    holder = Holder()
    holder.engine = engine
    kw: dict = {} if plain else {"context": lambda req: {"via": "resolver"}}

    def principal(req: Any) -> Any:
        return ("User", req.get_header("X-User"))

    class Doc:
        rune_rule = RouteRule(action='Action::"read"', resource='Document::"{doc_id}"')

        def on_get(self, req: Any, resp: Any, doc_id: str) -> None:
            resp.media = {"reached": True}

    guard = Guard(holder, principal=principal, mode=mode, metrics=False, **kw)
    app = (falcon.asgi.App if asgi else falcon.App)(middleware=[RuneMiddleware(guard)])
    if asgi:
        class ADoc(Doc):
            async def on_get(self, req: Any, resp: Any, doc_id: str) -> None:  # type: ignore[override]
                resp.media = {"reached": True}
        app.add_route("/docs/{doc_id}", ADoc())
    else:
        app.add_route("/docs/{doc_id}", Doc())
    return falcon.testing.TestClient(app)


def _records(caplog: Any) -> list:
    return [r.rune for r in caplog.records if r.name == "rune_fast.middleware" and hasattr(r, "rune")]


@pytest.mark.parametrize("asgi", [False, True])
@pytest.mark.parametrize("plain", [True, False])
def test_dry_run_would_deny_records_the_explanation(caplog: Any, asgi: bool, plain: bool) -> None:
    spy = _SpyEngine()
    c = _explain_app(asgi, DRY_RUN, spy, plain)
    with caplog.at_level(logging.INFO, logger="rune_fast.middleware"):
        assert c.simulate_get("/docs/b1", headers=ALICE).status_code == 200  # dry run: proceeds
        assert c.simulate_get("/docs/a1", headers=ALICE).status_code == 200  # allowed
    would, allow = _records(caplog)
    assert would["outcome"] == "would_deny" and allow["outcome"] == "allow"
    ex = would["explanation"]
    want = ENGINE.explain('User::"alice"', 'Action::"read"', 'Document::"b1"',
                          Guard.default_context("GET", "/docs/b1", "/docs/{doc_id}", {"doc_id": "b1"}, "127.0.0.1")
                          if plain else {"via": "resolver"}).to_dict()
    assert ex == want and ex["why_not"] is True
    owner = [p for p in ex["policies"] if p["id"] == "owner"]
    assert owner and owner[0]["status"] == "condition"
    assert owner[0]["conditions"][0]["facts"][0] == {"fact": 'owner(Document::"b1", User::"alice")', "present": False}
    assert "explanation" not in allow and spy.explained == 1  # never on the allow path


@pytest.mark.parametrize("asgi", [False, True])
def test_enforce_never_explains(caplog: Any, asgi: bool) -> None:
    spy = _SpyEngine()
    c = _explain_app(asgi, "enforce", spy, True)
    with caplog.at_level(logging.INFO, logger="rune_fast.middleware"):
        assert c.simulate_get("/docs/b1", headers=ALICE).status_code == 403
    (rec,) = _records(caplog)
    assert rec["outcome"] == "deny" and "explanation" not in rec and spy.explained == 0


def test_dry_run_does_not_explain_when_the_audit_log_is_off(caplog: Any) -> None:
    spy = _SpyEngine()
    c = _explain_app(False, DRY_RUN, spy, True)
    with caplog.at_level(logging.WARNING, logger="rune_fast.middleware"):
        assert c.simulate_get("/docs/b1", headers=ALICE).status_code == 200
    assert spy.explained == 0


@pytest.mark.parametrize("asgi", [False, True])
def test_a_failing_explanation_changes_nothing(caplog: Any, asgi: bool) -> None:
    spy = _SpyEngine(fail=True)
    c = _explain_app(asgi, DRY_RUN, spy, True)
    with caplog.at_level(logging.INFO, logger="rune_fast.middleware"):
        r = c.simulate_get("/docs/b1", headers=ALICE)
    assert r.status_code == 200 and r.json == {"reached": True} and "explain bug" not in r.text
    (rec,) = _records(caplog)
    assert rec["outcome"] == "would_deny" and rec["explanation_error"] == "RuntimeError: explain bug"
    assert "explanation" not in rec
    assert any(r.levelno == logging.WARNING and "explain bug" in r.getMessage() for r in caplog.records)
