"""A small document-sharing API protected by examples/doc_sharing.rune.

Run it from the repository root:

    gunicorn examples.docs_api:app

then, for example:

    curl -H 'Authorization: Bearer bob'   -X PUT localhost:8000/docs/design -d 'v2'   # 200: editor via nested group
    curl -H 'Authorization: Bearer alice' -X PUT localhost:8000/docs/design -d 'v2'   # 403: viewer only
    curl localhost:8000/docs/design                                                  # 401: no credentials

The bearer token *is* the user name: a stand-in for a real authentication
middleware, which would put the verified user in ``req.context.user``.
Edit examples/doc_sharing.rune while it runs: the next request is decided by
the new policy (``X-Rune-Policy-Version`` changes). ``RUNE_POLICY`` points
the app at another policy file; ``RUNE_MODE=dry_run`` only records denials.
"""

from __future__ import annotations

import os
import threading

import falcon
from rune_fast.middleware import Guard, RouteRule, rule
from rune_fast.middleware.falcon import RuneMiddleware, read_body

POLICY = os.environ.get("RUNE_POLICY", os.path.join(os.path.dirname(os.path.abspath(__file__)), "doc_sharing.rune"))


def principal(req: falcon.Request) -> object:
    """``Authorization: Bearer <user>`` -> ``User::"<user>"``; nothing -> 401."""
    auth = req.get_header("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return ("User", token.strip())


guard = Guard(
    POLICY,
    principal=principal,
    mode=os.environ.get("RUNE_MODE", "enforce"),
    www_authenticate='Bearer realm="docs"',
    decision_headers=True,  # X-Rune-Policy-Version on every response, to watch reloads (off by default)
)

_docs = {name: f"{name}: first draft" for name in ("design", "roadmap", "contract", "handbook", "mallory_notes")}
_comments: dict[str, list[str]] = {}
_lock = threading.Lock()


class Health:
    rune_rule = RouteRule(exempt=True)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True, "policy_version": guard.engine.version if guard.engine else None}


class Document:
    @rule(action='Action::"read"', resource='Document::"{doc_id}"')
    def on_get(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        if doc_id not in _docs:
            raise falcon.HTTPNotFound()
        resp.media = {"id": doc_id, "text": _docs[doc_id], "why": list(req.context.rune.reasons)}

    @rule(action='Action::"edit"', resource='Document::"{doc_id}"')
    def on_put(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        if doc_id not in _docs:
            raise falcon.HTTPNotFound()
        text = read_body(req, 64 * 1024).decode("utf-8", "replace")
        with _lock:
            _docs[doc_id] = text
        resp.media = {"id": doc_id, "text": text}

    # Deleting is hidden: a caller who may not delete cannot tell the document exists.
    @rule(action='Action::"delete"', resource='Document::"{doc_id}"', hide=True)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        with _lock:
            _docs.pop(doc_id, None)
        resp.status = falcon.HTTP_204


class Comments:
    rune_rule = RouteRule(action='Action::"comment"', resource='Document::"{doc_id}"')

    def on_post(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        text = read_body(req, 4 * 1024).decode("utf-8", "replace")
        with _lock:
            _comments.setdefault(doc_id, []).append(text)
        resp.status = falcon.HTTP_201
        resp.media = {"id": doc_id, "comments": len(_comments[doc_id])}


app = falcon.App(middleware=[RuneMiddleware(guard)])
app.add_route("/health", Health())
app.add_route("/docs/{doc_id}", Document())
app.add_route("/docs/{doc_id}/comments", Comments())

if __name__ == "__main__":  # no gunicorn at hand: the standard library's server
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, app) as httpd:
        print("serving on http://127.0.0.1:8000")
        httpd.serve_forever()
