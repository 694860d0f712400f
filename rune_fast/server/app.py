"""The app factory: one route table, served by Falcon as WSGI or ASGI.

``create_app(path, **options)`` returns a ``falcon.App`` (WSGI: gunicorn's
sync and gthread workers); ``create_asgi_app(path, **options)`` a
``falcon.asgi.App`` (uvicorn, gunicorn's ``uvicorn_worker.UvicornWorker``).
Both call the same handler functions through ``dispatch()``, which owns the
HTTP rules shared by every endpoint: body size (413), content type (415),
JSON and schema (400), JSON errors for every status, and no traceback ever
(an unexpected exception is logged and answered as a JSON 500).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, NamedTuple, Optional

import falcon

from . import admin, authzen, native, ops
from .config import ServerOptions
from .http import ApiError, Call, Reply, check_content_type, error_body, parse_json_body
from .openapi import validators
from .state import ServerState

__all__ = ["create_app", "create_asgi_app", "ROUTES", "Route"]

log = logging.getLogger("rune_fast.server")


class Route(NamedTuple):
    path: str
    method: str
    handler: Callable[[Any, Call], Reply]
    schema: Optional[str]  # request schema in the OpenAPI document
    empty_ok: bool = False  # body may be empty (admin calls)


ROUTES: tuple[Route, ...] = (
    Route("/.well-known/authzen-configuration", "GET", authzen.configuration, None),
    Route("/access/v1/evaluation", "POST", authzen.evaluation, "EvaluationRequest"),
    Route("/access/v1/evaluations", "POST", authzen.evaluations, "EvaluationsRequest"),
    Route("/access/v1/search/subject", "POST", authzen.search_subject, "SubjectSearchRequest"),
    Route("/access/v1/search/resource", "POST", authzen.search_resource, "ResourceSearchRequest"),
    Route("/access/v1/search/action", "POST", authzen.search_action, "ActionSearchRequest"),
    Route("/v1/authorize", "POST", native.authorize, "AuthorizeRequest"),
    Route("/v1/authorize/batch", "POST", native.authorize_batch, "BatchRequest"),
    Route("/v1/query", "POST", native.query, "QueryRequest"),
    Route("/health/live", "GET", ops.live, None),
    Route("/health/ready", "GET", ops.ready, None),
    Route("/v1/status", "GET", ops.status, None),
    Route("/metrics", "GET", ops.metrics, None),
    Route("/openapi.json", "GET", ops.openapi, None),
    Route("/v1/admin/reload", "POST", admin.reload, "RollbackRequest", True),
    Route("/v1/admin/rollback", "POST", admin.rollback, "RollbackRequest", True),
    Route("/v1/admin/history", "GET", admin.history, None),
)


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dispatch(state: ServerState, route: Route, params: Any, header: Callable[[str], Optional[str]], raw: Optional[bytes], content_type: Optional[str]) -> Reply:
    """Run one endpoint on an already size-checked body; never raises."""
    try:
        body = None
        if route.method == "POST":
            if raw or not route.empty_ok:
                check_content_type(content_type)
            body = parse_json_body(raw or b"", route.schema, state.options.max_json_depth, allow_empty=route.empty_ok)
        reply = route.handler(state, Call(route.method, route.path, params, header, body))
    except ApiError as e:
        reply = Reply(e.status, e.body(), "application/json", e.headers)
    except Exception:  # never a traceback over HTTP; the log has it
        log.exception("rune_fast.server: unexpected error on %s %s", route.method, route.path)
        reply = Reply(500, error_body("Internal Server Error", "unexpected error; see the server log"))
    m = state.metrics
    if m is not None:
        m.request(route.path, reply.status)
    return reply


def _too_large(state: ServerState, length: Optional[int]) -> Optional[Reply]:
    limit = state.options.max_body_bytes
    if length is not None and length > limit:
        return _payload_too_large(length, limit)
    return None


def _payload_too_large(length: int, limit: int) -> Reply:
    return Reply(413, error_body("Payload Too Large", f"the body is {length} bytes; at most {limit}"))


def _apply(resp: Any, reply: Reply) -> None:
    resp.status = reply.status
    resp.content_type = reply.content_type
    body = reply.body
    resp.data = body if isinstance(body, (bytes, bytearray)) else _encode(body)
    for k, v in reply.headers.items():
        resp.set_header(k, v)


def _error_serializer(req: Any, resp: Any, exc: Any) -> None:
    """Falcon's own errors (404, 405, ...) as our JSON error body."""
    resp.content_type = "application/json"
    resp.data = _encode(error_body(exc.title or "Error", exc.description or ""))


def _state(path: Optional[str], options: Optional[ServerOptions], kwargs: dict) -> ServerState:
    if options is None:
        if path is None:
            raise TypeError("create_app() needs the policy path")
        options = ServerOptions.from_kwargs(path, **kwargs)
    elif kwargs or path is not None:
        raise TypeError("give either options= or path and keywords, not both")
    validators()  # compile the request validators once, at start-up
    return ServerState(options)


# ---------------------------------------------------------------------------
# WSGI


class RuneApp(falcon.App):
    """``falcon.App`` that also carries its ``rune_state`` (tests, hooks)."""

    rune_state: ServerState


class _WsgiResource:
    def __init__(self, state: ServerState, routes: list[Route]) -> None:
        for route in routes:
            setattr(self, "on_" + route.method.lower(), self._responder(state, route))

    @staticmethod
    def _responder(state: ServerState, route: Route) -> Callable:
        def respond(req: Any, resp: Any) -> None:
            raw = None
            if route.method == "POST":
                too = _too_large(state, req.content_length)
                if too is not None:
                    return _apply(resp, too)
                limit = state.options.max_body_bytes
                raw = req.bounded_stream.read(limit + 1)
                if len(raw) > limit:
                    return _apply(resp, _payload_too_large(len(raw), limit))
            _apply(resp, dispatch(state, route, req.params, req.get_header, raw, req.content_type))

        return respond


def create_app(path: Optional[str] = None, *, options: Optional[ServerOptions] = None, **kwargs: Any) -> falcon.App:
    """The decision point as a Falcon WSGI app.

    ``create_app("policies/", admin_token_file="/run/token")``; see
    ``ServerOptions`` for every keyword. The policy is loaded in the serving
    process (after gunicorn's fork), never here.
    """
    state = _state(path, options, kwargs)
    app = RuneApp(cors_enable=False)
    app.set_error_serializer(_error_serializer)
    _add_routes(app, state, _WsgiResource)
    app.rune_state = state
    return app


def _add_routes(app: Any, state: ServerState, resource_cls: Any) -> None:
    by_path: dict[str, list[Route]] = {}
    for r in ROUTES:
        by_path.setdefault(r.path, []).append(r)
    for path, routes in by_path.items():
        app.add_route(path, resource_cls(state, routes))


# ---------------------------------------------------------------------------
# ASGI


class _AsgiResource:
    def __init__(self, state: ServerState, routes: list[Route]) -> None:
        for route in routes:
            setattr(self, "on_" + route.method.lower(), self._responder(state, route))

    @staticmethod
    def _responder(state: ServerState, route: Route) -> Callable:
        async def respond(req: Any, resp: Any) -> None:
            raw = None
            if route.method == "POST":
                too = _too_large(state, req.content_length)
                if too is not None:
                    return _apply(resp, too)
                limit = state.options.max_body_bytes
                raw = await req.bounded_stream.read(limit + 1)
                if len(raw) > limit:
                    return _apply(resp, _payload_too_large(len(raw), limit))
            _apply(resp, dispatch(state, route, req.params, req.get_header, raw, req.content_type))

        return respond


class _Lifespan:
    """Loads the policy at ASGI start-up (uvicorn runs no fork after it)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def process_startup(self, scope: Any, event: Any) -> None:
        self.state.start(block=True)

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        self.state.close()


def create_asgi_app(path: Optional[str] = None, *, options: Optional[ServerOptions] = None, **kwargs: Any) -> Any:
    """The same decision point as a Falcon ASGI app (uvicorn, UvicornWorker)."""
    import falcon.asgi

    state = _state(path, options, kwargs)
    class RuneAsgiApp(falcon.asgi.App):
        rune_state: ServerState

    app = RuneAsgiApp(cors_enable=False, middleware=[_Lifespan(state)])
    app.set_error_serializer(_error_serializer)
    _add_routes(app, state, _AsgiResource)
    app.rune_state = state
    return app
