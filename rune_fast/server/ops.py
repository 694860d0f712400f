"""Operations endpoints: liveness, readiness, status, metrics, the OpenAPI document.

``/health/live`` only says the process answers. ``/health/ready`` is 503
until this worker has a policy loaded (use it as the readiness probe: a
worker whose first load failed keeps retrying and stays unready).
``/v1/status`` describes **this** worker (its ``pid`` is in the answer).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .decide import snapshot
from .http import ApiError, Call, Reply, json_reply
from .openapi import document

__all__ = ["live", "ready", "status", "metrics", "openapi"]

_OPENAPI: bytes = b""


def live(state: Any, call: Call) -> Reply:
    return json_reply({"status": "ok"})


def ready(state: Any, call: Call) -> Reply:
    if state.store is None:
        state.start(block=False)
        raise ApiError(503, "Service Unavailable", state.load_error or "no policy is loaded yet", headers={"Retry-After": "1"})
    return json_reply({"status": "ready"})


def status(state: Any, call: Call) -> Reply:
    snapshot(state)  # loads on a worker's first request, or 503
    store = state.store
    s = store.stats
    history = store.history
    current = history[-1] if history else None
    version = s.version or store.version
    return json_reply(
        {
            "version": version,
            "pid": os.getpid(),
            "path": store.path,
            "loaded_at": s.loaded_at,
            "generation": s.generation,
            "watching": store.watching,
            "sources": state.sources(version, current.files if current else ()),
            "last_reload": {
                "ok": s.last_ok,
                "at": s.last_attempt_at,
                "error": s.last_error,
                "errors": list(s.to_dict()["last_errors"]),
            },
            "history": [{"version": h.version, "loaded_at": h.loaded_at, "files": list(h.files)} for h in history],
            "stats": {k: v for k, v in s.to_dict().items() if k != "last_errors"},
        }
    )


def metrics(state: Any, call: Call) -> Reply:
    from . import metrics as m

    return Reply(200, m.render(), m.CONTENT_TYPE)


def openapi(state: Any, call: Call) -> Reply:
    global _OPENAPI
    if not _OPENAPI:
        _OPENAPI = json.dumps(document()).encode()
    return Reply(200, _OPENAPI, "application/json")
