"""The per-request view of the data that policies read (``PolicyData`` for one request).

An engine precomputes everything that does not depend on the request; a
request whose policies call a request-dependent relation needs a view that
answers those relations for *this* request and everything else from the
static data.  The engine's decision path picks one of these views per
request; they are kept apart from ``engine.py`` because they are the one
place where the three evaluators meet: the static snapshot (``FactData``),
the demand-driven plans (``request_plans/``) and the general Datalog
evaluator (the request's full model, built lazily and only when a question
has no plan or the plans run out of budget).

- ``_LazyModel``: the request's Datalog model, built on first use.
- ``_RequestRelations``: static data plus the lazy model.
- ``_PlanShared`` / ``_PlannedRelations``: the planned path, shared part and
  per-request state.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Optional

from .policy.policies import CRecord, FactData, unkey_row
from .request_plans import STEP_BUDGET, Fallback, RequestPlans, RequestState
from .values import Entity

if TYPE_CHECKING:  # pragma: no cover - annotations only; the engine imports this module
    from .engine import Engine


class _LazyModel:
    """The request's Datalog model, built on first use.

    Policies usually test cheap things first (``classified(resource)``
    before ``cleared(principal, resource)``), so many requests never need
    their per-request derivations at all. Errors (a limit) propagate: they
    are not policy errors, and the engine fails closed on them.
    """

    __slots__ = ("engine", "args", "_model")

    def __init__(self, engine: "Engine", *args: Any) -> None:
        self.engine = engine
        self.args = args
        self._model: Any = None

    def model(self) -> Any:
        m = self._model
        if m is None:
            m = self._model = self.engine._request_model(*self.args)
        return m

    def contains(self, relation: str, row: tuple) -> bool:
        m = self._model
        if m is None:
            m = self.model()
        return m.contains(relation, row)


class _RequestRelations:
    """``PolicyData`` for a request without entities: the static data, except
    for the relations that depend on the request (answered by its model)."""

    __slots__ = ("base", "rels", "lazy")

    def __init__(self, base: FactData, rels: frozenset, lazy: _LazyModel) -> None:
        self.base = base
        self.rels = rels
        self.lazy = lazy

    def is_in(self, entity: Entity, target: Entity) -> bool:
        return self.base.is_in(entity, target)

    def ancestors(self, entity: Entity) -> frozenset:
        return self.base.ancestors(entity)

    def get_attr(self, entity: Entity, name: str) -> Any:
        return self.base.get_attr(entity, name)

    def contains(self, relation: str, row: tuple) -> bool:
        if relation in self.rels:
            return self.lazy.contains(relation, unkey_row(row))
        return self.base.contains(relation, row)

    def matches(self, relation: str, row: tuple) -> bool:
        if relation in self.rels:
            return self.lazy.contains(relation, unkey_row(row))
        return self.base.matches(relation, row)


class _PlanShared:
    """What all requests of one engine share on the planned path. It refers
    to its engine weakly (only a fallback needs it): no reference cycle, so
    a replaced engine is freed by reference counting alone."""

    __slots__ = ("engine", "base", "exists", "matches", "dependent", "probes")

    def __init__(self, engine: "Engine", base: FactData, plans: RequestPlans, dependent: frozenset) -> None:
        self.engine = weakref.ref(engine)
        self.base = base
        self.exists = plans.exists
        self.matches = plans.matches
        self.dependent = dependent
        #: relation -> probe(row) for the request-independent relations whose
        #: rows the static data holds: exactly ``base.contains`` for them,
        #: one call shorter.
        self.probes = {rel: f for rel, f in base.probes().items() if rel not in dependent}


class _PlannedRelations(RequestState):
    """``PolicyData`` for a request without entities whose policies call
    request-dependent relations: answered by the engine's demand-driven plans
    (``rune_fast/request_plans/``), this object being their per-request state; a
    question without a plan, or a request that exhausts the plans' step
    budget, goes to the general evaluator (the request's full model)."""

    __slots__ = ("sh", "lazy")

    def __init__(self, sh: _PlanShared, p: Entity, a: Entity, r: Entity, ctx: CRecord, cx: Optional[dict] = None) -> None:
        self.p = p
        self.a = a
        self.r = r
        self.ctx = ctx
        self.cx = cx  # None: built on first use (load_cx)
        self.memo = None  # made by the first plan that memoizes
        self.budget = STEP_BUDGET
        self.sh = sh
        self.lazy = None

    def is_in(self, entity: Entity, target: Entity) -> bool:
        return self.sh.base.is_in(entity, target)

    def ancestors(self, entity: Entity) -> frozenset:
        return self.sh.base.ancestors(entity)

    def get_attr(self, entity: Entity, name: str) -> Any:
        return self.sh.base.get_attr(entity, name)

    def contains(self, relation: str, row: tuple) -> bool:
        sh = self.sh
        probe = sh.probes.get(relation)
        if probe is not None:
            return probe(row)
        f = sh.exists.get(relation)
        if f is not None and self.budget >= 0:
            try:
                return f(self, *row)
            except Fallback:
                self.budget = -1
        if relation in sh.dependent:
            return self._general(relation, row)
        return sh.base.contains(relation, row)

    def matches(self, relation: str, row: tuple) -> bool:
        sh = self.sh
        f = sh.matches.get(relation)
        if f is not None and self.budget >= 0:
            try:
                return f(self, row)
            except Fallback:
                self.budget = -1
        if relation in sh.dependent:
            return self._general(relation, row)
        return sh.base.matches(relation, row)

    def general(self, relation: str, row: tuple) -> bool:
        """A request-dependent relation answered by the general evaluator
        (linked policy tests call it when a plan falls back)."""
        return self._general(relation, row)

    def _general(self, relation: str, row: tuple) -> bool:
        lazy = self.lazy
        if lazy is None:
            lazy = self.lazy = _LazyModel(self.sh.engine(), self.p, self.a, self.r, self.ctx, None)
        return lazy.contains(relation, unkey_row(row))
