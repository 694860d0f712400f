"""Load-time checks of a program (docs/language.md §4, §5 and §8), and what they learn.

A program that parses can still be meaningless: a variable nobody binds, a
relation used with two arities, a typo in a relation name, a cycle through
``not``. These are found here, *before* anything is compiled or evaluated, and
reported all at once (``errors.raise_collected``) so a user fixes a file in one
round trip instead of one error per reload.

What the checks learn is kept in ``ProgramInfo`` because the compiler needs
exactly the same facts: which ``=`` is an assignment, which variables are the
group-by keys of an aggregate, the strata, and which relations depend on the
request.  Computing them once, here, guarantees that what was checked is what
gets compiled.

Public API:

- ``check_program(facts, rules, policies) -> ProgramInfo``
- ``classify_body(body, *, outside=(), bound=()) -> BodyInfo``
- ``classify_rule(rule) -> BodyInfo``
- ``REQUEST_RELATIONS``, ``RESERVED_RELATIONS``, ``REQUEST_BASE``
- the role names ``ROLE_ATOM`` ... ``ROLE_AGGREGATE``
"""

from __future__ import annotations

import difflib
import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Optional, Sequence

from . import ast as A
from ..errors import (
    RuneArityError,
    RuneCheckError,
    RuneDuplicateIdError,
    RuneError,
    RuneHeadWildcardError,
    RuneLimitError,
    RuneSafetyError,
    RuneStratificationError,
    RuneUndefinedError,
    raise_collected,
)
from ..graphs import strongly_connected_components
from ..limits import MAX_ARITY

__all__ = [
    "REQUEST_RELATIONS",
    "RESERVED_RELATIONS",
    "REQUEST_BASE",
    "AGGREGATE_FUNCTIONS",
    "ROLE_ATOM",
    "ROLE_NEGATION",
    "ROLE_FILTER",
    "ROLE_ASSIGN",
    "ROLE_METHOD",
    "ROLE_AGGREGATE",
    "SafetyProblem",
    "LiteralInfo",
    "BodyInfo",
    "ProgramInfo",
    "classify_body",
    "classify_rule",
    "check_program",
]

#: Relations that exist only while one request is evaluated (docs/language.md §4).
REQUEST_RELATIONS: dict[str, int] = {"principal": 1, "action": 1, "resource": 1, "context": 2}

#: Relations with a fixed meaning that are always defined: they may have facts
#: and rules, and the request may add facts to them.
RESERVED_RELATIONS: dict[str, int] = {"parent": 2, "attr": 3}

#: A rule reading any of these (transitively) must be evaluated per request.
REQUEST_BASE: frozenset[str] = frozenset(REQUEST_RELATIONS) | frozenset(RESERVED_RELATIONS)

AGGREGATE_FUNCTIONS: frozenset[str] = frozenset({"count", "sum", "min", "max", "mean"})

# Roles of a body literal (see ``LiteralInfo``).
ROLE_ATOM = "atom"
ROLE_NEGATION = "negation"
ROLE_FILTER = "filter"
ROLE_ASSIGN = "assign"
ROLE_METHOD = "method"
ROLE_AGGREGATE = "aggregate"


# --------------------------------------------------------------------------
# Body classification (safety, assignment vs comparison, aggregate keys)


@dataclass(frozen=True)
class SafetyProblem:
    """One safety violation found while classifying a body.

    ``var`` is the variable name (``"_"`` for a misplaced wildcard); ``loc``
    points at the offending occurrence.  ``classify_*`` never raise: the
    checker turns problems into ``RuneSafetyError`` and the compiler, which
    only sees checked rules, never meets any.
    """

    var: str
    loc: A.Loc
    message: str


@dataclass(frozen=True)
class LiteralInfo:
    """What one body literal does, for the compiler.

    - ``index``: position of the literal in the body (source order).
    - ``role``:
        * ``ROLE_ATOM``: a positive atom; it binds every variable in ``binds``.
        * ``ROLE_NEGATION``: ``not atom``; a test on the variables in ``needs``.
        * ``ROLE_FILTER``: a comparison (any operator, including an ``=`` that
          is not an assignment); a test on ``needs``.
        * ``ROLE_ASSIGN``: ``V = expr`` (or ``expr = V``) that binds
          ``target`` (== ``binds[0]``) to the value of ``expr``; ``needs`` are
          the variables of ``expr``.
        * ``ROLE_METHOD``: ``V.starts_with("...")`` etc.; a test on ``needs``.
        * ``ROLE_AGGREGATE``: ``R = f T : { ... }``.  ``keys`` are the
          group-by variables (variables of the aggregate body that also occur
          anywhere outside it; they must be bound before, so ``needs ==
          keys``). ``binds`` is ``(R,)`` when the aggregate binds its result,
          or ``()`` when ``R`` was already bound, in which case the aggregate
          is a test ``R == f(...)``. ``body`` is the classification of the
          aggregate body, whose ``bound`` set started from ``keys``.
    - ``binds``: variables newly bound by this literal, in first-occurrence
      order (a positive atom lists all of its variables, even those already
      bound by another atom: the join turns these into equality tests).
    - ``needs``: variables that must be bound before the literal can run.
    """

    index: int
    literal: A.Literal
    role: str
    binds: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    target: Optional[str] = None
    expr: Optional[A.RuleExpr] = None
    keys: tuple[str, ...] = ()
    body: Optional["BodyInfo"] = None


@dataclass(frozen=True)
class BodyInfo:
    """The classification of one body (a rule body or an aggregate body).

    - ``literals``: one ``LiteralInfo`` per literal, in source order.
    - ``schedule``: indexes of ``literals`` in an order in which every
      literal's ``needs`` are bound when it runs: positive atoms first, then
      assignments and aggregates in dependency order, each test placed as
      early as its variables allow.  The compiler may reorder atoms freely
      (joins commute) but must respect ``needs``.
    - ``bound``: every variable bound at the end of the body.
    - ``positive``: variables bound by positive atoms (plus the variables
      bound from outside, for an aggregate body).
    - ``problems``: safety violations (empty for a checked rule).
    """

    literals: tuple[LiteralInfo, ...]
    schedule: tuple[int, ...]
    bound: frozenset[str]
    positive: frozenset[str]
    problems: tuple[SafetyProblem, ...] = ()


def _is_wild(node: object) -> bool:
    return isinstance(node, A.Wildcard) or (isinstance(node, A.Var) and node.name == "_")


def _expr_leaves(expr: object) -> Iterator[object]:
    """Leaves of a rule expression, left to right (iterative: no recursion limit)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, A.BinOp):
            stack.append(node.right)
            stack.append(node.left)
        else:
            yield node


def _expr_vars(expr: object) -> list[A.Var]:
    return [n for n in _expr_leaves(expr) if isinstance(n, A.Var) and not _is_wild(n)]


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _atom_vars(atom: A.Atom) -> list[A.Var]:
    return [t for t in atom.args if isinstance(t, A.Var) and not _is_wild(t)]


def _literal_vars(lit: A.Literal) -> list[A.Var]:
    """Every variable occurrence of a literal, aggregate bodies included."""
    if isinstance(lit, A.Atom):
        return _atom_vars(lit)
    if isinstance(lit, A.Negation):
        return _atom_vars(lit.atom)
    if isinstance(lit, A.Comparison):
        return _expr_vars(lit.left) + _expr_vars(lit.right)
    if isinstance(lit, A.MethodCall):
        return [] if _is_wild(lit.var) else [lit.var]
    if isinstance(lit, A.Aggregate):
        out = [] if _is_wild(lit.result) else [lit.result]
        if lit.target is not None and not _is_wild(lit.target):
            out.append(lit.target)
        for inner in lit.body:
            out.extend(_literal_vars(inner))
        return out
    return []


def _loc_of(node: object, *fallbacks: object) -> A.Loc:
    """The first real location among ``node`` and ``fallbacks``."""
    for n in (node, *fallbacks):
        loc = getattr(n, "loc", None) if not isinstance(n, A.Loc) else n
        if isinstance(loc, A.Loc) and loc.line:
            return loc
    return A.NO_LOC


_WHERE = {
    ROLE_NEGATION: "a negated atom",
    ROLE_FILTER: "a comparison",
    ROLE_METHOD: "a method call",
    ROLE_ASSIGN: "an assignment",
}


def classify_body(
    body: Sequence[A.Literal],
    *,
    outside: Iterable[str] = (),
    bound: Iterable[str] = (),
) -> BodyInfo:
    """Classify every literal of ``body`` and find its safety problems.

    ``outside`` are the variables occurring outside this body that matter for
    aggregate grouping (for a rule body: the head variables).  ``bound`` are
    variables already bound when the body starts (for an aggregate body: its
    group-by keys).  Binding is a fixpoint: positive atoms bind first, then
    any ``V = e`` whose right side is fully bound binds ``V`` (so chains such
    as ``Y = X + 1, Z = Y * 2`` work in any textual order), and an aggregate
    binds its result once all its group-by keys are bound.  An ``=`` that
    never qualifies as an assignment is a comparison.
    """
    outside_set = frozenset(outside)
    pre_bound = frozenset(bound)
    n = len(body)
    infos: list[Optional[LiteralInfo]] = [None] * n
    bound_now: set[str] = set(pre_bound)
    problems_at: dict[int, list[SafetyProblem]] = defaultdict(list)

    atoms: list[int] = []
    for i, lit in enumerate(body):
        if isinstance(lit, A.Atom):
            names = _unique(v.name for v in _atom_vars(lit))
            infos[i] = LiteralInfo(i, lit, ROLE_ATOM, binds=names)
            bound_now.update(names)
            atoms.append(i)
    positive = frozenset(bound_now)

    lit_vars = [frozenset(v.name for v in _literal_vars(lit)) for lit in body]
    # In how many literals each variable occurs: "does V occur outside
    # literal i" is then O(1) instead of a scan of the whole body.
    occurs: dict[str, int] = defaultdict(int)
    for var_names in lit_vars:
        for name in var_names:
            occurs[name] += 1

    def outside_of(i: int, v: str) -> bool:
        return v in outside_set or occurs.get(v, 0) - (v in lit_vars[i]) > 0

    binders: list[int] = []  # assignments and aggregates, in the order they fire
    agg_key_cache: dict[int, tuple[str, ...]] = {}

    def agg_keys(i: int, agg: A.Aggregate) -> tuple[str, ...]:
        keys = agg_key_cache.get(i)
        if keys is None:
            inner = _unique(v.name for lit in agg.body for v in _literal_vars(lit))
            keys = agg_key_cache[i] = tuple(v for v in inner if v != agg.result.name and outside_of(i, v))
        return keys

    def fire_aggregate(i: int, agg: A.Aggregate, keys: tuple[str, ...]) -> None:
        # Only variables of the aggregate body can be keys of a nested
        # aggregate, so "outside" is restricted to those.
        inner_outside = {v.name for lit in agg.body for v in _literal_vars(lit) if outside_of(i, v.name)}
        inner_outside.update(keys)
        if agg.target is not None and not _is_wild(agg.target):
            inner_outside.add(agg.target.name)
        sub = classify_body(agg.body, outside=inner_outside, bound=keys)
        probs = problems_at[i]
        probs.extend(sub.problems)
        if agg.func not in AGGREGATE_FUNCTIONS:
            probs.append(SafetyProblem(agg.func, _loc_of(agg), f"unknown aggregate function {agg.func!r}; expected one of count, sum, min, max, mean"))
        if agg.func == "count" and agg.target is not None:
            probs.append(SafetyProblem(agg.target.name, _loc_of(agg.target, agg), "count takes no target variable: write N = count : { ... }"))
        if agg.func != "count" and agg.func in AGGREGATE_FUNCTIONS and agg.target is None:
            probs.append(SafetyProblem(agg.func, _loc_of(agg), f"{agg.func} needs a target variable: R = {agg.func} T : {{ ... }}"))
        if agg.target is not None:
            if _is_wild(agg.target):
                probs.append(SafetyProblem("_", _loc_of(agg.target, agg), "the target of an aggregate cannot be _"))
            elif agg.target.name not in sub.bound:
                probs.append(SafetyProblem(
                    agg.target.name, _loc_of(agg.target, agg),
                    f"aggregate target {agg.target.name} is not bound by a positive atom or assignment of the aggregate body",
                ))
        if _is_wild(agg.result):
            probs.append(SafetyProblem("_", _loc_of(agg.result, agg), "the result of an aggregate cannot be _"))
        else:
            occ = next((v for lit in agg.body for v in _literal_vars(lit) if v.name == agg.result.name), None)
            if occ is not None:
                probs.append(SafetyProblem(
                    occ.name, _loc_of(occ, agg),
                    f"aggregate result {occ.name} also appears inside its own aggregate body",
                ))
        binds: tuple[str, ...] = ()
        if not _is_wild(agg.result) and agg.result.name not in bound_now:
            binds = (agg.result.name,)
            bind(agg.result.name)
        infos[i] = LiteralInfo(i, agg, ROLE_AGGREGATE, binds=binds, needs=keys, keys=keys, body=sub)
        binders.append(i)

    # Candidates that may bind something: each direction of an `=` whose one
    # side is a lone variable (``V = e`` and ``e = V``), and each aggregate.
    # A candidate is ready when all the variables it needs are bound; the
    # leftmost ready literal fires first (a heap of literal indexes), which
    # makes the choice deterministic, e.g. in ``X = 1, X = 2`` the first one
    # assigns and the second one compares.
    cand_lit: list[int] = []
    cand_target: list[Optional[A.Var]] = []
    cand_expr: list[Optional[A.RuleExpr]] = []
    cand_needs: list[tuple[str, ...]] = []
    for i, lit in enumerate(body):
        if isinstance(lit, A.Comparison) and lit.op == "=":
            for side, other in ((lit.left, lit.right), (lit.right, lit.left)):
                if not isinstance(side, A.Var) or _is_wild(side):
                    continue
                leaves = list(_expr_leaves(other))
                if any(_is_wild(x) for x in leaves):
                    continue
                cand_lit.append(i)
                cand_target.append(side)
                cand_expr.append(other)
                cand_needs.append(_unique(x.name for x in leaves if isinstance(x, A.Var)))
        elif isinstance(lit, A.Aggregate):
            cand_lit.append(i)
            cand_target.append(None)
            cand_expr.append(None)
            cand_needs.append(agg_keys(i, lit))

    missing = [0] * len(cand_lit)
    waiting: dict[str, list[int]] = defaultdict(list)
    ready: list[tuple[int, int]] = []
    for c, needs in enumerate(cand_needs):
        for v in needs:
            if v not in bound_now:
                missing[c] += 1
                waiting[v].append(c)
        if missing[c] == 0:
            ready.append((cand_lit[c], c))
    heapq.heapify(ready)

    def bind(name: str) -> None:
        bound_now.add(name)
        for c in waiting.pop(name, ()):
            missing[c] -= 1
            if missing[c] == 0:
                heapq.heappush(ready, (cand_lit[c], c))

    def drain() -> None:
        while ready:
            i, c = heapq.heappop(ready)
            if infos[i] is not None:
                continue
            lit = body[i]
            target = cand_target[c]
            if target is None:
                fire_aggregate(i, lit, cand_needs[c])  # type: ignore[arg-type]
                continue
            if target.name in bound_now:
                continue  # this direction no longer binds anything; maybe the other one does
            infos[i] = LiteralInfo(
                i, lit, ROLE_ASSIGN, binds=(target.name,),
                needs=cand_needs[c], target=target.name, expr=cand_expr[c],
            )
            binders.append(i)
            bind(target.name)

    drain()
    # Aggregates whose keys never got bound: report the keys, then classify
    # them anyway (pretending the keys are bound) so that problems inside
    # them are reported too, and so that their result does not cascade into
    # more "unbound" reports for the literals that depend on it.
    for i, lit in enumerate(body):
        if infos[i] is None and isinstance(lit, A.Aggregate):
            keys = agg_keys(i, lit)
            for k in keys:
                if k not in bound_now:
                    occ = next((v for sub in lit.body for v in _literal_vars(sub) if v.name == k), None)
                    problems_at[i].append(SafetyProblem(
                        k, _loc_of(occ, lit),
                        f"variable {k} is shared between an aggregate body and the rest of the rule, so it is a "
                        f"group-by key and must be bound outside the aggregate by a positive atom or an assignment",
                    ))
            fire_aggregate(i, lit, keys)
            drain()

    # Everything else is a test on already bound variables.
    for i, lit in enumerate(body):
        if infos[i] is not None:
            continue
        if isinstance(lit, A.Negation):
            infos[i] = LiteralInfo(i, lit, ROLE_NEGATION, needs=_unique(v.name for v in _atom_vars(lit.atom)))
        elif isinstance(lit, A.Comparison):
            infos[i] = LiteralInfo(i, lit, ROLE_FILTER, needs=_unique(v.name for v in _literal_vars(lit)))
        elif isinstance(lit, A.MethodCall):
            needs = () if _is_wild(lit.var) else (lit.var.name,)
            infos[i] = LiteralInfo(i, lit, ROLE_METHOD, needs=needs)
        else:  # pragma: no cover - the AST has no other literal kinds
            infos[i] = LiteralInfo(i, lit, ROLE_FILTER)

    # Problems, in source order.
    for i, lit in enumerate(body):
        info = infos[i]
        assert info is not None
        if info.role in (ROLE_ATOM, ROLE_AGGREGATE):
            continue
        where = _WHERE[info.role]
        if isinstance(lit, A.Comparison):
            for leaf in list(_expr_leaves(lit.left)) + list(_expr_leaves(lit.right)):
                if _is_wild(leaf):
                    problems_at[i].append(SafetyProblem(
                        "_", _loc_of(leaf, lit),
                        f"_ cannot be used in {where}: it matches anything and binds nothing",
                    ))
        if isinstance(lit, A.MethodCall) and _is_wild(lit.var):
            problems_at[i].append(SafetyProblem("_", _loc_of(lit.var, lit), "_ cannot be used in a method call"))
        occurrences = _atom_vars(lit.atom) if isinstance(lit, A.Negation) else _literal_vars(lit)
        reported: set[str] = set()
        for var in occurrences:
            if var.name in bound_now or var.name in reported:
                continue
            reported.add(var.name)
            hint = "; write _ for a position that should match anything" if info.role == ROLE_NEGATION else ""
            problems_at[i].append(SafetyProblem(
                var.name, _loc_of(var, lit),
                f"unsafe variable {var.name}: it appears in {where} but no positive atom or assignment "
                f"of the body binds it{hint}",
            ))

    problems = tuple(p for i in range(n) for p in problems_at.get(i, ()))
    final = [info for info in infos if info is not None]
    return BodyInfo(
        literals=tuple(final),
        schedule=_schedule(final, atoms, binders, pre_bound),
        bound=frozenset(bound_now),
        positive=positive,
        problems=problems,
    )


def _schedule(infos: list[LiteralInfo], atoms: list[int], binders: list[int], pre_bound: frozenset[str]) -> tuple[int, ...]:
    """A valid evaluation order: atoms, then binders in firing order, tests asap."""
    order: list[int] = list(atoms)
    known = set(pre_bound)
    for i in atoms:
        known.update(infos[i].binds)
    missing: dict[int, int] = {}
    waiting: dict[str, list[int]] = defaultdict(list)
    now: list[int] = []
    for info in infos:
        if info.role in (ROLE_NEGATION, ROLE_FILTER, ROLE_METHOD):
            unknown = [v for v in info.needs if v not in known]
            if not unknown:
                now.append(info.index)
                continue
            missing[info.index] = len(unknown)
            for v in unknown:
                waiting[v].append(info.index)
    order.extend(now)
    for b in binders:
        order.append(b)
        now = []
        for v in infos[b].binds:
            if v in known:
                continue
            known.add(v)
            for t in waiting.pop(v, ()):
                missing[t] -= 1
                if missing[t] == 0:
                    now.append(t)
                    del missing[t]
        order.extend(sorted(now))
    order.extend(sorted(missing))  # unsafe leftovers (only for unchecked rules)
    return tuple(order)


def classify_rule(rule: A.Rule) -> BodyInfo:
    """``classify_body`` for a rule, with head safety added to ``problems``.

    A head variable that the body does not bind is reported at its
    occurrence in the head (once per variable); a body problem about a
    variable already reported for the head is not repeated.
    """
    head_vars = [t for t in rule.head.args if isinstance(t, A.Var) and not _is_wild(t)]
    info = classify_body(rule.body, outside=[v.name for v in head_vars])
    problems: list[SafetyProblem] = []
    seen: set[str] = set()
    for v in head_vars:
        if v.name not in info.bound and v.name not in seen:
            seen.add(v.name)
            if rule.body:
                msg = f"unsafe variable {v.name}: it appears in the head but no positive atom or assignment of the body binds it"
            else:
                msg = f"unsafe variable {v.name}: a rule without a body (a fact) must be ground"
            problems.append(SafetyProblem(v.name, _loc_of(v, rule.head, rule), msg))
    for p in info.problems:
        if p.var == "_" or p.var not in seen:
            problems.append(p)
            if p.var != "_":
                seen.add(p.var)
    return BodyInfo(info.literals, info.schedule, info.bound, info.positive, tuple(problems))


# --------------------------------------------------------------------------
# Program-level checks


@dataclass(frozen=True)
class ProgramInfo:
    """What the checks learned about a valid program.

    - ``arities``: relation -> arity, for every relation mentioned anywhere
      (request and reserved relations included).
    - ``strata``: relations that have rules, grouped by strongly connected
      component of the dependency graph and listed in evaluation order: a
      stratum depends only on earlier strata, or on itself positively.
    - ``idb``: relations with at least one rule (facts written in ``[rules]``
      are rules with an empty body).
    - ``edb``: relations with facts from ``[data]`` or ``[sources]``.
    - ``request_dependent``: relations with rules that read, transitively,
      a request relation or ``parent``/``attr`` (which the request may
      extend); they are evaluated per request, all others once per engine.
    - ``rule_info``: ``classify_rule(rule)`` for every rule, same order.
    - ``depends_on``: relation -> relations its rules read (any polarity).
    """

    arities: dict[str, int]
    strata: list[tuple[str, ...]]
    idb: frozenset[str]
    edb: frozenset[str]
    request_dependent: frozenset[str]
    rule_info: tuple[BodyInfo, ...] = ()
    depends_on: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _error(cls: type[RuneError], message: str, loc: A.Loc) -> RuneError:
    if loc.line:
        return cls(message, loc.file, loc.line, loc.col, loc.text or None)
    return cls(message, loc.file if loc.file != A.NO_LOC.file else "<string>")


def _where(loc: A.Loc) -> str:
    if loc.line:
        return f"{loc.file}:{loc.line}:{loc.col}"
    return loc.file


def _body_atoms(body: Sequence[A.Literal], negative: bool = False) -> Iterator[tuple[A.Atom, bool, A.Literal]]:
    """Every atom of a body as ``(atom, negative, literal)``.

    ``negative`` is true for ``not`` and for anything inside an aggregate;
    ``literal`` is the top-level literal that contains the atom (where a
    stratification error is reported).
    """
    for lit in body:
        for atom, neg in _literal_atoms(lit, negative):
            yield atom, neg, lit


def _literal_atoms(lit: A.Literal, negative: bool) -> Iterator[tuple[A.Atom, bool]]:
    if isinstance(lit, A.Atom):
        yield lit, negative
    elif isinstance(lit, A.Negation):
        yield lit.atom, True
    elif isinstance(lit, A.Aggregate):
        for inner in lit.body:
            for atom, _ in _literal_atoms(inner, True):
                yield atom, True


def _policy_calls(policy: A.Policy) -> Iterator[A.RelCall]:
    """Every relation call in a policy's conditions (iterative walk)."""
    stack: list[object] = [c.expr for c in reversed(policy.conditions)]
    while stack:
        node = stack.pop()
        if isinstance(node, A.RelCall):
            yield node
            stack.extend(reversed([a for a in node.args if not isinstance(a, A.Wildcard)]))
        elif isinstance(node, (A.Lit, A.VarRef, A.Wildcard)) or node is None:
            continue
        elif isinstance(node, A.SetLit):
            stack.extend(reversed(node.items))
        elif isinstance(node, A.RecordLit):
            stack.extend(reversed([e for _, e in node.items]))
        elif isinstance(node, (A.GetAttr, A.Has, A.Like)):
            stack.append(node.obj)
        elif isinstance(node, A.Is):
            if node.in_expr is not None:
                stack.append(node.in_expr)
            stack.append(node.obj)
        elif isinstance(node, A.Unary):
            stack.append(node.operand)
        elif isinstance(node, A.Binary):
            stack.append(node.right)
            stack.append(node.left)
        elif isinstance(node, A.IfThenElse):
            stack.extend((node.else_, node.then, node.cond))
        elif isinstance(node, A.Method):
            stack.extend(reversed(node.args))
            stack.append(node.obj)


class _Use:
    __slots__ = ("name", "arity", "loc", "what")

    def __init__(self, name: str, arity: int, loc: A.Loc, what: str) -> None:
        self.name, self.arity, self.loc, self.what = name, arity, loc, what


def _check_arities(uses: list[_Use], errors: list[RuneError]) -> dict[str, int]:
    """The first use of a relation fixes its arity; every other use must agree.

    Uses come in priority order (built-ins, facts, heads, bodies, policies),
    so the message blames the least authoritative place.
    """
    first: dict[str, _Use] = {}
    too_wide: set[str] = set()
    for use in uses:
        if use.arity > MAX_ARITY and use.name not in too_wide:
            too_wide.add(use.name)
            loc = use.loc
            errors.append(RuneLimitError(
                f"relation {use.name} has {use.arity} columns here ({use.what}); at most {MAX_ARITY} are allowed",
                "max_arity", file=loc.file, line=loc.line, column=loc.col, source_line=loc.text or None,
            ))
        ref = first.get(use.name)
        if ref is None:
            first[use.name] = use
            continue
        if ref.arity == use.arity:
            continue
        if ref.what.startswith("built-in"):
            other = f"{use.name} is a {ref.what} of arity {ref.arity}"
        else:
            other = f"it has arity {ref.arity} at {_where(ref.loc)} ({ref.what})"
        errors.append(_error(
            RuneArityError,
            f"relation {use.name} is used with arity {use.arity} here ({use.what}), but {other}",
            use.loc,
        ))
    return {name: use.arity for name, use in first.items()}


class _Edge:
    __slots__ = ("head", "body", "negative", "rule_index", "literal")

    def __init__(self, head: str, body: str, negative: bool, rule_index: int, literal: A.Literal) -> None:
        self.head, self.body, self.negative = head, body, negative
        self.rule_index, self.literal = rule_index, literal


def _edge_label(e: _Edge) -> str:
    if not e.negative:
        return e.body
    if isinstance(e.literal, A.Aggregate):
        return f"aggregate over {e.body}"
    return f"not {e.body}"


def _cycle_chain(edge: _Edge, comp: set[str], edges_from: Mapping[str, list[_Edge]]) -> str:
    """``a -> not b -> a``: the negative edge, then a shortest way back."""
    start, goal = edge.body, edge.head
    prev: dict[str, Optional[_Edge]] = {start: None}
    queue = [start]
    qi = 0
    while qi < len(queue) and goal not in prev:
        node = queue[qi]
        qi += 1
        for e in edges_from.get(node, ()):
            if e.body in comp and e.body not in prev:
                prev[e.body] = e
                queue.append(e.body)
    path: list[_Edge] = []
    node = goal
    if start != goal:
        while node != start:
            step = prev[node]
            assert step is not None
            path.append(step)
            node = step.head
        path.reverse()
    parts = [edge.head, _edge_label(edge)]
    parts.extend(_edge_label(e) for e in path)
    return " -> ".join(parts)


def check_program(
    facts: Sequence[A.FactSet],
    rules: Sequence[A.Rule],
    policies: Sequence[A.Policy],
) -> ProgramInfo:
    """Run every load-time check; raise all problems at once or return the info.

    Checks: rule safety (``RuneSafetyError``), ``_`` in a head
    (``RuneHeadWildcardError``), one arity per relation (``RuneArityError``),
    undefined relations in bodies and policy calls (``RuneUndefinedError``),
    cycles through ``not``/aggregates (``RuneStratificationError``), facts or
    rules for a request relation (``RuneCheckError``) and duplicate policy
    ids (``RuneDuplicateIdError``; policies whose id is still ``""`` are
    skipped, the bundle assigns those).
    """
    errors: list[RuneError] = []

    # ---- per-rule checks: head wildcards and safety
    rule_info: list[BodyInfo] = []
    for rule in rules:
        for t in rule.head.args:
            if _is_wild(t):
                errors.append(_error(
                    RuneHeadWildcardError,
                    f"_ cannot appear in the head of a rule for {rule.head.name}: a derived fact must have a value in every position",
                    _loc_of(t, rule.head, rule),
                ))
        info = classify_rule(rule)
        rule_info.append(info)
        for p in info.problems:
            errors.append(_error(RuneSafetyError, p.message, p.loc if p.loc.line else _loc_of(rule)))

    # ---- arities
    uses: list[_Use] = []
    for name, ar in REQUEST_RELATIONS.items():
        uses.append(_Use(name, ar, A.NO_LOC, "built-in request relation"))
    for name, ar in RESERVED_RELATIONS.items():
        uses.append(_Use(name, ar, A.NO_LOC, "built-in reserved relation"))
    edb: set[str] = set()
    empty_facts: dict[str, A.FactSet] = {}
    for fs in facts:
        edb.add(fs.relation)
        if fs.rows:
            uses.append(_Use(fs.relation, fs.arity, _loc_of(fs), "facts"))
        else:
            # An empty array says nothing about the arity.
            empty_facts.setdefault(fs.relation, fs)
    idb: set[str] = set()
    for rule in rules:
        idb.add(rule.head.name)
        uses.append(_Use(rule.head.name, rule.head.arity, _loc_of(rule.head, rule), "rule head"))
    body_uses: list[tuple[A.Atom, A.Rule]] = []
    for rule in rules:
        for atom, _, lit in _body_atoms(rule.body):
            uses.append(_Use(atom.name, atom.arity, _loc_of(atom, lit, rule), "rule body"))
            body_uses.append((atom, rule))
    calls: list[A.RelCall] = []
    for pol in policies:
        for call in _policy_calls(pol):
            uses.append(_Use(call.name, len(call.args), _loc_of(call, pol), f"policy {pol.id!r}" if pol.id else "policy"))
            calls.append(call)
    arities = _check_arities(uses, errors)
    for name, fs in empty_facts.items():
        arities.setdefault(name, fs.arity)

    # ---- request relations cannot be defined by the program
    for fs in facts:
        if fs.relation in REQUEST_RELATIONS:
            errors.append(_error(
                RuneCheckError,
                f"{fs.relation} is a request relation: it holds the current request and cannot have facts",
                _loc_of(fs),
            ))
    for rule in rules:
        if rule.head.name in REQUEST_RELATIONS:
            errors.append(_error(
                RuneCheckError,
                f"{rule.head.name} is a request relation: it holds the current request and cannot have rules",
                _loc_of(rule.head, rule),
            ))

    # ---- undefined relations
    defined = edb | idb | REQUEST_BASE
    candidates = sorted(defined)

    suggestions: dict[str, str] = {}

    def undefined(name: str, loc: A.Loc, where: str) -> None:
        hint = suggestions.get(name)
        if hint is None:
            # Bounded: a garbage file must not spend seconds on fuzzy matching.
            close = difflib.get_close_matches(name, candidates, n=1) if len(suggestions) < 200 else []
            hint = suggestions[name] = f"; did you mean {close[0]}?" if close else ""
        errors.append(_error(
            RuneUndefinedError,
            f"relation {name} is used {where} but has no facts and no rules and is not a request relation{hint}",
            loc,
        ))

    for atom, rule in body_uses:
        if atom.name not in defined:
            undefined(atom.name, _loc_of(atom, rule), "in a rule body")
    for call in calls:
        if call.name not in defined:
            undefined(call.name, _loc_of(call), "in a policy")

    # ---- duplicate policy ids
    seen_ids: dict[str, A.Policy] = {}
    for pol in policies:
        if not pol.id:
            continue
        prev = seen_ids.get(pol.id)
        if prev is None:
            seen_ids[pol.id] = pol
            continue
        errors.append(_error(
            RuneDuplicateIdError,
            f"duplicate policy id {pol.id!r}: already used by the policy at {_where(_loc_of(prev))}",
            _loc_of(pol),
        ))

    # ---- dependency graph and stratification
    edges_from: dict[str, list[_Edge]] = defaultdict(list)
    depends: dict[str, set[str]] = defaultdict(set)
    order_seen: dict[str, int] = {}
    for ri, rule in enumerate(rules):
        head = rule.head.name
        order_seen.setdefault(head, ri)
        for atom, neg, lit in _body_atoms(rule.body):
            depends[head].add(atom.name)
            edges_from[head].append(_Edge(head, atom.name, neg, ri, lit))
    idb_nodes = sorted(idb, key=lambda r: order_seen[r])
    succ = {h: [e.body for e in edges_from[h] if e.body in idb] for h in idb_nodes}
    comps = strongly_connected_components(idb_nodes, succ)
    comp_of: dict[str, int] = {}
    for ci, comp in enumerate(comps):
        for r in comp:
            comp_of[r] = ci
    for comp in comps:
        members = set(comp)
        bad = [
            e for r in comp for e in edges_from[r]
            if e.negative and e.body in members
        ]
        if not bad:
            continue
        bad.sort(key=lambda e: (e.rule_index, _loc_of(e.literal).line, _loc_of(e.literal).col))
        edge = bad[0]
        chain = _cycle_chain(edge, members, edges_from)
        why = "an aggregate" if isinstance(edge.literal, A.Aggregate) else "negation"
        errors.append(_error(
            RuneStratificationError,
            f"the program is not stratified: cycle through {why}: {chain}",
            _loc_of(edge.literal, rules[edge.rule_index]),
        ))

    # Report in reading order, whatever check found the problem.
    errors.sort(key=lambda e: (e.file, e.line, e.column))
    raise_collected(errors)

    # ---- strata: components in dependency order, ties by first rule
    comp_deps: list[set[int]] = [set() for _ in comps]
    comp_users: list[set[int]] = [set() for _ in comps]
    for ci, comp in enumerate(comps):
        for r in comp:
            for b in succ[r]:
                cj = comp_of[b]
                if cj != ci:
                    comp_deps[ci].add(cj)
                    comp_users[cj].add(ci)
    comp_key = [min(order_seen[r] for r in comp) for comp in comps]
    remaining = [len(d) for d in comp_deps]
    heap = [(comp_key[ci], ci) for ci in range(len(comps)) if remaining[ci] == 0]
    heapq.heapify(heap)
    strata: list[tuple[str, ...]] = []
    while heap:
        _, ci = heapq.heappop(heap)
        strata.append(tuple(sorted(comps[ci], key=lambda r: order_seen[r])))
        for cu in comp_users[ci]:
            remaining[cu] -= 1
            if remaining[cu] == 0:
                heapq.heappush(heap, (comp_key[cu], cu))

    # ---- request dependence (fixpoint over the strata order)
    req: set[str] = set()
    for stratum in strata:
        # Inside one recursive component, dependence spreads to all members.
        if any(b in REQUEST_BASE or b in req for r in stratum for b in depends[r]):
            req.update(stratum)

    return ProgramInfo(
        arities=arities,
        strata=strata,
        idb=frozenset(idb),
        edb=frozenset(edb),
        request_dependent=frozenset(req),
        rule_info=tuple(rule_info),
        depends_on={r: frozenset(d) for r, d in depends.items()},
    )
