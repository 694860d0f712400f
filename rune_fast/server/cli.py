"""Registers ``rune serve`` with the ``rune`` command (see ``serve.py``)."""

from __future__ import annotations

__all__ = ["register"]


def register(subcommands: list) -> None:
    from ..cli.app import Subcommand
    from . import serve

    if any(c.name == "serve" for c in subcommands):
        return
    subcommands.append(Subcommand("serve", "run the policy decision point (AuthZEN + native HTTP API) on gunicorn", serve.configure, serve.run))
