"""The engine's common request path, compiled against the engine's data.

On the common path (no request ``entities``, and no rule derives ``parent``
or ``attr`` from the request: ``Engine._evaluate``'s first branch) every
relation that does not depend on the request, every ancestor and every
attribute is the engine's static data (``FactData``), and the relations
that do are answered by the request plans (``request_plans/``). So the
engine runs each policy *linked* to that data (``policy.codegen.Link``):
generated again to read the relation's row set, the ancestor map and the
attribute records directly, and to call the request plan of its question
shape without the dispatch of ``_PlannedRelations.contains``/``matches``.
A small candidate selection is pasted into one function
(``policy/fused.py``).

Both are made on first use and kept per engine, keyed on what they depend
on and nothing else: a linked test on its policy (``Engine._linked``), a
fused selection on the tuple of its candidate policies (``Engine._fused``,
at most ``FUSED_SELECTIONS``). Neither keeps a reference to the engine (it
is freed by reference counting alone). Explanations and search keep the
plain tests, which read through ``d``. ``tests/test_request_fastpath.py``
checks linked and fused decisions against the plain tests.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Optional

from .errors import RuneError
from .policy.codegen import generate_test
from .policy.link import Link
from .policy.fused import MAX_FUSED, generate_bare_selection, generate_selection
from .request_plans import Fallback, context_facts

if TYPE_CHECKING:  # pragma: no cover - annotations only; the engine imports this module
    from .engine import Engine

__all__ = ["FUSED_SELECTIONS", "ROUTE_ENTRIES", "make_link", "runner", "linked_selection", "route", "without_request_plans"]

#: Fused selections kept per engine (each a generated function): beyond
#: this many distinct candidate sets, new ones run as a loop over linked tests.
FUSED_SELECTIONS = 512

#: Routes (raw principal/action/resource -> entities and plan) kept per engine.
ROUTE_ENTRIES = 16384


def make_link(engine: "Engine") -> Optional[Link]:
    """What linked policies read, or ``None`` when the engine's policies come
    from a custom generator. Made per use, never kept: it refers to the engine."""
    if not engine._linking:
        return None
    static = engine._static
    return Link(partial(_relation, engine), static.ancestor_map(), static.attr_map())


def _relation(engine: "Engine", name: str, mask: tuple) -> Optional[tuple]:
    """How a linked policy reads relation ``name`` (bound positions ``mask``):
    the request plan of that shape for a relation that depends on the
    request, the static rows otherwise; ``None`` (through ``d``) when
    neither applies."""
    if name in engine._core_dep:
        plans = engine._req_plans
        fn = plans.by_mask.get((name, mask)) if plans is not None and engine._planned is not None else None
        if fn is None or plans is None:
            return None
        return ("plan", fn, Fallback, plans.paste_by_mask.get((name, mask)))
    static = engine._static
    rows = static.snapshot(name)
    if not all(mask):  # FactData.matches: the projection of the snapshot
        return None if rows is None else ("proj", static.build_projection(name, mask))
    probe = static.probe(name)  # FactData.contains: the probe
    if probe is None:
        return None
    if rows is not None and probe == rows.__contains__:
        return ("rows", rows)
    return ("probe", probe)


def linked_selection(engine: "Engine", sel: tuple) -> tuple:
    """A candidate selection (``PolicySet.candidates``) with each test
    replaced by its linked twin, made on first use and kept per policy."""
    link = make_link(engine)
    if link is None:
        return sel
    linked = engine._linked
    pols = engine.policies.policies

    def twin(entry: tuple) -> tuple:
        idx, pid, forbid, _test = entry
        fn = linked.get(idx)
        if fn is None:
            pol = pols[idx]
            # a test that reads nothing through ``d`` has nothing to link
            try:
                fn = generate_test(pol.policy, pol.id, link).test if "d." in pol.source else pol.test
            except RuneError:  # pragma: no cover - it compiled unlinked; keep that one
                fn = pol.test
            linked[idx] = fn
        return (idx, pid, forbid, fn)

    general, by_p, rels = sel
    return (
        tuple(twin(e) for e in general),
        None if by_p is None else {k: tuple(twin(e) for e in v) for k, v in by_p.items()},
        rels,
    )


def runner(engine: "Engine", sel: tuple) -> tuple[Callable[..., Any], bool]:
    """``(run, bare)`` for a selection on the common path. ``run(p, a, r, c,
    d) -> (decision, reasons, errors)`` is the selection fused into one
    function when it has at most ``MAX_FUSED`` candidates and no ``principal
    ==`` policies (and fewer than ``FUSED_SELECTIONS`` are kept), else
    ``PolicySet.run`` over its linked tests. ``bare``: ``run`` was fused
    without the request plans' per-request state (every plan it asks is
    pasted, ``fused.generate_bare_selection``) and takes the context's
    facts (or None) in place of ``d``."""
    general, by_p, rels = sel
    link = make_link(engine)
    if link is not None and by_p is None and len(general) <= MAX_FUSED:
        idxs = tuple(e[0] for e in general)
        fused: dict = engine._fused
        got: Optional[tuple] = fused.get(idxs)
        if got is None and len(fused) < FUSED_SELECTIONS:
            pols = engine.policies.policies
            entries = [(pols[i].policy, pols[i].id, pols[i].forbid) for i in idxs]
            strict = engine.policies.strict_forbid
            try:
                fn = None
                if rels & engine._core_dep and engine._planned is not None:
                    fn = generate_bare_selection(entries, link, strict, context_facts)
                got = (fn, True) if fn is not None else (generate_selection(entries, link, strict), False)
            except (RuneError, SyntaxError, RecursionError, MemoryError):  # e.g. nesting: keep the loop
                got = None
            if got is not None:
                fused[idxs] = got
        if got is not None:
            return got
    run: Callable[..., Any] = partial(engine.policies.run, linked_selection(engine, sel))
    return run, False


def route(engine: "Engine", principal: Any, action: Any, resource: Any) -> Optional[tuple]:
    """``(p, a, r, run, dyn, bare)`` (``Engine._plan``) for raw request
    entities already parsed once (in the entity memo), on the common path
    (no rule derives the hierarchy from the request); None otherwise.

    Kept in ``Engine._routes`` on the raw triple, which determines the
    entities and so the plan (nothing else: not the context), so that the
    next request with the same triple finds all of it in one lookup. At most
    ``ROUTE_ENTRIES``; the raw forms are the entity memo's own keys, which
    are short (``MEMO_MAX_ID``)."""
    if engine._dynamic_hierarchy:
        return None
    memo = engine._ent_memo
    try:
        p = memo.get(principal)
        a = memo.get(action)
        r = memo.get(resource)
    except TypeError:
        return None
    if p is None or a is None or r is None:
        return None
    plan = engine._plans.get((a, p[0], r[0]))
    if plan is None:
        plan = engine._plan(p, a, r)
    got = (p, a, r) + plan
    routes = engine._routes
    if len(routes) < ROUTE_ENTRIES:
        routes[(principal, action, resource)] = got
    return got


def without_request_plans(engine: "Engine") -> "Engine":
    """The same engine answering request-dependent relations with the general
    evaluator only (for the differential tests and the benchmarks)."""
    object.__setattr__(engine, "_req_plans", None)
    object.__setattr__(engine, "_planned", None)
    engine._plans.clear()  # selections linked to the plans
    engine._routes.clear()
    engine._linked.clear()
    engine._fused.clear()
    return engine
