"""The native API: the library's own request and ``Decision`` as JSON.

- ``POST /v1/authorize``: ``{principal, action, resource, context?,
  entities?}`` -> ``Decision.to_dict()`` plus ``decision_id`` (when logging
  or ``?detail=true``) and ``explain`` (``?explain=true``).
- ``POST /v1/authorize/batch``: ``{"requests": [...]}`` decided on **one**
  engine snapshot, results in request order; more than ``max_batch_items``
  requests answer 413.
- ``POST /v1/query``: a Datalog atom, optionally against a request's model;
  at most ``limit`` (<= ``max_query_rows``) rows, ``truncated`` says whether
  more matched.
"""

from __future__ import annotations

from typing import Any

from ..errors import RuneError, RuneRequestError
from .decide import Decider, request_error, snapshot
from .http import ApiError, Call, Reply, flag, json_reply

__all__ = ["authorize", "authorize_batch", "query"]


def _args(req: dict) -> tuple:
    return (req["principal"], req["action"], req["resource"], req.get("context"), req.get("entities"))


def _hashable(x: Any) -> Any:
    """JSON entity refs as the engine's cache-friendly forms: strings stay,
    ``{"type", "id"}`` objects become ``(type, id)`` tuples."""
    if type(x) is dict:
        return (x["type"], x["id"])
    return x


def _decision_json(d: Any, did: Any) -> dict:
    out: dict[str, Any] = d.to_dict()
    if did:
        out["decision_id"] = did
    return out


def authorize(state: Any, call: Call) -> Reply:
    explain = flag(call.params, "explain")
    detail = explain or flag(call.params, "detail")
    body = call.body
    p, a, r, ctx, ents = _args(body)
    p, a, r = _hashable(p), _hashable(a), _hashable(r)
    dec = Decider(state, "authorize", detail)
    d, did = dec.decide(p, a, r, ctx, ents, logged=body)
    out = _decision_json(d, did)
    if explain:
        out["explain"] = dec.explain(p, a, r, ctx, ents)
    dec.finish()
    return json_reply(out)


def authorize_batch(state: Any, call: Call) -> Reply:
    reqs = call.body["requests"]
    limit = state.options.max_batch_items
    if len(reqs) > limit:
        raise ApiError(413, "Payload Too Large", f"{len(reqs)} requests; at most {limit} per batch", field="requests")
    dec = Decider(state, "authorize_batch")
    args = []
    for req in reqs:
        p, a, r, ctx, ents = _args(req)
        args.append((_hashable(p), _hashable(a), _hashable(r), ctx, ents))
    decisions = dec.decide_batch(args, "requests")
    results = []
    for req, d in zip(reqs, decisions):
        d, did = dec.record(d, req)
        results.append(_decision_json(d, did))
    dec.finish()
    return json_reply({"results": results, "version": dec.engine.version})


def _jsonable(v: Any) -> Any:
    from ..policy.policies import from_value
    from ..values import Entity

    v = from_value(v)
    if isinstance(v, Entity):
        return str(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def query(state: Any, call: Call) -> Reply:
    b = call.body
    engine = snapshot(state)
    cap = state.options.max_query_rows
    limit = min(int(b.get("limit", cap)), cap)
    kwargs = {k: b[k] for k in ("principal", "action", "resource", "context", "entities") if k in b}
    for k in ("principal", "action", "resource"):
        if k in kwargs:
            kwargs[k] = _hashable(kwargs[k])
    try:
        rows = engine.query(b["query"], **kwargs)
    except RuneRequestError as e:
        raise request_error(e) from None
    except RuneError as e:
        raise ApiError(400, "Invalid Query", e.message, field="query") from None
    except RecursionError:
        raise ApiError(400, "Invalid Request", "request nested too deeply") from None
    truncated = len(rows) > limit
    rows = rows[:limit]
    return json_reply(
        {"rows": [{k: _jsonable(v) for k, v in row.items()} for row in rows], "truncated": truncated, "version": engine.version}
    )
