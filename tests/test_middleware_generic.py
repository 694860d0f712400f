"""The generic WSGI and ASGI middleware, called directly (no server).

Real-server runs of the ASGI middleware (websocket handshake under uvicorn)
are in test_middleware_servers.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from rune_fast.middleware import Guard, RouteRule
from rune_fast.middleware.asgi import RuneASGIMiddleware
from rune_fast.middleware.wsgi import RuneWSGIMiddleware

import rune_fast

ENGINE = rune_fast.load_text("""version = "rune/1"
[data]
owner = [['Document::"a1"', 'User::"alice"']]
[policies]
@id("owner")
permit(principal, action, resource is Document) when { owner(resource, principal) };
@id("any-get")
permit(principal, action == Action::"GET", resource == Route::"/open");
""")
ROUTES = {
    "/health": RouteRule(exempt=True),
    "/docs/{doc_id}": RouteRule(action='Action::"read"', resource='Document::"{doc_id}"'),
    "/hidden/{doc_id}": RouteRule(resource='Document::"{doc_id}"', hide=True),
}


def wsgi_app(environ: dict, start_response: Any) -> list:
    d = environ.get("rune.decision")
    body = json.dumps({"decision": d.to_dict() if d is not None else None}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def call_wsgi(app: Any, path: str, user: str = "", method: str = "GET") -> tuple[str, dict, bytes]:
    env: dict = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(env)
    if user:
        env["REMOTE_USER"] = user
    out: dict = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        out["status"], out["headers"] = status, dict(headers)

    body = b"".join(app(env, start_response))
    return out["status"], out["headers"], body


def test_wsgi_middleware() -> None:
    app = RuneWSGIMiddleware(wsgi_app, Guard(ENGINE, metrics=False, decision_headers=True), routes=ROUTES)
    status, headers, body = call_wsgi(app, "/docs/a1", "alice")  # REMOTE_USER is the default principal
    assert status == "200 OK" and json.loads(body)["decision"]["reasons"] == ["owner"]
    assert headers["X-Rune-Policy-Version"] == ENGINE.version and headers["Content-Type"] == "application/json"
    status, headers, body = call_wsgi(app, "/docs/b1", "alice")
    assert status == "403 Forbidden" and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["decision_id"] == headers["X-Rune-Decision-Id"]
    assert call_wsgi(app, "/docs/a1")[0].startswith("401")
    assert call_wsgi(app, "/hidden/b1", "alice")[0].startswith("404")
    assert json.loads(call_wsgi(app, "/health")[2]) == {"decision": None}
    assert call_wsgi(app, "/open", "zoe")[0] == "200 OK"               # Route::"<path>" default
    assert call_wsgi(app, "/open", "zoe", method="OPTIONS")[0] == "200 OK"
    # WSGI hands the path over as latin-1 decoded bytes: ids are the real text
    assert call_wsgi(app, "/docs/a1\u00c3\u00a9", "alice")[0].startswith("403")


def test_wsgi_middleware_rejects_async_resolvers() -> None:
    async def principal(req: Any) -> Any:
        return None

    with pytest.raises(TypeError):
        RuneWSGIMiddleware(wsgi_app, Guard(ENGINE, principal=principal, metrics=False))
    with pytest.raises(TypeError):
        RuneWSGIMiddleware(wsgi_app, Guard(ENGINE, metrics=False), routes={"/x": RouteRule(resource=principal)})


async def asgi_app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        msg = await receive()
        await send({"type": "lifespan.startup.complete", "seen": msg["type"]})
        return
    d = scope.get("state", {}).get("rune")
    body = json.dumps({"decision": d.to_dict() if d is not None else None}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def run_asgi(app: Any, scope: dict, incoming: list) -> list:
    sent: list = []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(path: str, user: str = "") -> dict:
    headers = [(b"x-user", user.encode())] if user else []
    return {"type": "http", "method": "GET", "path": path, "headers": headers, "client": ("127.0.0.1", 5000)}


async def principal(scope: dict) -> Any:
    await asyncio.sleep(0)
    user = dict(scope["headers"]).get(b"x-user")
    return ("User", user.decode()) if user else None


def test_asgi_middleware_http_and_lifespan() -> None:
    app = RuneASGIMiddleware(asgi_app, Guard(ENGINE, principal=principal, metrics=False, decision_headers=True),
                             routes=ROUTES)
    sent = run_asgi(app, {"type": "lifespan"}, [{"type": "lifespan.startup"}])
    assert sent == [{"type": "lifespan.startup.complete", "seen": "lifespan.startup"}]  # passed through
    start, body = run_asgi(app, http_scope("/docs/a1", "alice"), [])
    headers = dict(start["headers"])
    assert start["status"] == 200 and headers[b"x-rune-policy-version"] == ENGINE.version.encode()
    assert json.loads(body["body"])["decision"]["reasons"] == ["owner"]
    start, body = run_asgi(app, http_scope("/docs/b1", "alice"), [])
    assert start["status"] == 403 and dict(start["headers"])[b"content-type"] == b"application/problem+json"
    assert run_asgi(app, http_scope("/docs/a1"), [])[0]["status"] == 401
    assert run_asgi(app, http_scope("/hidden/b1", "alice"), [])[0]["status"] == 404


def test_asgi_middleware_websocket_handshake() -> None:
    accepted = []

    async def ws_app(scope: dict, receive: Any, send: Any) -> None:
        await receive()
        accepted.append(scope["state"]["rune"].allowed)
        await send({"type": "websocket.accept"})

    app = RuneASGIMiddleware(ws_app, Guard(ENGINE, principal=principal, metrics=False), routes=ROUTES)
    scope = {**http_scope("/docs/a1", "alice"), "type": "websocket"}
    del scope["method"]
    assert run_asgi(app, scope, [{"type": "websocket.connect"}]) == [{"type": "websocket.accept"}]
    assert accepted == [True]
    scope = {**scope, "path": "/docs/b1"}
    assert run_asgi(app, scope, [{"type": "websocket.connect"}]) == [{"type": "websocket.close", "code": 1008}]
    assert accepted == [True]  # the app never saw the refused connection
