# cython: language_level=3
"""The compiled Datalog core: relations, hash indexes and the plan executor.

Why it looks like this:

* A relation is an append-only array of fixed-width rows of 64-bit ids, with
  an open-addressing hash set for deduplication. Append-only rows give the
  three tiers of semi-naive evaluation for free, as ranges of row numbers:
  ``stable`` = rows known before the last round, ``recent`` = rows the last
  round added, and rows added by the running round are simply beyond
  ``all_hi`` and therefore invisible until the next round.
* An index maps the values of some columns to the chain of rows having them,
  in increasing row order, so a probe can stop at the first row past its tier.
  The compiler decides which indexes exist; they are created with the
  relation and maintained on every insert, so no index is ever built lazily
  on a shared (read-only) relation.
* A per-request relation may extend an immutable ``base`` relation (the
  precomputed model): reads see base rows as stable, inserts skip rows the
  base already has. Nothing in the base is ever written.
* A plan is a flat array of ``Op`` structs. The executor runs it as nested
  loops (one recursion level per join) over a register file of ids; no Python
  object is touched in the join loops. Rare operations (float or big-integer
  arithmetic, string methods, non-integer aggregates, limit errors) call back
  into Python.

Ids: an integer ``v`` with -2**62 <= v < 2**62 is the id ``2*v + 1`` (odd);
every other value is ``2*k`` where ``k`` is its index in the symbol table. So
equal values have equal ids and integer arithmetic needs no table.

One extension module in several files (Cython ``include``, textual): this
file (imports, constants, sharing the GIL, ``Plan``), ``_core_memory.pxi``
(big arrays, the block cache), ``_core_relations.pxi`` (hashing, indexes,
``Relation``), ``_core_executor.pxi`` (``Executor``), ``_core_fused.pxi``
and ``_core_fused_shapes.pxi`` (fused joins), ``_core_results.pxi``
(rows out as Python values) and ``_core_interning.pxi`` (``intern_rows``, ``IdRows``).
"""

from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_New
from cpython.long cimport PyLong_FromLongLong, PyLong_AsLongLong, PyLong_AsLongLongAndOverflow
from cpython.dict cimport PyDict_GetItemWithError, PyDict_SetItem
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
    void Py_XDECREF(PyObject* o)
    void Py_XINCREF(PyObject* o)
    # raw forms (no reference counting by Cython): the result builders
    # hand each new reference over explicitly
    void tuple_set "PyTuple_SET_ITEM"(PyObject* t, Py_ssize_t i, PyObject* o)
    PyObject* list_item "PyList_GET_ITEM"(object l, Py_ssize_t i)
    Py_ssize_t list_size "PyList_GET_SIZE"(object l)
    # a borrowed row looked at without taking a reference (prefetch hints)
    bint is_exact_tuple "PyTuple_CheckExact"(PyObject* o)
    Py_ssize_t raw_tuple_size "PyTuple_GET_SIZE"(PyObject* t)
    PyObject* raw_tuple_item "PyTuple_GET_ITEM"(PyObject* t, Py_ssize_t i)
from libc.string cimport memset, memcpy
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.stdint cimport int32_t, int64_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "<time.h>":
    int nanosleep(const timespec* req, timespec* rem) noexcept nogil

cdef extern from *:
    """
    /* A tuple of n empty items, never tracked by the cyclic GC (the result
       rows: see fill_value_rows). PyTuple_New would track it and the caller
       untrack it again at once; on the CPython versions whose tuple layout
       is known to be just the items (3.10 to 3.13, with the GIL), it is
       allocated the way PyTuple_New allocates it, minus the tracking. */
    static PyObject* rf_untracked_tuple(Py_ssize_t n) {
    #if PY_VERSION_HEX >= 0x030E0000 || defined(Py_GIL_DISABLED) || defined(PYPY_VERSION)
        PyObject* t = PyTuple_New(n);
        if (t != NULL) PyObject_GC_UnTrack(t);
        return t;
    #else
        PyTupleObject* t;
        Py_ssize_t i;
        if (n == 0) return PyTuple_New(0);
        t = PyObject_GC_NewVar(PyTupleObject, &PyTuple_Type, n);
        if (t == NULL) return NULL;
        for (i = 0; i < n; i++) t->ob_item[i] = NULL;
        return (PyObject*)t;
    #endif
    }
    """
    PyObject* untracked_tuple "rf_untracked_tuple"(Py_ssize_t n)


cdef extern from *:
    bint mul_overflow "__builtin_mul_overflow"(int64_t a, int64_t b, int64_t* res) noexcept nogil
    bint add_overflow "__builtin_add_overflow"(int64_t a, int64_t b, int64_t* res) noexcept nogil

# --------------------------------------------------------------------------
# The plan format is defined once, in plan.py (shared with compiler.py and
# _pycore.py); its codes are read into C globals when this module is imported.

from . import plan as _plan  # noqa: E402
from .plan import Op as _Op, PlanSpec as _PlanSpec  # noqa: E402
from . import symbols as _symbols  # noqa: E402
from ..values import Entity as _Entity  # noqa: E402

cdef int K_JOIN = _plan.Kind.JOIN
cdef int K_NOT = _plan.Kind.NOT
cdef int K_CMP = _plan.Kind.CMP
cdef int K_ASSIGN = _plan.Kind.ASSIGN
cdef int K_METHOD = _plan.Kind.METHOD
cdef int K_AGG = _plan.Kind.AGG
cdef int K_EMIT = _plan.Kind.EMIT
cdef int K_COLLECT = _plan.Kind.COLLECT

cdef int T_ALL = _plan.Tier.ALL
cdef int T_STABLE = _plan.Tier.STABLE
cdef int T_RECENT = _plan.Tier.RECENT

cdef int C_EQ = _plan.Cmp.EQ
cdef int C_NE = _plan.Cmp.NE
cdef int C_LT = _plan.Cmp.LT
cdef int C_LE = _plan.Cmp.LE
cdef int C_GT = _plan.Cmp.GT
cdef int C_GE = _plan.Cmp.GE

cdef int E_PUSH = _plan.Arith.PUSH
cdef int E_ADD = _plan.Arith.ADD
cdef int E_SUB = _plan.Arith.SUB
cdef int E_MUL = _plan.Arith.MUL
cdef int E_DIV = _plan.Arith.DIV
cdef int E_MOD = _plan.Arith.MOD

cdef int A_COUNT = _plan.Agg.COUNT
cdef int A_SUM = _plan.Agg.SUM

cdef int LIMIT_TUPLES = _plan.LimitKind.TUPLES
cdef int LIMIT_BYTES = _plan.LimitKind.BYTES
cdef int LIMIT_AGGREGATE = _plan.LimitKind.AGGREGATE

cdef int INDEX_SCAN = _plan.INDEX_SCAN
cdef int INDEX_ROW = _plan.INDEX_ROW

cdef int64_t INLINE_MIN = _symbols.INLINE_MIN
cdef int64_t INLINE_MAX = _symbols.INLINE_MAX
cdef int STACK = _plan.STACK

DEF LOOK_AHEAD_KEY = 8          # widest whole-row probe whose slot a join prefetches
DEF LOOK_AHEAD_ROWS = 4         # how many rows ahead a scan prefetches it
DEF CHECK_EVERY = 1024          # steps between two looks at the clock
DEF YIELD_AFTER = 0.001         # seconds of work between two GIL hand-overs
DEF YIELD_SLEEP_NS = 50000      # how long the GIL is left free at a hand-over
DEF SMALL_INTS = 65536
DEF MAX_FUSED = 8              # most joins in a plan Executor.fused_joins runs
# the kinds of its levels (Plan.find_fused_joins)
DEF FUSE_SCAN = 0
DEF FUSE_INDEX = 1
DEF FUSE_ROW = 2
DEF FUSE_NOT = 3
DEF FUSE_CMP = 4
DEF EMIT_BATCH = 64            # head rows inserted together (see Executor.flush)
DEF INSERT_BATCH = 32          # fact rows inserted together (IdRows.insert_into)

COMPILED = True


from ..errors import EvalFailure  # noqa: E402  (shared by both cores)


# --------------------------------------------------------------------------
# Sharing the GIL


cdef inline double now_seconds() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef extern from "Python.h":
    ctypedef struct PyInterpreterState:
        pass
    ctypedef struct PyThreadState:
        pass
    PyInterpreterState* PyInterpreterState_Get()
    PyThreadState* PyInterpreterState_ThreadHead(PyInterpreterState* interp)
    PyThreadState* PyThreadState_Next(PyThreadState* tstate)


cdef double give_gil_turn() noexcept:
    """Leave the GIL free long enough for a waiting thread to take it; returns the time after.

    Releasing the GIL and taking it straight back (``with nogil:
    sched_yield()``) hands nothing over on a multi-core machine: the waiting
    thread is woken on another core, and we re-take the free GIL before it
    gets there. A short sleep leaves the GIL free until it does. Called after
    every ``YIELD_AFTER`` of work, it bounds what a request thread waits for
    the GIL to a few milliseconds. When this interpreter has no other thread,
    nobody can be waiting: no sleep (a benchmark or ``rune check`` pays
    nothing).
    """
    cdef timespec ts
    cdef PyThreadState* head = PyInterpreterState_ThreadHead(PyInterpreterState_Get())
    if head == NULL or PyThreadState_Next(head) == NULL:
        return now_seconds()
    ts.tv_sec = 0
    ts.tv_nsec = YIELD_SLEEP_NS
    with nogil:
        nanosleep(&ts, NULL)
    return now_seconds()


include "_core_memory.pxi"
include "_core_relations.pxi"


# --------------------------------------------------------------------------
# Plans


cdef class Plan:
    """One rule (or one delta variant of a rule) compiled to a flat op array."""

    cdef Op* ops
    cdef int nops
    cdef int* pool
    cdef readonly int npool
    cdef int64_t* consts
    cdef readonly int nregs
    cdef readonly object methods     # list of (method name, argument) for K_METHOD
    cdef readonly object label       # for diagnostics: the rule's text location
    cdef int* la                     # look-ahead keys (Op.la_off): pairs (0, column) or (1, source)
    # A chain of joins Executor.fused_joins runs (``nfused`` levels, 0: not
    # fused). Per level: its kind (FUSE_*) and where its key values come
    # from: ``fused_src[fused_off[L]:fused_off[L + 1]]`` as (level, column)
    # pairs of an earlier row, or (-1, k) for the plan's constant k. Per
    # head value: the (level, column) it is copied from.
    cdef int nfused
    cdef int nscan_probe             # 2 or 3: a fixed-shape kernel runs it (scan_probe_levels); else 0
    cdef int* fused_kind
    cdef int* fused_off
    cdef int* fused_src
    cdef int* fused_head

    def __cinit__(self, spec):
        """Copy a ``PlanSpec`` (already checked by ``plan.validate``) into C arrays."""
        cdef int i
        cdef Op* op
        if type(spec) is not _PlanSpec:
            raise TypeError("Plan needs a PlanSpec (see plan.validate)")
        ops, pool, consts = spec.ops, spec.pool, spec.consts
        self.nops = len(ops)
        self.ops = <Op*>PyMem_Malloc(sizeof(Op) * (self.nops if self.nops else 1))
        self.pool = <int*>PyMem_Malloc(sizeof(int) * (len(pool) if pool else 1))
        self.consts = <int64_t*>PyMem_Malloc(sizeof(int64_t) * (len(consts) if consts else 1))
        if self.ops == NULL or self.pool == NULL or self.consts == NULL:
            raise MemoryError()
        memset(self.ops, 0, sizeof(Op) * (self.nops if self.nops else 1))
        self.npool = len(pool)
        for i in range(len(pool)):
            self.pool[i] = pool[i]
        for i in range(len(consts)):
            self.consts[i] = consts[i]
        for i in range(self.nops):
            spec_op = ops[i]
            if type(spec_op) is not _Op:
                raise TypeError(f"op {i} is not an Op record")
            op = &self.ops[i]
            op.kind = spec_op.kind
            op.rel = spec_op.rel
            op.tier = spec_op.tier
            op.index = spec_op.index
            op.nkey = spec_op.nkey
            op.key_off = spec_op.key_off
            op.nbind = spec_op.nbind
            op.bind_off = spec_op.bind_off
            op.ncheck = spec_op.ncheck
            op.check_off = spec_op.check_off
            op.cmp = spec_op.cmp
            op.lhs_off = spec_op.lhs_off
            op.lhs_len = spec_op.lhs_len
            op.rhs_off = spec_op.rhs_off
            op.rhs_len = spec_op.rhs_len
            op.reg = spec_op.reg
            op.aux = spec_op.aux
            op.sub_start = spec_op.sub_start
        # Facts about the ops the executor would otherwise work out per row.
        la = []
        for i in range(self.nops):
            op = &self.ops[i]
            op.emit_next = op.kind == K_JOIN and i + 1 < self.nops and self.ops[i + 1].kind == K_EMIT
            op.regs_only = op.kind == K_EMIT and all(s >= 0 for s in pool[op.key_off:op.key_off + op.nkey])
            if (op.kind == K_JOIN and i + 1 < self.nops and self.ops[i + 1].index == INDEX_ROW
                    and (self.ops[i + 1].kind == K_JOIN or self.ops[i + 1].kind == K_NOT)
                    and 0 < self.ops[i + 1].nkey <= LOOK_AHEAD_KEY):
                # the whole-row probe after this join: how to build its key
                # from one of this join's rows (see Executor.look_ahead)
                bound = {pool[op.bind_off + 2 * j + 1]: pool[op.bind_off + 2 * j] for j in range(op.nbind)}
                nxt_op = ops[i + 1]
                op.la_off = len(la)
                op.la_n = nxt_op.nkey
                for src in pool[nxt_op.key_off:nxt_op.key_off + nxt_op.nkey]:
                    la += [0, bound[src]] if src in bound else [1, src]
        self.nfused = 0
        self.nscan_probe = 0
        self.fused_kind = NULL
        self.fused_off = NULL
        self.fused_src = NULL
        self.fused_head = NULL
        self.find_fused_joins(pool)
        self.la = <int*>PyMem_Malloc(sizeof(int) * (len(la) if la else 1))
        if self.la == NULL:
            raise MemoryError()
        for i in range(len(la)):
            self.la[i] = la[i]
        self.nregs = spec.nregs
        self.methods = spec.methods
        self.label = spec.label

    cdef int find_fused_joins(self, pool) except -1:
        """Recognise the plans ``Executor.fused_joins`` runs: joins and
        negations, then the head, where every key value and every head
        value is a column of an earlier row (or a constant).

        A level is a scan, a probe through a one-column index, a
        whole-row membership test (``resource(R)``), a negation (``not
        suspended(U)``) or a comparison of two plain values (``X != Y``):
        the inner loops of most rules (``path(X, Z) :-
        path(X, Y), edge(Y, Z)``; ``sg(X, Y) :- par(X, A), sg(A, B),
        par(Y, B)`` from the ``sg`` delta; ``unreached(S, X) :- source(S),
        node(X), not reach(S, X)``). Anything else (checks on a row, a
        several-column partial key, a comparison of computed values, an
        assignment, an aggregate) keeps the general executor.
        """
        cdef Op* op
        cdef int n = self.nops - 1, lvl, k
        if n < 2 or n > MAX_FUSED or self.ops[n].kind != K_EMIT or not self.ops[n].regs_only:
            return 0
        bound = {}          # register -> (level, column)
        kinds, offs, srcs = [], [], []
        for lvl in range(n):
            op = &self.ops[lvl]
            offs.append(len(srcs))
            if op.kind == K_JOIN and op.ncheck == 0 and op.index == INDEX_SCAN:
                kinds.append(FUSE_SCAN)
            elif op.kind == K_JOIN and op.ncheck == 0 and op.index >= 0 and op.nkey == 1:
                kinds.append(FUSE_INDEX)
            elif op.kind == K_JOIN and op.index == INDEX_ROW and op.nbind == 0 and op.ncheck == 0:
                kinds.append(FUSE_ROW)
            elif op.kind == K_NOT and op.nbind == 0 and op.nkey <= 64:
                kinds.append(FUSE_NOT)
            elif (op.kind == K_CMP and op.lhs_len == 1 and op.rhs_len == 1
                    and pool[op.lhs_off] == E_PUSH and pool[op.rhs_off] == E_PUSH):
                # a comparison of two plain values (``X != Y``, ``N >= 3``)
                kinds.append(FUSE_CMP)
                for src in (pool[op.lhs_off + 1], pool[op.rhs_off + 1]):
                    if src < 0:
                        srcs += (-1, -src - 1)
                    elif src in bound:
                        srcs += bound[src]
                    else:
                        return 0
                continue
            else:
                return 0
            for k in range(op.nkey):
                src = pool[op.key_off + k]
                if src < 0:                 # a constant
                    srcs += (-1, -src - 1)
                elif src in bound:
                    srcs += bound[src]
                else:
                    return 0
            for k in range(op.nbind if op.kind == K_JOIN else 0):
                reg = pool[op.bind_off + 2 * k + 1]
                if reg in bound:
                    return 0
                bound[reg] = (lvl, pool[op.bind_off + 2 * k])
        if kinds[0] != FUSE_SCAN:
            return 0
        offs.append(len(srcs))
        head = []
        op = &self.ops[n]
        for reg in pool[op.key_off:op.key_off + op.nkey]:
            if reg not in bound:
                return 0
            head += bound[reg]
        self.fused_kind = <int*>PyMem_Malloc(sizeof(int) * n)
        self.fused_off = <int*>PyMem_Malloc(sizeof(int) * (n + 1))
        self.fused_src = <int*>PyMem_Malloc(sizeof(int) * (len(srcs) if srcs else 1))
        self.fused_head = <int*>PyMem_Malloc(sizeof(int) * (len(head) if head else 1))
        if self.fused_kind == NULL or self.fused_off == NULL or self.fused_src == NULL or self.fused_head == NULL:
            raise MemoryError()
        for k in range(n):
            self.fused_kind[k] = kinds[k]
        for k in range(n + 1):
            self.fused_off[k] = offs[k]
        for k in range(len(srcs)):
            self.fused_src[k] = srcs[k]
        for k in range(len(head)):
            self.fused_head[k] = head[k]
        self.nfused = n
        self.nscan_probe = scan_probe_levels(self)
        return 0

    @property
    def fused(self) -> bool:
        """Whether ``Executor.fused_joins`` runs this plan (see ``find_fused_joins``)."""
        return self.nfused > 0

    @property
    def scan_probe(self) -> int:
        """2 or 3 if ``fused_scan_probe`` or ``fused_scan_probe_probe`` (the
        fixed-shape forms of ``fused_joins``) runs this plan, else 0."""
        return self.nscan_probe

    def __dealloc__(self):
        PyMem_Free(self.ops)
        PyMem_Free(self.fused_kind)
        PyMem_Free(self.fused_off)
        PyMem_Free(self.fused_src)
        PyMem_Free(self.fused_head)
        PyMem_Free(self.la)
        PyMem_Free(self.pool)
        PyMem_Free(self.consts)


include "_core_executor.pxi"
include "_core_fused.pxi"
include "_core_fused_shapes.pxi"
include "_core_results.pxi"
include "_core_interning.pxi"
