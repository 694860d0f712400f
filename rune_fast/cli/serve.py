"""``rune serve``: the policy decision point (implemented in ``rune_fast.server.serve``)."""

from __future__ import annotations

import argparse

from .common import Subcommand

__all__ = ["COMMANDS"]


def _configure(p: argparse.ArgumentParser) -> None:
    from ..server.serve import configure

    configure(p)


def _run(args: argparse.Namespace) -> int:
    from ..server.serve import run

    return run(args)


COMMANDS: tuple[Subcommand, ...] = (
    Subcommand("serve", "run the policy decision point (AuthZEN + native HTTP API) on gunicorn", _configure, _run),
)
