"""Generic WSGI middleware: wraps any WSGI app (Flask, Django, Bottle, Falcon).

It runs before the wrapped app's router, so it only knows the routes it is
told about (``routes``, see :class:`RouteTable`); anything else is decided
as ``Route::"<path>"``. Resolvers receive the WSGI ``environ``. An allowed
request reaches the app with ``environ["rune.decision"]`` and the decision
headers added to its response; a refused one is answered here with
``application/problem+json``. Uses only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Optional

from .guard import PROBLEM_JSON, Guard
from .rules import RouteRule, RouteTable

__all__ = ["RuneWSGIMiddleware", "wsgi_path"]

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def wsgi_path(environ: Mapping[str, Any]) -> str:
    """``PATH_INFO`` as text: WSGI hands it over as latin-1 decoded bytes."""
    raw: str = environ.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw.encode("latin-1", "replace").decode("utf-8", "replace")


class RuneWSGIMiddleware:
    """``app = RuneWSGIMiddleware(app, guard, routes={...})``."""

    def __init__(self, app: WSGIApp, guard: Guard, routes: Optional[Mapping[str, RouteRule]] = None) -> None:
        if not callable(app):
            raise TypeError("RuneWSGIMiddleware: app must be a WSGI callable")
        if not isinstance(guard, Guard):
            raise TypeError("RuneWSGIMiddleware: guard must be a Guard")
        if guard.is_async:
            raise TypeError("RuneWSGIMiddleware: async resolvers need an ASGI app (use RuneASGIMiddleware)")
        self.app = app
        self.guard = guard
        self.routes = RouteTable(routes)
        if any(r.is_async for r in list(self.routes.exact.values()) + [p[2] for p in self.routes.patterns]):
            raise TypeError("RuneWSGIMiddleware: a route rule has an async resolver")

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = wsgi_path(environ)
        route, params, r = self.routes.match(path)
        guard = self.guard
        v = guard.check(
            environ, environ.get("REQUEST_METHOD", "GET"), path, route, params,
            environ.get("REMOTE_ADDR", ""), r, environ.get("REMOTE_USER"),
        )
        environ["rune.decision"] = v.decision
        extra = guard.headers(v)
        if v.status == 0:
            if not extra:
                return self.app(environ, start_response)

            def add_headers(status: str, headers: list, exc_info: Any = None) -> Any:
                return start_response(status, list(headers) + extra, exc_info)

            return self.app(environ, add_headers)
        body = guard.problem_body(v)
        phrase = HTTPStatus(v.status).phrase
        start_response(
            f"{v.status} {phrase}",
            [("Content-Type", PROBLEM_JSON), ("Content-Length", str(len(body)))] + extra,
        )
        return [body]
