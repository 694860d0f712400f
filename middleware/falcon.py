"""Falcon adapter: one middleware for ``falcon.App`` and ``falcon.asgi.App``.

Authorization runs in ``process_resource`` (``process_resource_async`` under
ASGI, ``process_resource_ws`` for WebSockets), after routing, so the route
template (``req.uri_template``) and parameters are known. An allowed request
reaches the responder with the decision in ``req.context.rune``; a refused
one is answered here (``resp.complete``) and the responder never runs.

Per-route rules are declared on the route: a ``rune_rule`` class attribute
on the resource (a :class:`RouteRule`, or a dict from method to RouteRule),
or ``@rule(...)`` on a responder (``on_get``...), which wins. They are looked
up once per (resource class, method) and cached.

The default principal is ``req.context.user`` if an earlier middleware set
it (a string is the id of a ``User``), else the WSGI ``REMOTE_USER``.
"""

from __future__ import annotations

from typing import Any, Optional

import falcon

from .guard import (
    PROBLEM_JSON,
    Guard,
    Verdict,
)
from .resolving import UNRESOLVED, BodyTooLarge, ResolverFailed
from .rules import RouteRule, rule, rule_of

__all__ = ["RuneMiddleware", "authorize_hook", "authorize_hook_async", "read_body", "read_body_async", "rule"]

_NO_RULE = RouteRule()


class RuneMiddleware:
    """``falcon.App(middleware=[RuneMiddleware(guard)])``; works in both app kinds.

    ``guard`` is a :class:`Guard` or anything ``Guard`` accepts as its source
    (then ``**options`` are Guard options).
    """

    def __init__(self, guard: Any, **options: Any) -> None:
        self.guard = guard if isinstance(guard, Guard) else Guard(guard, **options)
        if options and isinstance(guard, Guard):
            raise TypeError("RuneMiddleware: pass options to Guard(...) or a source, not both")
        self._rules: dict = {}
        self._default_user = self.guard.needs_default_principal()
        self._headers = self.guard.decision_headers
        self._decide = self.guard.decide
        self._fast = self.guard.memo_fast_path

    # -- shared ---------------------------------------------------------------------

    def rule_for(self, resource: Any, method: str) -> RouteRule:
        """The route's rule, looked up once per (resource class, method).

        A malformed declaration (say ``rune_rule = "exempt"``) cannot be seen
        before the route is first used, since Falcon does not tell middleware
        about routes; it then fails closed: every request to that route is
        denied with the error as the logged reason.
        """
        rule_: RouteRule = self._route(resource, method)[0]
        return rule_

    def _route(self, resource: Any, method: str) -> tuple:
        """``(rule, shortcut)`` per (resource class, method): the rule, and
        whether a memo hit on this route may be answered by the fast path of
        :meth:`process_resource` (default action and resource, not exempt)."""
        key = (type(resource), method)
        c = self._rules.get(key)
        if c is None:
            try:
                r = self._lookup(resource, method)
            except TypeError as e:
                r = RouteRule(resource=_Misdeclared(e))
            c = (r, self._fast and r.defaults and not r.exempt and method not in self.guard.exempt_methods)
            if len(self._rules) < 4096:
                self._rules[key] = c
        return c

    @staticmethod
    def _lookup(resource: Any, method: str) -> RouteRule:
        """A responder's ``@rule`` wins over the resource class's ``rune_rule``."""
        cls = type(resource)
        responder = getattr(cls, "on_websocket" if method == "WEBSOCKET" else "on_" + method.lower(), None)
        return rule_of(responder, method) or rule_of(cls, method) or _NO_RULE

    def _allow_headers(self, resp: Any, f: tuple) -> None:
        """The decision headers on a request let through (``decision_headers=True``)."""
        h = self.guard.headers(self.guard.verdict(f))
        if h:
            resp.set_headers(h)

    def _refuse(self, resp: Any, f: tuple) -> None:
        v = self.guard.verdict(f)
        if v.status == 404:
            raise falcon.HTTPNotFound()
        resp.set_headers(self.guard.headers(v))
        resp.status = v.status
        resp.content_type = PROBLEM_JSON
        resp.data = self.guard.problem_body(v)
        resp.complete = True

    # -- WSGI -----------------------------------------------------------------------

    def process_resource(self, req: Any, resp: Any, resource: Any, params: dict) -> None:
        method = req.method
        c = self._rules.get((type(resource), method))
        if c is None:
            c = self._route(resource, method)
        r = c[0]
        g = self.guard
        principal: Any = UNRESOLVED
        # The memo fast path: an allowed answer the guard already gave this
        # (principal, method, route) under the serving engine, when that
        # answer is all there is to do (default rule, no policy reads the
        # context, nothing times or logs the decision). It reads the guard's
        # memo exactly as Guard.decide does; anything else, a miss included,
        # goes to decide() with the principal already resolved. It is the
        # middleware's whole per-request cost on a warm route, so it is
        # written out here rather than behind another call.
        if c[1]:
            memo = g._memo
            if memo[3] and memo[0] is g.holder.engine and g._timed_cache.get(g._audit_level) is False:
                try:
                    principal = g.principal(req)  # type: ignore[misc]
                    route = req.uri_template
                    e = memo[1].get((principal, method, route if route is not None else req.path))
                except Exception as exc:  # the resolver, or an unhashable principal: decide() reports it
                    principal = ResolverFailed(exc) if principal is UNRESOLVED else principal
                    e = None
                if e is not None:
                    f = e[0]
                    if f[0] == 0:
                        next(e[1])  # count the outcome, as decide() does
                        req.context.rune = f[1]
                        if self._headers:
                            self._allow_headers(resp, f)
                        return
        env = req.env
        # decide(): the verdict's fields, no Verdict built unless one is needed
        v = self._decide(
            req, method, req.path, req.uri_template, params, env.get("REMOTE_ADDR") or "", r,
            _wsgi_user(req, env) if self._default_user else None, principal,
        )
        req.context.rune = v[1]  # the Decision
        if v[0] == 0:
            if self._headers:
                self._allow_headers(resp, v)
            return
        self._refuse(resp, v)

    # -- ASGI -----------------------------------------------------------------------

    async def process_resource_async(self, req: Any, resp: Any, resource: Any, params: dict) -> None:
        method = req.method
        r = self.rule_for(resource, method)
        v = await self.guard.decide_async(
            req, method, req.path, req.uri_template, params, req.remote_addr, r,
            _user(req) if self._default_user else None,
        )
        req.context.rune = v[1]
        if v[0] == 0:
            if self._headers:
                self._allow_headers(resp, v)
            return
        self._refuse(resp, v)

    async def process_resource_ws(self, req: Any, ws: Any, resource: Any, params: dict) -> None:
        """WebSocket handshake: a refusal closes before accepting (Falcon sends 3403/3401...)."""
        r = self.rule_for(resource, "WEBSOCKET")
        user = _user(req) if self._default_user else None
        v = await self.guard.check_async(req, "WEBSOCKET", req.path, req.uri_template, params, req.remote_addr, r, user)
        req.context.rune = v.decision
        if v.status == 401:
            raise falcon.HTTPUnauthorized()
        if v.status == 404:
            raise falcon.HTTPNotFound()
        if v.status:
            raise falcon.HTTPForbidden()


def read_body(req: Any, max_bytes: int = 1 << 20) -> bytes:
    """The request body for a resolver, at most ``max_bytes`` (else 413).

    Kept in ``req.context.rune_body`` so the responder can use it too (the
    stream can only be read once).
    """
    body = req.context.get("rune_body")
    if body is None:
        n = req.content_length
        if n is not None and n > max_bytes:
            raise BodyTooLarge(f"request body of {n} bytes exceeds {max_bytes}")
        body = req.bounded_stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise BodyTooLarge(f"request body exceeds {max_bytes} bytes")
        req.context.rune_body = body
    return body  # type: ignore[no-any-return]


async def read_body_async(req: Any, max_bytes: int = 1 << 20) -> bytes:
    """:func:`read_body` for ``falcon.asgi`` requests."""
    body = req.context.get("rune_body")
    if body is None:
        n = req.content_length
        if n is not None and n > max_bytes:
            raise BodyTooLarge(f"request body of {n} bytes exceeds {max_bytes}")
        body = await req.bounded_stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise BodyTooLarge(f"request body exceeds {max_bytes} bytes")
        req.context.rune_body = body
    return body  # type: ignore[no-any-return]


class _Misdeclared:
    """A resolver that raises the route's declaration error: the request is denied."""

    def __init__(self, error: TypeError) -> None:
        self.error = error

    def __call__(self, req: Any) -> Any:
        raise TypeError(f"bad rune rule declaration: {self.error}")


def authorize_hook(guard: Guard, **rule_options: Any) -> Any:
    """A ``falcon.before`` hook that authorizes one responder (WSGI apps).

    ``@falcon.before(authorize_hook(guard, resource='Document::"{doc_id}"'))``
    for apps that guard a few responders instead of installing the
    middleware. A refusal raises the matching ``falcon.HTTPError``.
    """
    r = RouteRule(**rule_options)
    default_user = guard.needs_default_principal()

    def hook(req: Any, resp: Any, resource: Any, params: dict) -> None:
        user = _user(req) if default_user else None
        v = guard.check(req, req.method, req.path, req.uri_template, params, req.remote_addr, r, user)
        _hook_apply(guard, req, resp, v)

    return hook


def authorize_hook_async(guard: Guard, **rule_options: Any) -> Any:
    """:func:`authorize_hook` for ``falcon.asgi`` responders (resolvers may be async)."""
    r = RouteRule(**rule_options)
    default_user = guard.needs_default_principal()

    async def hook(req: Any, resp: Any, resource: Any, params: dict) -> None:
        user = _user(req) if default_user else None
        v = await guard.check_async(req, req.method, req.path, req.uri_template, params, req.remote_addr, r, user)
        _hook_apply(guard, req, resp, v)

    return hook


def _wsgi_user(req: Any, env: dict) -> Optional[str]:
    u: Optional[str] = req.context.get("user")
    return u if u is not None else env.get("REMOTE_USER")


def _user(req: Any) -> Optional[str]:
    u = req.context.get("user")
    if u is None and hasattr(req, "env"):
        u = req.env.get("REMOTE_USER")
    return u  # type: ignore[no-any-return]


def _hook_apply(guard: Guard, req: Any, resp: Any, v: Verdict) -> None:
    req.context.rune = v.decision
    headers = dict(guard.headers(v))
    if v.status == 0:
        for k, val in headers.items():
            resp.set_header(k, val)
        return
    if v.status == 404:
        raise falcon.HTTPNotFound()
    raise falcon.HTTPError(v.status, headers=headers)
