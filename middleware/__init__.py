"""Web fronts of rune_fast (installed as ``rune_fast.middleware``).

The Falcon, WSGI/ASGI middleware and the standalone PDP live here; they are
built in a later capability. Importing the package is always safe.
"""

__all__: list[str] = []
