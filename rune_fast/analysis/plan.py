"""The fast path of search: enumerate through indexes, test only what may match.

For an open slot (the resource of ``search_resources``, the principal of
``search_subjects``) the answer is the set of candidates ``c`` for which some
permit policy is satisfied and no forbid policy is, exactly as ``authorize``
decides. Instead of deciding every candidate, each policy that can apply
(selected by action and entity types, as the engine's index does) is reduced
to a **generator**: a set of candidates that contains every candidate
satisfying it, read from an index:

- a scope ``resource == E`` gives ``{E}``; ``resource in E`` the descendants
  of ``E`` in the hierarchy (a reverse ``parent`` index);
- a top-level conjunct of a ``when`` clause that is a relation call with the
  open variable as an argument, such as ``can(principal, action, resource)``,
  gives the values in that column of the rows matching the other (fixed)
  arguments, from a per-relation index on the fixed columns; an argument
  ``resource.folder`` gives the entities whose ``folder`` attribute is one of
  those values (a reverse attribute index);
- a conjunct ``resource.owner == principal`` (an attribute compared with a
  value that does not depend on the open variable) gives the entities with
  that attribute value; ``resource in E`` in a condition, the descendants.

The smallest generator of a policy is used, and its members are then tested
with the policy's own compiled test (the residue: other conditions,
``unless``, scope ``in``), so the result is exact; a policy without a
generator is tested on every candidate. Permits are united; then each forbid
is subtracted: a forbid that does not depend on the open variable is
evaluated once, one with a generator only on the generated part of the
permitted set, any other on the permitted set. Candidates never permitted
are never evaluated.

Generators read the request-independent model, so they are used only where
the request cannot change what they read: relations that depend on the
request are not generators (their policies fall back to testing), the
hierarchy is not used when the request adds parents or rules derive
``parent`` from it, attributes are not used when rules derive ``attr``, and
request entities are always added to the generated sets (their attributes
may differ).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ..building import _closure
from ..request_data import _LazyModel, _PlannedRelations, _RequestRelations
from ..errors import RuneEvalError
from ..lang import ast as A
from ..policy.policies import OverlayData
from ..values import Entity, value_key
from .expressions import compiled


__all__ = ["resources", "subjects"]

_ALL = None  # "no generator": every candidate


# ---------------------------------------------------------------------------
# Per-engine indexes (built on first use, kept as long as the engine lives)


class _Indexes:
    """Reverse indexes over an engine's static model; each part is built once
    (under a lock) and never changes afterwards, so readers take no lock."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self._children: dict | None = None
        self._attrs: dict = {}
        self._rels: dict = {}
        self._desc: dict = {}
        deps = dict(engine.info.depends_on)
        self.reads_var = {v: _closure(deps, (v,)) for v in ("principal", "resource")}

    def children(self) -> dict:
        ch = self._children
        if ch is None:
            with self.lock:
                if self._children is None:
                    out: dict = {}
                    for child, ps in self.engine._static.parents.items():
                        for p in ps:
                            out.setdefault(p, []).append(child)
                    self._children = out
                ch = self._children
        return ch

    def descendants(self, e: Entity) -> frozenset:
        """``e`` and everything below it in the static hierarchy."""
        hit = self._desc.get(e)
        if hit is not None:
            return hit
        ch = self.children()
        seen = {e}
        todo = [e]
        while todo:
            for c in ch.get(todo.pop(), ()):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        out = frozenset(seen)
        if len(self._desc) < 1024:
            self._desc[e] = out
        return out

    def attr_index(self, name: str) -> dict:
        """value key -> entities whose attribute ``name`` has that (scalar) value;
        built per attribute name on first use."""
        idx = self._attrs.get(name)
        if idx is None:
            with self.lock:
                idx = self._attrs.get(name)
                if idx is None:
                    idx = {}
                    for e, rec in self.engine._static._attrs.items():
                        v = rec.get(name)
                        if v is None:
                            continue
                        try:
                            k = value_key(v)
                        except TypeError:
                            continue  # a set or a record: with_attr never looks those up
                        idx.setdefault(k, []).append(e)
                    self._attrs[name] = idx
        return idx

    def with_attr(self, name: str, v: Any) -> list | None:
        """Entities whose scalar attribute ``name`` is Cedar-equal to ``v``
        (an integer and a float of the same value are equal); None when ``v``
        is a set or a record (the index holds scalars only)."""
        try:
            k = value_key(v)
        except TypeError:
            return None
        by_value = self.attr_index(name)
        found = by_value.get(k, [])
        t = type(v)
        other = None
        if t is int:
            f = float(v)
            other = f if f == v else None
        elif t is float and v.is_integer():
            other = int(v)
        if other is not None:
            more = by_value.get(value_key(other))
            if more:
                found = found + more
        return found

    def lookup(self, rel: str, fixed: tuple, vals: tuple, open_col: int) -> list:
        """Values in ``open_col`` of the rows of ``rel`` whose columns ``fixed``
        hold the values ``vals``. With column 0 among the fixed ones this is a
        probe of the core's index on the first column (every relation a
        policy calls has one) and a filter; otherwise a per-engine index on
        exactly those columns, built once."""
        if fixed and fixed[0] == 0:
            model = self.engine._model
            if rel not in model.compiled.slot_of:
                return []
            rest = model.match(rel, (vals[0],))  # columns 1.. of the matching rows
            keys = [value_key(v) for v in vals]
            checks = [(c - 1, k) for c, k in zip(fixed[1:], keys[1:])]
            out = []
            for r in rest:
                for c, k in checks:
                    if value_key(r[c]) != k:
                        break
                else:
                    out.append(r[open_col - 1])
            return out
        return self.column(rel, fixed, open_col).get(tuple(value_key(v) for v in vals), [])

    def column(self, rel: str, fixed: tuple, open_col: int) -> dict:
        """For ``rel``: key of the values in columns ``fixed`` -> values in ``open_col``."""
        key = (rel, fixed, open_col)
        idx = self._rels.get(key)
        if idx is None:
            with self.lock:
                idx = self._rels.get(key)
                if idx is None:
                    idx = {}
                    model = self.engine._model  # parent/attr never come here (see _relcall_generator)
                    rows = model.relation(rel) if rel in model.compiled.slot_of else ()
                    for row in rows:
                        k = tuple(value_key(row[i]) for i in fixed)
                        idx.setdefault(k, []).append(row[open_col])
                    self._rels[key] = idx
        return idx


_INDEXES: weakref.WeakKeyDictionary[Any, _Indexes] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def indexes(engine: Any) -> _Indexes:
    ix = _INDEXES.get(engine)
    if ix is None:
        with _LOCK:
            ix = _INDEXES.get(engine)
            if ix is None:
                ix = _INDEXES[engine] = _Indexes(engine)
    return ix


# ---------------------------------------------------------------------------
# One search


class _Search:
    """The state of one search: the request, the open variable, the data."""

    def __init__(self, engine: Any, var: str, p: Entity | None, a: Entity, r: Entity | None,
                 ctx: Any, ents: Any, cands: Any, cand_set: frozenset) -> None:
        self.engine = engine
        self.var = var  # "resource" or "principal"
        self.p, self.a, self.r = p, a, r
        self.ctx, self.ents = ctx, ents
        self.cands = cands
        self.cand_set = cand_set
        self.ix = indexes(engine)
        self.has_ents = ents is not None and bool(ents.parents or ents.attrs)
        self.req_uids = frozenset(ents.parents) | frozenset(ents.attrs) if ents is not None else frozenset()
        self.hier_ok = not engine._dynamic_hierarchy and not (ents is not None and ents.parents) \
            and not (self.has_ents and engine._entity_hierarchy)
        self.attrs_ok = "attr" not in engine._core_dep and not (self.has_ents and engine._entity_hierarchy)
        dep = engine._core_dep | engine._entity_dep if self.has_ents else engine._core_dep
        self.unstable = dep  # relations whose content may depend on the request
        self._data: dict = {}
        self._static_data = None
        if not self.has_ents and not engine._dynamic_hierarchy:
            self._static_data = engine._static
        self.rels_needed: frozenset = frozenset()
        # With strict_forbid a forbid whose condition raises an evaluation
        # error denies (PolicySet.run): for search it is then as good as satisfied.
        self.strict = bool(engine.policies.strict_forbid)

    # -- request data per candidate (mirrors Engine._evaluate) -----------------

    def request(self, c: Entity) -> tuple:
        if self.var == "resource":
            return self.p, self.a, c
        return c, self.a, self.r

    def data(self, c: Entity) -> Any:
        d = self._data.get(c)
        if d is not None:
            return d
        engine = self.engine
        p, a, r = self.request(c)
        if self._static_data is not None:
            dyn = self.rels_needed & engine._core_dep
            if not dyn:
                return self._static_data
            if engine._planned is not None:  # as Engine._evaluate: demand-driven plans first
                d = _PlannedRelations(engine._planned, p, a, r, self.ctx)
            else:
                d = _RequestRelations(engine._static, dyn, _LazyModel(engine, p, a, r, self.ctx, None))
        else:
            ents = self.ents
            d = OverlayData(engine._static, ents.parents if ents else None, ents.attrs if ents else None)
            lazy = _LazyModel(engine, p, a, r, self.ctx, ents)
            if engine._dynamic_hierarchy or (self.has_ents and engine._entity_hierarchy):
                d.hierarchy = lazy.model()
            for n in self.rels_needed & self.unstable:
                d.rels[n] = lazy
        if len(self._data) < 65536:
            self._data[c] = d
        return d

    def test(self, pol: Any, c: Entity) -> bool | None:
        """Whether ``pol`` is satisfied with ``c`` in the open slot; ``None``
        when deciding fails (the engine would fail closed: deny)."""
        p, a, r = self.request(c)
        try:
            return bool(pol.test(p, a, r, self.ctx, self.data(c)))
        except RuneEvalError:
            return self.strict and pol.forbid  # strict: an erroring forbid denies
        except Exception:
            return None

    def satisfying(self, pol: Any, pool: Iterable[Entity], skip: Any = ()) -> tuple[list, list]:
        """(candidates of ``pool`` that satisfy ``pol``, candidates whose
        evaluation failed); ``skip`` are not tested."""
        sat: list = []
        broken: list = []
        test = pol.test
        ctx = self.ctx
        data = self._static_data
        err_hit = self.strict and pol.forbid  # strict: an erroring forbid denies
        if data is not None and not (pol.relations & self.engine._core_dep):
            # the same data for every candidate: a tight loop over the compiled test
            if self.var == "resource":
                p, a = self.p, self.a
                for c in pool:
                    if c in skip:
                        continue
                    try:
                        if test(p, a, c, ctx, data):
                            sat.append(c)
                    except RuneEvalError:
                        if err_hit:
                            sat.append(c)
                    except Exception:
                        broken.append(c)
            else:
                a, r = self.a, self.r
                for c in pool:
                    if c in skip:
                        continue
                    try:
                        if test(c, a, r, ctx, data):
                            sat.append(c)
                    except RuneEvalError:
                        if err_hit:
                            sat.append(c)
                    except Exception:
                        broken.append(c)
            return sat, broken
        for c in pool:
            if c in skip:
                continue
            got = self.test(pol, c)
            if got:
                sat.append(c)
            elif got is None:
                broken.append(c)
        return sat, broken

    def never(self, pol: Any) -> bool:
        """Whether a part of ``pol`` that does not involve the open variable
        already rules it out for every candidate: the other side's scope, or
        a top-level conjunct of a ``when`` clause that is not true."""
        ast: A.Policy = pol.policy
        data = self._static_data
        if data is None:
            return False
        if self.var == "resource":
            sc, e = ast.principal, self.p
        else:
            sc, e = ast.resource, self.r
        assert e is not None
        if sc.kind == "eq" and e != sc.entity:
            return True
        if sc.kind in ("in", "is") and sc.entity is not None and not data.is_in(e, sc.entity):
            return True
        if self.strict and pol.forbid:
            # a conjunct that is false here does not stop an earlier one from
            # raising for some candidate, and a raising forbid denies
            return False
        reads = self.ix.reads_var[self.var]
        for cond in ast.conditions:
            if cond.kind != "when":
                continue
            for part in _conjuncts(cond.expr):
                if _mentions(part, self.var) or not _pure(part, reads | self.engine._core_dep):
                    continue
                ok, v = self._fixed(pol, part)
                if not ok or v is not True:
                    return True
        return False

    # -- generators ---------------------------------------------------------------

    def generator(self, pol: Any) -> tuple[Any, bool]:
        """``(generated, exact)``: the smallest index-derived superset of the
        candidates satisfying ``pol`` (``_ALL`` when none applies), and
        whether every generated candidate satisfies it (see ``_exact``)."""
        best: Any = None
        best_gen: Any = None
        for gen in self._generators(pol):
            got = gen()
            if got is None:
                continue
            if best is None or len(got) < len(best):
                best, best_gen = got, gen
                if not best:
                    break
        if best is None:
            return _ALL, False
        exact = getattr(best_gen, "node", None) is not None and best_gen.node is self._exact(pol)
        if self.req_uids:
            best = set(best) | self.req_uids
        return best, exact

    def _exact(self, pol: Any) -> Any:
        """The one condition of a policy that is nothing but that condition.

        For ``permit(principal, action, resource) when { rel(principal,
        action, resource.folder) }`` (no other condition, no constraint on the
        open slot beyond its type, and data that no request entity changes),
        a candidate the condition's generator finds satisfies the policy by
        construction: the index holds exactly the rows and attribute values
        the compiled test would read. Returns that condition's expression,
        or None.
        """
        ast: A.Policy = pol.policy
        if self._static_data is None or len(ast.conditions) != 1 or ast.conditions[0].kind != "when":
            return None
        sc = ast.resource if self.var == "resource" else ast.principal
        if sc.kind not in ("any", "is") or sc.entity is not None:
            return None
        if self.var == "principal" and pol.principal_eq is not None:
            return None
        return ast.conditions[0].expr

    def _generators(self, pol: Any) -> Iterable[Callable[[], Any]]:
        ast: A.Policy = pol.policy
        sc = ast.resource if self.var == "resource" else ast.principal
        target = sc.entity
        if sc.kind == "eq":
            yield lambda: {target}
        elif sc.kind in ("in", "is") and target is not None and self.hier_ok:
            yield lambda: self.ix.descendants(target)
        for cond in ast.conditions:
            if cond.kind != "when":
                continue
            for part in _conjuncts(cond.expr):
                g = self._conjunct_generator(pol, part)
                if g is not None:
                    yield g

    def _fixed(self, pol: Any, node: Any) -> tuple[bool, Any]:
        """Evaluate an argument that does not mention the open variable."""
        try:
            fn = compiled(node, pol.id)
            dummy = Entity("", "")
            p, a, r = (self.p, self.a, dummy) if self.var == "resource" else (dummy, self.a, self.r)
            assert p is not None and r is not None
            data = self._static_data if self._static_data is not None else self.data(dummy)
            return True, fn(p, a, r, self.ctx, data)
        except Exception:
            return False, None

    def _is_open(self, node: Any) -> bool:
        return type(node) is A.VarRef and node.name == self.var

    def _open_attr(self, node: Any) -> str | None:
        if type(node) is A.GetAttr and self._is_open(node.obj) and self.attrs_ok:
            return node.name
        return None

    def _conjunct_generator(self, pol: Any, node: Any) -> Callable[[], Any] | None:
        t = type(node)
        if t is A.RelCall:
            return self._relcall_generator(pol, node)
        if t is A.Binary and node.op == "==":
            for side, other in ((node.left, node.right), (node.right, node.left)):
                name = self._open_attr(side)
                if name is not None and not _mentions(other, self.var) and _simple(other):
                    def gen(name: str = name, other: Any = other) -> Any:
                        ok, v = self._fixed(pol, other)
                        return self.ix.with_attr(name, v) if ok else ()  # None: no generator
                    return _exactly(gen, node)
                if self._is_open(side) and not _mentions(other, self.var) and _simple(other):
                    def gen_eq(other: Any = other) -> Any:
                        ok, v = self._fixed(pol, other)
                        return {v} if ok and type(v) is Entity else set()
                    return _exactly(gen_eq, node)
            return None
        if t is A.Binary and node.op == "in" and self._is_open(node.left) and type(node.right) is A.Lit \
                and type(node.right.value) is Entity and self.hier_ok:
            target = node.right.value
            return _exactly(lambda: self.ix.descendants(target), node)
        return None

    def _relcall_generator(self, pol: Any, node: A.RelCall) -> Callable[[], Any] | None:
        name = node.name
        if name in ("principal", "action", "resource", "context") or name in self.unstable:
            return None
        if name in ("parent", "attr"):  # answered from the hierarchy snapshot, not the model
            return None
        open_col, open_attr = -1, None
        fixed: list[tuple[int, Any]] = []
        complete = True  # every argument is open, fixed or `_`
        for i, arg in enumerate(node.args):
            if type(arg) is A.Wildcard:
                continue
            if open_col < 0 and self._is_open(arg):
                open_col = i
            elif open_col < 0 and self._open_attr(arg) is not None:
                open_col, open_attr = i, self._open_attr(arg)
            elif _mentions(arg, self.var) or not _simple(arg):
                complete = False  # checked by the policy's own test
            else:
                fixed.append((i, arg))
        if open_col < 0:
            return None

        def gen() -> Any:
            vals = []
            for _, arg in fixed:
                ok, v = self._fixed(pol, arg)
                if not ok:
                    return set()
                try:
                    value_key(v)
                except TypeError:
                    return set()  # a set or record is never in a relation
                vals.append(v)
            hits = self.ix.lookup(name, tuple(i for i, _ in fixed), tuple(vals), open_col)
            if open_attr is None:
                return {h for h in hits if type(h) is Entity}
            out: set = set()
            for h in hits:
                out.update(self.ix.with_attr(open_attr, h) or ())
            return out

        return _exactly(gen, node) if complete else gen

    def independent(self, pol: Any) -> bool:
        """Whether ``pol`` cannot depend on the open variable (evaluate once)."""
        ast: A.Policy = pol.policy
        sc = ast.resource if self.var == "resource" else ast.principal
        if sc.kind not in ("any", "is") or (sc.kind == "is" and sc.entity is not None):
            return False
        if any(_mentions(c.expr, self.var) for c in ast.conditions):
            return False
        # and no relation it calls reads the open variable through the rules
        return not (pol.relations & self.ix.reads_var[self.var])

    # -- the search ------------------------------------------------------------------

    def run(self, policies: list) -> set:
        self.rels_needed = frozenset().union(*(pol.relations for pol in policies)) if policies else frozenset()
        permits = [pol for pol in policies if not pol.forbid]
        forbids = [pol for pol in policies if pol.forbid]
        allowed: set = set()
        broken: set = set()  # candidates whose evaluation fails: denied whatever else holds
        cand_set = self.cand_set
        for pol in permits:
            only = pol.principal_eq if self.var == "principal" else None
            if only is not None:
                # the engine's index guarantees principal ==; its test does not check it
                pool: Iterable[Entity] = [only] if only in cand_set else []
            elif self.never(pol):
                continue
            elif self.independent(pol):
                if not self.cands:
                    continue
                got = self.test(pol, self.cands[0])
                if got:
                    allowed.update(cand_set)
                elif got is None:
                    return set()
                continue
            else:
                gen, exact = self.generator(pol)
                if exact:
                    # satisfied by construction, except request entities (tested)
                    allowed.update(c for c in gen if c in cand_set and c not in self.req_uids)
                    pool = [c for c in self.req_uids if c in gen and c in cand_set]
                else:
                    pool = self.cands if gen is _ALL else [c for c in gen if c in cand_set]
            sat, bad = self.satisfying(pol, pool, allowed)
            allowed.update(sat)
            broken.update(bad)
        allowed -= broken
        for pol in forbids:
            if not allowed:
                break
            only = pol.principal_eq if self.var == "principal" else None
            if only is not None:
                pool = [only] if only in allowed else []
            elif self.never(pol):
                continue
            elif self.independent(pol):
                got = self.test(pol, next(iter(allowed)))
                if got or got is None:
                    return set()
                continue
            else:
                # strict: a candidate outside the generator may still make the
                # forbid raise (an earlier conjunct), so test every permitted one
                gen, _exact = (_ALL, False) if self.strict else self.generator(pol)
                if gen is _ALL:
                    pool = list(allowed)
                elif isinstance(gen, (set, frozenset)) and len(gen) > len(allowed):
                    pool = [c for c in allowed if c in gen]
                else:
                    pool = [c for c in gen if c in allowed]
            sat, bad = self.satisfying(pol, pool)
            allowed.difference_update(sat)
            allowed.difference_update(bad)
        return allowed


def _exactly(gen: Callable[[], Any], node: Any) -> Callable[[], Any]:
    """Mark a generator as exact for ``node`` (used when ``node`` is a policy's only condition)."""
    gen.node = node  # type: ignore[attr-defined]
    return gen


def _conjuncts(node: Any) -> list:
    out = []
    todo = [node]
    while todo:
        n = todo.pop()
        if type(n) is A.Binary and n.op == "&&":
            todo.append(n.right)
            todo.append(n.left)
        else:
            out.append(n)
    return out


def _pure(node: Any, unstable: frozenset) -> bool:
    """No relation call into ``unstable`` relations (they may differ per candidate)."""
    todo = [node]
    while todo:
        n = todo.pop()
        if type(n) is A.RelCall and (n.name in unstable or n.name in ("principal", "action", "resource")):
            return False
        if isinstance(n, A.Loc) or not hasattr(n, "__dataclass_fields__"):
            if isinstance(n, tuple):
                todo.extend(n)
            continue
        for f in n.__dataclass_fields__:
            v = getattr(n, f)
            if isinstance(v, tuple):
                todo.extend(v)
            elif hasattr(v, "__dataclass_fields__"):
                todo.append(v)
    return True


def _simple(node: Any) -> bool:
    """A literal, a variable or an attribute chain on a variable (no calls)."""
    while type(node) is A.GetAttr:
        node = node.obj
    return type(node) in (A.Lit, A.VarRef)


def _mentions(node: Any, var: str) -> bool:
    todo = [node]
    while todo:
        n = todo.pop()
        if type(n) is A.VarRef:
            if n.name == var:
                return True
            continue
        if isinstance(n, A.Loc) or not hasattr(n, "__dataclass_fields__"):
            if isinstance(n, tuple):
                todo.extend(n)
            continue
        for f in n.__dataclass_fields__:
            v = getattr(n, f)
            if isinstance(v, tuple):
                todo.extend(v)
            elif hasattr(v, "__dataclass_fields__"):
                todo.append(v)
    return False


def _select(engine: Any, a: Entity, ptype: str, rtype: str, principal: Entity | None, data: Any) -> list:
    """The policies the engine's index would run for this (action, types), in bundle order."""
    anc = data.ancestors(a)
    out = []
    for pol in engine.policies:
        if pol.principal_type is not None and pol.principal_type != ptype:
            continue
        if pol.resource_type is not None and pol.resource_type != rtype:
            continue
        if principal is not None and pol.principal_eq is not None and pol.principal_eq != principal:
            continue
        if not pol.action_matches(a, anc):
            continue
        out.append(pol)
    return out


def _action_data(engine: Any, ents: Any) -> Any:
    """What the policy index reads the action hierarchy from (as ``_evaluate``)."""
    if ents is not None and ents.parents:
        return OverlayData(engine._static, ents.parents, ents.attrs)
    return engine._static


def _per_candidate_only(engine: Any, ents: Any) -> bool:
    """Rules derive the hierarchy from the request: nothing static to enumerate."""
    has_ents = ents is not None and bool(ents.parents or ents.attrs)
    return engine._dynamic_hierarchy or (has_ents and engine._entity_hierarchy)


def resources(engine: Any, p: Entity, a: Entity, rtype: str, ctx: Any, ents: Any, cands: Any,
              cand_set: frozenset) -> set:
    """Candidates (of ``rtype``) that ``p`` may ``a``."""
    if _per_candidate_only(engine, ents):
        return {c for c in cands if engine._decide(p, a, c, ctx, ents)[0] == "permit"}
    pols = _select(engine, a, p.type, rtype, p, _action_data(engine, ents))
    return _Search(engine, "resource", p, a, None, ctx, ents, cands, cand_set).run(pols)


def subjects(engine: Any, a: Entity, r: Entity, ptype: str, ctx: Any, ents: Any, cands: Any,
             cand_set: frozenset) -> set:
    """Candidates (of ``ptype``) that may ``a`` on ``r``."""
    if _per_candidate_only(engine, ents):
        return {c for c in cands if engine._decide(c, a, r, ctx, ents)[0] == "permit"}
    pols = _select(engine, a, ptype, r.type, None, _action_data(engine, ents))
    return _Search(engine, "principal", None, a, r, ctx, ents, cands, cand_set).run(pols)
