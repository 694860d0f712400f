"""The standalone policy decision point (``rune serve``; see docs/server.md).

``create_app(path, **options)`` returns a Falcon WSGI app and
``create_asgi_app(path, **options)`` its ASGI twin; both speak the AuthZEN
Authorization API 1.0, the native rune_fast API and the operations endpoints.
"""

from .app import create_app, create_asgi_app
from .config import ServerOptions

__all__ = ["create_app", "create_asgi_app", "ServerOptions"]
