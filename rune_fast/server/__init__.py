"""The standalone policy decision point (``rune serve``; see docs/server.md).

``create_app(path, **options)`` returns a Falcon WSGI app and
``create_asgi_app(path, **options)`` its ASGI twin; both speak the AuthZEN
Authorization API 1.0, the native rune_fast API and the operations endpoints.

The app modules are imported on first use, so that ``rune --help`` (which
lists ``rune serve``) works on an install without the ``server`` extra.
"""

from __future__ import annotations

from typing import Any

from .config import ServerOptions

__all__ = ["create_app", "create_asgi_app", "ServerOptions"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "create_asgi_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
