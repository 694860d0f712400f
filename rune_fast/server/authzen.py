"""AuthZEN Authorization API 1.0 endpoints.

- ``GET /.well-known/authzen-configuration``: the PDP metadata, with absolute
  URLs built from the request's ``Host`` (or ``X-Forwarded-Host``/``-Proto``).
- ``POST /access/v1/evaluation``: ``{"decision": bool}``; with ``?detail=true``
  also a ``context`` (decision id, version, reasons, errors), with
  ``?explain=true`` the engine's explanation in ``context.explain``.
- ``POST /access/v1/evaluations``: request-level defaults, each item may
  replace subject/action/resource/context; ``options.evaluations_semantic``
  ``execute_all`` (default), ``deny_on_first_deny`` (stop after the first
  deny, which is the last result), ``permit_on_first_permit``. Every item is
  checked before any is decided, on one engine snapshot. Without
  ``evaluations`` (or with an empty list) it answers like ``evaluation``.
- ``POST /access/v1/search/{subject,resource,action}``: the engine's search,
  paged: ``page.limit`` (at most ``max_search_limit``), ``page.token`` from a
  previous ``page.next_token`` (empty when there is nothing more).
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import RuneRequestError
from .decide import Decider, decision_context, request_error, snapshot
from .http import ApiError, Call, Reply, flag, json_reply
from .mapping import action_json, action_of, authzen_field, entity_json, entity_of, entity_sources, merge_item, request_entities, to_request

__all__ = ["configuration", "evaluation", "evaluations", "search_subject", "search_resource", "search_action"]

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")


def _base_url(call: Call) -> str:
    host = call.headers("X-Forwarded-Host") or call.headers("Host") or "127.0.0.1"
    proto = call.headers("X-Forwarded-Proto") or "http"
    host = host.split(",")[0].strip()
    proto = proto.split(",")[0].strip()
    if proto not in ("http", "https"):
        proto = "http"
    return f"{proto}://{host}"


def configuration(state: Any, call: Call) -> Reply:
    base = _base_url(call)
    return json_reply(
        {
            "policy_decision_point": base,
            "access_evaluation_endpoint": base + "/access/v1/evaluation",
            "access_evaluations_endpoint": base + "/access/v1/evaluations",
            "search_subject_endpoint": base + "/access/v1/search/subject",
            "search_resource_endpoint": base + "/access/v1/search/resource",
            "search_action_endpoint": base + "/access/v1/search/action",
        }
    )


def _detail_flags(call: Call) -> tuple[bool, bool]:
    explain = flag(call.params, "explain")
    return (explain or flag(call.params, "detail")), explain


def evaluation(state: Any, call: Call) -> Reply:
    detail, explain = _detail_flags(call)
    body = call.body
    d = Decider(state, "evaluation", detail)
    req = to_request(body["subject"], body["action"], body["resource"], body.get("context"))
    p, a, r, ctx, ents = req

    def rename(field: Optional[str]) -> Optional[str]:  # only on a 400
        pairs = [(k, e, body[k].get("properties")) for k, e in zip(("subject", "action", "resource"), req[:3])]
        return authzen_field(field, entity_sources(pairs))

    decision, did = d.decide(p, a, r, ctx, ents, logged=body, rename=rename)
    if not detail:
        d.finish()
        return Reply(200, _TRUE_BYTES if decision.allowed else _FALSE_BYTES)
    out: dict[str, Any] = {"decision": decision.allowed, "context": decision_context(decision, did)}
    if explain:
        out["context"]["explain"] = d.explain(*req)
    d.finish()
    return json_reply(out)


def evaluations(state: Any, call: Call) -> Reply:
    body = call.body
    items = body.get("evaluations")
    if not items:
        for key in ("subject", "action", "resource"):
            if key not in body:
                raise ApiError(400, "Invalid Request", f"{key} is required when evaluations is absent or empty", field=key)
            _require_complete(body[key], key, key)
        return evaluation(state, call)
    limit = state.options.max_batch_items
    if len(items) > limit:
        raise ApiError(413, "Payload Too Large", f"{len(items)} evaluations; at most {limit} per request", field="evaluations")
    detail, explain = _detail_flags(call)
    semantic = (body.get("options") or {}).get("evaluations_semantic", "execute_all")
    log_items = state.decision_log is not None
    # Validate and map every item first: a malformed item is a 400 for the
    # whole request, before anything is decided or logged. Objects shared by
    # many items (the request-level defaults) are mapped once.
    defaults = {k: body.get(k) for k in ("subject", "action", "resource", "context")}
    mapped: dict[int, tuple] = {}

    def entity(obj: dict, kind: str, field: str) -> tuple:
        hit = mapped.get(id(obj))
        if hit is None:
            _require_complete(obj, kind, field)
            ent = action_of(obj) if kind == "action" else entity_of(obj)
            hit = mapped[id(obj)] = (ent, obj.get("properties"))
        return hit

    requests: list[tuple] = []
    logged: list[Optional[dict]] = []
    sources: dict[int, list] = {}
    for i, item in enumerate(items):
        parts = []
        for key in ("subject", "action", "resource"):
            obj = item.get(key) or defaults[key]
            if obj is None:
                raise ApiError(400, "Invalid Request", f"evaluations[{i}] has no {key} and there is no default", field=f"evaluations[{i}].{key}")
            parts.append(entity(obj, key, f"evaluations[{i}].{key}" if key in item else key))
        (p, pp), (a, ap), (r, rp) = parts
        ctx = item.get("context", defaults["context"]) or None
        ents = None
        if pp or ap or rp:
            ents = request_entities([(p, pp), (a, ap), (r, rp)])
            sources[i] = entity_sources([("subject", p, pp), ("action", a, ap), ("resource", r, rp)])
        requests.append((p, a, r, ctx, ents))
        if log_items:
            logged.append(merge_item(defaults, item))
    d = Decider(state, "evaluations", detail)
    # One snapshot; every item is checked before any is decided.
    decisions = d.decide_batch(requests, "evaluations", lambda i, f: authzen_field(f, sources.get(i, []), f"evaluations[{i}]"))
    if semantic == "deny_on_first_deny":
        decisions = _until(decisions, False)
    elif semantic == "permit_on_first_permit":
        decisions = _until(decisions, True)
    results: list = []
    if d.wants_id:
        for i, (decision, merged) in enumerate(zip(decisions, logged or [None] * len(decisions))):
            decision, did = d.record(decision, merged)
            r_: dict[str, Any] = {"decision": decision.allowed}
            if detail:
                r_["context"] = decision_context(decision, did)
                if explain:
                    r_["context"]["explain"] = d.explain(*requests[i])
            results.append(r_)
    else:
        d.count(decisions)
        results = [_TRUE if x.allowed else _FALSE for x in decisions]
    d.finish()
    return json_reply({"evaluations": results})


_TRUE_BYTES = b'{"decision":true}'
_FALSE_BYTES = b'{"decision":false}'
_TRUE = {"decision": True}
_FALSE = {"decision": False}


def _until(decisions: list, stop: bool) -> list:
    """The results up to and including the first whose ``allowed`` is ``stop``."""
    for i, x in enumerate(decisions):
        if x.allowed is stop:
            return decisions[: i + 1]
    return decisions


def _require_complete(obj: dict, kind: str, field: str) -> None:
    need = ("name",) if kind == "action" else ("type", "id")
    for k in need:
        if k not in obj:
            raise ApiError(400, "Invalid Request", f"{field}.{k} is required", field=f"{field}.{k}")


# ---------------------------------------------------------------------------
# search


def _page(state: Any, body: dict) -> tuple[int, Any]:
    page = body.get("page") or {}
    limit = min(int(page.get("limit", 100)), state.options.max_search_limit)
    token = page.get("token") or None
    return limit, token


def _search(state: Any, body: dict, method: str, args: tuple, kwargs: dict, to_json: Any) -> Reply:
    engine = snapshot(state)
    fn = getattr(engine, method, None)
    if fn is None:
        raise ApiError(501, "Not Implemented", f"this engine version has no {method}()")
    limit, token = _page(state, body)
    try:
        page = fn(*args, limit=limit, page_token=token, **kwargs)
    except RuneRequestError as e:
        raise request_error(e) from None
    except (ValueError, TypeError) as e:
        raise ApiError(400, "Invalid Request", str(e)) from None
    results = [to_json(e) for e in page.results]
    return json_reply({"results": results, "page": {"next_token": page.next_token or "", "count": len(results)}})


def search_subject(state: Any, call: Call) -> Reply:
    b = call.body
    _, a, r, ctx, ents = to_request({"type": b["subject"]["type"], "id": ""}, b["action"], b["resource"], b.get("context"))
    ents = [e for e in ents or () if not (e["uid"]["type"] == b["subject"]["type"] and e["uid"]["id"] == "")] or None
    return _search(state, b, "search_subjects", (a, r, b["subject"]["type"]), {"context": ctx, "entities": ents}, entity_json)


def search_resource(state: Any, call: Call) -> Reply:
    b = call.body
    p, a, _, ctx, ents = to_request(b["subject"], b["action"], {"type": b["resource"]["type"], "id": ""}, b.get("context"))
    ents = [e for e in ents or () if e["uid"]["id"] != "" or e["uid"]["type"] != b["resource"]["type"]] or None
    return _search(state, b, "search_resources", (p, a, b["resource"]["type"]), {"context": ctx, "entities": ents}, entity_json)


def search_action(state: Any, call: Call) -> Reply:
    b = call.body
    p, _, r, ctx, ents = to_request(b["subject"], {"name": "_"}, b["resource"], b.get("context"))
    return _search(state, b, "search_actions", (p, r), {"context": ctx, "entities": ents}, action_json)
