"""Policy compilation and evaluation with Cedar's decision semantics (SPEC section 6).

Why it is shaped like this:

- **Compiled once, run many times.** Every policy is turned into one
  generated Python function when the engine is built (a closure tree is the
  fallback backend and the reference the differential test also runs). A
  request never walks the AST, never looks at node types and never parses
  anything. Generated code measured ~2x faster than the closure tree
  (docs/policies.md).
- **Indexed by action and entity type.** A request only runs the policies
  whose scope can match: candidates are selected by the request's action
  (``==``, ``in`` and ``in [...]`` resolved against the action hierarchy),
  principal type and resource type, and that selection is memoized per
  (action, principal type, resource type). Policies with ``principal ==
  Entity`` are further keyed by that principal, so a bundle with thousands of
  per-user policies costs one dict lookup, not thousands of comparisons.
- **Cedar values, exactly.** Python conflates ``True``, ``1`` and ``1.0`` in
  ``==`` and hashing; Cedar does not. Sets (``CSet``) therefore store
  canonical keys in which booleans are replaced by sentinels, records
  (``CRecord``) compare through the same keys, and every operator checks the
  kinds of its operands the way Cedar does (type errors instead of Python's
  duck typing).
- **Errors are exceptions.** A condition that fails (missing attribute, type
  error, overflow) raises ``RuneEvalError``; the policy loop turns that into
  "not satisfied" plus an error entry. ``try`` costs nothing on the no-error
  path in CPython 3.11. Any *other* exception is a bug and propagates, so that
  the engine can fail closed (deny) instead of silently skipping a forbid.
- **Data behind a small interface.** The evaluator reads the world only
  through ``PolicyData`` (ancestry, attributes, relation membership), so it can
  be tested with a dict-based fake and backed by the Datalog model in the
  engine.
"""

from __future__ import annotations

import warnings
from operator import attrgetter
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

from ..lang import ast as A
from ..errors import RuneEvalError, RuneLimitError, RuneRequestError, RuneSyntaxError
from ..graphs import strongly_connected_components
from ..values import INT_MAX, INT_MIN, Entity, format_value, parse_entity_literal

__all__ = [
    "MISSING",
    "CSet",
    "CRecord",
    "PolicyData",
    "FactData",
    "OverlayData",
    "EvalRequest",
    "CompiledPolicy",
    "PolicySet",
    "compile_policies",
    "to_value",
    "from_value",
    "cedar_eq",
    "kind_name",
    "ancestor_closure",
    "BACKENDS",
    "context_rows",
    "row_key",
    "key_row",
    "unkey_row",
    "trie_probe",
]

# ---------------------------------------------------------------------------
# Values


class _Missing:
    """The sentinel for "no such attribute" (``None`` is not a value either, but
    a distinct object keeps the intent readable)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _BoolKey:
    """Stands for ``True``/``False`` inside set keys, so that ``1`` and ``true``
    (equal and equally hashed in Python) stay distinct elements."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"


_TRUE_KEY = _BoolKey(True)
_FALSE_KEY = _BoolKey(False)


def _vkey(v: Any) -> Any:
    """The canonical key of a value: the value itself except for booleans."""
    if v is True:
        return _TRUE_KEY
    if v is False:
        return _FALSE_KEY
    return v


def _unkey(k: Any) -> Any:
    if k is _TRUE_KEY:
        return True
    if k is _FALSE_KEY:
        return False
    return k


class _FloatKey(tuple):
    """A float inside a relation row key: ``1.0`` must not find the fact ``1``."""

    __slots__ = ()


def row_key(v: Any) -> Any:
    """The key form of one value of a relation row.

    Rows of relations are looked up in Python sets, where ``True == 1 ==
    1.0``; the language keeps the three apart (SPEC section 3). Stored rows
    and probes are therefore both put in key form: booleans become
    sentinels and floats are wrapped. Entities, strings and integers (by
    far the common case) are their own key.
    """
    if v is True:
        return _TRUE_KEY
    if v is False:
        return _FALSE_KEY
    if type(v) is float:
        return _FloatKey((v,))
    return v


def from_row_key(k: Any) -> Any:
    if k is _TRUE_KEY:
        return True
    if k is _FALSE_KEY:
        return False
    if type(k) is _FloatKey:
        return k[0]
    return k


def key_row(row: Iterable[Any]) -> tuple:
    return tuple([row_key(v) for v in row])


def unkey_row(row: tuple) -> tuple:
    return tuple([from_row_key(v) for v in row])


def _needs_keying(rows: Iterable[tuple]) -> bool:
    for r in rows:
        for v in r:
            t = type(v)
            if t is bool or t is float:
                return True
    return False


class CSet:
    """An immutable Cedar set.

    ``keys`` is a frozenset of canonical keys (see ``_vkey``): membership,
    ``containsAll`` and ``containsAny`` are set operations on it. Hashable so
    that sets can be elements of sets and parts of relation rows.
    """

    __slots__ = ("keys",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self.keys = frozenset(_vkey(v) for v in items)

    @classmethod
    def _from_keys(cls, keys: frozenset) -> "CSet":
        s = cls.__new__(cls)
        s.keys = keys
        return s

    def __iter__(self):
        return (_unkey(k) for k in self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, v: Any) -> bool:
        return _vkey(v) in self.keys

    def __eq__(self, other: object) -> bool:
        return type(other) is CSet and other.keys == self.keys  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.keys) ^ 0x5E7

    def __repr__(self) -> str:
        return "[" + ", ".join(format_cedar(v) for v in self) + "]"


class CRecord(dict):
    """An immutable Cedar record (a ``dict`` for fast ``.name`` access).

    Equality and hashing go through canonical keys so that ``{a: 1}`` and
    ``{a: true}`` differ. Never mutated after construction.
    """

    __slots__ = ()

    def _canon(self) -> frozenset:
        return frozenset((k, _vkey(v)) for k, v in self.items())

    def __eq__(self, other: object) -> bool:
        return type(other) is CRecord and len(other) == len(self) and other._canon() == self._canon()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._canon())

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {format_cedar(v)}" for k, v in self.items()) + "}"


_EMPTY: frozenset = frozenset()


def kind_name(v: Any) -> str:
    """Cedar's name for the kind of a value (used in type-error messages)."""
    t = type(v)
    if t is bool:
        return "bool"
    if t is int:
        return "long"
    if t is str:
        return "string"
    if t is Entity:
        return "entity"
    if t is CSet:
        return "set"
    if t is CRecord:
        return "record"
    if t is float:
        return "float"
    return t.__name__


def format_cedar(v: Any) -> str:
    if type(v) in (CSet, CRecord):
        return repr(v)
    try:
        return format_value(v)
    except Exception:  # pragma: no cover - defensive, messages only
        return repr(v)


def cedar_eq(a: Any, b: Any) -> bool:
    """Cedar ``==``: values of different kinds are unequal (never an error).

    Integers and floats (floats only come from data) compare numerically,
    as SPEC section 3 says for all numbers.
    """
    ta = type(a)
    tb = type(b)
    if ta is tb:
        return a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    return False


def to_value(x: Any, field: str = "context") -> Any:
    """Convert a JSON-like Python value from a request into a Cedar value.

    dict -> record (``{"__entity": {"type": .., "id": ..}}`` -> entity, as in
    Cedar JSON), list/tuple/set/frozenset -> set, ``Entity`` stays an entity;
    ``None``, ``{"__extn": ...}`` and integers outside 64 bits are rejected with
    a ``RuneRequestError`` naming ``field``.
    """
    t = type(x)
    if t is str or t is bool or t is Entity:
        return x
    if t is int:
        if x < INT_MIN or x > INT_MAX:
            raise RuneRequestError(f"integer {x} does not fit in 64 bits", field=field)
        return x
    if t is float:
        if x != x or x in (float("inf"), float("-inf")):
            raise RuneRequestError(f"{x} is not a finite number", field=field)
        return x
    if t is dict or isinstance(x, Mapping):  # `t is dict`: skips the slow ABC check
        if len(x) == 1 and "__entity" in x:
            return _json_entity(x["__entity"], field)
        if len(x) == 1 and "__extn" in x:
            raise RuneRequestError("extension values (__extn) are not supported", field=field)
        out = CRecord()
        for k, v in x.items():
            if type(k) is not str:
                raise RuneRequestError(f"record keys must be strings, got {k!r}", field=field)
            tv = type(v)
            if tv is str or tv is bool or tv is Entity:  # common scalars: no call, no field name
                dict.__setitem__(out, k, v)
            else:
                dict.__setitem__(out, k, to_value(v, f"{field}.{k}"))
        return out
    if isinstance(x, (list, tuple, set, frozenset)):
        return CSet(to_value(v, f"{field}[{i}]") for i, v in enumerate(x))
    if isinstance(x, (CSet,)):
        return x
    if isinstance(x, str):  # str subclasses
        return str(x)
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return to_value(int(x), field)
    if isinstance(x, float):
        return to_value(float(x), field)
    if x is None:
        raise RuneRequestError("null is not a value (Cedar has no null)", field=field)
    raise RuneRequestError(f"unsupported value {x!r} of type {t.__name__}", field=field)


def _json_entity(obj: Any, field: str) -> Entity:
    if isinstance(obj, Entity):
        return obj
    if isinstance(obj, Mapping):
        ty = obj.get("type")
        ident = obj.get("id")
        if type(ty) is str and type(ident) is str and ty and _valid_type(ty):
            return Entity(ty, ident)
    if isinstance(obj, str):
        e = parse_entity_literal(obj)
        if e is not None:
            return e
    raise RuneRequestError(
        f'expected an entity {{"type": "T", "id": "x"}}, got {obj!r}', field=field
    )


def _valid_type(ty: str) -> bool:
    for part in ty.split("::"):
        if not part or not (part[0].isalpha() or part[0] == "_") or not all(c.isalnum() or c == "_" for c in part) or not part.isascii():
            return False
    return True


def from_value(v: Any) -> Any:
    """A Cedar value back as plain JSON-like Python (sets -> lists, records -> dicts)."""
    t = type(v)
    if t is CSet:
        return [from_value(x) for x in v]
    if t is CRecord:
        return {k: from_value(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------------------
# The data interface


class PolicyData(Protocol):
    """What the evaluator needs from the world.

    - ``is_in(e, t)``: ``e == t`` or ``t`` is reachable from ``e`` through
      ``parent`` edges (reflexive-transitive closure);
    - ``get_attr(e, name)``: the Cedar value of an attribute, or ``MISSING``;
    - ``contains(rel, row)``: the fully bound tuple is in relation ``rel``;
    - ``matches(rel, row)``: like ``contains`` but ``None`` items match anything.
    """

    def is_in(self, entity: Entity, target: Entity) -> bool: ...

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


def _plus(p: Any, plus: dict, result: dict) -> frozenset:
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

    Relation rows are probed in key form (``row_key``). Each relation has a
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

        Several ``attr`` facts for one (entity, name) read as a set (SPEC
        section 4).
        """
        parents: dict = {}
        for child, par in parent_rows:
            ps = parents.get(child)
            if ps is None:
                parents[child] = [par]
            else:
                ps.append(par)
        attrs: dict = {}
        multi: dict = {}
        for e, name, v in attr_rows:
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
        attrs = {e: CRecord(d) for e, d in attrs.items()}
        return cls(parents, attrs, relations, fallback, probes)

    def ancestors(self, e: Any) -> frozenset:
        """Transitive ancestors of ``e`` (not including ``e``)."""
        return self._anc.get(e, _EMPTY)

    def attrs_of(self, e: Any) -> Optional[CRecord]:
        return self._attrs.get(e)

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
        rows = match((from_row_key(first),))
        if arity == 2:
            sub: Any = frozenset(row_key(r[0]) for r in rows)
        else:
            nested: dict = {}
            for r in rows:
                rest = key_row(r)
                nested.setdefault(rest[0], set()).add(rest[1] if arity == 3 else rest[1:])
            sub = {k: frozenset(v) for k, v in nested.items()}
        if len(memo) < limit:
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

    - parents are *added* to the static hierarchy (SPEC section 4);
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
        relations: Optional[Mapping[str, Any]] = None,
        hierarchy: Any = None,
    ) -> None:
        self.base = base
        self.req_parents: dict = {k: tuple(v) for k, v in (parents or {}).items() if v}
        self.req_attrs: dict = dict(attrs or {})
        self.rels: dict = dict(relations or {})
        self.hierarchy = hierarchy
        self._anc_memo: dict = {}
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


# ---------------------------------------------------------------------------
# Requests as seen by compiled code


class EvalRequest:
    """One request as the compiled closures see it (attribute access is cheap)."""

    __slots__ = ("principal", "action", "resource", "context", "data")

    def __init__(self, principal: Entity, action: Entity, resource: Entity, context: CRecord, data: PolicyData) -> None:
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
        self.data = data


Fn = Callable[[EvalRequest], Any]


def _err(msg: str) -> RuneEvalError:
    return RuneEvalError(msg, file="<policy>")


def _type_err(expected: str, v: Any) -> RuneEvalError:
    return _err(f"type error: expected {expected}, got {kind_name(v)}")


def _overflow(op: str, a: Any, b: Any = None) -> RuneEvalError:
    if b is None:
        return _err(f"integer overflow while attempting to {op} the value `{a}`")
    return _err(f"integer overflow while attempting to {op} the values `{a}` and `{b}`")


# ---------------------------------------------------------------------------
# Expression compiler

_NOCONST = object()
_VARS = ("principal", "action", "resource", "context")


def _like_matcher(pattern: tuple) -> Callable[[str], bool]:
    """Compile a ``like`` pattern (literal strings and ``LIKE_WILDCARD``).

    Glob with only ``*`` is matched by prefix, suffix and a greedy leftmost
    search for the middle parts, which is both correct and linear.
    """
    parts = [""]
    for item in pattern:
        if item is A.LIKE_WILDCARD:
            parts.append("")
        else:
            parts[-1] += item
    if len(parts) == 1:
        lit = parts[0]
        return lambda s: s == lit
    prefix, suffix, middle = parts[0], parts[-1], [m for m in parts[1:-1] if m]
    need = len(prefix) + len(suffix)
    if not middle:
        if not prefix and not suffix:
            return lambda s: True
        return lambda s: len(s) >= need and s.startswith(prefix) and s.endswith(suffix)

    def match(s: str) -> bool:
        if len(s) < need or not s.startswith(prefix) or not s.endswith(suffix):
            return False
        pos = len(prefix)
        end = len(s) - len(suffix)
        for m in middle:
            i = s.find(m, pos, end)
            if i < 0:
                return False
            pos = i + len(m)
        return True

    return match


class _Compiler:
    """Turns one policy's expressions into closures; collects what they use."""

    def __init__(self, policy_id: str) -> None:
        self.policy_id = policy_id
        self.relations: set[str] = set()
        self.patterns: set[tuple[str, tuple[bool, ...]]] = set()

    # -- constants ---------------------------------------------------------

    def const(self, node: Any) -> Any:
        """The value of a literal subtree, or ``_NOCONST``."""
        t = type(node)
        if t is A.Lit:
            v = node.value
            if type(v) is int and not (INT_MIN <= v <= INT_MAX):
                return _NOCONST
            if type(v) is float:
                return _NOCONST
            return v
        if t is A.Unary and node.op == "-" and type(node.operand) is A.Lit and type(node.operand.value) is int:
            v = -node.operand.value
            if INT_MIN <= v <= INT_MAX:
                return v
            return _NOCONST
        if t is A.SetLit:
            vals = [self.const(x) for x in node.items]
            if any(v is _NOCONST for v in vals):
                return _NOCONST
            return CSet(vals)
        if t is A.RecordLit:
            out = CRecord()
            for k, x in node.items:
                v = self.const(x)
                if v is _NOCONST:
                    return _NOCONST
                dict.__setitem__(out, k, v)
            return out
        return _NOCONST

    # -- dispatcher ----------------------------------------------------------

    def expr(self, node: Any) -> Fn:
        c = self.const(node)
        if c is not _NOCONST:
            return lambda q, c=c: c
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise RuneSyntaxError(f"unsupported expression {type(node).__name__}", **_loc(node))
        return method(node)

    # -- leaves --------------------------------------------------------------

    def _Lit(self, node: A.Lit) -> Fn:
        v = node.value
        if type(v) is int:
            raise RuneSyntaxError(f"integer literal {v} does not fit in 64 bits", **_loc(node))
        if type(v) is float:
            raise RuneSyntaxError("policies have no floating-point literals", **_loc(node))
        return lambda q: v

    def _VarRef(self, node: A.VarRef) -> Fn:
        if node.name not in _VARS:
            raise RuneSyntaxError(f"unknown variable {node.name!r}", **_loc(node))
        return attrgetter(node.name)

    def _SetLit(self, node: A.SetLit) -> Fn:
        items = tuple(self.expr(x) for x in node.items)

        def f(q):
            return CSet._from_keys(frozenset([_vkey(g(q)) for g in items]))

        return f

    def _RecordLit(self, node: A.RecordLit) -> Fn:
        items = tuple((k, self.expr(x)) for k, x in node.items)

        def f(q):
            out = CRecord()
            for k, g in items:
                dict.__setitem__(out, k, g(q))
            return out

        return f

    # -- member access -------------------------------------------------------

    def _GetAttr(self, node: A.GetAttr) -> Fn:
        name = node.name
        obj = self.expr(node.obj)

        def f(q):
            o = obj(q)
            t = type(o)
            if t is Entity:
                v = q.data.get_attr(o, name)
                if v is MISSING:
                    raise _err(f"`{o}` does not have the attribute `{name}`")
                return v
            if t is CRecord:
                v = o.get(name, MISSING)
                if v is MISSING:
                    raise _err(f"record does not have the attribute `{name}`")
                return v
            raise _type_err("one of [record, entity]", o)

        return f

    def _Has(self, node: A.Has) -> Fn:
        name = node.name
        obj = self.expr(node.obj)

        def f(q):
            o = obj(q)
            t = type(o)
            if t is Entity:
                return q.data.get_attr(o, name) is not MISSING
            if t is CRecord:
                return name in o
            raise _type_err("one of [record, entity]", o)

        return f

    # -- operators -------------------------------------------------------------

    def _Unary(self, node: A.Unary) -> Fn:
        g = self.expr(node.operand)
        if node.op == "!":

            def f_not(q):
                v = g(q)
                if v is True:
                    return False
                if v is False:
                    return True
                raise _type_err("bool", v)

            return f_not
        if node.op == "-":

            def f_neg(q):
                v = g(q)
                if type(v) is not int:
                    raise _type_err("long", v)
                if v == INT_MIN:
                    raise _overflow("negate", v)
                return -v

            return f_neg
        raise RuneSyntaxError(f"unknown unary operator {node.op!r}", **_loc(node))

    def _Binary(self, node: A.Binary) -> Fn:
        op = node.op
        if op == "&&":
            return self._and(node)
        if op == "||":
            return self._or(node)
        if op == "==":
            return self._eq(node)
        if op == "!=":
            eq = self._eq(node)
            return lambda q: not eq(q)
        if op == "in":
            return self._in(node)
        left = self.expr(node.left)
        right = self.expr(node.right)
        if op in ("<", "<=", ">", ">="):
            return self._cmp(op, left, right)
        if op in ("+", "-", "*"):
            return self._arith(op, left, right)
        raise RuneSyntaxError(f"unknown operator {op!r}", **_loc(node))

    def _and(self, node: A.Binary) -> Fn:
        return self._short_circuit(node, False)

    def _or(self, node: A.Binary) -> Fn:
        return self._short_circuit(node, True)

    def _short_circuit(self, node: A.Binary, decided: bool) -> Fn:
        """``&&`` (``decided=False``) or ``||`` (``decided=True``), one closure.

        The two differ only in which left value decides the result without
        evaluating the right operand; in both, each operand that is evaluated
        must be a boolean (Cedar type error otherwise).
        """
        # A long chain ``a || b || c ...`` parses as a left-leaning tree;
        # walk its spine iteratively and compile one flat loop, so that
        # neither compiling nor evaluating it recurses once per operand.
        operands = []
        n: Any = node
        while isinstance(n, A.Binary) and n.op == node.op:
            operands.append(n.right)
            n = n.left
        operands.append(n)
        fns = [self.expr(o) for o in reversed(operands)]
        undecided = not decided
        if len(fns) == 2:
            left, right = fns

            def f(q):
                a = left(q)
                if a is decided:
                    return decided
                if a is not undecided:
                    raise _type_err("bool", a)
                b = right(q)
                if b is True or b is False:
                    return b
                raise _type_err("bool", b)

            return f

        def chain(q):
            for g in fns:
                a = g(q)
                if a is decided:
                    return decided
                if a is not undecided:
                    raise _type_err("bool", a)
            return undecided

        return chain

    def _eq(self, node: A.Binary) -> Fn:
        lc = self.const(node.left)
        rc = self.const(node.right)
        if lc is not _NOCONST and rc is _NOCONST:
            other, c = node.right, lc
        elif rc is not _NOCONST:
            other, c = node.left, rc
        else:
            left = self.expr(node.left)
            right = self.expr(node.right)
            return lambda q: cedar_eq(left(q), right(q))
        g = self.expr(other)
        tc = type(c)
        if tc is str or tc is Entity:
            # Only a str (resp. Entity) can equal a str (resp. Entity) literal:
            # Python's == already has Cedar's meaning here.
            return lambda q: g(q) == c
        if tc is bool:
            return lambda q: g(q) is c

        return lambda q: cedar_eq(g(q), c)

    def _in(self, node: A.Binary) -> Fn:
        left = self.expr(node.left)
        rc = self.const(node.right)
        if type(rc) is Entity:
            target = rc

            def f_ent(q):
                a = left(q)
                if type(a) is not Entity:
                    raise _type_err("entity", a)
                return a == target or q.data.is_in(a, target)

            return f_ent
        if type(rc) is CSet and all(type(x) is Entity for x in rc):
            targets = tuple(rc)
            tset = frozenset(targets)

            def f_set(q):
                a = left(q)
                if type(a) is not Entity:
                    raise _type_err("entity", a)
                if a in tset:
                    return True
                is_in = q.data.is_in
                for t in targets:
                    if is_in(a, t):
                        return True
                return False

            return f_set
        right = self.expr(node.right)

        def f(q):
            a = left(q)
            b = right(q)
            if type(a) is not Entity:
                raise _type_err("entity", a)
            tb = type(b)
            if tb is Entity:
                return a == b or q.data.is_in(a, b)
            if tb is CSet:
                elems = list(b)
                for x in elems:
                    if type(x) is not Entity:
                        raise _type_err("entity", x)
                is_in = q.data.is_in
                for x in elems:
                    if a == x or is_in(a, x):
                        return True
                return False
            raise _type_err("one of [set, entity]", b)

        return f

    def _cmp(self, op: str, left: Fn, right: Fn) -> Fn:
        def check(a, b):
            ta = type(a)
            tb = type(b)
            if not (ta is int or ta is float):
                raise _type_err("long", a)
            if not (tb is int or tb is float):
                raise _type_err("long", b)

        if op == "<":

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a < b
                check(a, b)
                return a < b

        elif op == "<=":

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a <= b
                check(a, b)
                return a <= b

        elif op == ">":

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a > b
                check(a, b)
                return a > b

        else:

            def f(q):
                a = left(q)
                b = right(q)
                if type(a) is int and type(b) is int:
                    return a >= b
                check(a, b)
                return a >= b

        return f

    def _arith(self, op: str, left: Fn, right: Fn) -> Fn:
        verb = {"+": "add", "-": "subtract", "*": "multiply"}[op]
        if op == "+":
            def calc(a, b):
                return a + b
        elif op == "-":
            def calc(a, b):
                return a - b
        else:
            def calc(a, b):
                return a * b

        def f(q):
            a = left(q)
            b = right(q)
            if type(a) is not int:
                raise _type_err("long", a)
            if type(b) is not int:
                raise _type_err("long", b)
            r = calc(a, b)
            if r > INT_MAX or r < INT_MIN:
                raise _overflow(verb, a, b)
            return r

        return f

    def _Like(self, node: A.Like) -> Fn:
        g = self.expr(node.obj)
        m = _like_matcher(node.pattern)

        def f(q):
            s = g(q)
            if type(s) is not str:
                raise _type_err("string", s)
            return m(s)

        return f

    def _Is(self, node: A.Is) -> Fn:
        g = self.expr(node.obj)
        ty = node.type
        if node.in_expr is None:

            def f(q):
                v = g(q)
                if type(v) is not Entity:
                    raise _type_err("entity", v)
                return v.type == ty

            return f
        # ``e is T in x`` is ``e is T && e in x``: x is not evaluated when the
        # type does not match (as in Cedar, which desugars it that way).
        in_fn = self._in(A.Binary("in", node.obj, node.in_expr, node.loc))

        def f_in(q):
            v = g(q)
            if type(v) is not Entity:
                raise _type_err("entity", v)
            if v.type != ty:
                return False
            return in_fn(q)

        return f_in

    def _IfThenElse(self, node: A.IfThenElse) -> Fn:
        c = self.expr(node.cond)
        t = self.expr(node.then)
        e = self.expr(node.else_)

        def f(q):
            v = c(q)
            if v is True:
                return t(q)
            if v is False:
                return e(q)
            raise _type_err("bool", v)

        return f

    def _Method(self, node: A.Method) -> Fn:
        name = node.name
        obj = self.expr(node.obj)
        args = tuple(self.expr(a) for a in node.args)
        want = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}.get(name)
        if want is None:
            raise RuneSyntaxError(f"unknown method {name!r}", **_loc(node))
        if len(args) != want:
            raise RuneSyntaxError(f"{name} takes {want} argument(s), got {len(args)}", **_loc(node))
        if name == "isEmpty":

            def f_empty(q):
                s = obj(q)
                if type(s) is not CSet:
                    raise _type_err("set", s)
                return not s.keys

            return f_empty
        arg = args[0]
        if name == "contains":

            def f_contains(q):
                s = obj(q)
                x = arg(q)
                if type(s) is not CSet:
                    raise _type_err("set", s)
                return _vkey(x) in s.keys

            return f_contains
        if name == "containsAll":

            def f_all(q):
                s = obj(q)
                x = arg(q)
                if type(s) is not CSet:
                    raise _type_err("set", s)
                if type(x) is not CSet:
                    raise _type_err("set", x)
                return x.keys <= s.keys

            return f_all

        def f_any(q):
            s = obj(q)
            x = arg(q)
            if type(s) is not CSet:
                raise _type_err("set", s)
            if type(x) is not CSet:
                raise _type_err("set", x)
            return not s.keys.isdisjoint(x.keys)

        return f_any

    def _RelCall(self, node: A.RelCall) -> Fn:
        name = node.name
        mask = tuple(type(a) is not A.Wildcard for a in node.args)
        args = tuple(self.expr(a) if b else None for a, b in zip(node.args, mask))
        var = _REQUEST_VAR_RELATIONS.get(name)
        if var is not None and len(args) == 1:
            if not mask[0]:
                return lambda q: True
            get = attrgetter(_VAR_FULL[var])
            a0 = args[0]
            return lambda q: a0(q) == get(q)
        if name == "context" and len(args) == 2:
            k0, v0 = args
            return lambda q: _ctx_rel(q.context, None if k0 is None else k0(q), None if v0 is None else v0(q))
        self.relations.add(name)
        if all(mask):
            return lambda q: q.data.contains(name, tuple([row_key(g(q)) for g in args]))
        self.patterns.add((name, mask))
        return lambda q: q.data.matches(name, tuple([None if g is None else row_key(g(q)) for g in args]))


_REQUEST_VAR_RELATIONS = {"principal": "p", "action": "a", "resource": "r"}
_VAR_FULL = {"p": "principal", "a": "action", "r": "resource"}
_SCALARS = (str, int, float, bool, Entity)


def _ctx_rel(c: CRecord, key: Any, value: Any) -> bool:
    """``context(K, V)``: a top-level scalar context entry (None = wildcard)."""
    if key is not None:
        if type(key) is not str:
            return False
        v = c.get(key, MISSING)
        if v is MISSING or type(v) not in _SCALARS:
            return False
        return value is None or cedar_eq(v, value)
    for v in c.values():
        if type(v) in _SCALARS and (value is None or cedar_eq(v, value)):
            return True
    return False


def context_rows(c: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``context(Key, Value)`` facts of a request: top-level scalar entries."""
    return [(k, v) for k, v in c.items() if type(v) in _SCALARS]


def _loc(node: Any) -> dict:
    loc = getattr(node, "loc", None)
    if loc is None or not getattr(loc, "line", 0):
        return {"file": getattr(loc, "file", "<policy>") if loc else "<policy>"}
    return {"file": loc.file, "line": loc.line, "column": loc.col, "source_line": loc.text or None}


# ---------------------------------------------------------------------------
# Code generator (the default backend)
#
# Each policy becomes one Python function ``test(p, a, r, c, d)`` (principal,
# action, resource, context record, PolicyData) generated as source text and
# compiled with ``compile()``. Compared with the closure tree above this
# removes one Python call per AST node and lets the generator drop type checks
# whose outcome is known statically (``principal`` is always an entity,
# ``context`` always a record, ``==`` always a bool...). Only generated
# identifiers appear in the source: every string, entity or attribute name is
# passed in as a global constant, so no policy text can inject code.

_KIND_OF_VAR = {"p": "entity", "a": "entity", "r": "entity", "c": "record"}
_SAFE_KEY_KINDS = ("entity", "string", "long", "set", "record", "none")
_VAR_NAMES = {"principal": "p", "action": "a", "resource": "r", "context": "c"}


def _h_getattr(d: Any, o: Any, name: str) -> Any:
    t = type(o)
    if t is Entity:
        v = d.get_attr(o, name)
        if v is MISSING:
            raise _err(f"`{o}` does not have the attribute `{name}`")
        return v
    if t is CRecord:
        v = o.get(name, MISSING)
        if v is MISSING:
            raise _err(f"record does not have the attribute `{name}`")
        return v
    raise _type_err("one of [record, entity]", o)


def _h_has(d: Any, o: Any, name: str) -> bool:
    t = type(o)
    if t is Entity:
        return d.get_attr(o, name) is not MISSING
    if t is CRecord:
        return name in o
    raise _type_err("one of [record, entity]", o)


def _h_no_attr(o: Any, name: str) -> RuneEvalError:
    return _err(f"`{o}` does not have the attribute `{name}`")


def _h_no_key(name: str) -> RuneEvalError:
    return _err(f"record does not have the attribute `{name}`")


def _h_in(d: Any, a: Any, b: Any) -> bool:
    if type(a) is not Entity:
        raise _type_err("entity", a)
    tb = type(b)
    if tb is Entity:
        return a == b or d.is_in(a, b)
    if tb is CSet:
        elems = list(b)
        for x in elems:
            if type(x) is not Entity:
                raise _type_err("entity", x)
        for x in elems:
            if a == x or d.is_in(a, x):
                return True
        return False
    raise _type_err("one of [set, entity]", b)


def _h_in_any(d: Any, a: Entity, targets: tuple) -> bool:
    for t in targets:
        if d.is_in(a, t):
            return True
    return False


def _h_num(a: Any) -> None:
    ta = type(a)
    if not (ta is int or ta is float):
        raise _type_err("long", a)


def _h_long(a: Any) -> None:
    if type(a) is not int:
        raise _type_err("long", a)


def _h_neg(v: Any) -> int:
    if type(v) is not int:
        raise _type_err("long", v)
    if v == INT_MIN:
        raise _overflow("negate", v)
    return -v


def _h_mkset(items: tuple) -> CSet:
    return CSet._from_keys(frozenset([_vkey(v) for v in items]))


def _h_mkrec(items: tuple) -> CRecord:
    out = CRecord()
    for k, v in items:
        dict.__setitem__(out, k, v)
    return out


def _h_set(v: Any) -> CSet:
    if type(v) is not CSet:
        raise _type_err("set", v)
    return v


_HELPERS = {
    "Entity": Entity,
    "CRecord": CRecord,
    "CSet": CSet,
    "MISSING": MISSING,
    "_ceq": cedar_eq,
    "_vkey": _vkey,
    "_te": _type_err,
    "_ov": _overflow,
    "_getattr": _h_getattr,
    "_has": _h_has,
    "_noattr": _h_no_attr,
    "_nokey": _h_no_key,
    "_in": _h_in,
    "_in_any": _h_in_any,
    "_num": _h_num,
    "_long": _h_long,
    "_neg": _h_neg,
    "_mkset": _h_mkset,
    "_mkrec": _h_mkrec,
    "_set": _h_set,
    "_ctxrel": _ctx_rel,
    "_rk": row_key,
    "type": type,
    "bool": bool,
    "int": int,
    "str": str,
    "__builtins__": {},
}


class _CodeGen:
    """Generates ``def test(p, a, r, c, d)`` for one policy."""

    def __init__(self, policy_id: str) -> None:
        self.policy_id = policy_id
        self.lines: list[str] = []
        self.ind = 1
        self.ntmp = 0
        self.consts: dict[str, Any] = {}
        self._const_ids: dict[Any, str] = {}
        self.relations: set[str] = set()
        self.patterns: set[tuple[str, tuple[bool, ...]]] = set()
        self._folder = _Compiler(policy_id)  # for constant folding only

    # -- emission helpers ------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.ind + line)

    def tmp(self) -> str:
        self.ntmp += 1
        return f"t{self.ntmp}"

    def k(self, value: Any) -> str:
        """A global name bound to ``value`` (never its text in the source)."""
        key = (type(value), value) if type(value) in (str, int, bool, Entity) else id(value)
        name = self._const_ids.get(key)
        if name is None:
            name = f"k{len(self.consts)}"
            self.consts[name] = value
            self._const_ids[key] = name
        return name

    def lit(self, value: Any) -> tuple[str, Optional[str]]:
        t = type(value)
        if t is bool:
            return ("True" if value else "False"), "bool"
        if t is int:
            return self.k(value), "long"
        if t is str:
            return self.k(value), "string"
        if t is Entity:
            return self.k(value), "entity"
        if t is CSet:
            return self.k(value), "set"
        if t is CRecord:
            return self.k(value), "record"
        return self.k(value), None

    # -- expressions: return (python expression, known kind or None) --------------

    def expr(self, node: Any) -> tuple[str, Optional[str]]:
        c = self._folder.const(node)
        if c is not _NOCONST:
            return self.lit(c)
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise RuneSyntaxError(f"unsupported expression {type(node).__name__}", **_loc(node))
        return method(node)

    def _Lit(self, node: A.Lit) -> tuple[str, Optional[str]]:
        return self._folder._Lit(node) and ("", None)  # raises: non-constant literal

    def _VarRef(self, node: A.VarRef) -> tuple[str, Optional[str]]:
        v = _VAR_NAMES.get(node.name)
        if v is None:
            raise RuneSyntaxError(f"unknown variable {node.name!r}", **_loc(node))
        return v, _KIND_OF_VAR[v]

    def _SetLit(self, node: A.SetLit) -> tuple[str, Optional[str]]:
        items = [self.expr(x)[0] for x in node.items]
        v = self.tmp()
        self.emit(f"{v} = _mkset(({', '.join(items)}{',' if len(items) == 1 else ''}))")
        return v, "set"

    def _RecordLit(self, node: A.RecordLit) -> tuple[str, Optional[str]]:
        parts = []
        for key, x in node.items:
            parts.append(f"({self.k(key)}, {self.expr(x)[0]})")
        v = self.tmp()
        self.emit(f"{v} = _mkrec(({', '.join(parts)}{',' if len(parts) == 1 else ''}))")
        return v, "record"

    def _GetAttr(self, node: A.GetAttr) -> tuple[str, Optional[str]]:
        o, kind = self.expr(node.obj)
        name = self.k(node.name)
        v = self.tmp()
        if kind == "entity":
            self.emit(f"{v} = d.get_attr({o}, {name})")
            self.emit(f"if {v} is MISSING: raise _noattr({o}, {name})")
        elif kind == "record":
            self.emit(f"{v} = {o}.get({name}, MISSING)")
            self.emit(f"if {v} is MISSING: raise _nokey({name})")
        else:
            self.emit(f"{v} = _getattr(d, {o}, {name})")
        return v, None

    def _Has(self, node: A.Has) -> tuple[str, Optional[str]]:
        o, kind = self.expr(node.obj)
        name = self.k(node.name)
        v = self.tmp()
        if kind == "entity":
            self.emit(f"{v} = d.get_attr({o}, {name}) is not MISSING")
        elif kind == "record":
            self.emit(f"{v} = {name} in {o}")
        else:
            self.emit(f"{v} = _has(d, {o}, {name})")
        return v, "bool"

    def _check_bool(self, x: str, kind: Optional[str]) -> None:
        if kind != "bool":
            self.emit(f"if {x} is not True and {x} is not False: raise _te('bool', {x})")

    def _Unary(self, node: A.Unary) -> tuple[str, Optional[str]]:
        x, kind = self.expr(node.operand)
        v = self.tmp()
        if node.op == "!":
            self._check_bool(x, kind)
            self.emit(f"{v} = not {x}")
            return v, "bool"
        if node.op == "-":
            self.emit(f"{v} = _neg({x})")
            return v, "long"
        raise RuneSyntaxError(f"unknown unary operator {node.op!r}", **_loc(node))

    def _Binary(self, node: A.Binary) -> tuple[str, Optional[str]]:
        op = node.op
        if op in ("&&", "||"):
            return self._logic(node)
        if op in ("==", "!="):
            return self._eq(node, op == "!=")
        if op == "in":
            return self._in(node)
        x, kx = self.expr(node.left)
        y, ky = self.expr(node.right)
        v = self.tmp()
        if op in ("<", "<=", ">", ">="):
            if kx == "long" and ky == "long":
                self.emit(f"{v} = {x} {op} {y}")
            elif kx == "long" or ky == "long":
                other = y if kx == "long" else x
                self.emit(f"if type({other}) is int: {v} = {x} {op} {y}")
                self.emit("else:")
                self.ind += 1
                self.emit(f"_num({other}); {v} = {x} {op} {y}")
                self.ind -= 1
            else:
                self.emit(f"if type({x}) is int and type({y}) is int: {v} = {x} {op} {y}")
                self.emit("else:")
                self.ind += 1
                self.emit(f"_num({x}); _num({y}); {v} = {x} {op} {y}")
                self.ind -= 1
            return v, "bool"
        if op in ("+", "-", "*"):
            verb = {"+": "add", "-": "subtract", "*": "multiply"}[op]
            if kx != "long":
                self.emit(f"_long({x})")
            if ky != "long":
                self.emit(f"_long({y})")
            self.emit(f"{v} = {x} {op} {y}")
            self.emit(f"if {v} > {INT_MAX} or {v} < {INT_MIN}: raise _ov({self.k(verb)}, {x}, {y})")
            return v, "long"
        raise RuneSyntaxError(f"unknown operator {op!r}", **_loc(node))

    def _logic(self, node: A.Binary) -> tuple[str, Optional[str]]:
        short = "False" if node.op == "&&" else "True"
        go_on = "True" if node.op == "&&" else "False"
        x, kx = self.expr(node.left)
        v = self.tmp()
        self.emit(f"if {x} is {short}: {v} = {short}")
        self.emit(f"elif {x} is {go_on}:" if kx != "bool" else "else:")
        self.ind += 1
        y, ky = self.expr(node.right)
        self._check_bool(y, ky)
        self.emit(f"{v} = {y}")
        self.ind -= 1
        if kx != "bool":
            self.emit(f"else: raise _te('bool', {x})")
        return v, "bool"

    def _eq(self, node: A.Binary, negate: bool) -> tuple[str, Optional[str]]:
        lc = self._folder.const(node.left)
        rc = self._folder.const(node.right)
        v = self.tmp()
        neg = "not " if negate else ""
        if rc is not _NOCONST or lc is not _NOCONST:
            other, c = (node.left, rc) if rc is not _NOCONST else (node.right, lc)
            x, kx = self.expr(other)
            tc = type(c)
            if tc is str or tc is Entity:
                # Only a str (an Entity) equals a str (an Entity) literal, so
                # Python's == already means Cedar's == here.
                self.emit(f"{v} = {x} {'!=' if negate else '=='} {self.k(c)}")
            elif tc is bool:
                self.emit(f"{v} = {x} {'is not' if negate else 'is'} {'True' if c else 'False'}")
            elif tc is int and kx == "long":
                self.emit(f"{v} = {x} {'!=' if negate else '=='} {self.k(c)}")
            elif tc is int:
                # Nothing but a number equals a number; only bool needs care.
                self.emit(f"{v} = {neg}({x} == {self.k(c)} and type({x}) is not bool)")
            else:
                self.emit(f"{v} = {neg}_ceq({x}, {self.k(c)})")
            return v, "bool"
        x, kx = self.expr(node.left)
        y, ky = self.expr(node.right)
        if (kx is not None and kx == ky and kx in ("entity", "string", "long", "bool")) or kx in (
            "entity",
            "string",
        ) or ky in ("entity", "string"):
            # An Entity (a str) is only ever equal to an Entity (a str), so
            # Python's == is Cedar's == as soon as one side is known to be one.
            self.emit(f"{v} = {x} {'!=' if negate else '=='} {y}")
        else:
            self.emit(f"{v} = {neg}_ceq({x}, {y})")
        return v, "bool"

    def _in(self, node: A.Binary) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.left)
        rc = self._folder.const(node.right)
        v = self.tmp()
        if type(rc) is Entity:
            if kx != "entity":
                self.emit(f"if type({x}) is not Entity: raise _te('entity', {x})")
            t = self.k(rc)
            self.emit(f"{v} = {x} == {t} or d.is_in({x}, {t})")
            return v, "bool"
        if type(rc) is CSet and all(type(e) is Entity for e in rc):
            if kx != "entity":
                self.emit(f"if type({x}) is not Entity: raise _te('entity', {x})")
            targets = tuple(rc)
            self.emit(f"{v} = {x} in {self.k(frozenset(targets))} or _in_any(d, {x}, {self.k(targets)})")
            return v, "bool"
        y, _ky = self.expr(node.right)
        self.emit(f"{v} = _in(d, {x}, {y})")
        return v, "bool"

    def _Like(self, node: A.Like) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.obj)
        m = self.k(_like_matcher(node.pattern))
        v = self.tmp()
        if kx != "string":
            self.emit(f"if type({x}) is not str: raise _te('string', {x})")
        self.emit(f"{v} = {m}({x})")
        return v, "bool"

    def _Is(self, node: A.Is) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.obj)
        v = self.tmp()
        if kx != "entity":
            self.emit(f"if type({x}) is not Entity: raise _te('entity', {x})")
        ty = self.k(node.type)
        if node.in_expr is None:
            self.emit(f"{v} = {x}[0] == {ty}")
            return v, "bool"
        # ``e is T in x`` is ``e is T && e in x`` (Cedar desugars it so):
        # the ``in`` operand is not evaluated when the type does not match.
        self.emit(f"if {x}[0] != {ty}: {v} = False")
        self.emit("else:")
        self.ind += 1
        rc = self._folder.const(node.in_expr)
        if type(rc) is Entity:
            t = self.k(rc)
            self.emit(f"{v} = {x} == {t} or d.is_in({x}, {t})")
        else:
            y, _ = self.expr(node.in_expr)
            self.emit(f"{v} = _in(d, {x}, {y})")
        self.ind -= 1
        return v, "bool"

    def _IfThenElse(self, node: A.IfThenElse) -> tuple[str, Optional[str]]:
        x, kx = self.expr(node.cond)
        v = self.tmp()
        self._check_bool(x, kx)
        self.emit(f"if {x}:")
        self.ind += 1
        y, ky = self.expr(node.then)
        self.emit(f"{v} = {y}")
        self.ind -= 1
        self.emit("else:")
        self.ind += 1
        z, kz = self.expr(node.else_)
        self.emit(f"{v} = {z}")
        self.ind -= 1
        return v, (ky if ky == kz else None)

    def _Method(self, node: A.Method) -> tuple[str, Optional[str]]:
        name = node.name
        want = {"contains": 1, "containsAll": 1, "containsAny": 1, "isEmpty": 0}.get(name)
        if want is None:
            raise RuneSyntaxError(f"unknown method {name!r}", **_loc(node))
        if len(node.args) != want:
            raise RuneSyntaxError(f"{name} takes {want} argument(s), got {len(node.args)}", **_loc(node))
        s, ks = self.expr(node.obj)
        args = [self.expr(a) for a in node.args]
        v = self.tmp()
        if ks != "set":
            self.emit(f"_set({s})")
        if name == "isEmpty":
            self.emit(f"{v} = not {s}.keys")
            return v, "bool"
        x, kx = args[0]
        if name == "contains":
            if kx in ("entity", "string", "long", "set", "record"):
                self.emit(f"{v} = {x} in {s}.keys")
            else:
                self.emit(f"{v} = _vkey({x}) in {s}.keys")
            return v, "bool"
        if kx != "set":
            self.emit(f"_set({x})")
        if name == "containsAll":
            self.emit(f"{v} = {x}.keys <= {s}.keys")
        else:
            self.emit(f"{v} = not {s}.keys.isdisjoint({x}.keys)")
        return v, "bool"

    def _RelCall(self, node: A.RelCall) -> tuple[str, Optional[str]]:
        rel = self.k(node.name)
        mask = tuple(type(a) is not A.Wildcard for a in node.args)
        exprs = [self.expr(a) if b else ("None", "none") for a, b in zip(node.args, mask)]
        args = [x for x, _ in exprs]
        # Probes use key form (``row_key``): only values that may be
        # booleans or floats need converting.
        keyed = [x if k in _SAFE_KEY_KINDS else f"_rk({x})" for x, k in exprs]
        row = f"({', '.join(keyed)}{',' if len(keyed) == 1 else ''})"
        v = self.tmp()
        var = _REQUEST_VAR_RELATIONS.get(node.name)
        if var is not None and len(args) == 1:
            # principal(X), action(X), resource(X): answered from the request.
            self.emit(f"{v} = True" if not mask[0] else f"{v} = {args[0]} == {var}")
            return v, "bool"
        if node.name == "context" and len(args) == 2:
            self.emit(f"{v} = _ctxrel(c, {args[0]}, {args[1]})")
            return v, "bool"
        self.relations.add(node.name)
        if all(mask):
            self.emit(f"{v} = d.contains({rel}, {row})")
        else:
            self.patterns.add((node.name, mask))
            self.emit(f"{v} = d.matches({rel}, {row})")
        return v, "bool"

    # -- conditions and the whole policy ---------------------------------------

    def cond(self, node: Any, when: bool) -> None:
        """Emit ``return False`` unless the condition holds.

        ``when {A && B}`` is ``when {A} when {B}``, ``unless {A || B}`` is
        ``unless {A} unless {B}`` and ``when {!X}`` is ``unless {X}``, with
        the same errors in the same order; splitting them keeps the generated
        code flat.
        """
        t = type(node)
        if t is A.Binary and ((when and node.op == "&&") or (not when and node.op == "||")):
            self.cond(node.left, when)
            self.cond(node.right, when)
            return
        if t is A.Unary and node.op == "!":
            self.cond(node.operand, not when)
            return
        x, kx = self.expr(node)
        if kx == "bool":
            self.emit(f"if {'not ' if when else ''}{x}: return False")
            return
        good, bad = ("True", "False") if when else ("False", "True")
        self.emit(f"if {x} is not {good}:")
        self.ind += 1
        self.emit(f"if {x} is {bad}: return False")
        self.emit(f"raise _te('bool', {x})")
        self.ind -= 1

    def scope_in(self, var: str, target: Entity) -> None:
        t = self.k(target)
        self.emit(f"if {var} != {t} and not d.is_in({var}, {t}): return False")

    def build(self) -> Callable:
        src = "def test(p, a, r, c, d):\n" + "\n".join(self.lines + ["    " + "return True"]) + "\n"
        glb = dict(_HELPERS)
        glb.update(self.consts)
        with warnings.catch_warnings():
            # The generated text is ours; never let a warnings filter (-W
            # error) turn a harmless compile warning into a backend switch.
            warnings.simplefilter("ignore")
            code = compile(src, f"<policy {self.policy_id}>", "exec")
        exec(code, glb)
        fn = glb.pop("test")  # not kept in its own globals: no cycle, freed by reference counting
        fn.__rune_source__ = src  # type: ignore[attr-defined]
        return fn


# ---------------------------------------------------------------------------
# Policies


BACKENDS = ("codegen", "closures")


class CompiledPolicy:
    """One policy ready to run.

    ``test(p, a, r, c, d)`` (principal, action, resource, context record,
    ``PolicyData``) runs the parts of the scope the index does not guarantee,
    then the conditions in source order, and returns a bool or raises
    ``RuneEvalError``. ``backend`` picks generated code (default) or the
    closure tree; the generated code falls back to closures if Python refuses
    to compile it (absurdly deep nesting).
    """

    __slots__ = (
        "index",
        "id",
        "forbid",
        "policy",
        "principal_type",
        "resource_type",
        "principal_eq",
        "test",
        "relations",
        "patterns",
        "backend",
        "source",
    )

    def __init__(self, index: int, policy: A.Policy, backend: str = "codegen") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        self.index = index
        self.id = policy.id or f"policy{index}"
        self.policy = policy
        if policy.effect not in ("permit", "forbid"):
            raise RuneSyntaxError(f"unknown effect {policy.effect!r}", **_loc(policy))
        for c in policy.conditions:
            if c.kind not in ("when", "unless"):
                raise RuneSyntaxError(f"unknown condition {c.kind!r}", **_loc(c))
        self.forbid = policy.effect == "forbid"
        p, r = policy.principal, policy.resource
        self.principal_eq: Optional[Entity] = p.entity if p.kind == "eq" else None
        self.principal_type = _scope_type(p)
        self.resource_type = _scope_type(r)
        _scope_type(policy.action) if policy.action.kind != "in_set" else None
        self.source = ""
        test = None
        if backend == "codegen":
            try:
                test = self._generate(policy)
                self.backend = "codegen"
            except (SyntaxError, RecursionError, MemoryError, ValueError, OverflowError):
                test = None
        if test is None:
            try:
                test = self._closures(policy)
            except RecursionError:
                raise RuneLimitError(
                    f"policy {self.id!r}: expression nested too deeply to compile", "max_nesting", **_loc(policy)
                ) from None
            self.backend = "closures"
        self.test = test

    def _generate(self, policy: A.Policy) -> Callable:
        g = _CodeGen(self.id)
        p, r = policy.principal, policy.resource
        # principal ``==`` and the type of ``is`` are guaranteed by the index.
        if p.kind in ("in", "is") and p.entity is not None:
            g.scope_in("p", p.entity)
        if r.kind == "eq":
            g.emit(f"if r != {g.k(r.entity)}: return False")
        elif r.kind in ("in", "is") and r.entity is not None:
            g.scope_in("r", r.entity)
        for c in policy.conditions:
            g.cond(c.expr, c.kind == "when")
        fn = g.build()
        self.relations = frozenset(g.relations)
        self.patterns = frozenset(g.patterns)
        self.source = fn.__rune_source__
        return fn

    def _closures(self, policy: A.Policy) -> Callable:
        comp = _Compiler(self.id)
        p, r = policy.principal, policy.resource
        checks: list[Fn] = []
        pin = _scope_in_check("principal", p)
        if pin is not None:
            checks.append(pin)
        if r.kind == "eq":
            ent = r.entity
            checks.append(lambda q: q.resource == ent)
        rin = _scope_in_check("resource", r)
        if rin is not None:
            checks.append(rin)
        conds = tuple((comp.expr(c.expr), c.kind == "when") for c in policy.conditions)
        self.relations = frozenset(comp.relations)
        self.patterns = frozenset(comp.patterns)
        inner = _make_test(tuple(checks), conds)

        def test(p, a, r, c, d):
            return inner(EvalRequest(p, a, r, c, d))

        return test

    def action_matches(self, action: Entity, data: PolicyData) -> bool:
        """Whether the action scope admits ``action`` (hierarchy from ``data``)."""
        a = self.policy.action
        k = a.kind
        if k == "any":
            return True
        if k == "eq":
            return action == a.entity
        if k == "in":
            return action == a.entity or data.is_in(action, a.entity)
        if k == "in_set":
            return any(action == e or data.is_in(action, e) for e in a.entities)
        if k == "is":  # not in SPEC's action grammar, harmless to honour
            return action.type == a.type and (a.entity is None or action == a.entity or data.is_in(action, a.entity))
        raise RuneSyntaxError(f"unknown action constraint {k!r}", **_loc(a))

    def __repr__(self) -> str:
        return f"CompiledPolicy({self.id!r}, {'forbid' if self.forbid else 'permit'}, {self.backend})"


def _scope_type(c: A.ScopeConstraint) -> Optional[str]:
    if c.kind == "eq":
        return c.entity.type  # type: ignore[union-attr]
    if c.kind == "is":
        return c.type
    if c.kind in ("any", "in"):
        return None
    raise RuneSyntaxError(f"unknown scope constraint {c.kind!r}", **_loc(c))


def _scope_in_check(var: str, c: A.ScopeConstraint) -> Optional[Fn]:
    if c.kind not in ("in", "is") or c.entity is None:
        return None
    target = c.entity
    get = attrgetter(var)

    def check(q):
        e = get(q)
        return e == target or q.data.is_in(e, target)

    return check


def _make_test(checks: tuple, conds: tuple) -> Fn:
    """The closure backend's per-policy test: scope residue, then conditions."""

    def test(q):
        for c in checks:
            if not c(q):
                return False
        for fn, when in conds:
            v = fn(q)
            if v is True:
                if not when:
                    return False
            elif v is False:
                if when:
                    return False
            else:
                raise _type_err("bool", v)
        return True

    return test


#: Outcome of evaluating a policy set: (decision, reasons, errors).
Outcome = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]


class PolicySet:
    """All policies of a bundle, compiled and indexed.

    ``evaluate`` implements the decision: any satisfied forbid -> "forbid"
    (reasons = satisfied forbids), else any satisfied permit -> "permit"
    (reasons = satisfied permits), else "deny" (no reasons). Erroring
    policies are not satisfied and are reported, in policy order.

    The candidate memo (per action, principal type and resource type) only
    depends on the *static* action hierarchy, so callers pass
    ``use_memo=False`` when a request supplies its own parents or when
    ``parent`` facts depend on the request. The memo is filled lazily; a dict
    store is atomic, and two threads computing the same entry store equal
    values, so no lock is needed.
    """

    MEMO_LIMIT = 16384

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self.policies: tuple[CompiledPolicy, ...] = tuple(policies)
        self._by_id = {p.id: p for p in self.policies}
        self._memo: dict = {}
        rels: set = set()
        pats: set = set()
        for p in self.policies:
            rels |= p.relations
            pats |= p.patterns
        self.relations: frozenset[str] = frozenset(rels)
        self.patterns: frozenset = frozenset(pats)

    def __len__(self) -> int:
        return len(self.policies)

    def __iter__(self):
        return iter(self.policies)

    def __getitem__(self, policy_id: str) -> CompiledPolicy:
        return self._by_id[policy_id]

    def select(self, action: Entity, ptype: str, rtype: str, data: PolicyData) -> tuple:
        """``(general, by_principal, relations)``: the policies that can apply.

        ``general`` is a tuple of ``(index, id, forbid, test)``; ``by_principal``
        maps a principal entity to the tuple of its ``principal ==`` policies
        merged with ``general`` in bundle order (None when there are none); ``relations`` are the
        relations all of them call (to decide whether the request needs its
        own Datalog model).
        """
        general = []
        by_p: dict = {}
        rels: set = set()
        for pol in self.policies:
            if pol.principal_type is not None and pol.principal_type != ptype:
                continue
            if pol.resource_type is not None and pol.resource_type != rtype:
                continue
            if not pol.action_matches(action, data):
                continue
            entry = (pol.index, pol.id, pol.forbid, pol.test)
            rels |= pol.relations
            if pol.principal_eq is not None:
                by_p.setdefault(pol.principal_eq, []).append(entry)
            else:
                general.append(entry)
        merged = {k: tuple(sorted(general + v)) for k, v in by_p.items()}
        return (tuple(general), merged or None, frozenset(rels))

    def candidates(self, principal: Entity, action: Entity, resource: Entity, data: PolicyData, use_memo: bool = True) -> tuple:
        if not use_memo:
            return self.select(action, principal[0], resource[0], data)
        key = (action, principal[0], resource[0])
        sel = self._memo.get(key)
        if sel is None:
            sel = self.select(action, principal[0], resource[0], data)
            if len(self._memo) < self.MEMO_LIMIT:
                self._memo[key] = sel
        return sel

    def evaluate(
        self,
        principal: Entity,
        action: Entity,
        resource: Entity,
        context: CRecord,
        data: PolicyData,
        use_memo: bool = True,
    ) -> Outcome:
        """Decide one request (see the class docstring)."""
        sel = self._memo.get((action, principal[0], resource[0])) if use_memo else None
        if sel is None:
            sel = self.candidates(principal, action, resource, data, use_memo)
        return self.run(sel, principal, action, resource, context, data)

    def run(
        self,
        sel: tuple,
        principal: Entity,
        action: Entity,
        resource: Entity,
        context: CRecord,
        data: PolicyData,
    ) -> Outcome:
        """Run a selection (from ``candidates``) on one request.

        Only ``RuneEvalError`` is caught per policy; anything else is a bug
        and propagates so that the caller fails closed.
        """
        general, by_p, _rels = sel
        if by_p is not None:
            # principal == policies, pre-merged with the general ones in
            # bundle order when the selection was built
            general = by_p.get(principal, general)
        forbids = permits = errors = None
        for idx, pid, forbid, test in general:
            try:
                if not test(principal, action, resource, context, data):
                    continue
            except RuneEvalError as e:
                if errors is None:
                    errors = [(pid, e.message)]
                else:
                    errors.append((pid, e.message))
                continue
            if forbid:
                forbids = (pid,) if forbids is None else forbids + (pid,)
            elif permits is None:
                permits = (pid,)
            else:
                permits = permits + (pid,)
        errs: tuple = () if errors is None else tuple(errors)
        if forbids is not None:
            return ("forbid", forbids, errs)
        if permits is not None:
            return ("permit", permits, errs)
        return ("deny", (), errs)


def compile_policies(policies: Sequence[A.Policy], backend: str = "codegen") -> PolicySet:
    """Compile AST policies (in bundle order) into an indexed ``PolicySet``.

    Raises ``RuneSyntaxError`` (located) for constructs the evaluator does not
    know; the parser normally rejects those first.
    """
    return PolicySet([CompiledPolicy(i, p, backend) for i, p in enumerate(policies)])
