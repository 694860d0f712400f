"""The data an engine precomputes from its model for the request path.

Building an ``Engine`` (``engine.py``) does two things: it compiles and
evaluates the bundle, and it lays the result out for fast reads. The second
part is here, apart from the engine's request handling, because it is
build-time only and has one job — turn the precomputed Datalog model into
what a request reads:

- ``static_data``: the policy layer's ``FactData`` — the hierarchy and
  attributes as dicts, every relation a policy calls as a frozenset of rows
  (or, beyond ``SNAPSHOT_LIMIT`` rows, a lazily filled trie over the
  model's own index: memory over a few 100 ns per call), and the
  projections the policies' ``_`` patterns probe;
- ``request_plans``: the demand-driven plans (``request_plans/``) for the
  request-dependent relations policies call, reading the same snapshots.

Nothing here keeps a reference to the engine.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence

from .lang import ast as A
from .policy.policies import FactData, PolicySet, trie_probe
from .request_plans import RequestPlans

__all__ = ["SNAPSHOT_LIMIT", "static_data", "request_plans"]

#: Relations the core may answer through its own index instead of a Python
#: snapshot when they are bigger than this (memory over a few 100 ns).
SNAPSHOT_LIMIT = 200_000


def static_data(compiled: Any, model: Any, policies: PolicySet, side: dict) -> FactData:
    """The request-independent data policies read. ``side``: the parent/attr
    rows kept out of the core (``Engine.__init__``), by relation."""

    def rel_rows(name: str) -> Iterable[tuple]:
        # attr rows go as they are (FactData.from_facts copes with
        # repeated rows without hashing every row into a set)
        if name in side:
            return side[name] if name == "attr" else frozenset(side[name])
        return model.relation(name) if name in compiled.slot_of else frozenset()

    # Relations policies call: small ones as frozensets of rows, big ones
    # (beyond SNAPSHOT_LIMIT rows) as lazily filled tries over the
    # model's index on the first column.
    snapshots: dict[str, frozenset] = {}
    probes: dict = {}
    for name in policies.relations:
        if name not in compiled.slot_of:
            snapshots[name] = frozenset()
            continue
        arity = compiled.rel(name).arity
        if arity < 2 or model.size(name) <= SNAPSHOT_LIMIT:
            snapshots[name] = model.relation(name)
        else:
            # calls with `_` go to the model, which has an index on the
            # bound columns (the engine's extra_indexes)
            probes[name] = trie_probe(_matcher(model, name), arity)
    static = FactData.from_facts(rel_rows("parent"), rel_rows("attr"), snapshots, fallback=model, probes=probes)
    for rel, mask in policies.patterns:
        if rel in snapshots:
            static.build_projection(rel, mask)
    return static


def _matcher(model: Any, name: str) -> Callable[[tuple], Any]:
    return lambda prefix: model.match(name, prefix)


def request_plans(
    compiled: Any, model: Any, info: Any, policies: PolicySet, core_dep: frozenset,
    rules: Sequence[A.Rule], side: dict, given: dict,
) -> Optional[RequestPlans]:
    """Demand-driven plans for the request-dependent relations (``core_dep``)
    policies call (``rune_fast/request_plans/``); None when there are none.
    ``given``: the stored rows as written in the bundle, by relation."""
    questions = [(rel, (True,) * compiled.rel(rel).arity)
                 for rel in policies.relations if rel in core_dep and rel in compiled.slot_of]
    questions += [(rel, mask) for rel, mask in policies.patterns if rel in core_dep]
    if not questions:
        return None
    recursive = frozenset(
        compiled.rels[slot].name
        for st in compiled.strata if st.recursive
        for slot in st.relations if compiled.rels[slot].name in core_dep
    )

    def static_rows(name: str) -> Optional[Sequence[tuple]]:
        if name in side:
            return list(side[name])
        if name not in compiled.slot_of:
            return []
        if model.size(name) > SNAPSHOT_LIMIT:
            return None
        rows: Sequence[tuple] = model.rows(name)
        return rows

    plans = RequestPlans(rules, info.rule_info, core_dep, recursive, info.arities,
                         static_rows, lambda name: list(given.get(name, ())), questions)
    return plans if plans.matches else None
