"""The framework-neutral guard every adapter shares.

Why it is shaped like this:

- **Validated once.** Every setting is checked in ``Guard.__init__``; a bad
  one raises there, at start-up, never at the first request.
- **One engine per request.** ``check`` reads ``holder.engine`` once and
  decides with that snapshot; a reload swaps the attribute between requests,
  never inside one, and never blocks or fails a request.
- **Fail closed, never crash.** Anything that stops a request from becoming a
  valid authorization request (a resolver raising, a malformed entity, a
  body over the limit) becomes a deny (or a 4xx) with a located reason in the
  audit log: never a 500 with a traceback, never an allow.
- **Cheap defaults.** The adapters hand the guard plain values (method, path,
  route template, params, client address); the defaults are looked up in
  small dicts (``Action::"GET"`` and ``Route::"/docs/{id}"`` are built once),
  and with the default context the guard keeps a per-engine memo keyed by
  those plain values (the context's inputs only when a policy can read the
  context: ``Engine.reads_context``), so a repeated request costs a tuple
  hash instead of freezing a context dict for the engine's own cache. The
  memo belongs to one engine and is dropped with it, so it can never answer
  for another version. A hit allocates nothing: ``decide`` returns the
  memo's shared verdict fields, and decision ids are drawn only when read.
- **Adapters stay thin.** ``check`` / ``check_async`` return a
  :class:`Verdict` (``decide`` / ``decide_async`` its fields); an adapter
  only translates it into its framework's response (``problem_body`` and
  ``headers`` give the shared shapes).
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

from rune_fast import Decision, Engine, Entity, PolicyStore

from .audit import OUTCOMES, AuditHook, AuditLog, GuardMetrics, register_metrics
from .rules import EntitySpec, RouteRule, _is_async
from .verdict import EXEMPT, Verdict, _tuple_new, new_decision_id
from .resolving import UNRESOLVED, BodyTooLarge, Resolver, ResolverError, ResolverFailed, _check_resolver, _where

__all__ = [
    "BodyTooLarge",
    "DRY_RUN",
    "ENFORCE",
    "Guard",
    "ResolverError",
    "Verdict",
    "DECISION_ID_HEADER",
    "POLICY_VERSION_HEADER",
    "new_decision_id",
]

log = logging.getLogger("rune_fast.middleware")

ENFORCE = "enforce"
DRY_RUN = "dry_run"
DECISION_ID_HEADER = "X-Rune-Decision-Id"
POLICY_VERSION_HEADER = "X-Rune-Policy-Version"
PROBLEM_JSON = "application/problem+json"
#: The reason id carried by a synthetic decision the guard makes itself.
GUARD_ERROR_ID = "<middleware>"

_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "WEBSOCKET")
_TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 413: "Content Too Large", 503: "Service Unavailable"}


_perf = time.perf_counter
#: The outcome counters of a guard without metrics: bumped, never read.
_NO_TICKS = dict.fromkeys(OUTCOMES, itertools.count())


class _FixedEngine:
    """Holder for a plain Engine: the guard always reads ``holder.engine``."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine


Source = Union[PolicyStore, Engine, str, "os.PathLike[str]", Any]


class Guard:
    """Framework-neutral authorization for HTTP requests.

    ``Guard(source, *, principal=None, action=None, resource=None,
    context=None, entities=None, mode="enforce", ...)``; see docs/middleware.md
    for every option. Adapters call :meth:`check` (or :meth:`check_async`)
    once per request with plain values and act on the :class:`Verdict`.
    """

    def __init__(
        self,
        source: Source,
        *,
        principal: Optional[Resolver] = None,
        action: Optional[Resolver] = None,
        resource: Optional[Resolver] = None,
        context: Optional[Resolver] = None,
        entities: Optional[Resolver] = None,
        mode: str = ENFORCE,
        exempt_methods: Any = ("OPTIONS",),
        principal_type: str = "User",
        action_type: str = "Action",
        resource_type: str = "Route",
        www_authenticate: Optional[str] = None,
        expose_reasons: bool = False,
        decision_headers: bool = False,
        max_body: int = 1 << 20,
        audit_logger: Union[str, logging.Logger, None] = "rune_fast.middleware",
        audit_level: int = logging.INFO,
        audit_hook: Optional[AuditHook] = None,
        metrics: bool = True,
        latency_metrics: bool = False,
        metrics_registry: Any = None,
        name: str = "default",
        memo_size: int = 4096,
        store_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._owns_store = False
        if isinstance(source, Engine):
            self.holder: Any = _FixedEngine(source)
        elif isinstance(source, PolicyStore) or (hasattr(source, "engine") and not isinstance(source, (str, bytes))):
            self.holder = source
        elif isinstance(source, (str, os.PathLike)):
            self.holder = PolicyStore(source, **dict(store_options or {}))  # raises on a bad policy
            self._owns_store = True
        else:
            raise TypeError(f"Guard: source must be a PolicyStore, an Engine or a path; got {type(source).__name__}")
        if store_options and not self._owns_store:
            raise TypeError("Guard: store_options only apply when source is a path")

        self.principal = _check_resolver("principal", principal)
        self.action = _check_resolver("action", action)
        self.resource = _check_resolver("resource", resource)
        self.context = _check_resolver("context", context)
        self.entities = _check_resolver("entities", entities)
        self.is_async = any(_is_async(f) for f in (principal, action, resource, context, entities) if f is not None)

        if mode not in (ENFORCE, DRY_RUN):
            raise ValueError(f"Guard: mode must be {ENFORCE!r} or {DRY_RUN!r}; got {mode!r}")
        self.mode = mode
        self._mode_index = 0 if mode == ENFORCE else 1
        if isinstance(exempt_methods, str) or not all(isinstance(m, str) for m in exempt_methods):
            raise TypeError("Guard: exempt_methods must be a collection of method names such as ('OPTIONS',)")
        self.exempt_methods = frozenset(m.upper() for m in exempt_methods)
        for label, t in (("principal_type", principal_type), ("action_type", action_type), ("resource_type", resource_type)):
            EntitySpec((t, "x"), label)  # validates the type name
        self.principal_type = principal_type
        self.action_type = action_type
        self.resource_type = resource_type
        if www_authenticate is not None and (not isinstance(www_authenticate, str) or not www_authenticate.strip()
                                             or "\n" in www_authenticate or "\r" in www_authenticate):
            raise ValueError("Guard: www_authenticate must be a challenge such as 'Bearer realm=\"api\"'")
        self.www_authenticate = www_authenticate
        self.expose_reasons = bool(expose_reasons)
        self.decision_headers = bool(decision_headers)
        if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body < 0:
            raise ValueError(f"Guard: max_body must be an integer >= 0 (bytes); got {max_body!r}")
        self.max_body = max_body
        if not isinstance(memo_size, int) or isinstance(memo_size, bool) or memo_size < 0:
            raise ValueError(f"Guard: memo_size must be an integer >= 0; got {memo_size!r}")
        self.memo_size = memo_size
        if audit_hook is not None and not callable(audit_hook):
            raise TypeError("Guard: audit_hook must be a callable fn(fields) -> fields | None")
        if audit_logger is None:
            self.audit: Optional[AuditLog] = None
        else:
            logger = logging.getLogger(audit_logger) if isinstance(audit_logger, str) else audit_logger
            if not isinstance(logger, logging.Logger):
                raise TypeError("Guard: audit_logger must be a logger name, a logging.Logger or None")
            if not isinstance(audit_level, int):
                raise TypeError("Guard: audit_level must be a logging level such as logging.INFO")
            self.audit = AuditLog(logger, audit_level, audit_hook)
        if not isinstance(name, str) or not name:
            raise ValueError("Guard: name must be a non-empty string")
        self.name = name
        self.metrics: Optional[GuardMetrics] = None
        if metrics:
            self.metrics = GuardMetrics(name, latency=bool(latency_metrics))
            register_metrics(self.metrics, metrics_registry)

        self._default_rule = RouteRule()
        self._actions = {m: Entity(action_type, m) for m in _HTTP_METHODS}
        self._routes: dict[str, Entity] = {}
        self._memo: tuple = (None, {}, {}, False)
        self._plain = self.context is None and self.entities is None and memo_size > 0
        self._by_route = self._plain and self.action is None and self.resource is None
        # An adapter may answer a memo hit itself (see RuneMiddleware.process_resource)
        # only in this mode: the by-route memo, a principal resolver.
        self.memo_fast_path = self._by_route and self.principal is not None
        # Per-request bookkeeping, resolved once: the outcome counters of this
        # mode, whether decisions are timed (an audit log or the histogram),
        # and the audit logger's level cache.
        # ``_ticks[outcome]``: the counter to bump (a shared, never-read one
        # without metrics, so the request path has no branch for it).
        self._ticks: dict = self.metrics.counters[self._mode_index] if self.metrics is not None else _NO_TICKS
        self._histogram = bool(self.metrics is not None and self.metrics.latency)
        self._audit_level = audit_level
        self._audit_cache: dict = getattr(self.audit.logger, "_cache", {}) if self.audit is not None else {}
        # ``_timed_cache.get(audit_level)``: whether to time a decision, in
        # one lookup: always with the histogram, never without an audit log,
        # else the audit logger's own level cache (cleared in place by
        # logging whenever levels change; a miss falls back to _audit_on).
        self._timed_cache: dict = {audit_level: True} if self._histogram else \
            self._audit_cache if self.audit is not None else {audit_level: False}

    # -- life cycle -----------------------------------------------------------------

    def close(self) -> None:
        """Stop the store the guard created from a path (its watcher threads)."""
        if self._owns_store:
            self.holder.close()

    @property
    def engine(self) -> Optional[Engine]:
        """The engine serving right now (``None`` if the source has none)."""
        return self.holder.engine  # type: ignore[no-any-return]

    def needs_default_principal(self) -> bool:
        return self.principal is None

    # -- the request path -----------------------------------------------------------

    def check(
        self,
        req: Any,
        method: str,
        path: str,
        route: Optional[str],
        params: Optional[Mapping[str, Any]],
        client: str,
        rule: Optional[RouteRule] = None,
        user: Optional[str] = None,
    ) -> Verdict:
        """Decide one request (sync resolvers only). Never raises.

        ``route``/``params`` are the matched route template and parameters
        (``None`` when unknown), ``client`` the peer address, ``rule`` the
        route's :class:`RouteRule`, ``user`` the adapter's default principal
        id (used only without a ``principal`` resolver).
        """
        f = self.decide(req, method, path, route, params, client, rule, user)
        return f if type(f) is Verdict else _tuple_new(Verdict, f)

    @staticmethod
    def verdict(f: tuple) -> Verdict:
        """The :class:`Verdict` of what :meth:`decide` returned (the same object if it is one)."""
        return f if type(f) is Verdict else _tuple_new(Verdict, f)

    def decide(
        self,
        req: Any,
        method: str,
        path: str,
        route: Optional[str],
        params: Optional[Mapping[str, Any]],
        client: str,
        rule: Optional[RouteRule] = None,
        user: Optional[str] = None,
        resolved: Any = UNRESOLVED,
    ) -> tuple:
        """:meth:`check` without building the Verdict when nothing needs one yet.

        Returns the verdict's fields, ``(status, decision, ...)``, indexable
        like a :class:`Verdict`: often the memo's own shared tuple, so an
        allowed request costs no allocation here; a Verdict when one was
        already made (a refusal of the guard itself, or a decision the audit
        log recorded, whose id is drawn). An adapter reads ``[0]`` (status)
        and ``[1]`` (decision), and calls :meth:`verdict` when it needs the
        id (headers, problem body). The common case (no resolver but
        ``principal``, default action, resource and context) is written out
        inline: this is the per-request cost of the middleware.

        ``resolved``: what the ``principal`` resolver already returned for
        this request (or :class:`ResolverFailed` with what it raised), when
        an adapter's memo fast path ran it and missed: the resolver runs once
        per request either way.
        """
        if rule is None:
            rule = self._default_rule
        if rule.exempt or method in self.exempt_methods:
            return EXEMPT
        # Timed only when something records the latency: the histogram, or an
        # audit logger that takes records right now (see _timed_cache).
        timed = self._timed_cache.get(self._audit_level)
        if timed is None:
            timed = self._audit_on()
        t0 = _perf() if timed else 0.0
        engine = self.holder.engine
        if engine is None:
            return self._unavailable(t0)
        where = "principal"
        action = resource = given = None
        e: Optional[tuple]
        try:
            fn = self.principal
            if resolved is not UNRESOLVED:
                if type(resolved) is ResolverFailed:
                    raise resolved.error
                principal = resolved
            elif fn is not None:
                principal = fn(req)
            else:  # a plain (type, id) tuple: the engine takes it, and it is cheaper than an Entity
                principal = (self.principal_type, user) if user else None
            if principal is None:
                return self._unauthenticated(engine, t0)
            if self._by_route and rule.defaults:
                # Default action, resource and context: the answer is a
                # function of the principal, the method, the route (or path)
                # and, only when a policy reads the context, its inputs.
                where = "authorize"
                e = self._route_entry(engine, principal, method, path, route, params, client)
            else:
                where = "action"
                spec = rule.action_spec
                if spec is not None:
                    action = spec.entity if spec.entity is not None else self._spec(spec, req, params)
                elif self.action is not None:
                    action = self.action(req)
                else:
                    action = self._method_action(method)
                where = "resource"
                spec = rule.resource_spec
                if spec is not None:
                    resource = spec.entity if spec.entity is not None else self._spec(spec, req, params)
                elif self.resource is not None:
                    resource = self.resource(req)
                else:
                    resource = self._route_resource(route, path)
                if self._plain:
                    where = "authorize"
                    e = self._decide_plain(engine, principal, action, resource, method, path, route, params, client)
                else:
                    where = "context"
                    ctx = self.context(req) if self.context is not None else \
                        self.default_context(method, path, route, params, client)
                    where = "entities"
                    ents = self.entities(req) if self.entities is not None else None
                    where = "authorize"
                    given = (ctx, ents)
                    e = self._entry(engine.authorize(principal, action, resource, ctx, ents))
        except Exception as e:
            return self._error(engine, t0, rule, where, e)
        return self._finish(e, rule, timed, t0, engine, principal, action, resource, method, path, route, params,
                            client, given)

    async def check_async(
        self,
        req: Any,
        method: str,
        path: str,
        route: Optional[str],
        params: Optional[Mapping[str, Any]],
        client: str,
        rule: Optional[RouteRule] = None,
        user: Optional[str] = None,
    ) -> Verdict:
        """:meth:`check` for ASGI: resolvers may be sync or async. Never raises."""
        f = await self.decide_async(req, method, path, route, params, client, rule, user)
        return f if type(f) is Verdict else _tuple_new(Verdict, f)

    async def decide_async(
        self,
        req: Any,
        method: str,
        path: str,
        route: Optional[str],
        params: Optional[Mapping[str, Any]],
        client: str,
        rule: Optional[RouteRule] = None,
        user: Optional[str] = None,
    ) -> tuple:
        """:meth:`decide` for ASGI: resolvers may be sync or async. Never raises."""
        if rule is None:
            rule = self._default_rule
        if rule.exempt or method in self.exempt_methods:
            return EXEMPT
        timed = self._timed_cache.get(self._audit_level)
        if timed is None:
            timed = self._audit_on()
        t0 = _perf() if timed else 0.0
        engine = self.holder.engine
        if engine is None:
            return self._unavailable(t0)
        where = "principal"
        action = resource = given = None
        e: Optional[tuple]
        try:
            if self.principal is not None:
                principal = await _maybe(self.principal(req))
            else:
                principal = self._default_principal(user)
            if principal is None:
                return self._unauthenticated(engine, t0)
            if self._by_route and rule.defaults:
                where = "authorize"
                e = self._route_entry(engine, principal, method, path, route, params, client)
            else:
                where = "action"
                spec = rule.action_spec
                if spec is not None:
                    action = spec.entity if spec.entity is not None else await _maybe(self._spec(spec, req, params))
                elif self.action is not None:
                    action = await _maybe(self.action(req))
                else:
                    action = self._method_action(method)
                where = "resource"
                spec = rule.resource_spec
                if spec is not None:
                    resource = spec.entity if spec.entity is not None else await _maybe(self._spec(spec, req, params))
                elif self.resource is not None:
                    resource = await _maybe(self.resource(req))
                else:
                    resource = self._route_resource(route, path)
                if self._plain:
                    where = "authorize"
                    e = self._decide_plain(engine, principal, action, resource, method, path, route, params, client)
                else:
                    where = "context"
                    if self.context is not None:
                        ctx = await _maybe(self.context(req))
                    else:
                        ctx = self.default_context(method, path, route, params, client)
                    where = "entities"
                    ents = await _maybe(self.entities(req)) if self.entities is not None else None
                    where = "authorize"
                    given = (ctx, ents)
                    e = self._entry(engine.authorize(principal, action, resource, ctx, ents))
        except Exception as e:
            return self._error(engine, t0, rule, where, e)
        return self._finish(e, rule, timed, t0, engine, principal, action, resource, method, path, route, params,
                            client, given)

    # -- defaults -------------------------------------------------------------------

    @staticmethod
    def default_context(
        method: str, path: str, route: Optional[str], params: Optional[Mapping[str, Any]], client: str
    ) -> dict:
        """The default context record: what routing already knows, nothing more.

        No headers, cookies, query string or body: an app exposes those by
        giving its own ``context`` resolver.
        """
        return {
            "method": method,
            "path": path,
            "route": route or "",
            "params": {str(k): str(v) for k, v in params.items()} if params else {},
            "client": client or "",
        }

    def _default_principal(self, user: Optional[str]) -> Optional[tuple]:
        return (self.principal_type, user) if user else None

    def _method_action(self, method: str) -> Entity:
        e = self._actions.get(method)
        return e if e is not None else Entity(self.action_type, method)

    def _route_resource(self, route: Optional[str], path: str) -> Entity:
        key = route if route is not None else path
        e = self._routes.get(key)
        if e is None:
            e = Entity(self.resource_type, key)
            if route is not None and len(self._routes) < 4096:
                self._routes[key] = e
        return e

    @staticmethod
    def _spec(spec: EntitySpec, req: Any, params: Optional[Mapping[str, Any]]) -> Any:
        if spec.kind == "const":
            return Entity(spec.type, spec.id)
        if spec.kind == "template":
            return spec.fill(params)
        return spec.fn(req)  # type: ignore[misc]

    # -- deciding -------------------------------------------------------------------

    def _new_memo(self, engine: Engine) -> tuple:
        """A fresh memo ``(engine, by_route, by_entities, context_free)`` for a newly seen engine.

        Two tables of entries (:meth:`_entry`): ``by_route`` keyed on (principal,
        method, route or path) for requests whose action and resource are the
        defaults, ``by_entities`` keyed on (principal, action, resource) for
        the others (route rules, action/resource resolvers). ``context_free``:
        no policy of this engine can read ``context``
        (``Engine.reads_context``), so the keys stop there and a miss decides
        without building the default context; otherwise the keys add the
        default context's inputs (method, path, route, client; the route
        parameters are a function of path and route). An engine-like source
        without the property is treated as reading the context.
        """
        memo = self._memo = (engine, {}, {}, getattr(engine, "reads_context", True) is False)
        return memo

    def _route_entry(
        self, engine: Engine, principal: Any, method: str, path: str, route: Optional[str],
        params: Optional[Mapping[str, Any]], client: str,
    ) -> tuple:
        """The memo entry for a request with the default action, resource and
        context: through the ``by_route`` memo, deciding on a miss."""
        memo = self._memo
        if memo[0] is not engine:
            memo = self._new_memo(engine)
        key: Optional[tuple] = (principal, method, route if route is not None else path) if memo[3] else \
            (principal, method, path, route, client)
        try:
            e = memo[1].get(key)
        except TypeError:  # an unhashable resolver result: decide without the memo
            e = key = None
        if e is None:
            e = self._decide_default(engine, memo[1], memo[3], key, principal, self._method_action(method),
                                     self._route_resource(route, path), method, path, route, params, client)
        return e  # type: ignore[no-any-return]

    def _finish(
        self, e: tuple, rule: RouteRule, timed: bool, t0: float, engine: Engine, principal: Any, action: Any,
        resource: Any, method: str, path: str, route: Optional[str], params: Optional[Mapping[str, Any]],
        client: str, given: Optional[tuple],
    ) -> tuple:
        """Count a memo entry's outcome and answer with its verdict fields
        (404 on a hiding route); a timed decision is recorded, and answered
        with the Verdict that carries the record's id. ``action``/``resource``
        are ``None`` when the route memo answered; ``given`` is the request's
        (context, entities), ``None`` for the default context."""
        f: tuple = e[0]
        next(e[1])  # count the outcome
        if f[0] == 403 and rule.hide:
            f = (404,) + f[1:]
        if timed:
            v = _tuple_new(Verdict, f)
            self._record_decided(v, t0, engine, principal, action, resource, method, path, route, params, client,
                                 given)
            return v
        return f

    def _decide_plain(
        self, engine: Engine, principal: Any, action: Any, resource: Any,
        method: str, path: str, route: Optional[str], params: Optional[Mapping[str, Any]], client: str,
    ) -> tuple:
        """The memo entry (:meth:`_entry`) with the default context, through the ``by_entities`` memo."""
        memo = self._memo
        if memo[0] is not engine:
            memo = self._new_memo(engine)
        key: Optional[tuple] = (principal, action, resource) if memo[3] else \
            (principal, action, resource, method, path, route, client)
        try:
            e = memo[2].get(key)
        except TypeError:  # an unhashable resolver result: decide without the memo
            e = key = None
        if e is None:
            e = self._decide_default(engine, memo[2], memo[3], key, principal, action, resource,
                                     method, path, route, params, client)
        return e  # type: ignore[no-any-return]

    def _decide_default(
        self, engine: Engine, table: dict, context_free: bool, key: Optional[tuple], principal: Any, action: Any,
        resource: Any, method: str, path: str, route: Optional[str], params: Optional[Mapping[str, Any]], client: str,
    ) -> tuple:
        """A memo miss: decide with the default context and remember the answer (:meth:`_entry`).

        Answers with errors are not remembered (they may quote request values).
        """
        if context_free:
            d = engine.authorize(principal, action, resource)
        else:
            d = engine.authorize(principal, action, resource, self.default_context(method, path, route, params, client))
        e = self._entry(d)
        if key is not None and not d.errors:
            if len(table) >= self.memo_size:
                table.clear()  # a plain generation drop; the engine's own cache stays warm
            table[key] = e
        return e

    def _entry(self, d: Decision) -> tuple:
        """``(verdict fields, outcome counter)``: what the memo keeps per answer."""
        f = self._fields(d)
        return (f, self._ticks[f[3]])

    def _fields(self, d: Decision) -> tuple:
        """The verdict fields of a decision in this guard's mode (id drawn lazily).

        A deny is 403 here; ``check`` turns it into 404 for a hiding route.
        """
        if d.allowed:
            return (0, d, None, "allow", "", d.version)
        if self._mode_index:
            return (0, d, None, "would_deny", _errors(d), d.version)
        return (403, d, None, "deny", _errors(d), d.version)

    def _record_decided(
        self, v: Verdict, t0: float, engine: Engine, principal: Any, action: Any, resource: Any,
        method: str, path: str, route: Optional[str], params: Optional[Mapping[str, Any]], client: str,
        given: Optional[tuple],
    ) -> None:
        """:meth:`_record` for a decided request.

        ``action``/``resource`` are ``None`` when the route memo answered
        (they are the defaults, rebuilt here); ``given`` is the request's
        (context, entities), ``None`` for the default context. A dry-run
        ``would_deny`` record carries the explanation, built here.
        """
        if action is None:
            action, resource = self._method_action(method), self._route_resource(route, path)
        why = None
        if v[3] == "would_deny":
            ctx, ents = given if given is not None else (self.default_context(method, path, route, params, client), None)
            why = (engine, ctx, ents)
        self._record(v, t0, principal, action, resource, why)

    def _unavailable(self, t0: float) -> Verdict:
        reason = "no policy engine loaded"
        d = Decision("deny", False, (), ((GUARD_ERROR_ID, reason),), False, "")
        v = Verdict(0 if self._mode_index else 503, d, None, "unavailable", reason, "")
        self._count(v)
        self._record(v, t0, None, None, None)
        return v

    def _unauthenticated(self, engine: Engine, t0: float) -> Verdict:
        reason = "no principal (unauthenticated caller)"
        d = Decision("deny", False, (), ((GUARD_ERROR_ID, reason),), False, engine.version)
        v = Verdict(0 if self._mode_index else 401, d, None, "unauthenticated", reason, engine.version)
        self._count(v)
        self._record(v, t0, None, None, None)
        return v

    def _error(self, engine: Engine, t0: float, rule: RouteRule, where: str, exc: Exception) -> Verdict:
        """A request that could not be built: deny, with where and why in the log."""
        if where == "authorize":
            reason = f"invalid authorization request: {exc}"
        else:
            reason = f"{where} resolver raised {type(exc).__name__}: {exc} (at {_where(exc)})"
        status = exc.status if isinstance(exc, ResolverError) else (404 if rule.hide else 403)
        outcome = "too_large" if isinstance(exc, BodyTooLarge) else "error"
        d = Decision("deny", False, (), ((GUARD_ERROR_ID, reason),), False, engine.version)
        v = Verdict(0 if self._mode_index else status, d, None, outcome, reason, engine.version)
        self._count(v)
        self._record(v, t0, None, None, None)
        return v

    def _audit_on(self) -> bool:
        """Whether the audit logger takes records at its level right now.

        Reads the logger's own level cache (``Logger._cache``, cleared in
        place by logging whenever levels change) so that the common answer
        costs a dict lookup; falls back to ``isEnabledFor``.
        """
        on = self._audit_cache.get(self._audit_level)
        if on is None:
            audit = self.audit
            return audit is not None and audit.logger.isEnabledFor(audit.level)
        return on  # type: ignore[no-any-return]

    def _count(self, v: Verdict) -> None:
        next(self._ticks[v[3]])

    def _record(
        self, v: Verdict, t0: float, principal: Any, action: Any, resource: Any, why: Optional[tuple] = None
    ) -> None:
        """Latency histogram and audit record of one decision (when enabled).

        ``why`` is ``(engine, context, entities)`` of a dry-run ``would_deny``:
        its record then carries the explanation (see :meth:`_explain`).
        """
        dt = _perf() - t0 if t0 else 0.0
        m = self.metrics
        if m is not None and m.latency:
            m.observe(dt)
        audit = self.audit
        if audit is not None and self._audit_on():
            d = v.decision
            fields = {
                "decision_id": v.decision_id,
                "version": v.version,
                "outcome": v.outcome,
                "status": v.status or 200,
                "mode": self.mode,
                "principal": _text(principal),
                "action": _text(action),
                "resource": _text(resource),
                "reasons": list(d.reasons) if d is not None else [],
                "latency_ms": round(dt * 1000.0, 4),
            }
            if v.reason:
                fields["reason"] = v.reason
            if why is not None:
                self._explain(fields, why[0], principal, action, resource, why[1], why[2])
            audit.write(fields)

    def _explain(self, fields: dict, engine: Engine, principal: Any, action: Any, resource: Any,
                 ctx: Any, ents: Any) -> None:
        """Add ``engine.explain(...).to_dict()`` to a ``would_deny`` record.

        Only in dry run, only for a would-deny, only when the audit log takes
        the record: an explanation re-runs the request, which the allow and
        enforce paths must never pay for. It uses the engine that decided, so
        it explains this decision even across a reload. Failure-safe: an
        exception while explaining changes nothing about the request or its
        outcome; it is logged, and the record says ``explanation_error``.
        """
        try:
            fields["explanation"] = engine.explain(principal, action, resource, ctx, ents).to_dict()
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            fields["explanation_error"] = msg
            log.warning("rune: explaining would_deny decision %s failed: %s", fields.get("decision_id"), msg)

    # -- response shapes ------------------------------------------------------------

    def headers(self, v: Verdict) -> list[tuple[str, str]]:
        """Response headers for a verdict (none for an exempt route or a hidden deny).

        The decision id and policy version go on every refusal, and on the
        responses the guard let through only with ``decision_headers=True``
        (so an allowed request draws no decision id for them).
        """
        status = v[0]
        if status == 404 or v[1] is None:  # hidden, or exempt (no decision)
            return []
        if not status:
            if not self.decision_headers:
                return []
            return [(DECISION_ID_HEADER, v.decision_id), (POLICY_VERSION_HEADER, v[5])] if v[5] else \
                [(DECISION_ID_HEADER, v.decision_id)]
        out = [(DECISION_ID_HEADER, v.decision_id)]  # refusals always carry them
        if v[5]:
            out.append((POLICY_VERSION_HEADER, v[5]))
        if status == 401 and self.www_authenticate:
            out.append(("WWW-Authenticate", self.www_authenticate))
        if v.status == 503:
            out.append(("Retry-After", "5"))
        return out

    def problem_body(self, v: Verdict) -> bytes:
        """The ``application/problem+json`` body for a refused request.

        Small and free of internals: the status, its title, the decision id
        and policy version (to find the audit record), and the policy ids
        behind a deny only when ``expose_reasons`` is set.
        """
        body: dict[str, Any] = {"type": "about:blank", "title": _TITLES.get(v.status, "Forbidden"), "status": v.status}
        if v.status != 404:
            body["decision_id"] = v.decision_id
            if v.version:
                body["policy_version"] = v.version
            if self.expose_reasons and v.decision is not None and v.decision.reasons:
                body["reasons"] = list(v.decision.reasons)
        return json.dumps(body).encode()

    def read_stream(self, read: Callable[[int], bytes], content_length: Optional[int]) -> bytes:
        """Read a request body through ``read(n)``, at most ``max_body`` bytes.

        For resolvers that need the body: a declared length over the limit is
        refused before reading anything; otherwise at most ``max_body + 1``
        bytes are read, so a body without a length cannot exhaust memory.
        Raises :class:`BodyTooLarge` (answered with 413).
        """
        limit = self.max_body
        if content_length is not None and content_length > limit:
            raise BodyTooLarge(f"request body of {content_length} bytes exceeds max_body={limit}")
        data = read(limit + 1)
        if len(data) > limit:
            raise BodyTooLarge(f"request body exceeds max_body={limit}")
        return data


async def _maybe(x: Any) -> Any:
    if inspect.isawaitable(x):
        return await x
    return x


def _errors(d: Decision) -> str:
    return "; ".join(f"{p}: {m}" for p, m in d.errors)


def _text(x: Any) -> str:
    if x is None:
        return ""
    return str(x) if isinstance(x, (Entity, str)) else repr(x)
