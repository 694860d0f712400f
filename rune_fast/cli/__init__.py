"""The ``rune`` command line (``rune check | test | eval | query``)."""

from .app import main

__all__ = ["main"]
