"""Falcon ASGI test app (uvicorn): async resolvers, the same routes, a websocket."""

from __future__ import annotations

import falcon
import falcon.asgi
from common import (
    DOC_DELETE,
    DOC_READ,
    EXEMPT,
    async_principal_from,
    decision_json,
    make_guard,
)


async def principal(req: falcon.asgi.Request) -> object:
    return await async_principal_from(req.get_header)


guard = make_guard(principal)


class Health:
    rune_rule = EXEMPT

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


class Doc:
    rune_rule = {"GET": DOC_READ, "DELETE": DOC_DELETE}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, doc_id: str) -> None:
        resp.media = {"doc": doc_id, **decision_json(req.context.rune)}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, doc_id: str) -> None:
        resp.media = {"deleted": doc_id}


class WhoAmI:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = decision_json(req.context.rune)

    on_post = on_get

    async def on_options(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = decision_json(req.context.rune)


from rune_fast.middleware.falcon import RuneMiddleware  # noqa: E402

app = falcon.asgi.App(middleware=[RuneMiddleware(guard)])
app.add_route("/health", Health())
app.add_route("/docs/{doc_id}", Doc())
app.add_route("/whoami", WhoAmI())
