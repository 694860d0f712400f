"""Drop-in authorization for Python web apps (installed as ``rune_fast.middleware``).

One framework-neutral :class:`Guard` decides every request against the
current engine of a ``PolicyStore`` (or a fixed ``Engine``); thin adapters,
one module each, plug it into a framework:

- ``rune_fast.middleware.falcon``: ``RuneMiddleware`` for ``falcon.App`` and
  ``falcon.asgi.App``, ``authorize_hook`` for ``falcon.before``;
- ``rune_fast.middleware.wsgi`` / ``.asgi``: generic WSGI and ASGI middleware;
- ``rune_fast.middleware.fastapi``: a FastAPI/Starlette dependency;
- ``rune_fast.middleware.flask``: a Flask extension;
- ``rune_fast.middleware.django``: a Django middleware.

This package imports no web framework: only the adapter you import pulls in
its framework. See docs/middleware.md.
"""

from .guard import (
    DECISION_ID_HEADER,
    DRY_RUN,
    ENFORCE,
    POLICY_VERSION_HEADER,
    Guard,
    Verdict,
    new_decision_id,
)
from .resolving import BodyTooLarge, ResolverError
from .rules import RouteRule, RouteTable, rule

__all__ = [
    "BodyTooLarge",
    "DECISION_ID_HEADER",
    "DRY_RUN",
    "ENFORCE",
    "Guard",
    "POLICY_VERSION_HEADER",
    "ResolverError",
    "RouteRule",
    "RouteTable",
    "Verdict",
    "new_decision_id",
    "rule",
]
