"""The Engine: one immutable, compiled bundle that answers requests (docs/language.md §4-§7).

Why it is shaped like this:

- **Everything that can be computed once is.** Building an engine parses
  the bundle, runs the load-time checks, compiles the rules, evaluates every
  request-independent rule, snapshots the hierarchy (reflexive-transitive
  closure of ``parent``), the attributes and the (small) relations policies
  call into plain dicts and frozensets, and compiles the policies to Python
  functions indexed by action and entity type. A request then does dict and
  set lookups and runs a handful of generated functions.
- **Per-request rules only when they matter.** Rules that read the request
  (``principal``, ``action``, ``resource``, ``context``, request-supplied
  ``parent``/``attr``) are evaluated by the Datalog core on top of the
  precomputed model, and only when one of the policies that can apply to the
  request calls a relation that depends on them.
- **Immutable, except the decision cache.** Nothing shared is written while
  deciding, except (a) the decision cache and (b) memo dicts that only ever
  gain complete, deterministic entries (policy candidates per action/type,
  parsed entity literals). Dict reads and single stores are atomic in
  CPython, so readers never lock.
- **The cache hit path is a dict lookup.** The key of a request without
  context and request entities is the raw ``(principal, action, resource)``
  triple exactly as the caller passed it (no parsing on a hit); with context
  or entities it also holds a canonical, kind-tagged frozen form of both. The
  cache keeps two generations of dicts (a lock-free approximation of LRU:
  an entry survives as long as it is hit at least once per half-capacity
  insertions); only inserts and promotions take a lock.
- **Fail closed.** A malformed request raises ``RuneRequestError`` before
  anything is evaluated. Anything that goes wrong *while deciding* (a limit,
  a bug, an exception from a data layer) produces ``deny`` with the error in
  ``Decision.errors`` and is never cached.

Around this module, in the same layer: ``request_data.py`` (the per-request
views of the data policies read), ``building.py`` (request dependence, the
paused collector, locating build errors), ``test_report.py`` (``TestResult``),
``request.py`` (request parsing), ``engine_data.py`` (the snapshots and
request plans built from the model), ``request_plans/`` and
``decision_cache.py``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Union

from .lang import ast as A
from .errors import RuneError, RuneRequestError
from .limits import DEFAULT_LIMITS, Limits
from .policy.codegen import generate_test
from .policy.decision import Decision
from .policy.policies import (
    PolicyGenerator,
    CRecord,
    OverlayData,
    PolicySet,
    compile_policies,
    context_rows,
)
from .request_plans import STEP_BUDGET
from .engine_data import request_plans as _request_plans, static_data as _static_data
from .request_link import route as _route, runner as _runner
from .request_link import without_request_plans as _without_request_plans  # noqa: F401 (tests, benchmarks)
from .analysis.locate import Provenance
from .decision_cache import DecisionCache as _DecisionCache
from .decision_cache import NoCache as _NoCache
from .request import (
    EMPTY_CONTEXT as _EMPTY_CONTEXT,
    RequestEntities as _RequestEntities,
    batch_arguments as _batch_arguments,
    budget_for,
    flat_context_within as _flat_context_within,
    freeze as _freeze,
    parse_context,
    parse_entities,
    parse_entity,
)
from .values import Entity
from .request_data import _LazyModel, _PlanShared, _PlannedRelations, _RequestRelations
from .building import _closure, _gc_paused, _locate_unlocated, _reads_context
from .test_report import TestResult

if TYPE_CHECKING:  # pragma: no cover
    from .analysis.explain import Explanation
    from .analysis.search import SearchPage

__all__ = [
    "Decision",
    "TestResult",
    "Engine",
    "load",
    "load_text",
    "parse_entity",
    "ENGINE_ERROR_ID",
]

#: The "policy id" under which engine-level failures are reported in
#: ``Decision.errors`` (a limit hit while evaluating rules, an internal error).
ENGINE_ERROR_ID = "<engine>"

#: The entity memo (raw principal/action/resource -> Entity) and the plan
#: memos keep only entities whose type and id are at most MEMO_MAX_ID
#: characters, at most ENTITY_MEMO_ENTRIES of them: bounded in bytes.
MEMO_MAX_ID = 64
ENTITY_MEMO_ENTRIES = 32768

_REQUEST_VARS = frozenset(("principal", "action", "resource", "context"))
_ENTITY_FACTS = frozenset(("parent", "attr"))


# ---------------------------------------------------------------------------
# The engine


class Engine:
    """An immutable compiled bundle. Build it with ``load`` or ``load_text``.

    Thread-safe: share one engine between all threads; reload by building a
    new one (``PolicyStore`` does that).
    """

    __slots__ = (
        "tests",
        "rules",
        "limits",
        "version",
        "watched_paths",
        "file_digests",
        "metadata",
        "info",
        "policies",
        "_compiled",
        "_model",
        "_static",
        "_cache",
        "_decisions",
        "_ent_memo",
        "_plans",
        "_routes",
        "_core_dep",
        "_entity_dep",
        "_dynamic_hierarchy",
        "_entity_hierarchy",
        "_sealed",
        "_side_facts",
        "_full_model",
        "_req_plans",
        "_planned",
        "_linking",
        "_linked",
        "_fused",
        "_flat_limits",
        "_provenance",
        "__weakref__",
    )

    def __init__(
        self,
        bundle: A.Bundle,
        *,
        cache_size: int = 4096,
        limits: Limits = DEFAULT_LIMITS,
        strict_forbid: bool = False,
        policy_generator: Optional[PolicyGenerator] = None,
    ) -> None:
        from .lang.checks import check_program
        from .datalog.compiler import CompiledProgram
        from .datalog.program import Model, intern_facts
        from .datalog.symbols import Symbols

        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0, got {cache_size!r}")
        # The bundle itself is not kept: its fact rows would double the memory
        # of a big data set for the engine's whole life.
        self.tests: tuple[A.EmbeddedTest, ...] = bundle.tests
        self.rules: tuple[A.Rule, ...] = bundle.rules
        self.limits = limits
        self.version: str = bundle.content_hash
        self.watched_paths: tuple[str, ...] = tuple(bundle.watched_paths)
        self.file_digests: tuple[tuple[str, str], ...] = tuple(bundle.file_digests)
        self.metadata = bundle.metadata
        self.info = info = check_program(bundle.facts, bundle.rules, bundle.policies)

        self.policies: PolicySet = compile_policies(bundle.policies, strict_forbid, policy_generator or generate_test)
        extra_indexes = {(rel, tuple(i for i, b in enumerate(mask) if b)) for rel, mask in self.policies.patterns}
        extra_indexes |= {("parent", (0,)), ("attr", (0,)), ("attr", (0, 1))}
        extra_indexes |= {(rel, (0,)) for rel in self.policies.relations}
        self._compiled = compiled = CompiledProgram(bundle.rules, info, limits, sorted(extra_indexes))
        symbols = Symbols(compiled.symbols)
        facts: dict[str, list] = {}
        for fs in bundle.facts:
            facts.setdefault(fs.relation, []).extend(fs.rows)
        facts = {k: v for k, v in facts.items() if k in compiled.slot_of}
        given = dict(facts)  # rows as given (values), for the per-request plans
        # where facts came from, for explanations (small; rows located on demand)
        self._provenance = Provenance(bundle, facts, info.idb)
        # parent/attr facts that no rule and no relation call reads are only
        # needed by the policy layer's own snapshot: keep them out of the
        # core (they are often most of the data). ``query`` still sees them.
        # Not when rules derive parent/attr (from the request or from
        # request-supplied parent/attr): the request's model then answers
        # ``in`` and attribute reads, so it must hold every stored fact.
        read = set(self.policies.relations).union(*info.depends_on.values()) if info.depends_on else set(self.policies.relations)
        derived_entity_facts = bool(_ENTITY_FACTS & set(info.idb))
        side = {} if derived_entity_facts else {
            k: facts.pop(k) for k in _ENTITY_FACTS if k in facts and k not in read and k not in info.idb
        }
        db = compiled.evaluate(intern_facts(compiled, facts, symbols, "data"), symbols)
        self._model = model = Model(compiled, db)
        self._side_facts = side
        self._full_model: list = []

        # Which relations change with the request (docs/language.md §4, request relations).
        deps = dict(info.depends_on)
        self._core_dep = _closure(deps, _REQUEST_VARS)
        self._entity_dep = _closure(deps, _ENTITY_FACTS) | _ENTITY_FACTS
        self._dynamic_hierarchy = bool(_ENTITY_FACTS & self._core_dep)
        self._entity_hierarchy = bool(_ENTITY_FACTS & _closure(deps, _ENTITY_FACTS))

        # What requests read (rune_fast/engine_data.py).
        self._static = _static_data(compiled, model, self.policies, side)

        # A limit tighter than the plans' own budget is the general evaluator's to apply.
        self._req_plans = _request_plans(
            compiled, model, info, self.policies, self._core_dep, bundle.rules, side, given
        ) if limits.max_request_tuples >= STEP_BUDGET else None
        self._planned = None if self._req_plans is None else \
            _PlanShared(self, self._static, self._req_plans, self._core_dep)

        # Policies re-generated to read this engine's data directly on the
        # common path (rune_fast/request_link.py); not with a custom generator.
        self._linking = policy_generator is None
        self._linked: dict = {}  # policy index -> its linked test
        self._fused: dict = {}  # candidate indexes -> the selection fused (at most FUSED_SELECTIONS)
        #: flat_context_within's limits for a request's context
        self._flat_limits = (limits.max_value_depth, limits.max_string_length,
                             limits.max_request_values, limits.max_request_chars)

        self._cache: Any = _DecisionCache(cache_size) if cache_size else _NoCache()
        self._decisions: dict = {}
        self._ent_memo: dict = {}
        self._plans: dict = {}
        self._routes: dict = {}  # raw (principal, action, resource) -> _route
        self._sealed = True

    def __setattr__(self, name: str, value: Any) -> None:
        # Immutable once built: sharing between threads relies on it.
        if getattr(self, "_sealed", False):
            raise AttributeError(f"Engine is immutable (cannot set {name!r}); build a new one to change it")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Engine is immutable")

    # -- public properties ---------------------------------------------------------

    @property
    def model(self) -> Any:
        """The precomputed (request-independent) Datalog model, every fact included."""
        if not self._side_facts:
            return self._model
        if not self._full_model:
            # parent/attr rows kept out of the core (see __init__) are laid
            # over the model as an overlay; no rule reads them, so nothing
            # needs re-deriving. Built once; a race builds two equal models.
            self._full_model.append(self._model.with_request(self._side_facts))
        return self._full_model[0]

    @property
    def diagnostics(self) -> list[str]:
        """Rule evaluation problems found while building (overflow, division by zero)."""
        return self._model.diagnostics

    @property
    def reads_context(self) -> bool:
        """Whether any policy can read ``context`` (directly or through rules).

        ``False`` guarantees that ``authorize(p, a, r, context)`` answers as
        ``authorize(p, a, r)`` for every valid context, so a caller (the
        middleware) need not build one. Computed on each access: cache it.
        """
        return _reads_context((p.policy for p in self.policies), self.info.depends_on)

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.policies)

    @property
    def cache_size(self) -> int:
        return self._cache.capacity

    def cache_len(self) -> int:
        """Number of decisions currently cached."""
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()

    def __repr__(self) -> str:
        return (
            f"<Engine version={self.version[:12]} policies={len(self.policies)} "
            f"rules={len(self.rules)} cache={self._cache.capacity}>"
        )

    # -- authorize -------------------------------------------------------------------

    def authorize(
        self,
        principal: Any,
        action: Any,
        resource: Any,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Any]] = None,
    ) -> Decision:
        """Decide one request (docs/language.md §5 and §6).

        Entities may be ``Entity``, ``("User", "alice")`` or
        ``'User::"alice"'``; ``context`` a JSON-like dict; ``entities`` a list
        of Cedar-JSON entities (``uid``, ``attrs``, ``parents``) that
        override/extend attributes and parents for this request only.
        Raises ``RuneRequestError`` for a malformed request; never raises
        while deciding (fails closed to deny).
        """
        if context is None and entities is None:
            key = (principal, action, resource)
            try:
                hit = self._cache.get(key)
            except TypeError:  # unhashable input: validation will say why
                return self._authorize_slow(principal, action, resource, None, None, None)
            if hit is not None:
                return hit
            return self._authorize_plain(principal, action, resource, key)
        if entities is None and type(context) is dict and not self._cache.capacity:
            # Uncached, with a context: _authorize_slow's fast path, inline.
            try:
                route = self._routes.get((principal, action, resource))
            except TypeError:
                route = None
            if route is not None and context:
                flat = _flat_context_within(context, self._flat_limits)
                if flat is not None:
                    return self._finish(route, flat[0], None, flat[1])
        return self._authorize_slow(principal, action, resource, context, entities, None)

    def _authorize_plain(self, principal: Any, action: Any, resource: Any, key: tuple) -> Decision:
        """A cache miss without context or request entities: the common case,
        kept to a few dict lookups around the policy run."""
        try:
            route = self._routes.get(key)  # ``key`` is the raw triple
        except TypeError:  # unhashable (a dict entity; cache_size=0 hashes nothing)
            return self._authorize_slow(principal, action, resource, None, None, None)
        if route is None:
            route = _route(self, principal, action, resource)
            if route is None:
                return self._authorize_slow(principal, action, resource, None, None, key)
        cache = self._cache
        if cache.capacity:
            hit = cache.get_old(key)
            if hit is not None:
                return hit
        return self._finish(route, _EMPTY_CONTEXT, key, None)

    def _authorize_slow(self, principal: Any, action: Any, resource: Any, context: Any, entities: Any, key: Any) -> Decision:
        cache = self._cache
        if key is None and cache.capacity:
            try:
                key = (principal, action, resource, _freeze(context), None if entities is None else _freeze(entities))
                hit = cache.get(key)
            except (TypeError, RecursionError):  # validation below says what is wrong
                key = hit = None
            if hit is not None:
                return hit
        if key is not None and cache.capacity:
            hit = cache.get_old(key)
            if hit is not None:
                return hit
        if entities is None and type(context) is dict:
            # The common request with a context: entities already seen and a
            # flat context, converted in one pass (anything else, including
            # every invalid request, takes the full parse below, which
            # reports errors in its usual order).
            route = _route(self, principal, action, resource)
            if route is not None:
                if not context:
                    return self._finish(route, _EMPTY_CONTEXT, key, None)
                flat = _flat_context_within(context, self._flat_limits)
                if flat is not None:
                    return self._finish(route, flat[0], key, flat[1])
        p, a, r, ctx, ents = self._parse_request(principal, action, resource, context, entities)
        return self._answer(p, a, r, ctx, ents, key)

    def _answer(self, p: Entity, a: Entity, r: Entity, ctx: Any, ents: Any, key: Any, cx: Optional[dict] = None) -> Decision:
        """Run the policies on a parsed request and answer with a shared
        Decision (``_finish``; the general path for request entities or a
        hierarchy derived from the request). ``cx``: the context's facts in
        key form when the caller has them (see ``_evaluate``)."""
        if ents is None and not self._dynamic_hierarchy:
            plan = self._plans.get((a, p[0], r[0]))
            if plan is None:
                plan = self._plan(p, a, r)
            return self._finish((p, a, r) + plan, ctx, key, cx)
        try:
            out = self._evaluate(p, a, r, ctx, ents, cx)
        except Exception as e:
            return self._failed(e)
        return self._decided(out, key)

    def _finish(self, route: tuple, ctx: Any, key: Any, cx: Optional[dict]) -> Decision:
        """Run a route's selection (``_route``) on a request without entities.

        With ``_answer``, the one place that turns an evaluation into a
        decision for every authorize path, so they cannot drift apart: a
        failure fails closed and is never cached; otherwise the cached
        variant is stored under ``key`` (``None``: not cacheable, e.g.
        unhashable context)."""
        p, a, r, run, dyn, bare = route
        try:
            if bare:
                out = run(p, a, r, ctx, cx)
            elif dyn is None:
                out = run(p, a, r, ctx, self._static)
            elif self._planned is not None:
                out = run(p, a, r, ctx, _PlannedRelations(self._planned, p, a, r, ctx, cx))
            else:
                out = self._evaluate(p, a, r, ctx, None, cx)
        except Exception as e:
            return self._failed(e)
        pair = self._decisions.get(out)
        if pair is None:
            pair = self._decision_pair(out)
        if key is not None and self._cache.capacity:
            self._cache.put(key, pair[1])
        return pair[0]

    def _decided(self, out: tuple, key: Any) -> Decision:
        pair = self._decisions.get(out)
        if pair is None:
            pair = self._decision_pair(out)
        if key is not None and self._cache.capacity:
            self._cache.put(key, pair[1])
        return pair[0]

    def _failed(self, exc: BaseException) -> Decision:
        """Fail closed: deny, report, never cache."""
        if isinstance(exc, RuneError):
            msg = exc.message
        else:
            msg = f"internal error: {type(exc).__name__}: {exc}"
        return Decision("deny", False, (), ((ENGINE_ERROR_ID, msg),), False, self.version)

    def _decision_pair(self, out: tuple) -> tuple[Decision, Decision]:
        """(uncached, cached) Decisions for an outcome, shared between requests
        (a decision is immutable), so that answering allocates nothing."""
        kind, reasons, errors = out
        allowed = kind == "permit"
        pair = (
            Decision(kind, allowed, reasons, errors, False, self.version),
            Decision(kind, allowed, reasons, errors, True, self.version),
        )
        # Outcomes with long error messages (they may quote request values)
        # are not kept: the memo stays small in bytes.
        if len(self._decisions) < 4096 and sum(len(m) for _, m in errors) <= 1024:
            self._decisions[out] = pair
        return pair

    def _entity(self, x: Any, field: str) -> Entity:
        memo = self._ent_memo
        try:
            e = memo.get(x)
        except TypeError:
            e = None
        if e is None:
            e = parse_entity(x, field, self.limits)
            # Bounded in bytes, not only entries: only short raw forms are
            # kept (long ids are parsed again; they are rare and bounded by
            # max_id_length), so the memo holds at most ~10 MB.
            if len(memo) < ENTITY_MEMO_ENTRIES and len(e.id) <= MEMO_MAX_ID and len(e.type) <= MEMO_MAX_ID:
                try:
                    memo[x] = e
                except TypeError:
                    pass
        return e

    def _parse_request(self, principal: Any, action: Any, resource: Any, context: Any, entities: Any) -> tuple:
        p = self._entity(principal, "principal")
        a = self._entity(action, "action")
        r = self._entity(resource, "resource")
        budget = budget_for(self.limits)
        ctx = parse_context(context, self.limits, budget)
        ents = parse_entities(entities, self.limits, budget)
        return p, a, r, ctx, ents

    def _decide(self, p: Entity, a: Entity, r: Entity, ctx: CRecord, ents: Optional[_RequestEntities]) -> tuple:
        """``(decision, reasons, errors)`` of a parsed request; never raises."""
        try:
            return self._evaluate(p, a, r, ctx, ents)
        except Exception as e:
            d = self._failed(e)
            return (d.decision, d.reasons, d.errors)

    def _evaluate(
        self, p: Entity, a: Entity, r: Entity, ctx: CRecord, ents: Optional[_RequestEntities], cx: Optional[dict] = None
    ) -> tuple:
        """``(decision, reasons, errors)``; ``cx``, when given, must be
        ``ctx``'s ``context(K, V)`` facts in key form (``RequestState.cx``)."""
        policies = self.policies
        static = self._static
        has_ents = ents is not None and bool(ents.parents or ents.attrs)
        if not has_ents and not self._dynamic_hierarchy:
            plan = self._plans.get((a, p[0], r[0]))
            if plan is None:
                plan = self._plan(p, a, r)
            run, dyn, bare = plan
            if dyn is None:
                return run(p, a, r, ctx, static)
            if bare:
                return run(p, a, r, ctx, cx)
            planned = self._planned
            if planned is not None:
                return run(p, a, r, ctx, _PlannedRelations(planned, p, a, r, ctx, cx))
            lazy = _LazyModel(self, p, a, r, ctx, None)
            return run(p, a, r, ctx, _RequestRelations(static, dyn, lazy))
        # Request entities and/or a hierarchy that rules derive per request.
        data = OverlayData(static, ents.parents if ents else None, ents.attrs if ents else None)
        lazy = _LazyModel(self, p, a, r, ctx, ents)
        if self._dynamic_hierarchy or (has_ents and self._entity_hierarchy):
            # Rules derive parent/attr from the request: read them from its model.
            data.hierarchy = lazy.model()
        sel = policies.candidates(p, a, r, data)
        dep = self._core_dep | self._entity_dep if has_ents else self._core_dep
        for n in sel[2] & dep:
            data.rels[n] = lazy
        return policies.run(sel, p, a, r, ctx, data)

    def _plan(self, p: Entity, a: Entity, r: Entity) -> tuple:
        """(``run(p, a, r, c, d)`` deciding the candidate selection,
        request-dependent relations it calls or None, ``bare``) for an
        (action, principal type, resource type) under the static hierarchy;
        memoized (a complete value per key, so no lock). ``run`` is the
        selection fused into one function when it is small and has no
        ``principal ==`` policies, else ``PolicySet.run`` over its linked
        tests; ``bare``: fused without the plans' per-request state, ``run``
        takes the context's facts (or None) as ``d`` (``request_link.runner``)."""
        sel = self.policies.candidates(p, a, r, self._static)
        dyn = sel[2] & self._core_dep
        run, bare = _runner(self, sel)
        plan = (run, dyn or None, bare and bool(dyn))
        if len(self._plans) < 16384 and len(a.id) <= MEMO_MAX_ID:
            self._plans[(a, p[0], r[0])] = plan
        return plan

    def _request_model(self, p: Entity, a: Entity, r: Entity, ctx: CRecord, ents: Optional[_RequestEntities]) -> Any:
        """The Datalog model of this request: the static model plus the
        request relations (docs/language.md §4), evaluated by the core with this
        engine's limits (``max_request_tuples``, ``deadline_ms``)."""
        return self._with_request([(p,)], [(a,)], [(r,)], ctx, ents)

    def _with_request(self, p_rows: list, a_rows: list, r_rows: list, ctx: CRecord, ents: Optional[_RequestEntities]) -> Any:
        slots = self._compiled.slot_of
        facts: dict[str, list] = {"principal": p_rows, "action": a_rows, "resource": r_rows, "context": context_rows(ctx)}
        if ents is not None:
            facts["parent"] = ents.parent_rows
            facts["attr"] = ents.attr_rows
        return self._model.with_request({k: v for k, v in facts.items() if v and k in slots})

    # -- batch -----------------------------------------------------------------------------

    def authorize_batch(self, requests: Iterable[Any]) -> list[Decision]:
        """Decide several requests; every request is validated before any is decided.

        A request is a dict with ``principal``, ``action``, ``resource`` and
        optional ``context``/``entities``, or a tuple ``(principal, action,
        resource[, context[, entities]])``. A malformed one raises
        ``RuneRequestError`` whose field names its position.
        """
        items = []
        for i, req in enumerate(requests):
            args = _batch_arguments(i, req)
            try:
                parsed = self._parse_request(*args)
            except RuneRequestError as e:
                raise RuneRequestError(f"requests[{i}]: {e.message}", field=f"requests[{i}].{e.field}") from None
            items.append((args, parsed))
        # Every request is valid: decide each from its parsed form (no second
        # parse), with the same cache keys as ``authorize``.
        cache = self._cache
        out = []
        for args, parsed in items:
            key = None
            if cache.capacity:
                try:
                    key = args[:3] if args[3] is None and args[4] is None else (
                        args[0], args[1], args[2], _freeze(args[3]), _freeze(args[4]))
                    hit = cache.get(key)
                except (TypeError, RecursionError):
                    key = hit = None
                if hit is not None:
                    out.append(hit)
                    continue
            out.append(self._answer(*parsed, key))
        return out

    # -- embedded tests ----------------------------------------------------------------------

    def run_tests(self) -> list[TestResult]:
        """Run the bundle's ``[tests.*]`` (bypassing the cache); one result per test."""
        results = []
        for t in self.tests:
            try:
                p, a, r, ctx, ents = self._parse_request(t.principal, t.action, t.resource, t.context, t.entities)
                kind, reasons, errors = self._decide(p, a, r, ctx, ents)
            except RuneRequestError as e:
                kind, reasons, errors = "deny", (), ((ENGINE_ERROR_ID, f"bad test request: {e.message}"),)
            results.append(TestResult(t.name, kind == t.expect, t.expect, kind, reasons, errors,
                                      t.loc.file, t.loc.line, t.loc.col))
        return results

    # -- query -------------------------------------------------------------------------------

    def query(
        self,
        atom_text: str,
        *,
        principal: Any = None,
        action: Any = None,
        resource: Any = None,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Any]] = None,
    ) -> list[dict[str, Any]]:
        """Answer a Datalog atom such as ``can(User::"alice", A, D)``.

        Without request arguments the precomputed model answers; with any of
        them, the request's own model (its derivations included). Returns
        one dict of variable bindings per distinct match.
        """
        if principal is None and action is None and resource is None and context is None and entities is None:
            return self.model.query(atom_text)
        p = self._entity(principal, "principal") if principal is not None else None
        a = self._entity(action, "action") if action is not None else None
        r = self._entity(resource, "resource") if resource is not None else None
        budget = budget_for(self.limits)
        ctx = parse_context(context, self.limits, budget)
        ents = parse_entities(entities, self.limits, budget)
        model = self._request_model_partial(p, a, r, ctx, ents)
        return model.query(atom_text)

    # -- search and explain (rune_fast/search.py, rune_fast/explain.py) ------------------

    def search_resources(
        self,
        principal: Any,
        action: Any,
        resource_type: str,
        *,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Any]] = None,
        within: Any = None,
        limit: int = 100,
        page_token: Optional[str] = None,
    ) -> "SearchPage":
        """Entities of ``resource_type`` that ``principal`` may do ``action`` on
        (optionally only those ``in`` the entity ``within``): exactly those
        for which ``authorize`` permits. Sorted by (type, id), ``limit`` per
        page; pass ``next_token`` back as ``page_token`` for the next page.
        Raises ``RuneRequestError`` for a malformed request or token."""
        from .analysis.search import search_resources

        return search_resources(self, principal, action, resource_type, context=context, entities=entities,
                                within=within, limit=limit, page_token=page_token)

    def search_subjects(
        self,
        action: Any,
        resource: Any,
        principal_type: str,
        *,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Any]] = None,
        limit: int = 100,
        page_token: Optional[str] = None,
    ) -> "SearchPage":
        """Principals of ``principal_type`` that may do ``action`` on ``resource``."""
        from .analysis.search import search_subjects

        return search_subjects(self, action, resource, principal_type, context=context, entities=entities,
                               limit=limit, page_token=page_token)

    def search_actions(
        self,
        principal: Any,
        resource: Any,
        *,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Any]] = None,
        limit: int = 100,
        page_token: Optional[str] = None,
    ) -> "SearchPage":
        """Actions (entities of type ``Action`` or ``Ns::Action``) ``principal`` may do on ``resource``."""
        from .analysis.search import search_actions

        return search_actions(self, principal, resource, context=context, entities=entities,
                              limit=limit, page_token=page_token)

    def explain(
        self,
        principal: Any,
        action: Any,
        resource: Any,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Any]] = None,
    ) -> "Explanation":
        """The decision for a request and why: the determining policies with
        proof trees of the facts their conditions used, or for a deny the
        first failing scope constraint or clause of each permit that could
        apply. Built on demand (nothing is recorded while authorizing);
        ``.to_dict()`` is JSON-ready, ``.render()`` an indented tree."""
        from .analysis.explain import explain

        return explain(self, principal, action, resource, context, entities)

    def _request_model_partial(self, p: Any, a: Any, r: Any, ctx: CRecord, ents: Any) -> Any:
        return self._with_request([(p,)] if p is not None else [], [(a,)] if a is not None else [],
                                  [(r,)] if r is not None else [], ctx, ents)


# ---------------------------------------------------------------------------
# Loading


def load(
    path_or_dir: Union[str, "os.PathLike[str]"],
    *,
    cache_size: int = 4096,
    recursive: bool = False,
    strict_forbid: bool = False,
    policy_generator: Optional[PolicyGenerator] = None,
    source_roots: Sequence[Union[str, "os.PathLike[str]"]] = (),
    manifest: str = "auto",
    settle: float = 0.0,
    **limits: Any,
) -> Engine:
    """Build an engine from a ``.rune`` file or a directory of them (a bundle).

    ``**limits`` are ``Limits`` fields (``max_tuples=...``, ``deadline_ms=...``);
    an unknown name is a ``TypeError``. ``strict_forbid=True``: a ``forbid``
    whose condition errors denies (Cedar skips it; docs/policies.md).
    ``policy_generator`` replaces the policy compiler (tests pass their
    reference evaluator; production never needs it). File options
    (docs/security.md, docs/reload.md): ``source_roots`` allow-lists
    directories outside the bundle for ``[sources]``; ``manifest``
    (``"auto"``, ``"require"``, ``"off"``) checks ``rune.manifest``;
    ``settle`` (seconds) refuses files that are still changing. Raises
    ``RuneError`` (``RuneErrors`` for several problems) for anything wrong
    with the files.
    """
    from .lang import parser

    lim = Limits.from_kwargs(**limits)
    with _gc_paused():
        bundle = parser.load_bundle(
            path_or_dir, recursive=recursive, limits=lim, source_roots=source_roots, manifest=manifest, settle=settle
        )
        try:
            return Engine(
                bundle, cache_size=cache_size, limits=lim, strict_forbid=strict_forbid, policy_generator=policy_generator
            )
        except RuneError as e:
            _locate_unlocated(e, bundle, os.fspath(path_or_dir))
            raise


def load_text(
    text: str,
    *,
    cache_size: int = 4096,
    path: str = "<string>",
    base_dir: Optional[str] = None,
    strict_forbid: bool = False,
    policy_generator: Optional[PolicyGenerator] = None,
    source_roots: Sequence[Union[str, "os.PathLike[str]"]] = (),
    **limits: Any,
) -> Engine:
    """Build an engine from the text of one ``.rune`` file (``[sources]``
    paths are relative to ``base_dir``, default the current directory, and
    confined to it plus the allow-listed ``source_roots``); options as for
    ``load``."""
    from .lang import parser

    lim = Limits.from_kwargs(**limits)
    with _gc_paused():
        bundle = parser.bundle_from_text(text, path, limits=lim, base_dir=base_dir, source_roots=source_roots)
        return Engine(bundle, cache_size=cache_size, limits=lim, strict_forbid=strict_forbid, policy_generator=policy_generator)
