"""Per-request rules compiled for the request shape (demand-driven plans).

Why this exists: a rule that reads the request (``principal``, ``action``,
``resource``, ``context``) cannot be evaluated once per engine. The general
way, ``Model.with_request``, runs every request-dependent stratum bottom-up
over per-request overlays of the model: correct for any program, but it
interns the request's values, allocates overlay relations and indexes and
derives every request-dependent tuple, whether or not a policy asks for it
(tens of microseconds even when a policy asks one question).

Policies ask *questions*: ``cleared(principal, resource)`` with both
arguments known, or ``secret_path(_)``. This module answers them top-down,
the way a query planner would: for each (relation, bound positions) pair a
policy can ask, and transitively for every sub-question a rule body asks,
it generates a Python function that starts from the bound constants, reads
the request directly (no facts are made of it), probes precomputed Python
indexes of the request-independent relations, and stops at the first
derivation when only existence matters. Nothing is interned: values stay
Python values in the policy layer's *key form* (``row_key``: booleans and
floats wrapped so that ``1``, ``1.0`` and ``true`` stay three values), so a
value the model never saw simply matches nothing.

Scope and fallbacks. Plans exist only for what is guaranteed to give the
same answer as the general evaluator:

- request-dependent relations in a recursive stratum, rules in which a
  variable has several binders (two assignments to ``X``), a relation
  bigger than ``SNAPSHOT_LIMIT`` rows read by a plan, or a body the
  generator cannot express are *unsupported*: questions about them (and
  about everything that reads them) go to the general evaluator;
- at run time a request falls back to the general evaluator (``Fallback``)
  when its plans have visited and derived more than ``STEP_BUDGET`` rows
  (the general evaluator then applies the ``max_request_tuples`` and
  ``deadline_ms`` limits; an engine whose ``max_request_tuples`` is below
  ``STEP_BUDGET`` does not use the plans at all, so that a tight limit
  means exactly what it says) or when an aggregate's value would depend on the order in which
  rows are visited (an integer sum that overflows on some orders only, a
  min/max tie between ``1`` and ``1.0``);
- request-supplied ``entities`` and rules that derive ``parent``/``attr``
  from the request are never handled here (the engine routes those requests
  to the general evaluator before asking).

Semantics mirror the executor (``datalog/_pycore.py``) operation by
operation: joins compare values kind-strictly, comparisons compare numbers
numerically and everything else by identity (ordering of non-numbers is
false), arithmetic failing (overflow, division by zero, a non-number)
makes that binding derive nothing, ``count`` counts solutions of the
aggregate body (not distinct values), the other aggregates of nothing
derive nothing. ``tests/test_request_plans.py`` checks the two evaluators
against each other on random programs.

Thread safety: a ``RequestPlans`` is immutable after construction; each
request has its own evaluation state (``RequestState``: the request, a memo
of the answers of this request only, and the step budget). No memo outlives
a request.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..lang import ast as A
from ..lang.safety import ROLE_ATOM, BodyInfo, classify_body
from ..values import value_key as row_key
from .codegen import FunctionGen, Names, Snapshot, Unsupported
from .ops import STEP_BUDGET, Fallback, RequestState, context_facts
from .paste import Paster, paster

__all__ = ["RequestPlans", "RequestState", "Fallback", "STEP_BUDGET", "SNAPSHOT_LIMIT", "context_facts"]

#: A request-independent relation read by a plan is copied into Python
#: indexes; beyond this many rows the plans that read it are not built.
SNAPSHOT_LIMIT = 200_000


class RequestPlans:
    """Demand-driven plans for the request-dependent relations of one engine.

    ``rules``/``rule_info``: the bundle's rules and their classification;
    ``dependent``: relations whose rows depend on the request; ``recursive``:
    request-dependent relations in a recursive stratum; ``arities``;
    ``static_rows(name)``: the request-independent rows of a relation (Python
    values; ``None`` when the relation is too big to copy);
    ``given_rows(name)``: the facts given for a request-dependent relation;
    ``questions``: (relation, mask) pairs the policies ask (mask: which
    positions are bound).
    """

    def __init__(
        self,
        rules: Iterable[A.Rule],
        rule_info: Iterable[BodyInfo],
        dependent: frozenset,
        recursive: frozenset,
        arities: Mapping[str, int],
        static_rows: Callable[[str], Optional[Sequence[tuple]]],
        given_rows: Callable[[str], list],
        questions: Iterable[tuple[str, tuple]],
    ) -> None:
        self.dependent = dependent
        self.arities = dict(arities)
        self._static_rows = static_rows
        self._given_rows = given_rows
        self._by_head: dict[str, list[tuple[A.Rule, BodyInfo]]] = {}
        for rule, info in zip(rules, rule_info):
            if rule.head.name in dependent:
                self._by_head.setdefault(rule.head.name, []).append((rule, info))
        self._recursive = recursive
        self.few = self._few_rows()
        self._names = Names()
        self._snapshots: dict[str, Optional[Snapshot]] = {}
        self._fns: dict[tuple, str] = {}       # (relation, mask, mode) -> function name
        self._failed: set = set()              # (relation, mask, mode) that cannot be planned
        self._counter = 0
        self._cheap: set = set()               # plans that do not memoize
        self._deps: dict[str, set] = {}        # function -> the functions it calls
        self._sources: list[str] = []
        self._source_of: dict[str, str] = {}  # function name -> its source
        #: relation -> function(state, *row) for questions with every position bound
        self.exists: dict[str, Callable] = {}
        #: relation -> function(state, row with None for wildcards)
        self.matches: dict[str, Callable] = {}
        #: (relation, mask) -> function(state, *the bound values): the plan
        #: of one question shape, without the dispatch on the row
        self.by_mask: dict[tuple[str, tuple], Callable] = {}
        #: (relation, mask) -> the paster of its plan when it is straight-line
        #: (``paste.py``): linked policies paste its body instead of calling it
        self.paste_by_mask: dict[tuple[str, tuple], Optional[Paster]] = {}
        wanted: dict[str, dict[tuple, str]] = {}
        for rel, mask in sorted(set(questions)):
            if rel not in dependent:
                continue
            try:
                wanted.setdefault(rel, {})[mask] = self._plan(rel, mask, "exists")
            except Unsupported:
                continue
        if not wanted:
            return
        dispatchers = {rel: self._dispatcher(n, by_mask) for n, (rel, by_mask) in enumerate(sorted(wanted.items()))}
        for name, _src, deps in dispatchers.values():
            self._deps[name] = deps
        src = "\n".join(self._sources + [d[1] for d in dispatchers.values()])
        ns = self._names.ns
        exec(compile(src, "<rune request plans>", "exec"), ns)  # our own generated code
        self.source = src
        # The functions leave their module namespace and reach the plans they
        # call through keyword-only defaults: no function -> globals ->
        # function cycle, so a replaced engine is freed by reference counting
        # alone (the call graph is acyclic: recursive relations have no plans).
        fns = {name: ns.pop(name) for name in self._deps}
        for name, deps in self._deps.items():
            if deps:
                fns[name].__kwdefaults__ = {d: fns[d] for d in deps}
        for rel, by_mask in wanted.items():
            arity = self.arities[rel]
            full = tuple([True] * arity)
            if full in by_mask:
                self.exists[rel] = fns[by_mask[full]]
            for mask, fname in by_mask.items():
                self.by_mask[(rel, mask)] = fns[fname]
                straight = fname in self._cheap and not self._deps.get(fname)
                self.paste_by_mask[(rel, mask)] = paster(self._source_of[fname], ns) if straight else None
            self.matches[rel] = fns[dispatchers[rel][0]]

    def _few_rows(self) -> frozenset:
        """Request-dependent relations with at most a handful of rows per
        request: every rule's positive atoms are ``principal``/``action``/
        ``resource`` (one row), ``context`` with a constant key (at most one
        row) or relations of this kind, and there are no given facts
        (``req_path(P) :- context("path", P).``, ``tmp_path(P) :-
        req_path(P), P.starts_with("/tmp/")``). The join order reads them
        first, as it reads the request atoms (a scheduling hint only)."""
        few: set = set()
        changed = True
        while changed:
            changed = False
            for rel, rules in self._by_head.items():
                if rel in few or rel in self._recursive or self._given_rows(rel):
                    continue
                if all(_few_atoms(info, few) for _rule, info in rules):
                    few.add(rel)
                    changed = True
        return frozenset(few)

    @staticmethod
    def _dispatcher(n: int, by_mask: dict) -> tuple[str, str, set]:
        """``M(ev, row)``: a question with ``None`` for wildcards, routed to
        the plan of its mask (``Fallback`` for a mask without one)."""
        name = f"M{n}"
        deps = set(by_mask.values())
        lines = [f"def {name}(ev, row, *, {', '.join(f'{d}=None' for d in sorted(deps))}):"]
        for mask, fn in sorted(by_mask.items()):
            cond = " and ".join(f"row[{j}] is {'not ' if b else ''}None" for j, b in enumerate(mask)) or "True"
            args = "".join(f", row[{j}]" for j, b in enumerate(mask) if b)
            lines.append(f"    if {cond}:")
            lines.append(f"        return {fn}(ev{args})")
        lines.append("    raise _FB('no plan for this question')")
        return name, "\n".join(lines) + "\n", deps

    # -- planning ------------------------------------------------------------------

    def _snapshot(self, name: str) -> Snapshot:
        if name not in self._snapshots:
            rows = self._static_rows(name)
            if rows is None or len(rows) > SNAPSHOT_LIMIT:
                self._snapshots[name] = None
            else:
                keyed = list({tuple([row_key(v) for v in row]): None for row in rows})
                self._snapshots[name] = Snapshot(keyed, self.arities.get(name, 0))
        snap = self._snapshots[name]
        if snap is None:
            raise Unsupported(f"relation {name} is too big to copy for per-request plans")
        return snap

    def _plan(self, rel: str, mask: tuple, mode: str) -> str:
        """The name of the generated function answering ``rel`` under ``mask``
        (``mode`` "exists": a bool; "rows": the set of matching rows)."""
        key = (rel, mask, mode)
        name = self._fns.get(key)
        if name is not None:
            return name
        if key in self._failed:
            raise Unsupported(f"{rel}{mask}")
        if rel in self._recursive:
            self._failed.add(key)
            raise Unsupported(f"{rel} is recursive per request")
        self._counter += 1
        name = self._fns[key] = f"F{self._counter}_{mode}"
        try:
            gen = FunctionGen(self, rel, mask, mode, name)
            src = gen.source()
            compile(src, "<rune request plan>", "exec")  # nesting limits etc.: fail here, at build time
        except (Unsupported, SyntaxError, RecursionError, MemoryError, ValueError) as exc:
            del self._fns[key]
            self._failed.add(key)
            raise Unsupported(str(exc)) from None
        self._sources.append(src)
        self._source_of[name] = src
        self._deps[name] = gen.deps
        return name

    def rules_of(self, rel: str) -> list[tuple[A.Rule, BodyInfo]]:
        """The rules of a request-dependent relation, plus one that reads its given facts."""
        out = list(self._by_head.get(rel, ()))
        given = self._given_rows(rel)
        if given:
            arity = self.arities[rel]
            args = tuple(A.Var(f"G{i}") for i in range(arity))
            atom = A.Atom("\0given:" + rel, args)
            out.append((A.Rule(A.Atom(rel, args), (atom,)), classify_body((atom,))))
        return out

    def static_rows_for(self, name: str) -> Optional[Sequence[tuple]]:
        if name.startswith("\0given:"):
            return self._given_rows(name[len("\0given:"):])
        return self._static_rows(name)


def _few_atoms(info: BodyInfo, few: set) -> bool:
    """Whether every positive atom of a rule body has at most one row per request
    or is a relation already known to have few (see ``RequestPlans._few_rows``)."""
    for li in info.literals:
        if li.role != ROLE_ATOM:
            continue
        atom = li.literal
        assert isinstance(atom, A.Atom)
        if atom.name in ("principal", "action", "resource") or atom.name in few:
            continue
        if atom.name == "context" and len(atom.args) == 2 and isinstance(atom.args[0], A.Const):
            continue
        return False
    return True
