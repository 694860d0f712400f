"""Shared pieces of the middleware test apps (served by real servers in tests).

Every app exposes the same routes with the same rules, so one client-side
check list covers every adapter:

- ``GET /health``                  exempt
- ``GET /docs/{doc_id}``           ``Action::"read"`` on ``Document::"{doc_id}"``
- ``DELETE /docs/{doc_id}``        ``Action::"delete"`` on it, hidden (404 on deny)
- ``GET|POST|OPTIONS /whoami``     defaults (``Action::"GET"`` on ``Route::"<template>"``);
                                   answers with the decision the handler saw

Principal: the ``X-User`` header (none -> 401); ``X-Boom`` makes the
resolver raise; ``X-User: !bad`` makes it return a malformed entity. The
engine disappears (503) while the file named by ``RUNE_TEST_OFF`` exists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any, Optional

from rune_fast.middleware import DRY_RUN, ENFORCE, Guard, RouteRule

from rune_fast import PolicyStore

# The audit log goes to the server's output, which the tests read.
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")

POLICY = os.environ.get("RUNE_TEST_POLICY", "")
OFF = os.environ.get("RUNE_TEST_OFF", "")

DOC_READ = RouteRule(action='Action::"read"', resource='Document::"{doc_id}"')
DOC_DELETE = RouteRule(action='Action::"delete"', resource='Document::"{doc_id}"', hide=True)
EXEMPT = RouteRule(exempt=True)


class Switchable:
    """A PolicyStore whose engine vanishes while the RUNE_TEST_OFF file exists."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    @property
    def engine(self) -> Any:
        if OFF and os.path.exists(OFF):
            return None
        return self.store.engine


def principal_from(get_header: Any) -> Optional[object]:
    if get_header("x-boom"):
        raise RuntimeError("identity provider unreachable")
    user = get_header("x-user")
    if not user:
        return None
    if user.startswith("!"):
        return user[1:]  # not an entity literal: RuneRequestError in the engine
    return ("User", user)


def make_store() -> PolicyStore:
    return PolicyStore(POLICY, debounce=0.05)


def make_guard(principal: Any, store: Optional[PolicyStore] = None, *, dry_run: bool = False) -> Guard:
    return Guard(
        Switchable(store or make_store()),
        principal=principal,
        mode=DRY_RUN if dry_run else ENFORCE,
        www_authenticate='Bearer realm="docs"',
        expose_reasons=True,
        decision_headers=True,  # the load test maps each response's policy version to its outcome
        name="dry" if dry_run else "main",
    )


def decision_json(d: Any) -> dict:
    return {"seen": d is not None, **(d.to_dict() if d is not None else {})}


async def async_principal_from(get_header: Any) -> Optional[object]:
    await asyncio.sleep(0)  # really suspends: an async resolver under ASGI
    return principal_from(get_header)
