"""Falcon WSGI test app (gunicorn): the middleware, plus a dry-run hook route."""

from __future__ import annotations

import os

import falcon
from common import (
    DOC_DELETE,
    DOC_READ,
    EXEMPT,
    decision_json,
    make_guard,
    make_store,
    principal_from,
)
from rune_fast.middleware.falcon import RuneMiddleware, authorize_hook, read_body, rule


def principal(req: falcon.Request) -> object:
    if req.get_header("x-body"):
        read_body(req, 1024)  # a resolver that needs the body: bounded
    return principal_from(req.get_header)


store = make_store()
guard = make_guard(principal, store)
dry_guard = make_guard(principal, store, dry_run=True)


class Health:
    rune_rule = EXEMPT

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True, "rune": req.context.get("rune") is not None}


class Doc:
    rune_rule = {"GET": DOC_READ, "DELETE": DOC_DELETE}

    def on_get(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        resp.media = {"doc": doc_id, **decision_json(req.context.rune)}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        resp.media = {"deleted": doc_id}


class WhoAmI:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = decision_json(req.context.rune)

    on_post = on_get

    def on_options(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("Allow", "GET, POST, OPTIONS")
        resp.media = decision_json(req.context.rune)


class DryDoc:
    """Guarded only by a dry-run hook: never blocked, the decision is visible."""

    @rule(exempt=True)
    @falcon.before(authorize_hook(dry_guard, action='Action::"read"', resource='Document::"{doc_id}"'))
    def on_get(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        resp.media = {"doc": doc_id, **decision_json(req.context.rune)}


class WorkerPid:
    """Names the worker on every response (allowed or refused), so a test
    can tell that it has heard from each worker."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object, done: bool) -> None:
        resp.set_header("X-Worker-Pid", str(os.getpid()))


app = falcon.App(middleware=[WorkerPid(), RuneMiddleware(guard)])
app.add_route("/health", Health())
app.add_route("/docs/{doc_id}", Doc())
app.add_route("/whoami", WhoAmI())
app.add_route("/dry/docs/{doc_id}", DryDoc())
