"""FastAPI / Starlette adapter: a route dependency.

Starlette middleware runs before routing; a dependency runs after it, so it
knows the matched route (``scope["route"].path``) and its path parameters:

    authz = RuneDependency(guard)
    @app.get("/docs/{doc_id}", dependencies=[Depends(authz.rule(resource='Document::"{doc_id}"'))])

or ``decision = Depends(authz)`` as a parameter to get the decision. A
refusal raises ``HTTPException`` (FastAPI's error shape, with the decision
headers); an allowed request gets the decision in ``request.state.rune``
and the headers on its response. Resolvers receive the Starlette
``Request`` and may be coroutines.
"""

from __future__ import annotations

from typing import Any, Optional

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from rune_fast import Decision

from .asgi import scope_user
from .guard import Guard
from .rules import RouteRule

__all__ = ["RuneDependency"]


class RuneDependency:
    """A callable dependency deciding the current request with ``guard``."""

    def __init__(self, guard: Guard, route_rule: Optional[RouteRule] = None) -> None:
        if not isinstance(guard, Guard):
            raise TypeError("RuneDependency: guard must be a Guard")
        if route_rule is not None and not isinstance(route_rule, RouteRule):
            raise TypeError("RuneDependency: route_rule must be a RouteRule")
        self.guard = guard
        self.route_rule = route_rule

    def rule(self, **options: Any) -> "RuneDependency":
        """The same guard with a per-route :class:`RouteRule` (validated now)."""
        return RuneDependency(self.guard, RouteRule(**options))

    async def __call__(self, request: Request, response: Response) -> Optional[Decision]:
        guard = self.guard
        route = request.scope.get("route")
        template = getattr(route, "path", None)
        client = request.client
        user = scope_user(request.scope) if guard.needs_default_principal() else None
        v = await guard.check_async(
            request, request.method, request.url.path, template, request.path_params,
            client.host if client else "", self.route_rule, user,
        )
        request.state.rune = v.decision
        headers = dict(guard.headers(v))
        if v.status == 0:
            for k, val in headers.items():
                response.headers[k] = val
            return v.decision
        if v.status == 404:
            raise HTTPException(404)
        raise HTTPException(v.status, headers=headers)
