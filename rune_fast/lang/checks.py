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
- ``REQUEST_RELATIONS``, ``RESERVED_RELATIONS``, ``REQUEST_BASE``

The reading of one rule body (safety, assignments, aggregate keys, a run
order) lives in ``safety.py``; this module applies it to every rule and adds
the checks that need the whole program: arities, undefined relations,
request relations, duplicate policy ids and stratification.
"""

from __future__ import annotations

import difflib
import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Optional, Sequence

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
from .safety import BodyInfo, _is_wild, _loc_of, classify_rule

__all__ = [
    "REQUEST_RELATIONS",
    "RESERVED_RELATIONS",
    "REQUEST_BASE",
    "ProgramInfo",
    "check_program",
]

#: Relations that exist only while one request is evaluated (docs/language.md §4).
REQUEST_RELATIONS: dict[str, int] = {"principal": 1, "action": 1, "resource": 1, "context": 2}

#: Relations with a fixed meaning that are always defined: they may have facts
#: and rules, and the request may add facts to them.
RESERVED_RELATIONS: dict[str, int] = {"parent": 2, "attr": 3}

#: A rule reading any of these (transitively) must be evaluated per request.
REQUEST_BASE: frozenset[str] = frozenset(REQUEST_RELATIONS) | frozenset(RESERVED_RELATIONS)


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
