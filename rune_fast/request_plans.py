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

import math
from typing import Any, Callable, Iterable, Mapping, Optional, cast

from .datalog.compiler import string_test
from .lang import ast as A
from .lang.checks import (
    ROLE_AGGREGATE,
    ROLE_ASSIGN,
    ROLE_ATOM,
    ROLE_FILTER,
    ROLE_METHOD,
    ROLE_NEGATION,
    BodyInfo,
    LiteralInfo,
    classify_body,
)
from .values import INT_MAX, INT_MIN, Entity
from .values import FloatKey as _FloatKey
from .values import value_key as row_key

__all__ = ["RequestPlans", "RequestState", "Fallback", "STEP_BUDGET", "SNAPSHOT_LIMIT"]

#: Rows a request's plans may visit before the request is handed to the
#: general evaluator (which enforces the configured limits).
STEP_BUDGET = 20_000

#: A request-independent relation read by a plan is copied into Python
#: indexes; beyond this many rows the plans that read it are not built.
SNAPSHOT_LIMIT = 200_000

_REQUEST_ENTITY = {"principal": "p", "action": "a", "resource": "r"}
_CMP_OPS = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CMP_CODES = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}
_ARITH_CODES = {"+": 1, "-": 2, "*": 3, "/": 4, "%": 5}
_AGG_CODES = {"sum": 1, "min": 2, "max": 3, "mean": 4}
_MEMO = "#memo#"  # marks the generated lines that exist only when a plan memoizes
#: A rule with at most this many literals, alone in its relation, is copied
#: into the plans that read it instead of being called.
INLINE_LITERALS = 6


class Fallback(Exception):
    """This request needs the general evaluator (budget spent, or an
    aggregate whose value the plans cannot decide order-independently)."""


class Unsupported(Exception):
    """A rule or relation the plans do not handle (decided at build time)."""


# ---------------------------------------------------------------------------
# Value helpers used by the generated code (values are in key form)


def _num(k: Any) -> Any:
    t = type(k)
    if t is int:
        return k
    if t is _FloatKey:
        return k[0]
    return None


def _cmp(code: int, a: object, b: object) -> bool:
    """A rule comparison: numbers numerically, other values by identity."""
    if a is None or b is None:  # an arithmetic failure: the binding derives nothing
        return False
    x: Optional[float] = _num(a)
    y: Optional[float] = _num(b)
    if x is not None and y is not None:
        if code == 0:
            return x == y
        if code == 1:
            return x != y
        if code == 2:
            return x < y
        if code == 3:
            return x <= y
        if code == 4:
            return x > y
        return x >= y
    if code == 0:
        return a == b
    if code == 1:
        return a != b
    return False


def _result(r: Any) -> Any:
    """A computed number in key form, or None when it is not a value (overflow)."""
    if type(r) is int:
        return r if INT_MIN <= r <= INT_MAX else None
    if r != r or r in (math.inf, -math.inf):
        return None
    return _FloatKey((r,))


def _ar(code: int, a: Any, b: Any) -> Any:
    """Rule arithmetic (``+ - * / %``); None when it fails."""
    if a is None or b is None:
        return None
    x = _num(a)
    y = _num(b)
    if x is None or y is None:
        return None
    if code == 1:
        r = x + y
    elif code == 2:
        r = x - y
    elif code == 3:
        r = x * y
    else:
        if y == 0:
            return None
        if type(x) is int and type(y) is int:
            q = abs(x) // abs(y)
            q = q if (x >= 0) == (y >= 0) else -q
            r = q if code == 4 else x - q * y
        else:
            r = x / y if code == 4 else math.fmod(x, y)
    return _result(r)


def _agg(code: int, vals: list) -> Any:
    """``sum``/``min``/``max``/``mean`` of collected values; None derives nothing."""
    if not vals:
        return None
    nums = []
    for v in vals:
        x = _num(v)
        if x is None:
            return None
        nums.append(x)
    floats = any(type(x) is float for x in nums)
    try:
        if code == 1:
            if floats:
                r = math.fsum(nums)
            else:
                # The executor checks the running total in visiting order;
                # answer only when no order can overflow, or every order does.
                pos = sum(x for x in nums if x > 0)
                neg = sum(x for x in nums if x < 0)
                if pos <= INT_MAX and neg >= INT_MIN:
                    r = pos + neg
                elif not INT_MIN <= pos + neg <= INT_MAX:
                    return None
                else:
                    raise Fallback("integer sum overflows on some visiting orders")
        elif code == 2 or code == 3:
            r = min(nums) if code == 2 else max(nums)
            if floats and any(x == r and type(x) is not type(r) for x in nums):
                raise Fallback("min/max tie between an integer and a float")
        else:
            r = math.fsum(nums) / len(nums)
    except OverflowError:
        raise Fallback("float overflow in an aggregate") from None
    return _result(r)


# ---------------------------------------------------------------------------
# Per-request state


class RequestState:
    """What one request's plans share: the request, the answers computed so
    far for this request (``memo``), and the rows it may still visit."""

    __slots__ = ("p", "a", "r", "ctx", "cx", "memo", "budget")

    def __init__(self, p: Entity, a: Entity, r: Entity, ctx: Mapping[str, Any], budget: int = STEP_BUDGET) -> None:
        self.p = p
        self.a = a
        self.r = r
        self.ctx = ctx
        self.cx: Optional[dict] = None
        self.memo: dict = {}
        self.budget = budget

    def load_cx(self) -> dict:
        """``context(K, V)`` facts as a dict K -> V (key form): top-level scalars."""
        cx = {}
        for k, v in self.ctx.items():
            t = type(v)
            if t is str or t is int or t is Entity:
                cx[k] = v
            elif t is bool or t is float:
                cx[k] = row_key(v)
        self.cx = cx
        return cx


# ---------------------------------------------------------------------------
# Code generation


class _Names:
    """Module-level names of one generated source (constants, indexes, functions)."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "_cmp": _cmp, "_ar": _ar, "_agg": _agg, "_st": string_test, "_FB": Fallback,
        }
        self._consts: dict[tuple, str] = {}

    def const(self, value: Any) -> str:
        k = row_key(value)
        tag = (type(k), k if type(k) is not _FloatKey else k[0], type(value))
        name = self._consts.get(tag)
        if name is None:
            name = self._consts[tag] = f"K{len(self._consts)}"
            self.ns[name] = k
        return name


class _Snapshot:
    """A request-independent relation as Python indexes over key-form rows."""

    def __init__(self, rows: list[tuple], arity: int) -> None:
        self.rows = rows
        self.arity = arity
        self.full: Optional[frozenset] = None
        self.indexes: dict[tuple, tuple[dict, bool]] = {}

    def full_set(self) -> frozenset:
        if self.full is None:
            if self.arity == 1:
                self.full = frozenset(r[0] for r in self.rows)
            else:
                self.full = frozenset(self.rows)
        return self.full

    def index(self, cols: tuple) -> tuple[dict, bool]:
        """key -> rows (or -> the row when every key has one: ``unique``)."""
        got = self.indexes.get(cols)
        if got is None:
            ix: dict = {}
            if len(cols) == 1:
                c = cols[0]
                for row in self.rows:
                    ix.setdefault(row[c], []).append(row)
            else:
                for row in self.rows:
                    ix.setdefault(tuple([row[c] for c in cols]), []).append(row)
            unique = all(len(v) == 1 for v in ix.values())
            if unique:
                ix = {k: v[0] for k, v in ix.items()}
            got = self.indexes[cols] = (ix, unique)
        return got


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
        static_rows: Callable[[str], Optional[list]],
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
        self._names = _Names()
        self._snapshots: dict[str, Optional[_Snapshot]] = {}
        self._fns: dict[tuple, str] = {}       # (relation, mask, mode) -> function name
        self._failed: set = set()              # (relation, mask, mode) that cannot be planned
        self._counter = 0
        self._cheap: set = set()               # plans that do not memoize
        self._deps: dict[str, set] = {}        # function -> the functions it calls
        self._sources: list[str] = []
        #: relation -> function(state, *row) for questions with every position bound
        self.exists: dict[str, Callable] = {}
        #: relation -> function(state, row with None for wildcards)
        self.matches: dict[str, Callable] = {}
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
            self.matches[rel] = fns[dispatchers[rel][0]]

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

    def _snapshot(self, name: str) -> _Snapshot:
        if name not in self._snapshots:
            rows = self._static_rows(name)
            if rows is None or len(rows) > SNAPSHOT_LIMIT:
                self._snapshots[name] = None
            else:
                keyed = list({tuple([row_key(v) for v in row]): None for row in rows})
                self._snapshots[name] = _Snapshot(keyed, self.arities.get(name, 0))
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
            gen = _FunctionGen(self, rel, mask, mode, name)
            src = gen.source()
            compile(src, "<rune request plan>", "exec")  # nesting limits etc.: fail here, at build time
        except (Unsupported, SyntaxError, RecursionError, MemoryError, ValueError) as exc:
            del self._fns[key]
            self._failed.add(key)
            raise Unsupported(str(exc)) from None
        self._sources.append(src)
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

    def static_rows_for(self, name: str) -> Optional[list]:
        if name.startswith("\0given:"):
            return self._given_rows(name[len("\0given:"):])
        return self._static_rows(name)


class _FunctionGen:
    """Generates one function: every rule of ``rel`` for one binding mask."""

    def __init__(self, plans: RequestPlans, rel: str, mask: tuple, mode: str, name: str) -> None:
        self.plans = plans
        self.names = plans._names
        self.rel = rel
        self.mask = mask
        self.mode = mode
        self.name = name
        self.lines: list[str] = []
        self.vars: dict[str, str] = {}
        self.tmp = 0
        self.uses_cx = False
        self.costly = False   # a loop or a call of a costly plan: memoize per request
        self.scope = ""       # prefix of the variables of an inlined rule
        self.deps: set = set()  # plans this one calls (passed as keyword-only defaults)

    # -- helpers
    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def var(self, name: str) -> str:
        name = self.scope + name
        v = self.vars.get(name)
        if v is None:
            v = self.vars[name] = f"v{len(self.vars)}"
        return v

    def fresh(self, prefix: str) -> str:
        self.tmp += 1
        return f"{prefix}{self.tmp}"

    def term(self, t: Any) -> str:
        if isinstance(t, A.Const):
            return self.names.const(t.value)
        return self.var(t.name)

    def expr(self, e: Any) -> str:
        if isinstance(e, A.BinOp):
            return f"_ar({_ARITH_CODES[e.op]}, {self.expr(e.left)}, {self.expr(e.right)})"
        return self.term(e)

    def static(self, name: str) -> _Snapshot:
        if name.startswith("\0given:"):
            if name not in self.plans._snapshots:
                rows = self.plans.static_rows_for(name)
                assert rows is not None  # given rows are always a list
                keyed = list({tuple([row_key(v) for v in row]): None for row in rows})
                self.plans._snapshots[name] = _Snapshot(keyed, len(keyed[0]) if keyed else 0)
            snap = self.plans._snapshots[name]
            assert snap is not None
            return snap
        return self.plans._snapshot(name)

    def bind_name(self, obj: Any, prefix: str) -> str:
        n = f"{prefix}{len(self.names.ns)}"
        self.names.ns[n] = obj
        return n

    # -- the function
    def source(self) -> str:
        bound_args = [f"a{i}" for i, b in enumerate(self.mask) if b]
        self.emit(0, "")  # the def line, once the callees are known
        if self.mode == "rows":
            self.emit(1, "out = set()")
        for rule, info in self.plans.rules_of(self.rel):
            self.rule(rule, info)
        if self.mode == "rows":
            self.emit(1, _MEMO + "memo[key] = out")
            self.emit(1, "return out")
        else:
            self.emit(1, _MEMO + "memo[key] = False")
            self.emit(1, "return False")
        # Answers are memoized for the request only when computing them
        # again could cost more than the memo (a loop or a costly call).
        memoize = self.costly
        if not memoize:
            self.plans._cheap.add(self.name)
        head = []
        if memoize:
            memo_key = f"({self.name!r}, {', '.join(bound_args)},)" if bound_args else repr(self.name)
            head += ["    memo = ev.memo", f"    key = {memo_key}", "    hit = memo.get(key)",
                     "    if hit is not None:", "        return hit"]
        if self.uses_cx:
            head += ["    cx = ev.cx", "    if cx is None:", "        cx = ev.load_cx()"]
        kw = "".join(f", {d}=None" for d in sorted(self.deps))
        params = "".join(", " + a for a in bound_args) + (", *" + kw if kw else "")
        lines = [f"def {self.name}(ev{params}):"] + head
        for line in self.lines[1:]:
            if _MEMO in line:
                if not memoize:
                    continue
                line = line.replace(_MEMO, "")
            lines.append(line)
        return "\n".join(lines) + "\n"

    def rule(self, rule: A.Rule, info: BodyInfo) -> None:
        _check_single_binders(info)
        self.vars = {}
        head = rule.head.args
        depth = 1
        bound: set[str] = set()
        post: list[tuple[str, str]] = []  # (var, arg): strict equality checked at the head
        for i, t in enumerate(head):
            if not self.mask[i]:
                continue
            arg = f"a{i}"
            if isinstance(t, A.Const):
                self.emit(depth, f"if {arg} == {self.term(t)}:")
                depth += 1
            elif isinstance(t, A.Var):
                if t.name in bound:
                    self.emit(depth, f"if {arg} == {self.var(t.name)}:")
                    depth += 1
                elif t.name in info.positive:
                    self.emit(depth, f"{self.var(t.name)} = {arg}")
                    bound.add(t.name)
                else:
                    post.append((t.name, arg))
            else:
                raise Unsupported("wildcard in a head")

        def terminal(d: int, bound_now: set) -> None:
            for v, arg in post:
                self.emit(d, f"if {self.var(v)} == {arg}:")
                d += 1
            if self.mode == "exists":
                self.emit(d, _MEMO + "memo[key] = True")
                self.emit(d, "return True")
            else:
                self._budget(d, "1")  # a derived row counts against the budget too
                cols = ", ".join(self.term(t) for t in head)
                self.emit(d, f"out.add(({cols}{',' if len(head) == 1 else ''}))")

        self.body(info, bound, depth, terminal, counting=False)

    def body(self, info: BodyInfo, bound: set, depth: int, terminal: Callable[[int, set], None], counting: bool) -> None:
        steps = _schedule(info, set(bound))
        self.steps(steps, 0, set(bound), depth, terminal, counting)
        self.emit(depth, "pass")

    def steps(self, steps: list, i: int, bound: set, depth: int, terminal: Callable, counting: bool) -> None:
        if i == len(steps):
            terminal(depth, bound)
            return
        li = steps[i]
        role = li.role
        if role == ROLE_ATOM:
            callee = self._inlinable(li.literal, counting)
            if callee is not None:
                self.inline(li.literal, callee, bound, depth,
                            lambda d: self.steps(steps, i + 1, bound, d, terminal, counting))
                return
            depth = self.atom(li.literal, bound, depth, counting)
        elif role == ROLE_NEGATION:
            depth = self.negation(li.literal.atom, bound, depth)
        elif role == ROLE_FILTER:
            lit = li.literal
            self.emit(depth, f"if {self.compare(lit.op, lit.left, lit.right)}:")
            depth += 1
        elif role == ROLE_METHOD:
            lit = li.literal
            v = self.var(lit.var.name)
            arg = repr(lit.arg)
            if lit.method == "starts_with":
                cond = f"type({v}) is str and {v}.startswith({arg})"
            elif lit.method == "ends_with":
                cond = f"type({v}) is str and {v}.endswith({arg})"
            elif lit.method == "contains":
                cond = f"type({v}) is str and {arg} in {v}"
            else:
                cond = f"_st({lit.method!r}, {arg}, {v})"
            self.emit(depth, f"if {cond}:")
            depth += 1
        elif role == ROLE_ASSIGN:
            target = li.target
            if target in bound:
                self.emit(depth, f"if _cmp(0, {self.var(target)}, {self.expr(li.expr)}):")
                depth += 1
            else:
                v = self.var(target)
                self.emit(depth, f"{v} = {self.expr(li.expr)}")
                self.emit(depth, f"if {v} is not None:")
                depth += 1
                bound.add(target)
        elif role == ROLE_AGGREGATE:
            depth = self.aggregate(li, bound, depth)
        else:
            raise Unsupported(f"literal role {role}")
        self.steps(steps, i + 1, bound, depth, terminal, counting)

    # -- inlining
    def _inlinable(self, atom: A.Atom, counting: bool) -> Optional[tuple[A.Rule, BodyInfo]]:
        """The one short rule of a request-dependent relation, to be copied
        into the caller; None to call its plan instead. Never inside an
        aggregate body: there a call yields each distinct row once, and a
        copied body could yield one row several times."""
        if counting or atom.name not in self.plans.dependent or atom.name in self.plans._recursive:
            return None
        rules = self.plans.rules_of(atom.name)
        if len(rules) != 1:
            return None
        rule, info = rules[0]
        if len(info.literals) > INLINE_LITERALS or any(li.role == ROLE_AGGREGATE for li in info.literals):
            return None
        try:
            _check_single_binders(info)
        except Unsupported:
            return None
        return rule, info

    def inline(self, atom: A.Atom, callee: tuple[A.Rule, BodyInfo], bound: set, depth: int,
               cont: Callable[[int], None]) -> None:
        """Emit the callee's body in place of a call, with its variables
        renamed apart; the head is unified with the call's arguments exactly
        as a call would (``rule``): bound arguments pre-bind variables that a
        positive atom binds, and are compared at the end otherwise."""
        rule, info = callee
        caller_scope = self.scope
        calls: list[tuple[str, Any]] = []
        for s in atom.args:
            if isinstance(s, A.Wildcard) or (isinstance(s, A.Var) and s.name == "_"):
                calls.append(("wild", None))
            elif isinstance(s, A.Const) or s.name in bound:
                calls.append(("val", self.term(s)))
            else:
                calls.append(("var", s.name))
        tag = self.fresh("i") + "/"
        self.scope = tag
        head = rule.head.args
        cbound: set = set()
        post: list[tuple[str, str]] = []
        for (kind, x), t in zip(calls, head):
            if kind != "val":
                continue
            if isinstance(t, A.Const):
                self.emit(depth, f"if {x} == {self.term(t)}:")
                depth += 1
                continue
            name = cast(A.Var, t).name  # a head holds constants and variables (lang.checks)
            if name in cbound:
                self.emit(depth, f"if {x} == {self.var(name)}:")
                depth += 1
            elif name in info.positive:
                self.emit(depth, f"{self.var(name)} = {x}")
                cbound.add(name)
            else:
                post.append((name, x))

        def finish(d: int, _b: set) -> None:
            for v, x in post:
                self.emit(d, f"if {self.var(v)} == {x}:")
                d += 1
            vals = [(x, self.term(t)) for (kind, x), t in zip(calls, head) if kind == "var"]
            self.scope = caller_scope
            newly: set = set()
            for name, val in vals:
                if name in newly:
                    self.emit(d, f"if {self.var(name)} == {val}:")
                    d += 1
                else:
                    self.emit(d, f"{self.var(name)} = {val}")
                    newly.add(name)
            bound.update(newly)
            cont(d)
            self.scope = tag

        self.steps(_schedule(info, set(cbound)), 0, set(cbound), depth, finish, counting=False)
        self.scope = caller_scope

    def compare(self, op: str, left: Any, right: Any) -> str:
        lhs = self.expr(left)
        rhs = self.expr(right)
        code = _CMP_CODES[op]
        if isinstance(left, A.BinOp) or isinstance(right, A.BinOp):
            return f"_cmp({code}, {lhs}, {rhs})"
        # both sides plain: integers inline, anything else through _cmp
        return f"({lhs} {_CMP_OPS[op]} {rhs} if type({lhs}) is int and type({rhs}) is int else _cmp({code}, {lhs}, {rhs}))"

    def aggregate(self, li: LiteralInfo, bound: set, depth: int) -> int:
        agg = cast(A.Aggregate, li.literal)
        inner = li.body
        assert inner is not None
        if agg.func == "count":
            acc = self.fresh("n")
            self.emit(depth, f"{acc} = 0")

            def collect(d: int, _b: set) -> None:
                self.emit(d, f"{acc} += 1")
        else:
            acc = self.fresh("acc")
            self.emit(depth, f"{acc} = []")
            assert agg.target is not None  # only count has none
            target = self.var(agg.target.name)

            def collect(d: int, _b: set) -> None:
                self.emit(d, f"{acc}.append({target})")

        keys = set(li.keys)
        steps = _schedule(inner, set(keys))
        self.steps(steps, 0, set(keys), depth, collect, counting=True)
        res = self.fresh("res")
        if agg.func == "count":
            self.emit(depth, f"{res} = {acc}")
        else:
            self.emit(depth, f"{res} = _agg({_AGG_CODES[agg.func]}, {acc})")
            self.emit(depth, f"if {res} is not None:")
            depth += 1
        name = agg.result.name
        if name in bound:
            self.emit(depth, f"if _cmp(0, {self.var(name)}, {res}):")
            depth += 1
        else:
            self.emit(depth, f"{self.var(name)} = {res}")
            bound.add(name)
        return depth

    # -- atoms
    def _classify_args(self, atom: A.Atom, bound: set) -> tuple[list, list, list]:
        """(bound positions with their source, positions that bind a new
        variable, positions that repeat a variable bound earlier in this atom)."""
        keys: list[tuple[int, str]] = []
        binds: list[tuple[int, str]] = []
        checks: list[tuple[int, str]] = []
        newly: set = set()
        for j, t in enumerate(atom.args):
            if isinstance(t, A.Wildcard) or (isinstance(t, A.Var) and t.name == "_"):
                continue
            if isinstance(t, A.Const) or t.name in bound:
                keys.append((j, self.term(t)))
            elif t.name in newly:
                checks.append((j, self.var(t.name)))
            else:
                newly.add(t.name)
                binds.append((j, self.var(t.name)))
        return keys, binds, checks

    def _unpack(self, depth: int, row: str, binds: list, checks: list, offset: Optional[dict] = None) -> int:
        for j, v in binds:
            self.emit(depth, f"{v} = {row}[{j if offset is None else offset[j]}]")
        for j, v in checks:
            self.emit(depth, f"if {row}[{j if offset is None else offset[j]}] == {v}:")
            depth += 1
        return depth

    def _budget(self, depth: int, n: str) -> None:
        if n != "1":  # before a loop
            self.costly = True
        self.emit(depth, f"ev.budget -= {n}")
        self.emit(depth, "if ev.budget < 0:")
        self.emit(depth + 1, "raise _FB('step budget')")

    def atom(self, atom: A.Atom, bound: set, depth: int, counting: bool) -> int:
        name = atom.name
        keys, binds, checks = self._classify_args(atom, bound)
        newly = {t.name for t in atom.args if isinstance(t, A.Var) and t.name != "_"}
        if name in _REQUEST_ENTITY:
            src = f"ev.{_REQUEST_ENTITY[name]}"
            if keys:
                self.emit(depth, f"if {keys[0][1]} == {src}:")
                depth += 1
            for _j, v in binds:
                self.emit(depth, f"{v} = {src}")
        elif name == "context":
            self.uses_cx = True
            kpos = dict(keys)
            bpos = dict(binds)
            if 0 in kpos:
                kexpr = kpos[0]
                if 1 in kpos:
                    self.emit(depth, f"if cx.get({kexpr}) == {kpos[1]}:")
                    depth += 1
                elif 1 in bpos:
                    self.emit(depth, f"{bpos[1]} = cx.get({kexpr})")
                    self.emit(depth, f"if {bpos[1]} is not None:")
                    depth += 1
                else:
                    self.emit(depth, f"if {kexpr} in cx:")
                    depth += 1
            else:
                kv = bpos.get(0, self.fresh("ck"))
                vv = bpos.get(1) or self.fresh("cv")
                chk = dict(checks)
                if 1 in chk:  # context(K, K)
                    vv = self.fresh("cv")
                self.costly = True
                self.emit(depth, f"for {kv}, {vv} in cx.items():")
                depth += 1
                if 1 in kpos:
                    self.emit(depth, f"if {vv} == {kpos[1]}:")
                    depth += 1
                if 1 in chk:
                    self.emit(depth, f"if {vv} == {kv}:")
                    depth += 1
        elif name in self.plans.dependent:
            mask = tuple(j in dict(keys) for j in range(len(atom.args)))
            args = "".join(", " + src for _j, src in keys)
            if not binds and not checks and not counting:
                fn = self.plans._plan(name, mask, "exists")
                self.deps.add(fn)
                self.costly |= fn not in self.plans._cheap
                self.emit(depth, f"if {fn}(ev{args}):")
                depth += 1
            else:
                fn = self.plans._plan(name, mask, "rows")
                self.deps.add(fn)
                rows = self.fresh("rows")
                row = self.fresh("row")
                self.emit(depth, f"{rows} = {fn}(ev{args})")
                self.emit(depth, f"if {rows}:")
                depth += 1
                self._budget(depth, f"len({rows})")
                self.emit(depth, f"for {row} in {rows}:")
                depth = self._unpack(depth + 1, row, binds, checks)
        else:
            snap = self.static(name)
            arity = len(atom.args)
            if len(keys) == arity:
                if arity == 0:
                    self.emit(depth, f"if {self.bind_name(bool(snap.rows), 'E')}:")
                elif arity == 1:
                    self.emit(depth, f"if {keys[0][1]} in {self.bind_name(snap.full_set(), 'S')}:")
                else:
                    tup = ", ".join(src for _j, src in keys)
                    self.emit(depth, f"if ({tup}) in {self.bind_name(snap.full_set(), 'S')}:")
                depth += 1
            elif keys:
                cols = tuple(j for j, _s in keys)
                ix, unique = snap.index(cols)
                ixn = self.bind_name(ix, "X")
                k = keys[0][1] if len(keys) == 1 else "(" + ", ".join(s for _j, s in keys) + ")"
                if not binds and not checks and not counting:
                    self.emit(depth, f"if {k} in {ixn}:")
                    depth += 1
                elif unique:
                    row = self.fresh("row")
                    self.emit(depth, f"{row} = {ixn}.get({k})")
                    self.emit(depth, f"if {row} is not None:")
                    depth = self._unpack(depth + 1, row, binds, checks)
                else:
                    rows = self.fresh("rows")
                    row = self.fresh("row")
                    self.emit(depth, f"{rows} = {ixn}.get({k})")
                    self.emit(depth, f"if {rows} is not None:")
                    depth += 1
                    self._budget(depth, f"len({rows})")
                    self.emit(depth, f"for {row} in {rows}:")
                    depth = self._unpack(depth + 1, row, binds, checks)
            else:
                rows_name = self.bind_name(snap.rows, "R")
                if not binds and not checks and not counting:
                    self.emit(depth, f"if {rows_name}:")
                    depth += 1
                else:
                    row = self.fresh("row")
                    self._budget(depth, f"len({rows_name})")
                    self.emit(depth, f"for {row} in {rows_name}:")
                    depth = self._unpack(depth + 1, row, binds, checks)
        bound.update(newly)
        return depth

    def negation(self, atom: A.Atom, bound: set, depth: int) -> int:
        name = atom.name
        keys, binds, checks = self._classify_args(atom, bound)
        if binds or checks:
            raise Unsupported("unbound variable under negation")
        if name in _REQUEST_ENTITY:
            if keys:
                self.emit(depth, f"if {keys[0][1]} != ev.{_REQUEST_ENTITY[name]}:")
            else:
                self.emit(depth, "if False:")
        elif name == "context":
            self.uses_cx = True
            kpos = dict(keys)
            if 0 in kpos and 1 in kpos:
                self.emit(depth, f"if cx.get({kpos[0]}) != {kpos[1]}:")
            elif 0 in kpos:
                self.emit(depth, f"if {kpos[0]} not in cx:")
            elif 1 in kpos:
                self.emit(depth, f"if {kpos[1]} not in cx.values():")
            else:
                self.emit(depth, "if not cx:")
        elif name in self.plans.dependent:
            mask = tuple(j in dict(keys) for j in range(len(atom.args)))
            fn = self.plans._plan(name, mask, "exists")
            self.deps.add(fn)
            self.costly |= fn not in self.plans._cheap
            args = "".join(", " + src for _j, src in keys)
            self.emit(depth, f"if not {fn}(ev{args}):")
        else:
            snap = self.static(name)
            arity = len(atom.args)
            if len(keys) == arity:
                if arity == 0:
                    self.emit(depth, f"if not {self.bind_name(bool(snap.rows), 'E')}:")
                elif arity == 1:
                    self.emit(depth, f"if {keys[0][1]} not in {self.bind_name(snap.full_set(), 'S')}:")
                else:
                    tup = ", ".join(src for _j, src in keys)
                    self.emit(depth, f"if ({tup}) not in {self.bind_name(snap.full_set(), 'S')}:")
            elif keys:
                ix, _u = snap.index(tuple(j for j, _s in keys))
                k = keys[0][1] if len(keys) == 1 else "(" + ", ".join(s for _j, s in keys) + ")"
                self.emit(depth, f"if {k} not in {self.bind_name(ix, 'X')}:")
            else:
                self.emit(depth, f"if not {self.bind_name(snap.rows, 'R')}:")
        return depth + 1


def _check_single_binders(info: BodyInfo) -> None:
    """Refuse bodies where a variable could be bound by more than one
    assignment or aggregate: which one binds first (and so the kind of its
    value) depends on the join order, which differs between the plans."""
    seen: set = set()
    for li in info.literals:
        names: list[str] = []
        if li.role == ROLE_ASSIGN and li.target is not None:
            names.append(li.target)
        elif li.role == ROLE_AGGREGATE:
            names.append(cast(A.Aggregate, li.literal).result.name)
            assert li.body is not None
            _check_single_binders(li.body)
        for n in names:
            if n in seen or n in info.positive:
                raise Unsupported(f"variable {n} has several binders")
            seen.add(n)


def _is_request_atom(atom: A.Atom) -> int:
    if atom.name in _REQUEST_ENTITY:
        return 2
    if atom.name == "context":
        return 1
    return 0


def _schedule(info: BodyInfo, bound: set) -> list[LiteralInfo]:
    """Literal order for a body whose variables ``bound`` are known: tests
    as soon as their variables are bound (in source order, as the executor's
    planner does), then the atom with the most bound arguments (request atoms
    first: they have at most a handful of rows)."""
    order: list[LiteralInfo] = []
    pending = list(info.literals)
    while pending:
        progressed = True
        while progressed:
            progressed = False
            for li in list(pending):
                if li.role == ROLE_ATOM or not all(v in bound for v in li.needs):
                    continue
                pending.remove(li)
                order.append(li)
                if li.role == ROLE_ASSIGN and li.target is not None:
                    bound.add(li.target)
                elif li.role == ROLE_AGGREGATE:
                    bound.add(cast(A.Aggregate, li.literal).result.name)
                progressed = True
        atoms = [li for li in pending if li.role == ROLE_ATOM]
        if not atoms:
            if pending:
                raise Unsupported("cannot schedule the body")
            break

        def score(li: LiteralInfo) -> tuple:
            atom = cast(A.Atom, li.literal)  # ROLE_ATOM
            args = atom.args
            nb = sum(1 for t in args if isinstance(t, A.Const) or (isinstance(t, A.Var) and t.name in bound))
            full = nb == len(args)
            return (full, _is_request_atom(atom), nb / len(args) if args else 1.0, -li.index)

        best = max(atoms, key=score)
        pending.remove(best)
        order.append(best)
        best_args = cast(A.Atom, best.literal).args
        bound.update(t.name for t in best_args if isinstance(t, A.Var) and t.name != "_")
    return order
