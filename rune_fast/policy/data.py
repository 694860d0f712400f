"""The data policies read: ancestry, attributes and relations (``PolicyData``).

Why it is shaped like this:

- **A small interface.** The evaluator reads the world only through
  ``PolicyData`` (``is_in``, ``ancestors``, ``get_attr``, ``contains``,
  ``matches``), so it can be tested with dicts (``FactData``) and backed by
  the Datalog model in the engine.
- **Precomputed once, per request only the difference.** ``FactData`` holds
  the static hierarchy as a transitive closure and attributes as records;
  ``OverlayData`` lays one request's entities, and the request's own Datalog
  model when rules derive ``parent``/``attr`` from the request, over it.
- **Rows in key form.** Relation rows are probed through
  ``rune_fast.values.key_row`` so that ``true``, ``1`` and ``1.0`` stay apart.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from ..graphs import strongly_connected_components
from ..values import Entity, from_key, key_row, unkey_row, value_key
from .values import MISSING, CRecord, CSet, to_value

__all__ = [
    "PolicyData",
    "FactData",
    "OverlayData",
    "ancestor_closure",
    "attribute_records",
    "trie_probe",
    "context_rows",
    "SCALARS",
]

#: The kinds that are facts (``context(K, V)``, ``attr`` rows); sets and
#: records are visible to policies only.
SCALARS = (str, int, float, bool, Entity)
_EMPTY: frozenset = frozenset()


def _needs_keying(rows: Iterable[tuple]) -> bool:
    for r in rows:
        for v in r:
            t = type(v)
            if t is bool or t is float:
                return True
    return False



def attribute_records(attr_rows: Iterable[tuple]) -> dict[Any, CRecord]:
    """``attr(E, Name, V)`` rows -> ``{E: CRecord({Name: V})}``.

    The usual data has one value per (entity, name) and string names: one
    tight loop stores every row, and a count proves that no two rows shared
    an (entity, name) (every row added an entry) and a look at the distinct
    names that all are strings. Otherwise (repeated rows, multi-valued
    attributes, other names) ``_attribute_records_general`` starts over
    on the set of rows. ``tests/test_build_fast_paths.py`` checks both
    against each other.
    """
    rows = attr_rows if type(attr_rows) is list or type(attr_rows) is tuple else list(attr_rows)
    recs: dict = {}
    get = recs.get
    for e, name, v in rows:
        rec = get(e)
        if rec is None:
            recs[e] = rec = CRecord()
        rec[name] = v
    if sum(map(len, recs.values())) == len(rows) and set(map(type, set(chain.from_iterable(recs.values())))) <= _STR:
        return recs
    return _attribute_records_general(rows)


_STR = frozenset((str,))


def _attribute_records_general(attr_rows: Iterable[tuple]) -> dict[Any, CRecord]:
    """``attribute_records`` for any rows: duplicates collapse (the rows are
    made a set first), several values of one (entity, name) become a
    ``CSet``, rows whose name is not a string are skipped."""
    attrs: dict = {}
    multi: dict = {}
    for e, name, v in frozenset(attr_rows):
        if type(name) is not str:
            continue
        rec = attrs.get(e)
        if rec is None:
            attrs[e] = {name: v}
        elif name in rec:
            multi.setdefault((e, name), [rec[name]]).append(v)
        else:
            rec[name] = v
    for (e, name), vals in multi.items():
        attrs[e][name] = CSet(vals)
    return {e: CRecord(d) for e, d in attrs.items()}


class RowSource(Protocol):
    """Rows of a relation computed for one request (the request model, or a
    lazy stand-in for it that builds the model on first use)."""

    def contains(self, relation: str, row: tuple) -> bool: ...


class PolicyData(Protocol):
    """What the evaluator needs from the world.

    - ``is_in(e, t)``: ``e == t`` or ``t`` is reachable from ``e`` through
      ``parent`` edges (reflexive-transitive closure);
    - ``ancestors(e)``: every ``t`` with ``is_in(e, t)`` except ``e`` itself
      (``e`` may appear if it lies on a cycle), as a frozenset: what the
      candidate memo keys the action on;
    - ``get_attr(e, name)``: the Cedar value of an attribute, or ``MISSING``;
    - ``contains(rel, row)``: the fully bound tuple is in relation ``rel``;
    - ``matches(rel, row)``: like ``contains`` but ``None`` items match anything.
    """

    def is_in(self, entity: Entity, target: Entity) -> bool: ...

    def ancestors(self, entity: Entity) -> frozenset: ...

    def get_attr(self, entity: Entity, name: str) -> Any: ...

    def contains(self, relation: str, row: tuple) -> bool: ...

    def matches(self, relation: str, row: tuple) -> bool: ...


def ancestor_closure(parents: Mapping[Any, Iterable[Any]]) -> dict[Any, frozenset]:
    """The transitive (not reflexive) ancestors of every node with parents.

    Hierarchies are almost always DAGs with many leaves under few parents
    (documents in folders, users in groups), so the common path walks the
    DAG once, parents first, and gives every child of a single parent the
    *same* frozenset object (``ancestors(parent) | {parent}``): building the
    closure of 10^5 documents in 50 folders allocates 50 sets, not 10^5.
    A cycle (Cedar forbids them, data may still contain one) switches to
    ``_closure_with_cycles``, which is correct for any graph.
    """
    graph = {k: tuple(v) for k, v in parents.items()}
    plus: dict = {}  # node -> its ancestors and itself (shared between children)
    result: dict = {}
    by_parents: dict = {}  # parent tuple -> union, shared by nodes with equal parents
    for root, ps in graph.items():
        if root in result:
            continue
        if len(ps) == 1:
            # The common leaf: one parent whose closure is known (or a root).
            p = ps[0]
            if p not in graph or p in result:
                s = plus.get(p)
                if s is None:
                    s = plus[p] = result.get(p, _EMPTY) | {p}
                result[root] = s
                continue
        stack = [root]
        onpath = {root}
        while stack:
            n = stack[-1]
            pending = None
            for p in graph.get(n, ()):
                if p in graph and p not in result:
                    if p in onpath:
                        return _closure_with_cycles(graph)
                    pending = p
                    break
            if pending is not None:
                stack.append(pending)
                onpath.add(pending)
                continue
            stack.pop()
            onpath.discard(n)
            ps = graph[n]
            anc: Any
            if len(ps) == 1:
                anc = _plus(ps[0], plus, result)
            else:
                anc = by_parents.get(ps)
                if anc is None:
                    acc: set = set()
                    for p in ps:
                        acc |= _plus(p, plus, result)
                    anc = by_parents[ps] = frozenset(acc)
            result[n] = anc
    return result


def _plus(p: Any, plus: dict[Any, frozenset], result: dict) -> frozenset:
    s = plus.get(p)
    if s is None:
        s = plus[p] = result.get(p, _EMPTY) | {p}
    return s


def _closure_with_cycles(graph: Mapping[Any, tuple]) -> dict[Any, frozenset]:
    """``ancestor_closure`` for any graph: every node of a strongly connected
    component gets the union of the component's reach.

    Components arrive dependencies first, so the closure of every parent
    outside a component is already in ``result`` when the component is done.
    """
    result: dict[Any, frozenset] = {}
    for comp in strongly_connected_components(graph, graph):
        reach: set = set()
        members = set(comp)
        cyclic = len(comp) > 1
        for x in comp:
            for c in graph.get(x, ()):
                reach.add(c)
                if c not in members:
                    reach.update(result.get(c, _EMPTY))
                else:
                    cyclic = True
        if cyclic:
            reach.update(members)
        fz = frozenset(reach)
        for x in comp:
            if x in graph:
                result[x] = fz
    return result


class FactData:
    """``PolicyData`` over precomputed dictionaries.

    The engine builds one from the static model (``parent``/``attr`` facts and
    the relations policies call); tests build one from plain dicts.

    Relation rows are probed in key form (``value_key``). Each relation has a
    *probe*: for a snapshot, the bound ``__contains__`` of a frozenset of
    keyed rows (a C call); for a big relation, whatever the engine passes in
    ``probes`` (a lazily filled trie over the Datalog model). Relations with
    neither are answered by ``fallback.contains(name, row)`` (a Datalog
    ``Model``) with the row turned back into values. Immutable after
    construction except for the projection cache behind ``matches``, which
    only gains complete entries (a dict store is atomic).
    """

    __slots__ = ("_anc", "_attrs", "_rels", "_probes", "_proj", "parents", "_fallback")

    def __init__(
        self,
        parents: Optional[Mapping[Entity, Iterable[Entity]]] = None,
        attrs: Optional[Mapping[Entity, Mapping[str, Any]]] = None,
        relations: Optional[Mapping[str, Iterable[tuple]]] = None,
        fallback: Any = None,
        probes: Optional[Mapping[str, Callable[[tuple], bool]]] = None,
    ) -> None:
        self.parents: dict = {k: tuple(v) for k, v in (parents or {}).items()}
        self._anc = ancestor_closure(self.parents)
        self._attrs: dict = {}
        if attrs and set(map(type, attrs.values())) == {CRecord}:
            self._attrs.update(attrs)  # from_facts: records already (one C call)
        else:
            for e, d in (attrs or {}).items():
                rec = d if type(d) is CRecord else to_value(dict(d), f"attrs of {e}")
                self._attrs[e] = rec
        self._rels: dict[str, frozenset] = {}
        self._probes: dict[str, Callable[[tuple], bool]] = {}
        for name, rows in (relations or {}).items():
            rows = rows if type(rows) is frozenset else frozenset(tuple(r) for r in rows)
            if _needs_keying(rows):
                rows = frozenset(key_row(r) for r in rows)
            self._rels[name] = rows
            self._probes[name] = rows.__contains__
        self._probes.update(probes or {})
        self._proj: dict = {}
        self._fallback = fallback

    @classmethod
    def from_facts(
        cls,
        parent_rows: Iterable[tuple],
        attr_rows: Iterable[tuple],
        relations: Optional[Mapping[str, Iterable[tuple]]] = None,
        fallback: Any = None,
        probes: Optional[Mapping[str, Callable[[tuple], bool]]] = None,
    ) -> "FactData":
        """Build from ``parent(C, P)`` and ``attr(E, Name, V)`` rows.

        Several ``attr`` facts for one (entity, name) read as a set
        (docs/language.md §3). Rows may repeat (a relation is a set: a
        repeated row counts once); ``attr`` rows whose name is not a string
        are not attributes.
        """
        parents: dict = {}
        for child, par in parent_rows:
            ps = parents.get(child)
            if ps is None:
                parents[child] = [par]
            else:
                ps.append(par)
        return cls(parents, attribute_records(attr_rows), relations, fallback, probes)

    def ancestors(self, e: Any) -> frozenset:
        """Transitive ancestors of ``e`` (not including ``e``)."""
        return self._anc.get(e, _EMPTY)

    def attrs_of(self, e: Any) -> Optional[CRecord]:
        return self._attrs.get(e)

    def snapshot(self, name: str) -> Optional[frozenset]:
        """The rows of a relation held as a set (key form), or ``None``."""
        return self._rels.get(name)

    def probe(self, name: str) -> Optional[Callable[[tuple], bool]]:
        """``contains(name, row)`` as ``probe(row)``, or ``None`` (fallback)."""
        return self._probes.get(name)

    def ancestor_map(self) -> Mapping[Any, frozenset]:
        """entity -> its ancestors (what ``is_in`` and ``ancestors`` read); fixed once built."""
        return self._anc

    def attr_map(self) -> Mapping[Any, CRecord]:
        """entity -> its attribute record (what ``get_attr`` reads); fixed once built."""
        return self._attrs

    def probes(self) -> dict[str, Callable[[tuple], bool]]:
        """relation -> its probe (``probe(row)`` is ``contains(relation, row)``)
        for the relations held in this data (snapshots and tries); fixed once
        built."""
        return dict(self._probes)

    def relation(self, name: str) -> frozenset:
        """The snapshot of a relation (rows in key form), empty if none."""
        return self._rels.get(name, _EMPTY)

    def is_in(self, entity: Entity, target: Entity) -> bool:
        return entity == target or target in self._anc.get(entity, _EMPTY)

    def get_attr(self, entity: Entity, name: str) -> Any:
        d = self._attrs.get(entity)
        if d is None:
            return MISSING
        return d.get(name, MISSING)

    def contains(self, relation: str, row: tuple) -> bool:
        probe = self._probes.get(relation)
        if probe is not None:
            return probe(row)
        fb = self._fallback
        return fb is not None and fb.contains(relation, unkey_row(row))

    def matches(self, relation: str, row: tuple) -> bool:
        if relation not in self._rels:
            fb = self._fallback
            return fb is not None and fb.contains(relation, unkey_row(row))
        mask = tuple(x is not None for x in row)
        proj = self._proj.get((relation, mask))
        if proj is None:
            proj = self.build_projection(relation, mask)
        return tuple([x for x in row if x is not None]) in proj

    def build_projection(self, relation: str, mask: tuple) -> frozenset:
        """The set of rows of ``relation`` restricted to the True positions."""
        key = (relation, mask)
        proj = self._proj.get(key)
        if proj is None:
            cols = [i for i, b in enumerate(mask) if b]
            rows = self._rels.get(relation, _EMPTY)
            proj = frozenset(tuple(r[i] for i in cols) for r in rows if len(r) == len(mask))
            self._proj[key] = proj
        return proj


def trie_probe(match: Callable[[tuple], Iterable[tuple]], arity: int, limit: int = 1 << 20) -> Callable[[tuple], bool]:
    """A probe for a big relation, filled lazily per first-column value.

    ``match((v,))`` returns the remaining columns of the rows whose first
    column is ``v`` (``Model.match``). The sub-index of a value is built on
    its first probe (a nested dict of frozensets, in key form) and kept, so
    a relation of 10^6 rows costs memory only for the values requests touch
    and build time nothing. Filling is a dict store of a complete value:
    safe without a lock.
    """
    memo: dict = {}

    def build(first: Any) -> Any:
        rows = match((from_key(first),))
        if arity == 2:
            sub: Any = frozenset(value_key(r[0]) for r in rows)
        else:
            nested: dict = {}
            for r in rows:
                rest = key_row(r)
                nested.setdefault(rest[0], set()).add(rest[1] if arity == 3 else rest[1:])
            sub = {k: frozenset(v) for k, v in nested.items()}
        # Only values the relation has are kept: the memo is bounded by the
        # relation's size, whatever values requests probe.
        if sub and len(memo) < limit:
            memo[first] = sub
        return sub

    if arity == 2:

        def probe2(row: tuple) -> bool:
            sub = memo.get(row[0])
            if sub is None:
                sub = build(row[0])
            return row[1] in sub

        return probe2
    if arity == 3:

        def probe3(row: tuple) -> bool:
            sub = memo.get(row[0])
            if sub is None:
                sub = build(row[0])
            s2 = sub.get(row[1])
            return s2 is not None and row[2] in s2

        return probe3

    def probe_n(row: tuple) -> bool:
        sub = memo.get(row[0])
        if sub is None:
            sub = build(row[0])
        s2 = sub.get(row[1])
        return s2 is not None and row[2:] in s2

    return probe_n


class OverlayData:
    """``PolicyData`` for one request: a static base plus request-supplied facts.

    - parents are *added* to the static hierarchy (docs/language.md §3);
    - attributes of request entities override the static ones per attribute;
    - relations named in ``relations`` (recomputed for this request by the
      Datalog core) are read from the object mapped to them, which has
      ``contains(name, row)`` with ``None`` as a wildcard (a Datalog
      ``Model``); all others from the base;
    - with ``hierarchy`` (an object with ``match(name, prefix)``, the
      request's Datalog model), ``parent`` and ``attr`` themselves are read
      from it, for programs whose rules derive them from the request. Only the
      nodes an ``in`` walks and the attributes a policy reads are looked up.
    Built per request and used by one thread only.
    """

    __slots__ = ("base", "req_parents", "req_attrs", "rels", "hierarchy", "_anc_memo", "_dirty")

    def __init__(
        self,
        base: FactData,
        parents: Optional[Mapping[Entity, Iterable[Entity]]] = None,
        attrs: Optional[Mapping[Entity, Mapping[str, Any]]] = None,
        relations: Optional[Mapping[str, RowSource]] = None,
        hierarchy: Any = None,
    ) -> None:
        self.base = base
        self.req_parents: dict = {k: tuple(v) for k, v in (parents or {}).items() if v}
        self.req_attrs: dict = dict(attrs or {})
        self.rels: dict[str, RowSource] = dict(relations or {})
        self.hierarchy = hierarchy
        self._anc_memo: dict[Any, frozenset] = {}
        # Nodes whose ancestry differs from the static closure: request-parented
        # nodes; a node is affected if it or a static ancestor is one of them.
        self._dirty = frozenset(self.req_parents)

    def _ancestors(self, e: Any) -> frozenset:
        memo = self._anc_memo.get(e)
        if memo is not None:
            return memo
        seen: set = set()
        todo = [e]
        if self.hierarchy is not None:
            match = self.hierarchy.match
            while todo:
                n = todo.pop()
                for (p,) in match("parent", (n,)):
                    if p not in seen:
                        seen.add(p)
                        todo.append(p)
        else:
            base = self.base
            dirty = self._dirty
            while todo:
                n = todo.pop()
                static = base.ancestors(n)
                if n not in dirty and static.isdisjoint(dirty):
                    seen.update(static)
                    continue
                for p in base.parents.get(n, ()):
                    if p not in seen:
                        seen.add(p)
                        todo.append(p)
                for p in self.req_parents.get(n, ()):
                    if p not in seen:
                        seen.add(p)
                        todo.append(p)
        result = frozenset(seen)
        self._anc_memo[e] = result
        return result

    def is_in(self, entity: Entity, target: Entity) -> bool:
        if entity == target:
            return True
        if not self._dirty and self.hierarchy is None:
            return self.base.is_in(entity, target)
        return target in self._ancestors(entity)

    def ancestors(self, entity: Entity) -> frozenset:
        if not self._dirty and self.hierarchy is None:
            return self.base.ancestors(entity)
        return self._ancestors(entity)

    def get_attr(self, entity: Entity, name: str) -> Any:
        d = self.req_attrs.get(entity)
        if d is not None:
            v = d.get(name, MISSING)
            if v is not MISSING:
                return v
        if self.hierarchy is not None:
            vals = self.hierarchy.match("attr", (entity, name))
            if not vals:
                return MISSING
            return vals[0][0] if len(vals) == 1 else CSet(v for (v,) in vals)
        return self.base.get_attr(entity, name)

    def contains(self, relation: str, row: tuple) -> bool:
        r = self.rels.get(relation)
        if r is None:
            return self.base.contains(relation, row)
        return r.contains(relation, unkey_row(row))

    def matches(self, relation: str, row: tuple) -> bool:
        r = self.rels.get(relation)
        if r is None:
            return self.base.matches(relation, row)
        return r.contains(relation, unkey_row(row))


def context_rows(c: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``context(Key, Value)`` facts of a request: top-level scalar entries."""
    return [(k, v) for k, v in c.items() if type(v) in SCALARS]

