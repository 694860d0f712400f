"""Rules -> join plans over interned ids, and the stratum-by-stratum driver.

The checks (``checks.py``) have already proved the program safe and
stratified and told us, per rule, what every literal does. Here we decide:

* which relation lives in which slot, and which hash indexes each relation
  needs (one per combination of bound columns a plan probes);
* the join order of every rule: greedily, the next atom is the one with the
  most bound columns, and every test runs as soon as its variables are bound;
* the semi-naive variants of every rule: for each "changing" body atom one
  plan that reads that atom's recent rows first (atoms before it read stable
  rows, atoms after it read everything);
* per request, which strata can be extended incrementally on top of the
  precomputed model (positive dependence on the request) and which must be
  recomputed (negation or aggregation over something the request changes).

The plans are run by the compiled executor (``_core.pyx``) or, with
``RUNE_FAST_PURE=1``, by its plain-Python twin (``_pycore.py``).
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from ..lang import ast as A
from ..lang.checks import REQUEST_RELATIONS, RESERVED_RELATIONS, ProgramInfo
from ..lang.safety import (
    ROLE_AGGREGATE,
    ROLE_ASSIGN,
    ROLE_ATOM,
    ROLE_FILTER,
    ROLE_METHOD,
    ROLE_NEGATION,
    BodyInfo,
    LiteralInfo,
)
from ..errors import EvalFailure, RuneError, RuneLimitError
from ..like import glob_matcher
from ..limits import DEFAULT_LIMITS, Limits
from .plan import (AGG_OF, ARITH_OF, CMP_OF, INDEX_ROW, INDEX_SCAN, Arith, Cmp, LimitKind, Op, PlanSpec, RelShape,
                   Tier, agg_op, assign_op, cmp_op, collect_op, emit_op, join_op, method_op, not_op, validate)
from .symbols import Symbols
from . import _pycore
from ..values import INT_MAX, INT_MIN, format_value

if os.environ.get("RUNE_FAST_PURE") == "1":
    from . import _pycore as core
else:
    try:
        from . import _core as core
    except ImportError:  # pragma: no cover - only when the extension was not built
        from . import _pycore as core


#: what either core's ``intern_rows`` gives (``add_facts`` hands them over whole)
_ID_ROWS = (core.IdRows, _pycore.IdRows)

__all__ = ["CompiledProgram", "compile_program", "core", "EvalFailure", "Database"]

AGG_NAMES = {v: k for k, v in AGG_OF.items()}
ARITH_NAMES = {v: k for k, v in ARITH_OF.items()}

#: Relations a request supplies facts for (they change per request).
REQUEST_INPUTS = frozenset(REQUEST_RELATIONS) | frozenset(RESERVED_RELATIONS)


# --------------------------------------------------------------------------
# Slow paths called by the executor


def _is_number(v: object) -> bool:
    return type(v) is int or type(v) is float


def string_test(name: str, arg: str, v: object) -> bool:
    """``V.name(arg)`` in a rule body (false for a value that is not a string).

    Shared by the executor's hooks and the per-request plans
    (``rune_fast/request_plans/``) so that both read strings alike."""
    if type(v) is not str:
        return False
    if name == "starts_with":
        return v.startswith(arg)
    if name == "ends_with":
        return v.endswith(arg)
    if name == "contains":
        return arg in v
    return glob_matcher(arg)(v)  # linear time, see rune_fast/like.py


#: relations that ended up smaller than this grow cheaply: no reservation
RESERVE_FROM = 4096


class Hooks:
    """The executor's Python slow paths, bound to one evaluation's symbol table.

    ``locs`` maps a plan's label to its rule's location, so that a limit
    error points at the rule that was running when the budget ran out.
    """

    __slots__ = ("symbols", "limits", "per_request", "locs")

    def __init__(self, symbols: Symbols, limits: Limits, per_request: bool, locs: Mapping[str, A.Loc]) -> None:
        self.symbols = symbols
        self.limits = limits
        self.per_request = per_request
        self.locs = locs

    def _located(self, message: str, name: str, label: str) -> RuneLimitError:
        loc = self.locs.get(label)
        if loc is None:
            return RuneLimitError(message, name)
        return RuneLimitError(message, name, file=loc.file, line=loc.line, column=loc.col,
                              source_line=loc.text or None)

    def _num(self, ident: int, what: str) -> "int | float":
        v = self.symbols.value(ident)
        if not _is_number(v):
            raise EvalFailure(f"{what} needs numbers, got {format_value(v)}")
        return v

    def _result(self, v: "int | float") -> int:
        if type(v) is int and not INT_MIN <= v <= INT_MAX:
            raise EvalFailure(f"integer overflow: {v} does not fit in 64 bits")
        if type(v) is float and (math.isnan(v) or math.isinf(v)):
            raise EvalFailure("float overflow")
        return self.symbols.intern(v)

    def arith(self, code: int, a: int, b: int) -> int:
        op = ARITH_NAMES[code]
        x = self._num(a, f"'{op}'")
        y = self._num(b, f"'{op}'")
        if code == 1:
            r = x + y
        elif code == 2:
            r = x - y
        elif code == 3:
            r = x * y
        else:
            if y == 0:
                raise EvalFailure(f"division by zero in {format_value(x)} {op} {format_value(y)}")
            if type(x) is int and type(y) is int:
                q = abs(x) // abs(y)
                q = q if (x >= 0) == (y >= 0) else -q
                r = q if code == 4 else x - q * y
            else:
                r = x / y if code == 4 else math.fmod(x, y)
        return self._result(r)

    def compare(self, code: int, a: int, b: int) -> bool:
        x = self.symbols.value(a)
        y = self.symbols.value(b)
        if _is_number(x) and _is_number(y):
            return (x == y, x != y, x < y, x <= y, x > y, x >= y)[code]
        if code == 0:
            return a == b
        if code == 1:
            return a != b
        return False  # ordering of non-numbers is false in rules

    def method(self, name: str, arg: str, ident: int) -> bool:
        return string_test(name, arg, self.symbols.value(ident))

    def aggregate(self, code: int, ids: list) -> int:
        name = AGG_NAMES[code]
        vals = [self._num(i, name) for i in ids]
        if code == 1:
            return self._result(math.fsum(vals) if any(type(v) is float for v in vals) else _int_sum(vals))
        if code == 2:
            return self._result(min(vals))
        if code == 3:
            return self._result(max(vals))
        return self._result(math.fsum(vals) / len(vals))

    def limit(self, kind: int, relation: str, label: str) -> None:
        """Raise the located ``RuneLimitError`` for an exhausted budget (a ``LimitKind``)."""
        lim = self.limits
        if kind == LimitKind.BYTES:
            name = "max_request_model_bytes" if self.per_request else "max_model_bytes"
            detail = f"relation {relation!r} kept growing"
        else:
            name = "max_request_tuples" if self.per_request else "max_tuples"
            detail = "aggregates matched too many rows" if kind == LimitKind.AGGREGATE else f"relation {relation!r} kept growing"
        raise self._located(f"limit {name}={getattr(lim, name)} exceeded: {detail}", name, label)

    def deadline(self, label: str) -> None:
        name = "deadline_ms" if self.per_request else "load_deadline_ms"
        raise self._located(f"limit {name}={getattr(self.limits, name)} exceeded while evaluating rules", name, label)


def _binds_of(li: LiteralInfo) -> tuple:
    """Variables a scheduled non-atom literal may have bound."""
    if li.role == ROLE_ASSIGN:
        return (li.target,)
    if li.role == ROLE_AGGREGATE:
        return (li.literal.result.name,)
    return ()


def _int_sum(vals: list) -> int:
    total = 0
    for v in vals:
        total += v
        if not INT_MIN <= total <= INT_MAX:
            raise EvalFailure("integer overflow in sum")
    return total


# --------------------------------------------------------------------------
# Plan building


@dataclass
class RelInfo:
    slot: int
    name: str
    arity: int
    index_cols: list = field(default_factory=list)

    def index_for(self, cols: tuple) -> int:
        try:
            return self.index_cols.index(cols)
        except ValueError:
            self.index_cols.append(cols)
            return len(self.index_cols) - 1


class _PlanBuilder:
    """Turns one classified rule body into a flat op list (one plan)."""

    def __init__(self, program: "CompiledProgram", rule: A.Rule, label: str) -> None:
        self.p = program
        self.rule = rule
        self.label = label
        self.pool: list[int] = []
        self.consts: list[int] = []
        self.const_index: dict[int, int] = {}
        self.regs: dict[str, int] = {}
        self.methods: list = []

    # -- sources and registers
    def reg(self, name: str) -> int:
        r = self.regs.get(name)
        if r is None:
            r = self.regs[name] = len(self.regs)
        return r

    def temp(self) -> int:
        return self.reg(f"#t{len(self.regs)}")

    def const(self, value: object) -> int:
        ident = self.p.symbols.intern(value)
        k = self.const_index.get(ident)
        if k is None:
            k = self.const_index[ident] = len(self.consts)
            self.consts.append(ident)
        return -(k + 1)

    def term_src(self, term: object) -> int:
        if isinstance(term, A.Const):
            return self.const(term.value)
        return self.reg(term.name)

    def put(self, values: Sequence[int]) -> int:
        off = len(self.pool)
        self.pool.extend(values)
        return off

    def expr_code(self, expr: A.RuleExpr) -> list[int]:
        if isinstance(expr, A.BinOp):
            return self.expr_code(expr.left) + self.expr_code(expr.right) + [ARITH_OF[expr.op], 0]
        return [Arith.PUSH, self.term_src(expr)]

    # -- literals
    def atom_op(self, atom: A.Atom, tier: int, bound: set) -> Op:
        rel = self.p.rel(atom.name)
        key_cols: list[int] = []
        key_srcs: list[int] = []
        binds: list[int] = []
        checks: list[int] = []
        newly: dict[str, int] = {}
        for col, term in enumerate(atom.args):
            if isinstance(term, A.Wildcard) or (isinstance(term, A.Var) and term.name == "_"):
                continue
            if isinstance(term, A.Const) or term.name in bound:
                key_cols.append(col)
                key_srcs.append(self.term_src(term))
            elif term.name in newly:
                checks += [col, self.reg(term.name)]
            else:
                newly[term.name] = col
                binds += [col, self.reg(term.name)]
        bound.update(newly)
        if len(key_cols) == rel.arity and rel.arity > 0:
            index = INDEX_ROW
        elif key_cols:
            index = rel.index_for(tuple(key_cols))
        else:
            index = INDEX_SCAN
        return join_op(rel.slot, tier, index, len(key_srcs), self.put(key_srcs), len(binds) // 2, self.put(binds),
                       len(checks) // 2, self.put(checks))

    def negation_op(self, atom: A.Atom) -> Op:
        rel = self.p.rel(atom.name)
        cols = [c for c, t in enumerate(atom.args) if not (isinstance(t, A.Wildcard) or (isinstance(t, A.Var) and t.name == "_"))]
        srcs = [self.term_src(atom.args[c]) for c in cols]
        if len(cols) == rel.arity and rel.arity > 0:
            index = INDEX_ROW
        elif cols:
            index = rel.index_for(tuple(cols))
        else:
            index = INDEX_SCAN
        return not_op(rel.slot, index, len(srcs), self.put(srcs))

    def cmp_op(self, code: int, left: A.RuleExpr, right: A.RuleExpr) -> Op:
        lhs = self.expr_code(left)
        rhs = self.expr_code(right)
        return cmp_op(code, self.put(lhs), len(lhs) // 2, self.put(rhs), len(rhs) // 2)

    def body_ops(self, info: BodyInfo, bound: set, first: Optional[int], tiers: Mapping[int, int], terminal: Op) -> list:
        """Schedule one body: ``first`` (a literal index) goes first if given.

        Greedy: every test, assignment and aggregate runs as soon as the
        variables it needs are bound (lowest literal index first); otherwise
        the next atom is the one with the largest share of bound columns
        (ties: the earlier literal). Incremental bookkeeping keeps this near
        linear in the size of the body (a heap of atoms keyed by their score,
        updated only when one of their variables becomes bound): a
        4,000-literal body plans in milliseconds, not seconds.
        """
        ops: list = []   # Op records, and _PendingAgg until build() places the sub-plans
        lits = info.literals
        is_atom = [li.role == ROLE_ATOM for li in lits]
        width = [len(li.literal.args) if is_atom[k] else 0 for k, li in enumerate(lits)]
        nbound = [0] * len(lits)        # atoms: bound (or constant) argument positions
        missing = [0] * len(lits)       # other literals: needed variables not yet bound
        users: dict[str, list[int]] = {}
        for k, li in enumerate(lits):
            if is_atom[k]:
                for t in li.literal.args:
                    if isinstance(t, A.Const):
                        nbound[k] += 1
                    elif isinstance(t, A.Var) and t.name != "_":
                        users.setdefault(t.name, []).append(k)
            else:
                for v in li.needs:
                    users.setdefault(v, []).append(k)
                    missing[k] += 1
        done = [False] * len(lits)
        atom_heap: list[tuple[float, int]] = []
        ready: list[int] = []

        def score(k: int) -> float:
            return 2.0 if not width[k] else nbound[k] / width[k]

        marked: set[str] = set()

        def mark(names: Iterable[str]) -> None:
            for v in names:
                if v in marked or v not in bound:
                    continue
                marked.add(v)
                for k in users.get(v, ()):
                    if done[k]:
                        continue
                    if is_atom[k]:
                        nbound[k] += 1
                        heapq.heappush(atom_heap, (-score(k), k))
                    else:
                        missing[k] -= 1
                        if missing[k] == 0:
                            heapq.heappush(ready, k)

        for k in range(len(lits)):
            if is_atom[k]:
                heapq.heappush(atom_heap, (-score(k), k))
            elif missing[k] == 0:
                heapq.heappush(ready, k)
        mark(list(bound))

        def schedule_atom(k: int) -> None:
            done[k] = True
            li = lits[k]
            ops.append(self.atom_op(li.literal, tiers.get(li.index, Tier.ALL), bound))
            mark(t.name for t in li.literal.args if isinstance(t, A.Var))

        if first is not None:
            schedule_atom(next(k for k, li in enumerate(lits) if li.index == first))
        remaining = sum(1 for d in done if not d)
        while remaining:
            while ready:
                k = heapq.heappop(ready)
                if done[k]:
                    continue
                done[k] = True
                remaining -= 1
                li = lits[k]
                ops.extend(self.literal_ops(li, bound))
                mark(_binds_of(li))
            # the best atom: stale heap entries (an older, lower score) are skipped
            best = -1
            while atom_heap:
                neg, k = heapq.heappop(atom_heap)
                if not done[k] and -neg == score(k):
                    best = k
                    break
            if best < 0:
                if remaining:
                    raise RuneError(f"cannot schedule {self.label}: unbound variables", self.rule.loc.file,
                                    self.rule.loc.line, self.rule.loc.col, self.rule.loc.text)
                break
            schedule_atom(best)
            remaining -= 1
        ops.append(terminal)
        return ops

    def literal_ops(self, li: LiteralInfo, bound: set) -> list:
        lit = li.literal
        if li.role == ROLE_NEGATION:
            return [self.negation_op(lit.atom)]
        if li.role == ROLE_FILTER:
            return [self.cmp_op(CMP_OF[lit.op], lit.left, lit.right)]
        if li.role == ROLE_METHOD:
            self.methods.append((lit.method, lit.arg))
            return [method_op(self.reg(lit.var.name), len(self.methods) - 1)]
        if li.role == ROLE_ASSIGN:
            if li.target in bound:  # an earlier atom bound it: this is an equality test
                return [self.cmp_op(Cmp.EQ, A.Var(li.target), li.expr)]
            code = self.expr_code(li.expr)
            bound.add(li.target)
            return [assign_op(self.reg(li.target), self.put(code), len(code) // 2)]
        if li.role == ROLE_AGGREGATE:
            agg: A.Aggregate = lit
            inner_bound = set(li.keys)
            target = -1
            if agg.target is not None:
                target = self.reg(agg.target.name)
            sub = self.body_ops(li.body, inner_bound, None, {}, collect_op(target))
            result_bound = agg.result.name in bound
            out = self.temp() if result_bound else self.reg(agg.result.name)
            ops: list = [_PendingAgg(AGG_OF[agg.func], out, sub)]
            if result_bound:  # R was bound before: the aggregate tests R == f(...)
                ops.append(self.cmp_op(Cmp.EQ, A.Var(agg.result.name), A.Var(f"#t{out}")))
            bound.add(agg.result.name)
            return ops
        raise AssertionError(li.role)

    def head_op(self) -> Op:
        srcs = [self.term_src(t) for t in self.rule.head.args]
        return emit_op(self.p.rel(self.rule.head.name).slot, len(srcs), self.put(srcs))

    def build(self, info: BodyInfo, first: Optional[int], tiers: Mapping[int, int]):
        ops = self.body_ops(info, set(), first, tiers, self.head_op())
        # Aggregate bodies go after the main sequence (each ends in COLLECT);
        # the scan reaches the aggregates inside them too, as they are appended.
        pc = 0
        while pc < len(ops):
            op = ops[pc]
            if type(op) is _PendingAgg:
                ops[pc] = agg_op(op.func, op.reg, len(ops))
                ops.extend(op.sub)
            pc += 1
        spec = PlanSpec(tuple(ops), tuple(self.pool), tuple(self.consts), max(len(self.regs), 1),
                        tuple(self.methods), self.label)
        validate(spec, [RelShape(r.arity, r.index_cols) for r in self.p.rels])
        return self.p.core.Plan(spec)


class _PendingAgg:
    """An aggregate op whose sub-plan is not placed yet (see ``_PlanBuilder.build``)."""

    __slots__ = ("func", "reg", "sub")

    def __init__(self, func: int, reg: int, sub: list) -> None:
        self.func, self.reg, self.sub = func, reg, sub


# --------------------------------------------------------------------------
# Program


@dataclass
class RulePlans:
    rule: A.Rule
    full: object
    #: semi-naive variants within the rule's own stratum: body index -> plan
    deltas: dict
    #: variants for per-request incremental evaluation: body index -> plan
    request_deltas: dict


@dataclass
class Stratum:
    relations: tuple      # slots
    rules: list           # RulePlans
    recursive: bool
    reads: frozenset      # slots read by the rules (positively or not)
    #: per request: "static" (untouched), "incremental" or "recompute"
    request_mode: str = "static"

    def __post_init__(self) -> None:
        # Flat lists for the executor's stratum driver.
        self.members = list(self.relations)
        self.member_set = frozenset(self.relations)
        self.full_plans = [rp.full for rp in self.rules]
        self.round_plans = [plan for rp in self.rules for plan in rp.deltas.values()]
        self.request_plans = [plan for rp in self.rules for plan in rp.request_deltas.values()]
        self.lower_reads = [s for s in self.reads if s not in self.member_set]
        self.inputs = self.reads | self.member_set


def add_facts(rel, data) -> int:
    """Insert interned facts: rows of ids, or a core's ``IdRows`` (from ``intern_rows``)."""
    if isinstance(data, _ID_ROWS):
        return data.insert_into(rel)
    return rel.add_many(data)


class Database:
    """One evaluation's relations, by slot, plus the symbol table of their ids."""

    __slots__ = ("relations", "symbols", "diagnostics", "seeds")

    def __init__(self, relations: list, symbols: Symbols, diagnostics: list, seeds: Optional[dict] = None) -> None:
        self.relations = relations
        self.symbols = symbols
        self.diagnostics = diagnostics
        #: given facts of relations that a request may recompute from scratch
        self.seeds = seeds or {}


class CompiledProgram:
    """Immutable after construction: plans, slots, indexes and strata."""

    def __init__(self, rules: Sequence[A.Rule], info: ProgramInfo, limits: Limits = DEFAULT_LIMITS,
                 extra_indexes: Iterable[tuple[str, tuple]] = (), core_module=None) -> None:
        """``extra_indexes``: (relation, columns) that lookups outside the rules
        will probe (policy relation calls, attribute reads); they are created
        with the relations so that the shared model is never indexed lazily.
        ``core_module`` picks the executor (tests run both); default: ``core``."""
        self.core = core_module or core
        self.limits = limits
        self.info = info
        self.symbols = Symbols()
        self.rels: list[RelInfo] = []
        self.slot_of: dict[str, int] = {}
        #: plan label -> location of its rule (for located limit errors)
        self.locs: dict[str, A.Loc] = {}
        for name, arity in sorted(info.arities.items()):
            self._add_rel(name, arity)
        rule_infos = info.rule_info or ()
        by_head: dict[str, list[tuple[A.Rule, BodyInfo, int]]] = {}
        for n, (rule, binfo) in enumerate(zip(rules, rule_infos)):
            by_head.setdefault(rule.head.name, []).append((rule, binfo, n))
        changed: set[str] = set(REQUEST_INPUTS)
        recompute: set[str] = set()
        self.strata: list[Stratum] = []
        for names in info.strata:
            members = set(names)
            stratum_rules = []
            reads: set[str] = set()
            recursive = False
            neg_reads: set[str] = set()
            pos_reads: set[str] = set()
            for name in names:
                for rule, binfo, n in by_head.get(name, ()):
                    pos, neg = _body_relations(rule.body)
                    reads |= pos | neg
                    pos_reads |= pos
                    neg_reads |= neg
                    if pos & members:
                        recursive = True
                    stratum_rules.append((rule, binfo, n))
            if (neg_reads & changed) or (pos_reads & recompute):
                mode = "recompute"
            elif pos_reads & changed:
                mode = "incremental"
            else:
                mode = "static"
            if mode != "static":
                changed |= members
            if mode == "recompute":
                recompute |= members
            plans = [self._plan_rule_guarded(rule, binfo, n, members, changed if mode == "incremental" else set())
                     for rule, binfo, n in stratum_rules]
            self.strata.append(Stratum(tuple(self.slot_of[x] for x in names), plans, recursive,
                                       frozenset(self.slot_of[x] for x in reads), mode))
        for name, cols in extra_indexes:
            if name in self.slot_of and cols and len(cols) < self.rel(name).arity:
                self.rel(name).index_for(tuple(cols))
        self.changed = frozenset(changed)
        self.request_strata = [s for s in self.strata if s.request_mode != "static"]
        self.request_dependent = bool(self.request_strata)
        #: relations a request may recompute from scratch: their given facts are kept as seeds
        self.recompute_slots = frozenset(s for st in self.strata if st.request_mode == "recompute" for s in st.relations)
        #: rows per slot after the last full evaluation: the next one reserves
        #: that much up front (see ``Relation.reserve``). The one mutable part,
        #: and only a hint: a stale or racy value changes speed, never a result.
        self.size_hints: list[int] = [0] * len(self.rels)

    def _add_rel(self, name: str, arity: int) -> RelInfo:
        info = RelInfo(len(self.rels), name, arity)
        self.rels.append(info)
        self.slot_of[name] = info.slot
        return info

    def rel(self, name: str) -> RelInfo:
        return self.rels[self.slot_of[name]]

    def _plan_rule_guarded(self, rule: A.Rule, binfo: BodyInfo, n: int, members: set, changed: set) -> RulePlans:
        """``_plan_rule``, turning a stack overflow on a huge expression into a located limit error."""
        try:
            return self._plan_rule(rule, binfo, n, members, changed)
        except RecursionError:
            loc = rule.loc
            raise RuneLimitError("rule expression nested too deeply to compile", "max_nesting", file=loc.file,
                                 line=loc.line, column=loc.col, source_line=loc.text or None) from None

    def _plan_rule(self, rule: A.Rule, binfo: BodyInfo, n: int, members: set, changed: set) -> RulePlans:
        label = f"{rule.loc.file}:{rule.loc.line}:{rule.loc.col}" if rule.loc.line else f"rule {n}"
        self.locs[label] = rule.loc
        size = _count_literals(rule.body)
        if size > self.limits.max_rule_literals:
            raise self.limits.exceeded("max_rule_literals", f"the rule has {size} literals", file=rule.loc.file,
                                       line=rule.loc.line, column=rule.loc.col, source_line=rule.loc.text or None)
        atoms = [li for li in binfo.literals if li.role == ROLE_ATOM]

        def variants(tracked: list[LiteralInfo]) -> dict:
            out = {}
            for k, li in enumerate(tracked):
                tiers = {t.index: Tier.STABLE for t in tracked[:k]}
                tiers[li.index] = Tier.RECENT
                out[li.index] = _PlanBuilder(self, rule, label).build(binfo, li.index, tiers)
            return out

        tracked = [li for li in atoms if li.literal.name in members]
        # A recursive rule's first pass starts from its first stratum-member
        # atom, like its delta variants: those hold only given facts then
        # (usually none), so the pass is short, and no index is created that
        # only this pass would probe (every derived row would pay for it).
        full = _PlanBuilder(self, rule, label).build(binfo, tracked[0].index if tracked else None, {})
        deltas = variants(tracked)
        request_deltas = variants([li for li in atoms if li.literal.name in changed]) if changed else {}
        return RulePlans(rule, full, deltas, request_deltas)

    # -- relations

    def new_relations(self) -> list:
        """Fresh, empty relations for every slot, with their indexes."""
        return [self.core.Relation(r.name, r.arity, list(r.index_cols)) for r in self.rels]

    # -- evaluation

    def evaluate(self, facts: Mapping[int, Iterable[tuple]], symbols: Symbols) -> Database:
        """Build the model of ``facts`` (rows of ids by slot), every stratum once."""
        relations = self.new_relations()
        hints = self.size_hints
        for slot, n in enumerate(hints):
            if n >= RESERVE_FROM:
                relations[slot].reserve(n)
        seeds = {}
        for slot, rows in facts.items():
            rows = rows if isinstance(rows, _ID_ROWS) else list(rows)
            add_facts(relations[slot], rows)
            if slot in self.recompute_slots:
                seeds[slot] = rows
        lim = self.limits
        hooks = Hooks(symbols, lim, False, self.locs)
        ex = self.core.Executor(relations, hooks, lim.max_tuples, lim.load_deadline_ms / 1000.0, lim.max_model_bytes)
        for rel in relations:
            n = rel.own_count
            rel.set_tiers(n, n, n, n)
        try:
            for stratum in self.strata:
                self._run_full(ex, stratum)
        except MemoryError:
            raise RuneLimitError("out of memory while evaluating rules (lower max_model_bytes)",
                                 "max_model_bytes") from None
        self.size_hints = [rel.own_count for rel in relations]
        return Database(relations, symbols, list(ex.diagnostics), seeds)

    @staticmethod
    def _run_full(ex, stratum: Stratum) -> None:
        ex.run_stratum(stratum.full_plans, stratum.members, [], stratum.recursive, stratum.round_plans, False)

    def evaluate_request(self, static: Database, facts: Mapping[int, Iterable[tuple]], symbols: Symbols,
                         limits: Optional[Limits] = None) -> Database:
        """The model of one request: the static model plus the request's facts.

        ``facts`` holds rows of ids (interned in ``symbols``, which extends the
        static table) for request relations and request-supplied parent/attr.
        Static strata are not touched; incremental strata run semi-naively
        from the request's facts on top of the static rows; recompute strata
        are evaluated again from scratch over fresh relations.
        """
        limits = limits or self.limits
        if not self.request_dependent and not any(facts.values()):
            return static
        base = static.relations
        relations = list(base)   # unchanged relations are read from the model itself
        dirty: set[int] = set()  # slots whose contents differ from the model's
        for slot, rows in facts.items():
            rel = self._overlay(slot, base)
            if add_facts(rel, rows):
                relations[slot] = rel
                n = rel.own_count
                rel.set_tiers(0, 0, n, n)
                dirty.add(slot)
        if not dirty and not self.request_dependent:
            return static
        hooks = Hooks(symbols, limits, True, self.locs)
        ex = self.core.Executor(relations, hooks, limits.max_request_tuples, limits.deadline_ms / 1000.0,
                                limits.max_request_model_bytes)
        for stratum in self.request_strata:
            # A stratum none of whose inputs changed keeps the model's rows:
            # they are what evaluating it again would give.
            if stratum.inputs.isdisjoint(dirty):
                continue
            if stratum.request_mode == "recompute":
                for s in stratum.relations:
                    r = self.rels[s]
                    fresh = self.core.Relation(r.name, r.arity, list(r.index_cols))
                    add_facts(fresh, static.seeds.get(s, ()))
                    relations[s] = fresh
                    ex.set_relation(s, fresh)
                self._run_full(ex, stratum)
                dirty.update(stratum.relations)
                continue
            for s in stratum.relations:
                if s not in dirty:
                    relations[s] = self._overlay(s, base)
                    ex.set_relation(s, relations[s])
            self._run_incremental(ex, stratum, dirty)
            dirty.update(s for s in stratum.relations if relations[s].own_count)
        return Database(relations, symbols, list(ex.diagnostics))

    def _overlay(self, slot: int, base: list):
        r = self.rels[slot]
        rel = self.core.Relation(r.name, r.arity, list(r.index_cols), base[slot])
        rel.set_tiers(0, 0, 0, 0)
        return rel

    @staticmethod
    def _run_incremental(ex, stratum: Stratum, dirty: set) -> None:
        """Semi-naive evaluation of one stratum seeded by what the request changed.

        Only overlays (dirty slots and this stratum's own relations) have
        their tiers moved; relations shared with the model are never written.
        """
        lower = [s for s in stratum.lower_reads if s in dirty]
        ex.run_stratum(stratum.request_plans, stratum.members, lower, stratum.recursive, stratum.round_plans, True)


def _body_relations(body: Sequence[A.Literal]) -> tuple[set, set]:
    """Relations a body reads positively, and those it reads under not/aggregate."""
    pos: set[str] = set()
    neg: set[str] = set()
    for lit in body:
        if isinstance(lit, A.Atom):
            pos.add(lit.name)
        elif isinstance(lit, A.Negation):
            neg.add(lit.atom.name)
        elif isinstance(lit, A.Aggregate):
            p, n = _body_relations(lit.body)
            neg |= p | n
    return pos, neg


def _count_literals(body: Sequence[A.Literal]) -> int:
    """Literals of a body, those of aggregate bodies included (iteratively: bodies may nest deeply)."""
    total = 0
    stack = [body]
    while stack:
        lits = stack.pop()
        total += len(lits)
        stack.extend(lit.body for lit in lits if isinstance(lit, A.Aggregate))
    return total


def compile_program(rules: Sequence[A.Rule], info: ProgramInfo, limits: Limits = DEFAULT_LIMITS,
                    extra_indexes: Iterable[tuple[str, tuple]] = (), core_module=None) -> CompiledProgram:
    return CompiledProgram(rules, info, limits, extra_indexes, core_module)
