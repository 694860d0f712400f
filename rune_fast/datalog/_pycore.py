"""Plain-Python twin of ``_core.pyx``: same classes, same plans, same results.

It exists so that the package still works where the extension cannot be built,
so that ``RUNE_FAST_PURE=1`` can force it (the test suite runs the core tests
both ways), and as the "what Cython buys us" row of the benchmarks. It mirrors
the compiled module op for op; both take their op codes and plan records from
``plan.py``, and ``tests/test_cores_agree_on_examples.py`` checks that they
derive the same models.
"""

from __future__ import annotations

import sys
import time

from ..errors import EvalFailure  # (shared by both cores)
from .plan import INDEX_ROW, INDEX_SCAN, Agg, Arith, Cmp, Kind, LimitKind, Op, PlanSpec, Tier
from .symbols import INLINE_MAX, INLINE_MIN

COMPILED = False

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
CHECK_EVERY = 32768

# The plan format (op codes, tiers...) is defined once, in plan.py; plain
# ints here because this loop compares them millions of times.
K_JOIN, K_NOT, K_CMP, K_ASSIGN = int(Kind.JOIN), int(Kind.NOT), int(Kind.CMP), int(Kind.ASSIGN)
K_METHOD, K_AGG, K_EMIT, K_COLLECT = int(Kind.METHOD), int(Kind.AGG), int(Kind.EMIT), int(Kind.COLLECT)
T_ALL, T_STABLE, T_RECENT = int(Tier.ALL), int(Tier.STABLE), int(Tier.RECENT)
E_PUSH, E_ADD, E_SUB, E_MUL = int(Arith.PUSH), int(Arith.ADD), int(Arith.SUB), int(Arith.MUL)
E_DIV, E_MOD = int(Arith.DIV), int(Arith.MOD)
A_COUNT, A_SUM = int(Agg.COUNT), int(Agg.SUM)
C_EQ, C_NE = int(Cmp.EQ), int(Cmp.NE)
LIMIT_TUPLES, LIMIT_BYTES, LIMIT_AGGREGATE = int(LimitKind.TUPLES), int(LimitKind.BYTES), int(LimitKind.AGGREGATE)


# The compiled core keeps freed big arrays for reuse (its block cache); this
# twin allocates nothing outside Python objects, so it has nothing to keep.

def release_cached_memory() -> int:
    """Same as the compiled core's: nothing is cached here, so 0 bytes are released."""
    return 0


def block_cache_stats() -> dict:
    """Same keys as the compiled core's; always an empty cache."""
    return {"bytes": 0, "blocks": 0, "limit": 0, "hits": 0, "misses": 0}


def set_block_cache_limit(nbytes: int) -> int:
    """Same as the compiled core's (there is no cache: the limit stays 0); returns the old limit, 0."""
    if nbytes < 0:
        raise OverflowError("a cache limit cannot be negative")
    return 0


class IdRows:
    """Interned facts of one relation (what ``intern_rows`` gives): rows of ids.

    The compiled twin holds them in one C array; here they are a list of tuples.
    """

    __slots__ = ("rows", "arity")

    def __init__(self, rows: list, arity: int) -> None:
        self.rows = rows
        self.arity = arity

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def insert_into(self, rel: "Relation") -> int:
        """Insert every row into ``rel``; returns how many were new."""
        if not isinstance(rel, Relation):
            raise TypeError(f"insert_into needs a Relation, got {type(rel).__name__}")
        if rel.arity != self.arity:
            raise ValueError(f"rows of arity {self.arity} cannot go into a relation of arity {rel.arity}")
        return rel.add_many(self.rows)


def intern_rows(symbols, rows, arity: int):
    """Facts -> their ids as ``IdRows``, or None if a row is not a plain tuple of ``arity`` values.

    The compiled twin does the same with a dict probe per value.
    """
    if arity <= 0 or not rows:
        return None
    intern = symbols.intern
    lrows = rows if type(rows) is list else list(rows)
    out = []
    # row after row (the order in which new values get their ids), each row
    # checked when its turn comes against the list as it is then, like the
    # compiled twin
    for i in range(len(lrows)):
        if i >= len(lrows):
            return None
        row = lrows[i]
        if type(row) is not tuple or len(row) != arity:
            return None
        out.append(tuple(map(intern, row)))
    return IdRows(out, arity)


class Relation:
    """Rows (tuples of ids) in insertion order, a set for dedup, dict indexes."""

    __slots__ = ("name", "arity", "data", "rowset", "index_cols", "indexes", "base", "tiers")

    def __init__(self, name: str, arity: int, index_cols: list, base: "Relation | None" = None) -> None:
        if base is not None and (base.arity != arity or len(base.index_cols) != len(index_cols)):
            raise ValueError("overlay must have the base's shape")
        if base is not None and base.base is not None:
            raise ValueError("an overlay's base must not be an overlay itself")
        self.name = name
        self.arity = arity
        self.data: list = []
        self.rowset: dict = {}
        self.index_cols = [tuple(c) for c in index_cols]
        self.indexes: list = [{} for _ in index_cols]
        self.base = base
        self.tiers = (0, 0, 0, 0)

    def reserve(self, n: int) -> None:
        """A size hint (the compiled twin presizes its arrays); nothing to do here."""

    @property
    def own_count(self) -> int:
        return len(self.data)

    def __len__(self) -> int:
        return len(self.data) + (len(self.base) if self.base is not None else 0)

    def _insert(self, row: tuple) -> bool:
        if self.base is not None and row in self.base.rowset:
            return False
        if row in self.rowset:
            return False
        r = len(self.data)
        self.rowset[row] = r
        self.data.append(row)
        for cols, ix in zip(self.index_cols, self.indexes):
            key = tuple([row[c] for c in cols])
            chain = ix.get(key)
            if chain is None:
                ix[key] = [r]
            else:
                chain.append(r)
        return True

    def add(self, row) -> bool:
        row = tuple(int(v) for v in row)
        if len(row) != self.arity:
            raise ValueError(f"row of arity {len(row)} for relation of arity {self.arity}")
        return self._insert(row)

    def add_many(self, rows) -> int:
        return sum(1 for row in rows if self.add(row))

    def contains(self, row) -> bool:
        row = tuple(row)
        return row in self.rowset or (self.base is not None and row in self.base.rowset)

    def rows_list(self) -> list:
        return (self.base.rows_list() if self.base is not None else []) + list(self.data)

    def rows(self) -> list:
        """Every row (base rows first) as tuples of ids."""
        return self.rows_list()

    def value_rows(self, table: list) -> tuple:
        """Every row (base rows first) as a tuple of tuples of Python values
        (``table[k]`` is the value of id ``2*k``)."""
        def value(i):
            if i & 1:
                return i >> 1
            if i < 0:  # (a negative index would count from the table's end)
                raise IndexError("id outside the symbol table")
            return table[i >> 1]
        return tuple([tuple([value(i) for i in row]) for row in self.rows_list()])

    def value_set(self, table: list) -> frozenset:
        """``frozenset(self.value_rows(table))`` (the compiled twin keeps it out of the cyclic GC)."""
        return frozenset(self.value_rows(table))

    def match(self, index: int, key) -> list:
        key = tuple(key)
        out = []
        if self.base is not None:
            out.extend(self.base.data[r] for r in self.base.indexes[index].get(key, ()))
        out.extend(self.data[r] for r in self.indexes[index].get(key, ()))
        return out

    def set_tiers(self, stable_hi: int, recent_lo: int, recent_hi: int, all_hi: int) -> None:
        self.tiers = (stable_hi, recent_lo, recent_hi, all_hi)


class Plan:
    """One rule (or one delta variant of a rule): a validated ``PlanSpec`` (see plan.py)."""

    __slots__ = ("ops", "pool", "npool", "consts", "nregs", "methods", "label")

    def __init__(self, spec: PlanSpec) -> None:
        if type(spec) is not PlanSpec or any(type(op) is not Op for op in spec.ops):
            raise TypeError("Plan needs a PlanSpec of Op records (see plan.validate)")
        self.ops = spec.ops
        self.pool = spec.pool
        self.npool = len(spec.pool)
        self.consts = spec.consts
        self.nregs = spec.nregs
        self.methods = spec.methods
        self.label = spec.label


class Executor:
    """Interprets plans exactly like the compiled executor."""

    def __init__(self, relations: list, hooks, max_tuples: int, deadline_seconds: float = 0.0,
                 max_bytes: int = 0) -> None:
        self.relations = list(relations)
        self.hooks = hooks
        self.max_tuples = max_tuples
        self.max_bytes = max_bytes
        self.collected = 0
        self.nbytes = 0
        self.deadline = (time.monotonic() + deadline_seconds) if deadline_seconds > 0 else 0.0
        self.derived = 0
        self.steps = 0
        self.diagnostics: list = []
        self.method_memo: dict = {}
        self.regs: list = []
        self.plan = None
        self.coll: list = []

    def run_stratum(self, first: list, members: list, lower: list, recursive: bool, rounds: list, incremental: bool) -> None:
        """Evaluate one stratum (see the compiled twin for the tier protocol)."""
        rels = self.relations
        if incremental:
            for slot in lower:
                n = rels[slot].own_count
                rels[slot].set_tiers(0, 0, n, n)
        lo = []
        for slot in members:
            n = rels[slot].own_count
            lo.append(n)
            rels[slot].set_tiers(*((0, 0, n, n) if incremental else (n, n, n, n)))
        for plan in first:
            self.run(plan)
        if incremental:
            for slot in lower:
                n = rels[slot].own_count
                rels[slot].set_tiers(n, n, n, n)
        while recursive:
            hi = [rels[slot].own_count for slot in members]
            if hi == lo:
                break
            for slot, a, b in zip(members, lo, hi):
                rels[slot].set_tiers(a, a, b, b)
            for plan in rounds:
                self.run(plan)
            lo = hi
        for slot in members:
            n = rels[slot].own_count
            rels[slot].set_tiers(*((0, 0, n, n) if incremental else (n, n, n, n)))
        if incremental:
            for slot in lower:
                n = rels[slot].own_count
                rels[slot].set_tiers(0, 0, n, n)

    def set_relation(self, slot: int, rel: Relation) -> None:
        """Point a slot at another relation (a per-request overlay created late)."""
        self.relations[slot] = rel

    def run(self, plan: Plan) -> int:
        # One Python frame per nesting level of a plan (three per join): a
        # long rule body (the planner accepts thousands of literals) needs
        # more than the default recursion limit. Only ever raised, never
        # lowered (other threads may rely on it).
        need = 4 * len(plan.ops) + 1000
        if sys.getrecursionlimit() < need:
            sys.setrecursionlimit(need)
        before = self.derived
        self.regs = [0] * max(plan.nregs, 1)
        self.plan = plan
        self.coll = []
        self.step(0)
        self.plan = None
        return self.derived - before

    def src(self, s: int) -> int:
        return self.regs[s] if s >= 0 else self.plan.consts[-s - 1]

    def tick(self) -> None:
        self.steps += 1
        if self.steps % CHECK_EVERY == 0 and self.deadline and time.monotonic() > self.deadline:
            self.hooks.deadline(self.plan.label)

    def step(self, pc: int) -> None:
        op = self.plan.ops[pc]
        kind = op.kind
        if kind == K_JOIN:
            self.do_join(op, pc)
        elif kind == K_NOT:
            if not self.exists(op):
                self.step(pc + 1)
        elif kind == K_CMP:
            if self.compare(op):
                self.step(pc + 1)
        elif kind == K_ASSIGN:
            v = self.eval_expr(op.lhs_off, op.lhs_len)
            if v is not None:
                self.regs[op.reg] = v
                self.step(pc + 1)
        elif kind == K_METHOD:
            if self.method(op):
                self.step(pc + 1)
        elif kind == K_AGG:
            self.do_agg(op, pc)
        elif kind == K_EMIT:
            self.emit(op)
        elif kind == K_COLLECT:
            self.coll.append(self.regs[op.aux] if op.aux >= 0 else 1)
            self.collected += 1
            if self.derived + self.collected > self.max_tuples:
                self.hooks.limit(LIMIT_AGGREGATE, "", self.plan.label)
            self.tick()
        else:
            raise RuntimeError(f"bad op kind {kind}")

    # -- joins
    def visit(self, op, pc: int, row: tuple) -> None:
        pool = self.plan.pool
        regs = self.regs
        for j in range(op.nbind):
            regs[pool[op.bind_off + 2 * j + 1]] = row[pool[op.bind_off + 2 * j]]
        for j in range(op.ncheck):
            if row[pool[op.check_off + 2 * j]] != self.src(pool[op.check_off + 2 * j + 1]):
                return
        self.tick()
        self.step(pc + 1)

    def do_join(self, op, pc: int) -> None:
        r = self.relations[op.rel]
        tier = op.tier
        stable_hi, recent_lo, recent_hi, all_hi = r.tiers
        if tier == T_ALL:
            lo, hi = 0, all_hi
        elif tier == T_STABLE:
            lo, hi = 0, stable_hi
        else:
            lo, hi = recent_lo, recent_hi
        use_base = tier != T_RECENT and r.base is not None
        index = op.index
        if index == INDEX_SCAN:
            if use_base:
                for row in list(r.base.data):
                    self.visit(op, pc, row)
            for i in range(lo, hi):
                self.visit(op, pc, r.data[i])
            return
        key = tuple(self.src(self.plan.pool[op.key_off + j]) for j in range(op.nkey))
        if index == INDEX_ROW:
            if use_base and key in r.base.rowset:
                self.visit(op, pc, key)
                return
            row_id = r.rowset.get(key)
            if row_id is not None and lo <= row_id < hi:
                self.visit(op, pc, key)
            return
        if use_base:
            b = r.base
            for row_id in list(b.indexes[index].get(key, ())):
                self.visit(op, pc, b.data[row_id])
        chain = r.indexes[index].get(key)
        if chain:
            i = 0
            while i < len(chain):  # the chain may grow while we walk it
                row_id = chain[i]
                if row_id >= hi:
                    break
                if row_id >= lo:
                    self.visit(op, pc, r.data[row_id])
                i += 1

    def exists(self, op) -> bool:
        r = self.relations[op.rel]
        key = tuple(self.src(self.plan.pool[op.key_off + j]) for j in range(op.nkey))
        index = op.index
        if index == INDEX_ROW:
            return r.contains(key)
        if index == INDEX_SCAN:
            return len(r) > 0
        if r.base is not None and key in r.base.indexes[index]:
            return True
        return key in r.indexes[index]

    # -- expressions
    def eval_expr(self, off: int, length: int):
        pool = self.plan.pool
        stack: list = []
        for i in range(length):
            code = pool[off + 2 * i]
            arg = pool[off + 2 * i + 1]
            if code == E_PUSH:
                stack.append(self.src(arg))
                continue
            b = stack.pop()
            a = stack.pop()
            res = None
            if a & 1 and b & 1:
                res = self.int_arith(code, a >> 1, b >> 1)
            if res is None:
                try:
                    res = self.hooks.arith(code, a, b)
                except EvalFailure as exc:
                    self.note(str(exc))
                    return None
            stack.append(res)
        return stack[0]

    @staticmethod
    def int_arith(code: int, a: int, b: int):
        if code == E_ADD:
            r = a + b
        elif code == E_SUB:
            r = a - b
        elif code == E_MUL:
            r = a * b
            if not INT64_MIN <= r <= INT64_MAX:
                return None
        elif code in (E_DIV, E_MOD):
            if b == 0:
                return None
            q = abs(a) // abs(b)
            q = q if (a >= 0) == (b >= 0) else -q
            r = q if code == E_DIV else a - q * b
        else:
            return None
        if not INLINE_MIN <= r <= INLINE_MAX:
            return None
        return r * 2 + 1

    def compare(self, op) -> bool:
        a = self.eval_expr(op.lhs_off, op.lhs_len)
        if a is None:
            return False
        b = self.eval_expr(op.rhs_off, op.rhs_len)
        if b is None:
            return False
        cmp = op.cmp
        if a & 1 and b & 1:
            x, y = a >> 1, b >> 1
            return (x == y, x != y, x < y, x <= y, x > y, x >= y)[cmp]
        if a == b:
            if cmp == C_EQ:
                return True
            if cmp == C_NE:
                return False
        return self.hooks.compare(cmp, a, b)

    def method(self, op) -> bool:
        v = self.regs[op.reg]
        spec = self.plan.methods[op.aux]
        key = (spec, v)  # memo shared by all plans: key by (method, arg), not position
        cached = self.method_memo.get(key)
        if cached is None:
            name, arg = spec
            cached = self.method_memo[key] = bool(self.hooks.method(name, arg, v))
            if self.deadline and time.monotonic() > self.deadline:
                self.hooks.deadline(self.plan.label)
        return cached

    # -- aggregates
    def do_agg(self, op, pc: int) -> None:
        start = len(self.coll)
        self.step(op.sub_start)
        values = self.coll[start:]
        del self.coll[start:]
        func = op.cmp
        if func == A_COUNT:
            self.regs[op.reg] = len(values) * 2 + 1
            self.step(pc + 1)
            return
        if not values:
            return
        res = None
        if func == A_SUM and all(v & 1 for v in values):
            s = 0
            for v in values:
                s += v >> 1
                if not INT64_MIN <= s <= INT64_MAX:
                    break
            else:
                if INLINE_MIN <= s <= INLINE_MAX:
                    res = s * 2 + 1
        if res is None:
            try:
                res = self.hooks.aggregate(func, values)
            except EvalFailure as exc:
                self.note(str(exc))
                return
        self.regs[op.reg] = res
        self.step(pc + 1)

    # -- heads
    def emit(self, op) -> None:
        r = self.relations[op.rel]
        row = tuple(self.src(self.plan.pool[op.key_off + j]) for j in range(op.nkey))
        if r._insert(row):
            self.derived += 1
            self.nbytes += 8 * (r.arity or 1)
            if self.derived + self.collected > self.max_tuples:
                self.hooks.limit(LIMIT_TUPLES, r.name, self.plan.label)
            if self.max_bytes > 0 and self.nbytes > self.max_bytes:
                self.hooks.limit(LIMIT_BYTES, r.name, self.plan.label)

    def note(self, message: str) -> None:
        if len(self.diagnostics) < 100:
            self.diagnostics.append(f"{self.plan.label}: {message}")
