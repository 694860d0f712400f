"""Generic ASGI middleware: wraps any ASGI app (Starlette, FastAPI, Django ASGI).

``lifespan`` (and any other non-HTTP scope) passes through untouched.
HTTP requests are decided before the wrapped app runs; WebSocket
connections are decided at the handshake: a refused one is closed before it
is accepted (servers answer the upgrade with HTTP 403), an allowed one
reaches the app with the decision in ``scope["state"]["rune"]``. Resolvers
receive the ASGI ``scope`` and may be coroutines. Like the WSGI middleware it
cannot see the app's router: declare special routes in ``routes``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Optional

from .guard import PROBLEM_JSON, Guard
from .rules import RouteRule, RouteTable

__all__ = ["RuneASGIMiddleware"]

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

#: WebSocket close code for a refused handshake (RFC 6455 "policy violation").
WS_POLICY_VIOLATION = 1008


def scope_user(scope: Mapping[str, Any]) -> Optional[str]:
    """The default principal id: Starlette's ``scope["user"]`` when authenticated."""
    u = scope.get("user")
    if u is None:
        return None
    if isinstance(u, str):
        return u
    if getattr(u, "is_authenticated", False):
        ident = getattr(u, "identity", None) or getattr(u, "display_name", None)
        return str(ident) if ident else None
    return None


class RuneASGIMiddleware:
    """``app = RuneASGIMiddleware(app, guard, routes={...})``."""

    def __init__(self, app: Any, guard: Guard, routes: Optional[Mapping[str, RouteRule]] = None) -> None:
        if not callable(app):
            raise TypeError("RuneASGIMiddleware: app must be an ASGI callable")
        if not isinstance(guard, Guard):
            raise TypeError("RuneASGIMiddleware: guard must be a Guard")
        self.app = app
        self.guard = guard
        self.routes = RouteTable(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        path = scope.get("path") or "/"
        route, params, r = self.routes.match(path)
        method = scope.get("method", "GET") if kind == "http" else "WEBSOCKET"
        client = scope.get("client")
        user = scope_user(scope) if guard.needs_default_principal() else None
        v = await guard.check_async(scope, method, path, route, params, client[0] if client else "", r, user)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["rune"] = v.decision
        extra = guard.headers(v)
        if v.status == 0:
            if kind == "websocket" or not extra:
                await self.app(scope, receive, send)
                return
            raw = [(k.lower().encode("latin-1"), val.encode("latin-1")) for k, val in extra]

            async def send_with_headers(message: dict) -> None:
                if message["type"] == "http.response.start":
                    message = dict(message)
                    message["headers"] = list(message.get("headers", ())) + raw
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return
        if kind == "websocket":
            msg = await receive()  # websocket.connect
            if msg.get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return
        body = guard.problem_body(v)
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode("latin-1"), val.encode("latin-1")) for k, val in extra]
        await send({"type": "http.response.start", "status": v.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
