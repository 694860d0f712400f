"""Admin endpoints, behind a bearer token, broadcast to every worker.

Disabled (403) unless the server was given ``admin_token_file``; otherwise a
request needs ``Authorization: Bearer <token>``, compared with
``hmac.compare_digest`` (constant time), or it gets 401.

- ``POST /v1/admin/reload``: reload now in this worker, then in every other
  worker through the control file (see ``control.py``).
- ``POST /v1/admin/rollback``: ``{}`` (the previous version), ``{"steps": n}``
  or ``{"version": V}`` (V must be in this worker's history, else 404); the
  other workers roll back to the same *version*.
- ``GET /v1/admin/history``: the versions kept for rollback.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from .decide import snapshot
from .http import ApiError, Call, Reply, json_reply

__all__ = ["check_token", "reload", "rollback", "history"]


def check_token(state: Any, call: Call) -> None:
    token = state.admin_token
    if token is None:
        raise ApiError(403, "Forbidden", "the admin API is disabled (start the server with --admin-token-file)")
    header = call.headers("Authorization") or ""
    scheme, _, given = header.partition(" ")
    ok = hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token) and scheme.lower() == "bearer"
    if not ok:
        raise ApiError(401, "Unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="rune"'})


def _result(r: Any, seq: Any) -> dict:
    return {
        "ok": r.ok,
        "version": r.version,
        "previous_version": r.previous_version,
        "changed": r.changed,
        "errors": [str(e) for e in r.errors],
        "broadcast": seq,
    }


def _publish(state: Any, op: str, **fields: Any) -> Any:
    if state.control is None:
        return None
    try:
        return state.control.publish(op, **fields)
    except OSError as e:  # the change is applied here; say the others missed it
        raise ApiError(503, "Broadcast Failed", f"applied in worker {os.getpid()} but not broadcast: {e}") from None


def reload(state: Any, call: Call) -> Reply:
    check_token(state, call)
    snapshot(state)
    r = state.store.reload()
    seq = _publish(state, "reload")
    return json_reply(_result(r, seq), 200 if r.ok else 409)


def rollback(state: Any, call: Call) -> Reply:
    check_token(state, call)
    snapshot(state)
    body = call.body or {}
    store = state.store
    versions = [h.version for h in store.history]
    if "version" in body:
        target = body["version"]
        matches = [v for v in versions if v == target or (len(target) >= 8 and v.startswith(target))]
        if not matches:
            raise ApiError(404, "Not Found", f"version {target} is not in the history", field="version")
        target = matches[-1]
    else:
        steps = int(body.get("steps", 1))
        if steps > len(versions) - 1:
            raise ApiError(409, "Conflict", f"cannot roll back {steps} step(s): {len(versions) - 1} earlier version(s) kept", field="steps")
        target = versions[-1 - steps]
    if target == versions[-1]:
        raise ApiError(409, "Conflict", f"version {target[:12]} is already serving", field="version")
    r = state.rollback_to(target)
    if r is None:  # raced with another rollback
        raise ApiError(409, "Conflict", "the history changed; try again")
    seq = _publish(state, "rollback", version=target)
    return json_reply(_result(r, seq))


def history(state: Any, call: Call) -> Reply:
    check_token(state, call)
    snapshot(state)
    store = state.store
    return json_reply(
        {"version": store.version, "history": [{"version": h.version, "loaded_at": h.loaded_at, "files": list(h.files)} for h in store.history]}
    )
