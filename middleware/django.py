"""Django middleware: authorization in ``process_view``, after URL resolution.

Add ``"rune_fast.middleware.django.RuneDjangoMiddleware"`` to ``MIDDLEWARE``
and set ``RUNE_GUARD`` to a :class:`Guard` or the dotted path of one
(``"myproject.authz.guard"``). The default resource is the matched route
(``request.resolver_match.route``), the parameters are the view's kwargs;
per-view rules: ``@rule(...)`` on the view (function views, or the
``as_view()`` result). The view sees the decision as ``request.rune``. A
refusal answers ``application/problem+json`` (``Http404`` for hidden
routes). The default principal is ``request.user`` when authenticated
(its username), else ``REMOTE_USER``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from .guard import PROBLEM_JSON, Guard
from .rules import rule_of

__all__ = ["RuneDjangoMiddleware"]


def _guard_from_settings() -> Guard:
    g = getattr(settings, "RUNE_GUARD", None)
    if isinstance(g, str):
        g = import_string(g)
    if not isinstance(g, Guard):
        raise ImproperlyConfigured("RUNE_GUARD must be a rune_fast.middleware.Guard or the dotted path of one")
    if g.is_async:
        raise ImproperlyConfigured("RUNE_GUARD: async resolvers are not supported by the Django middleware")
    return g


def _user(request: HttpRequest) -> Optional[str]:
    u = getattr(request, "user", None)
    if u is not None and getattr(u, "is_authenticated", False):
        return str(u.get_username())
    return request.META.get("REMOTE_USER")


class RuneDjangoMiddleware:
    """New-style Django middleware (sync)."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.guard = _guard_from_settings()

    def __call__(self, request: HttpRequest) -> Any:
        response = self.get_response(request)
        headers = getattr(request, "rune_headers", None)
        if headers:
            for k, v in headers:
                if k not in response:
                    response[k] = v
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: tuple, view_kwargs: dict
    ) -> Optional[HttpResponse]:
        guard = self.guard
        match = request.resolver_match
        route = getattr(match, "route", None)
        route = "/" + route if route else None  # Django routes have no leading slash
        r = rule_of(view_func, request.method or "GET")
        user = _user(request) if guard.needs_default_principal() else None
        v = guard.check(request, request.method or "GET", request.path, route, view_kwargs,
                        request.META.get("REMOTE_ADDR", ""), r, user)
        headers = guard.headers(v)
        setattr(request, "rune", v.decision)  # noqa: B010 - HttpRequest declares no such attribute
        setattr(request, "rune_headers", headers)  # noqa: B010
        if v.status == 0:
            return None
        if v.status == 404:
            raise Http404()
        resp = HttpResponse(guard.problem_body(v), status=v.status, content_type=PROBLEM_JSON)
        for k, val in headers:
            resp[k] = val
        return resp
