"""Deciding on behalf of an endpoint: snapshot, metrics, decision log, detail.

Every decision endpoint goes through ``Decider`` so that counting, logging
and the optional ``context`` (decision id, version, reasons, errors, explain)
are the same everywhere. The engine is read from the store once per HTTP
request (``snapshot()``) and used for every item of that request.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional

from ..errors import RuneError, RuneRequestError
from .http import ApiError

__all__ = ["snapshot", "Decider", "decision_context", "request_error"]


def snapshot(state: Any) -> Any:
    """The engine serving now (one read: a consistent version)."""
    store = state.store
    if store is None and state.load_error is None:
        state.start(block=True)  # first request of a worker started without our hooks
        store = state.store
    if store is None:
        state.start(block=False)  # keep retrying in the background
        raise ApiError(503, "Service Unavailable", state.load_error or "no policy is loaded yet", headers={"Retry-After": "1"})
    return store.engine


def request_error(e: RuneRequestError, prefix: str = "") -> ApiError:
    field = e.field or ""
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    return ApiError(400, "Invalid Request", e.message, field=field or None)


def new_id() -> str:
    return uuid.uuid4().hex


def decision_context(decision: Any, decision_id: Optional[str]) -> dict:
    out: dict[str, Any] = {
        "decision": decision.decision,
        "version": decision.version,
        "reasons": list(decision.reasons),
        "errors": [{"policy": p, "message": m} for p, m in decision.errors],
    }
    if decision_id:
        out["decision_id"] = decision_id
    return out


class Decider:
    """Decides for one HTTP request; ``finish()`` records metrics."""

    __slots__ = ("state", "endpoint", "engine", "t0", "log", "detail", "outcomes")

    def __init__(self, state: Any, endpoint: str, detail: bool = False) -> None:
        self.state = state
        self.endpoint = endpoint
        self.engine = snapshot(state)
        self.t0 = time.perf_counter()
        self.log = state.decision_log
        self.detail = detail
        self.outcomes: dict[str, int] = {}

    @property
    def wants_id(self) -> bool:
        return self.detail or self.log is not None

    def decide(self, principal: Any, action: Any, resource: Any, context: Any, entities: Any, logged: Optional[dict], prefix: str = "", rename: Any = None) -> tuple:
        """(decision, decision_id or None). A malformed request raises 400
        (``rename`` maps the engine's field to the client's); any other
        failure is a deny (the engine fails closed)."""
        try:
            d = self.engine.authorize(principal, action, resource, context, entities)
        except RuneRequestError as e:
            err = request_error(e, prefix)
            if rename is not None:
                err.field = rename(e.field)
            raise err from None
        except RecursionError:
            raise ApiError(400, "Invalid Request", "request nested too deeply", field=prefix or None) from None
        return self.record(d, logged)

    def decide_batch(self, requests: list, name: str, rename: Any = None) -> list:
        """Decide many ``(principal, action, resource, context, entities)``
        on this one snapshot, in order. A malformed item is a 400 naming
        ``name[i].field`` for the whole request; nothing has been recorded
        by then (``record``/``count`` run after), so it is as if none was
        decided. Cache hits cost one dict lookup each."""
        authorize = self.engine.authorize
        out: list = []
        try:
            for req in requests:
                out.append(authorize(*req))
        except RuneRequestError as e:
            i = len(out)  # the item that failed
            err = request_error(e, f"{name}[{i}]")
            if rename is not None:
                err.field = rename(i, e.field)
            raise err from None
        except RecursionError:
            raise ApiError(400, "Invalid Request", "request nested too deeply", field=f"{name}[{len(out)}]") from None
        return out

    def count(self, decisions: list) -> None:
        """Count outcomes without ids (no log, no detail): the fast path."""
        outcomes = self.outcomes
        for d in decisions:
            k = d.decision
            outcomes[k] = outcomes.get(k, 0) + 1

    def record(self, d: Any, logged: Optional[dict]) -> tuple:
        self.outcomes[d.decision] = self.outcomes.get(d.decision, 0) + 1
        did = None
        if self.wants_id:
            did = new_id()
            if self.log is not None:
                self.log.write(did, self.endpoint, logged, d, time.perf_counter() - self.t0)
        return d, did

    def explain(self, principal: Any, action: Any, resource: Any, context: Any, entities: Any) -> Optional[dict]:
        fn = getattr(self.engine, "explain", None)
        if fn is None:
            raise ApiError(501, "Not Implemented", "this engine version has no explain()")
        try:
            result: dict = fn(principal, action, resource, context, entities).to_dict()
            return result
        except RuneRequestError as e:
            raise request_error(e) from None
        except RuneError as e:
            return {"error": e.message}

    def finish(self) -> None:
        m = self.state.metrics
        if m is None:
            return
        m.observe(self.endpoint, time.perf_counter() - self.t0)
        for outcome, n in self.outcomes.items():
            m.decision(self.endpoint, outcome, n)
