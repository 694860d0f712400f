"""Flask test app (gunicorn): the extension, rules as view decorators."""

from __future__ import annotations

from common import decision_json, make_guard, principal_from
from flask import Flask, g, jsonify
from rune_fast.middleware import rule
from rune_fast.middleware.flask import RuneFlask

app = Flask(__name__)
guard = make_guard(lambda req: principal_from(req.headers.get))
RuneFlask(app, guard)


@app.get("/health")
@rule(exempt=True)
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


@app.get("/docs/<doc_id>")
@rule(action='Action::"read"', resource='Document::"{doc_id}"')
def get_doc(doc_id: str):  # type: ignore[no-untyped-def]
    return jsonify(doc=doc_id, **decision_json(g.rune))


@app.delete("/docs/<doc_id>")
@rule(action='Action::"delete"', resource='Document::"{doc_id}"', hide=True)
def delete_doc(doc_id: str):  # type: ignore[no-untyped-def]
    return jsonify(deleted=doc_id)


@app.route("/whoami", methods=["GET", "POST", "OPTIONS"])
def whoami():  # type: ignore[no-untyped-def]
    return jsonify(decision_json(g.rune))
