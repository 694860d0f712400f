"""Flask extension: authorization in ``before_request``, after URL matching.

``RuneFlask(app, guard)`` (or ``ext.init_app(app)``). Flask has matched the
URL rule before ``before_request`` runs, so the default resource is the
rule's template (``request.url_rule.rule``) and the parameters are
``request.view_args``. Per-view rules: ``@rule(...)`` under ``@app.route``.
The view sees the decision as ``flask.g.rune``. A refusal answers
``application/problem+json`` (``abort(404)`` for hidden routes). Requests
that match no rule are left to Flask's 404/405.
"""

from __future__ import annotations

from typing import Optional

from flask import Flask, Response, abort, current_app, g, request

from .guard import PROBLEM_JSON, Guard
from .rules import rule_of

__all__ = ["RuneFlask"]


class RuneFlask:
    """The extension object; ``app.extensions["rune"]`` after ``init_app``."""

    def __init__(self, app: Optional[Flask] = None, guard: Optional[Guard] = None) -> None:
        if not isinstance(guard, Guard):
            raise TypeError("RuneFlask: guard must be a Guard")
        if guard.is_async:
            raise TypeError("RuneFlask: async resolvers are not supported by Flask's before_request")
        self.guard = guard
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["rune"] = self
        app.before_request(self._before)
        app.after_request(self._after)

    def _before(self) -> Optional[Response]:
        url_rule = request.url_rule
        if url_rule is None:
            return None
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        r = rule_of(view, request.method)
        guard = self.guard
        user = request.environ.get("REMOTE_USER") if guard.needs_default_principal() else None
        v = guard.check(
            request._get_current_object(), request.method, request.path, url_rule.rule,  # type: ignore[attr-defined]
            request.view_args, request.remote_addr or "", r, user,
        )
        g.rune = v.decision
        g.rune_headers = guard.headers(v)
        if v.status == 0:
            return None
        if v.status == 404:
            abort(404)
        return Response(guard.problem_body(v), status=v.status, headers=g.rune_headers, content_type=PROBLEM_JSON)

    @staticmethod
    def _after(response: Response) -> Response:
        headers = g.get("rune_headers")
        if headers:
            for k, v in headers:
                if k not in response.headers:
                    response.headers[k] = v
        return response
