"""FastAPI test app (uvicorn): the dependency on routes, the generic ASGI
middleware in front of a websocket endpoint, async resolvers."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from common import async_principal_from, decision_json, make_guard
from fastapi import Depends, FastAPI, Request, WebSocket
from rune_fast.middleware import RouteRule
from rune_fast.middleware.asgi import RuneASGIMiddleware
from rune_fast.middleware.fastapi import RuneDependency

from rune_fast import Decision


async def principal(request: Any) -> object:
    headers = request.headers if hasattr(request, "headers") else _scope_headers(request)
    return await async_principal_from(headers.get)


def _scope_headers(scope: dict) -> dict:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


guard = make_guard(principal)
authz = RuneDependency(guard)

api = FastAPI()


@api.get("/health")
async def health() -> dict:
    return {"ok": True}


read_doc = authz.rule(action='Action::"read"', resource='Document::"{doc_id}"')


@api.get("/docs/{doc_id}")
async def get_doc(doc_id: str, d: Annotated[Optional[Decision], Depends(read_doc)]) -> dict:
    return {"doc": doc_id, **decision_json(d)}


@api.delete("/docs/{doc_id}", dependencies=[Depends(authz.rule(action='Action::"delete"', resource='Document::"{doc_id}"', hide=True))])
async def delete_doc(doc_id: str) -> dict:
    return {"deleted": doc_id}


@api.api_route("/whoami", methods=["GET", "POST", "OPTIONS"])
async def whoami(request: Request, d: Annotated[Optional[Decision], Depends(authz)]) -> dict:
    return decision_json(request.state.rune if hasattr(request.state, "rune") else d)


@api.websocket("/ws/docs/{doc_id}")
async def ws_doc(websocket: WebSocket, doc_id: str) -> None:
    await websocket.accept()
    d = websocket.scope["state"]["rune"]
    await websocket.send_json({"doc": doc_id, **decision_json(d)})
    await websocket.close()


# The generic ASGI middleware guards only the websocket routes here (the
# HTTP routes use the dependency): it cannot see FastAPI's router, so the
# routes it treats specially are declared to it.
ws_guard = make_guard(principal)
app = RuneASGIMiddleware(
    api,
    ws_guard,
    routes={
        "/ws/docs/{doc_id}": RouteRule(action='Action::"read"', resource='Document::"{doc_id}"'),
        "/health": RouteRule(exempt=True),
        "/docs/{doc_id}": RouteRule(exempt=True),
        "/whoami": RouteRule(exempt=True),
    },
)
