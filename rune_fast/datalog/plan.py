"""The plan format of the Datalog core, defined once.

The compiler (``compiler.py``) writes plans in this format; the compiled
executor (``_core.pyx``, which reads these constants into C globals when it is
imported) and its plain-Python twin (``_pycore.py``) run them. Nothing else
defines an op code, so the three cannot drift apart.

A plan is a flat tuple of ``Op`` records plus a ``pool`` of ints that the ops
point into (key sources, bind and check pairs, postfix expression code), the
interned ``consts`` the pool refers to (source ``-k-1`` is ``consts[k]``,
source ``r >= 0`` is register ``r``), and the ``methods`` string tests use.
Records are NamedTuples without defaults: a missing or misspelled field is a
``TypeError`` where the op is built. ``validate`` then checks every offset,
register, slot and index against the relations before a plan reaches an
executor: the compiled one runs with bounds checks off, so a bad offset
would read or write outside its arrays.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Sequence

__all__ = [
    "Kind", "Tier", "Cmp", "Arith", "Agg", "LimitKind", "INDEX_SCAN", "INDEX_ROW", "STACK",
    "Op", "PlanSpec", "RelShape", "validate",
    "join_op", "not_op", "cmp_op", "assign_op", "method_op", "agg_op", "emit_op", "collect_op",
]


class Kind(IntEnum):
    """What an op does."""

    JOIN = 1      # for each matching row of a relation: bind, check, continue
    NOT = 2       # continue if no row matches
    CMP = 3       # continue if a comparison of two expressions holds
    ASSIGN = 4    # set a register to an expression's value, continue
    METHOD = 5    # continue if a string method holds (starts_with, like...)
    AGG = 6       # run a sub-plan collecting values, set a register to their aggregate
    EMIT = 7      # insert the head row (end of a rule's main sequence)
    COLLECT = 8   # append a value to the running aggregate (end of a sub-plan)


class Tier(IntEnum):
    """Which rows of a relation a join reads (semi-naive evaluation)."""

    ALL = 0
    STABLE = 1
    RECENT = 2


class Cmp(IntEnum):
    EQ = 0
    NE = 1
    LT = 2
    LE = 3
    GT = 4
    GE = 5


class Arith(IntEnum):
    """Postfix expression code: ``(PUSH, source)`` pairs and ``(operator, 0)`` pairs."""

    PUSH = 0
    ADD = 1
    SUB = 2
    MUL = 3
    DIV = 4
    MOD = 5


class Agg(IntEnum):
    COUNT = 0
    SUM = 1
    MIN = 2
    MAX = 3
    MEAN = 4


class LimitKind(IntEnum):
    """Which budget an executor reports as exhausted (``hooks.limit(kind, ...)``)."""

    TUPLES = 0
    BYTES = 1
    AGGREGATE = 2


#: ``Op.index`` values besides an index number: scan every row / probe the whole row.
INDEX_SCAN = -1
INDEX_ROW = -2
#: Depth of the expression stack of the executors.
STACK = 256

CMP_OF = {"=": Cmp.EQ, "!=": Cmp.NE, "<": Cmp.LT, "<=": Cmp.LE, ">": Cmp.GT, ">=": Cmp.GE}
ARITH_OF = {"+": Arith.ADD, "-": Arith.SUB, "*": Arith.MUL, "/": Arith.DIV, "%": Arith.MOD}
AGG_OF = {"count": Agg.COUNT, "sum": Agg.SUM, "min": Agg.MIN, "max": Agg.MAX, "mean": Agg.MEAN}


class Op(NamedTuple):
    """One instruction. Every field is always given (the helpers below fill the unused ones with 0)."""

    kind: int
    rel: int          # slot of the relation (JOIN, NOT, EMIT)
    tier: int         # Tier (JOIN)
    # (the field shadows tuple.index(), which nothing calls on an Op; the
    # name is the plan format's, shared with both cores)
    index: int  # type: ignore[assignment]  # INDEX_SCAN, INDEX_ROW or an index number of the relation (JOIN, NOT)
    nkey: int         # pool[key_off:key_off+nkey]: sources of the key columns (JOIN, NOT, EMIT)
    key_off: int
    nbind: int        # pool pairs (column, register) a row binds (JOIN)
    bind_off: int
    ncheck: int       # pool pairs (column, source) a row must equal (JOIN)
    check_off: int
    cmp: int          # Cmp (CMP) or Agg (AGG)
    lhs_off: int      # postfix code of (left) expression: lhs_len pairs (CMP, ASSIGN)
    lhs_len: int
    rhs_off: int      # postfix code of the right expression (CMP)
    rhs_len: int
    reg: int          # register written (ASSIGN, AGG) or read (METHOD)
    aux: int          # METHOD: index into methods; COLLECT: register collected, -1 = count only
    sub_start: int    # AGG: first op of the sub-plan


def join_op(rel: int, tier: int, index: int, nkey: int, key_off: int, nbind: int, bind_off: int,
            ncheck: int, check_off: int) -> Op:
    return Op(Kind.JOIN, rel, tier, index, nkey, key_off, nbind, bind_off, ncheck, check_off, 0, 0, 0, 0, 0, 0, 0, 0)


def not_op(rel: int, index: int, nkey: int, key_off: int) -> Op:
    return Op(Kind.NOT, rel, 0, index, nkey, key_off, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def cmp_op(cmp: int, lhs_off: int, lhs_len: int, rhs_off: int, rhs_len: int) -> Op:
    return Op(Kind.CMP, 0, 0, 0, 0, 0, 0, 0, 0, 0, cmp, lhs_off, lhs_len, rhs_off, rhs_len, 0, 0, 0)


def assign_op(reg: int, lhs_off: int, lhs_len: int) -> Op:
    return Op(Kind.ASSIGN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, lhs_off, lhs_len, 0, 0, reg, 0, 0)


def method_op(reg: int, method: int) -> Op:
    return Op(Kind.METHOD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, reg, method, 0)


def agg_op(func: int, reg: int, sub_start: int) -> Op:
    return Op(Kind.AGG, 0, 0, 0, 0, 0, 0, 0, 0, 0, func, 0, 0, 0, 0, reg, 0, sub_start)


def emit_op(rel: int, nkey: int, key_off: int) -> Op:
    return Op(Kind.EMIT, rel, 0, 0, nkey, key_off, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def collect_op(reg: int) -> Op:
    return Op(Kind.COLLECT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, reg, 0)


class PlanSpec(NamedTuple):
    """Everything an executor's ``Plan`` is built from (``core.Plan(spec)``)."""

    ops: tuple[Op, ...]
    pool: tuple[int, ...]
    consts: tuple[int, ...]
    nregs: int
    methods: tuple[tuple[str, str], ...]
    label: str


class RelShape(NamedTuple):
    """What validation needs to know about a relation slot."""

    arity: int
    index_cols: Sequence[tuple[int, ...]]


def validate(spec: PlanSpec, rels: Sequence[RelShape]) -> PlanSpec:
    """Check that ``spec`` only refers to what exists; return it, or raise ``ValueError``.

    Run once per plan at compile time, so that neither executor ever needs a
    bounds check while running it.
    """
    ops, pool, consts, nregs = spec.ops, spec.pool, spec.consts, spec.nregs
    npool, nops = len(pool), len(ops)

    def fail(pc: int, why: str) -> ValueError:
        return ValueError(f"invalid plan {spec.label!r}, op {pc} ({ops[pc]}): {why}")

    def span(pc: int, off: int, n: int) -> None:
        if n < 0 or off < 0 or off + n > npool:
            raise fail(pc, f"pool range {off}+{n} outside 0..{npool}")

    def source(pc: int, s: int) -> None:
        if not (0 <= s < nregs or 1 <= -s <= len(consts)):
            raise fail(pc, f"bad value source {s}")

    def register(pc: int, r: int) -> None:
        if not 0 <= r < nregs:
            raise fail(pc, f"bad register {r}")

    def relation(pc: int, slot: int) -> RelShape:
        if not 0 <= slot < len(rels):
            raise fail(pc, f"bad relation slot {slot}")
        return rels[slot]

    def key(pc: int, shape: RelShape, op: Op) -> None:
        span(pc, op.key_off, op.nkey)
        for s in pool[op.key_off:op.key_off + op.nkey]:
            source(pc, s)
        if op.index == INDEX_SCAN:
            ok = op.nkey == 0
        elif op.index == INDEX_ROW:
            ok = op.nkey == shape.arity
        else:
            ok = 0 <= op.index < len(shape.index_cols) and op.nkey == len(shape.index_cols[op.index])
        if not ok:
            raise fail(pc, f"index {op.index} does not take {op.nkey} key columns")

    def expression(pc: int, off: int, n: int) -> None:
        span(pc, off, 2 * n)
        depth = 0
        for k in range(n):
            code, arg = pool[off + 2 * k], pool[off + 2 * k + 1]
            if code == Arith.PUSH:
                source(pc, arg)
                depth += 1
                if depth > STACK:
                    raise fail(pc, "expression deeper than the executor's stack")
            elif code in (Arith.ADD, Arith.SUB, Arith.MUL, Arith.DIV, Arith.MOD):
                depth -= 1
                if depth < 1:
                    raise fail(pc, "operator without two operands")
            else:
                raise fail(pc, f"bad expression code {code}")
        if depth != 1:
            raise fail(pc, "expression does not leave exactly one value")

    if not nops or ops[-1].kind not in (Kind.EMIT, Kind.COLLECT):
        raise ValueError(f"invalid plan {spec.label!r}: it must end with EMIT or COLLECT")
    if not nregs >= 1:
        raise ValueError(f"invalid plan {spec.label!r}: needs at least one register")
    for pc, op in enumerate(ops):
        if type(op) is not Op:
            raise ValueError(f"invalid plan {spec.label!r}, op {pc}: {op!r} is not an Op record")
        kind = op.kind
        if kind not in (Kind.EMIT, Kind.COLLECT) and pc + 1 >= nops:
            raise fail(pc, "falls off the end of the plan")
        if kind == Kind.JOIN:
            shape = relation(pc, op.rel)
            if op.tier not in (Tier.ALL, Tier.STABLE, Tier.RECENT):
                raise fail(pc, f"bad tier {op.tier}")
            key(pc, shape, op)
            for off, n, second in ((op.bind_off, op.nbind, register), (op.check_off, op.ncheck, source)):
                span(pc, off, 2 * n)
                for j in range(n):
                    if not 0 <= pool[off + 2 * j] < shape.arity:
                        raise fail(pc, f"bad column {pool[off + 2 * j]}")
                    second(pc, pool[off + 2 * j + 1])
        elif kind == Kind.NOT:
            key(pc, relation(pc, op.rel), op)
        elif kind == Kind.CMP:
            if op.cmp not in tuple(Cmp):
                raise fail(pc, f"bad comparison {op.cmp}")
            expression(pc, op.lhs_off, op.lhs_len)
            expression(pc, op.rhs_off, op.rhs_len)
        elif kind == Kind.ASSIGN:
            register(pc, op.reg)
            expression(pc, op.lhs_off, op.lhs_len)
        elif kind == Kind.METHOD:
            register(pc, op.reg)
            if not 0 <= op.aux < len(spec.methods):
                raise fail(pc, f"bad method {op.aux}")
        elif kind == Kind.AGG:
            register(pc, op.reg)
            if op.cmp not in tuple(Agg):
                raise fail(pc, f"bad aggregate {op.cmp}")
            if not pc < op.sub_start < nops:
                raise fail(pc, f"bad sub-plan start {op.sub_start}")
        elif kind == Kind.EMIT:
            shape = relation(pc, op.rel)
            if op.nkey != shape.arity:
                raise fail(pc, f"head of {op.nkey} values for a relation of arity {shape.arity}")
            span(pc, op.key_off, op.nkey)
            for s in pool[op.key_off:op.key_off + op.nkey]:
                source(pc, s)
        elif kind == Kind.COLLECT:
            if op.aux != -1:
                register(pc, op.aux)
        else:
            raise fail(pc, f"bad op kind {kind}")
    return spec
