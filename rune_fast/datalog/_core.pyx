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
"""

from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject, Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.long cimport PyLong_FromLongLong

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void* op)
from libc.string cimport memset, memcpy
from libc.stdlib cimport malloc, realloc, free
from libc.stdint cimport int32_t, int64_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "<time.h>":
    int nanosleep(const timespec* req, timespec* rem) noexcept nogil

cdef extern from *:
    bint mul_overflow "__builtin_mul_overflow"(int64_t a, int64_t b, int64_t* res) noexcept nogil
    bint add_overflow "__builtin_add_overflow"(int64_t a, int64_t b, int64_t* res) noexcept nogil

# --------------------------------------------------------------------------
# The plan format is defined once, in plan.py (shared with compiler.py and
# _pycore.py); its codes are read into C globals when this module is imported.

from . import plan as _plan  # noqa: E402
from .plan import Op as _Op, PlanSpec as _PlanSpec  # noqa: E402
from . import symbols as _symbols  # noqa: E402

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

DEF CHECK_EVERY = 1024          # steps between two looks at the clock
DEF YIELD_AFTER = 0.001         # seconds of work between two GIL hand-overs
DEF YIELD_SLEEP_NS = 50000      # how long the GIL is left free at a hand-over
DEF SMALL_INTS = 65536

COMPILED = True


from ..errors import EvalFailure  # noqa: E402  (shared by both cores)


# --------------------------------------------------------------------------
# Hashing


cdef inline uint64_t mix(uint64_t h, uint64_t v) noexcept nogil:
    v = v * <uint64_t>0x9E3779B97F4A7C15ULL
    v ^= v >> 32
    h = (h ^ v) * <uint64_t>0xBF58476D1CE4E5B9ULL
    h ^= h >> 29
    return h


cdef inline uint64_t hash_cols(const int64_t* row, const int* cols, int ncols) noexcept nogil:
    cdef uint64_t h = 0x2545F4914F6CDD1DULL
    cdef int i
    for i in range(ncols):
        h = mix(h, <uint64_t>row[cols[i]])
    return h


cdef inline uint64_t hash_vals(const int64_t* vals, int n) noexcept nogil:
    cdef uint64_t h = 0x2545F4914F6CDD1DULL
    cdef int i
    for i in range(n):
        h = mix(h, <uint64_t>vals[i])
    return h


cdef inline uint64_t hash_row(const int64_t* row, int arity) noexcept nogil:
    return hash_vals(row, arity)


# --------------------------------------------------------------------------
# Memory of relations, indexes and aggregate buffers
#
# libc's allocator (not PyMem_*, which needs the GIL): growing a large array
# copies it, tens of milliseconds for a big relation, and that copy runs
# without the GIL so that other threads keep running. Every array allocated
# here is freed with ``big_free``.

DEF BIG = 1 << 20


cdef inline void* big_malloc(size_t n) noexcept:
    cdef void* p
    if n < BIG:
        return malloc(n)
    with nogil:
        p = malloc(n)
    return p


cdef inline void* big_realloc(void* old, size_t n) noexcept:
    cdef void* p
    if n < BIG:
        return realloc(old, n)
    with nogil:
        p = realloc(old, n)
    return p


cdef inline void big_free(void* p) noexcept:
    free(p)


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


# --------------------------------------------------------------------------
# Indexes


cdef int idx_init(Index* ix, list cols) except -1:
    cdef int i
    ix.ncols = len(cols)
    ix.cols = <int*>big_malloc(sizeof(int) * (ix.ncols if ix.ncols else 1))
    if ix.cols == NULL:
        raise MemoryError()
    for i in range(ix.ncols):
        ix.cols[i] = cols[i]
    ix.mask = 15
    ix.slots = <int32_t*>big_malloc(sizeof(int32_t) * 16)
    ix.gcap = 8
    ix.ghead = <int32_t*>big_malloc(sizeof(int32_t) * 8)
    ix.gtail = <int32_t*>big_malloc(sizeof(int32_t) * 8)
    ix.ghash = <uint64_t*>big_malloc(sizeof(uint64_t) * 8)
    ix.ncap = 0
    ix.next = NULL
    ix.ngroups = 0
    if ix.slots == NULL or ix.ghead == NULL or ix.gtail == NULL or ix.ghash == NULL:
        raise MemoryError()
    memset(ix.slots, 0, sizeof(int32_t) * 16)
    return 0


cdef void idx_free(Index* ix) noexcept nogil:
    free(ix.cols)
    free(ix.slots)
    free(ix.ghead)
    free(ix.gtail)
    free(ix.ghash)
    free(ix.next)


cdef void rel_free(RelData* d) noexcept nogil:
    cdef int k
    for k in range(d.nidx):
        idx_free(&d.idx[k])
    free(d.idx)
    free(d.rows)
    free(d.fslots)
    free(d)


cdef inline bint key_equal(const int64_t* row, const int* cols, int ncols, const int64_t* vals) noexcept nogil:
    cdef int i
    for i in range(ncols):
        if row[cols[i]] != vals[i]:
            return False
    return True


cdef inline bint cols_equal(const int64_t* a, const int64_t* b, const int* cols, int ncols) noexcept nogil:
    cdef int i
    for i in range(ncols):
        if a[cols[i]] != b[cols[i]]:
            return False
    return True


cdef int idx_grow_slots(Index* ix) except -1:
    cdef int64_t newcap = (ix.mask + 1) * 2
    cdef int32_t* ns = <int32_t*>big_malloc(sizeof(int32_t) * newcap)
    cdef int64_t g, i, m = newcap - 1
    if ns == NULL:
        raise MemoryError()
    # The index belongs to a relation being built by this thread (shared
    # relations are never written): rehash without holding the GIL.
    with nogil:
        memset(ns, 0, sizeof(int32_t) * newcap)
        for g in range(ix.ngroups):
            i = ix.ghash[g] & m
            while ns[i]:
                i = (i + 1) & m
            ns[i] = <int32_t>(g + 1)
    big_free(ix.slots)
    ix.slots = ns
    ix.mask = m
    return 0


cdef int idx_add(Index* ix, const int64_t* rows, int arity, int64_t r) except -1:
    """Append row ``r`` (already stored in ``rows``) to its key's chain."""
    cdef const int64_t* row = rows + r * arity
    cdef uint64_t h = hash_cols(row, ix.cols, ix.ncols)
    cdef int64_t i = h & ix.mask
    cdef int64_t g, newcap
    cdef int32_t s
    if r >= ix.ncap:
        newcap = ix.ncap * 2 if ix.ncap else 16
        while newcap <= r:
            newcap *= 2
        ix.next = <int32_t*>big_realloc(ix.next, sizeof(int32_t) * newcap)
        if ix.next == NULL:
            raise MemoryError()
        ix.ncap = newcap
    ix.next[r] = -1
    while True:
        s = ix.slots[i]
        if s == 0:
            break
        g = s - 1
        if ix.ghash[g] == h and cols_equal(rows + <int64_t>ix.ghead[g] * arity, row, ix.cols, ix.ncols):
            ix.next[ix.gtail[g]] = <int32_t>r
            ix.gtail[g] = <int32_t>r
            return 0
        i = (i + 1) & ix.mask
    if ix.ngroups == ix.gcap:
        ix.gcap *= 2
        ix.ghead = <int32_t*>big_realloc(ix.ghead, sizeof(int32_t) * ix.gcap)
        ix.gtail = <int32_t*>big_realloc(ix.gtail, sizeof(int32_t) * ix.gcap)
        ix.ghash = <uint64_t*>big_realloc(ix.ghash, sizeof(uint64_t) * ix.gcap)
        if ix.ghead == NULL or ix.gtail == NULL or ix.ghash == NULL:
            raise MemoryError()
    g = ix.ngroups
    ix.ghead[g] = <int32_t>r
    ix.gtail[g] = <int32_t>r
    ix.ghash[g] = h
    ix.slots[i] = <int32_t>(g + 1)
    ix.ngroups += 1
    if ix.ngroups * 2 > ix.mask + 1:
        idx_grow_slots(ix)
    return 0


cdef inline int64_t idx_find(const Index* ix, const int64_t* rows, int arity, const int64_t* vals) noexcept nogil:
    """First row whose key columns equal ``vals``, or -1."""
    cdef uint64_t h = hash_vals(vals, ix.ncols)
    cdef int64_t i = h & ix.mask
    cdef int32_t s
    cdef int64_t g
    while True:
        s = ix.slots[i]
        if s == 0:
            return -1
        g = s - 1
        if ix.ghash[g] == h and key_equal(rows + <int64_t>ix.ghead[g] * arity, ix.cols, ix.ncols, vals):
            return ix.ghead[g]
        i = (i + 1) & ix.mask


# --------------------------------------------------------------------------
# Relations


cdef inline int64_t rel_find_own(const RelData* r, const int64_t* vals) noexcept nogil:
    """Row id of an identical own row, or -1."""
    cdef uint64_t h = hash_row(vals, r.arity)
    cdef int64_t i = h & r.fmask
    cdef int32_t s
    cdef int64_t row
    cdef int k
    cdef const int64_t* p
    cdef bint same
    while True:
        s = r.fslots[i]
        if s == 0:
            return -1
        row = s - 1
        p = r.rows + row * r.arity
        same = True
        for k in range(r.arity):
            if p[k] != vals[k]:
                same = False
                break
        if same:
            return row
        i = (i + 1) & r.fmask


cdef int rel_grow_fslots(RelData* r) except -1:
    cdef int64_t newcap = (r.fmask + 1) * 2
    cdef int32_t* ns = <int32_t*>big_malloc(sizeof(int32_t) * newcap)
    cdef int64_t row, i, m = newcap - 1
    if ns == NULL:
        raise MemoryError()
    with nogil:  # see idx_grow_slots
        memset(ns, 0, sizeof(int32_t) * newcap)
        for row in range(r.n):
            i = hash_row(r.rows + row * r.arity, r.arity) & m
            while ns[i]:
                i = (i + 1) & m
            ns[i] = <int32_t>(row + 1)
    big_free(r.fslots)
    r.fslots = ns
    r.fmask = m
    return 0


cdef int rel_insert(RelData* r, const int64_t* vals) except -1:
    """Add a row unless present (here or in the base); 1 if it was new."""
    cdef uint64_t h
    cdef int64_t i, newcap
    cdef int k
    if r.base != NULL and rel_find_own(r.base, vals) >= 0:
        return 0
    if rel_find_own(r, vals) >= 0:
        return 0
    if r.n >= 2147483646:
        raise OverflowError("relation has more than 2**31 rows")
    if r.n == r.cap:
        newcap = r.cap * 2 if r.cap else 16
        r.rows = <int64_t*>big_realloc(r.rows, sizeof(int64_t) * newcap * (r.arity if r.arity else 1))
        if r.rows == NULL:
            raise MemoryError()
        r.cap = newcap
    if r.arity:
        memcpy(r.rows + r.n * r.arity, vals, sizeof(int64_t) * r.arity)
    h = hash_row(vals, r.arity)
    i = h & r.fmask
    while r.fslots[i]:
        i = (i + 1) & r.fmask
    r.fslots[i] = <int32_t>(r.n + 1)
    for k in range(r.nidx):
        idx_add(&r.idx[k], r.rows, r.arity, r.n)
    r.n += 1
    if r.n * 2 > r.fmask + 1:
        rel_grow_fslots(r)
    return 1


cdef class Relation:
    """Python handle of one relation (owns its C data)."""

    cdef RelData* d
    cdef readonly str name
    cdef Relation _base   # keeps the base alive while this overlay exists

    def __cinit__(self, str name, int arity, list index_cols, Relation base=None):
        cdef int k
        self.name = name
        self.d = <RelData*>big_malloc(sizeof(RelData))
        if self.d == NULL:
            raise MemoryError()
        memset(self.d, 0, sizeof(RelData))
        self.d.arity = arity
        self.d.fmask = 15
        self.d.fslots = <int32_t*>big_malloc(sizeof(int32_t) * 16)
        if self.d.fslots == NULL:
            raise MemoryError()
        memset(self.d.fslots, 0, sizeof(int32_t) * 16)
        self.d.nidx = len(index_cols)
        if self.d.nidx:
            self.d.idx = <Index*>big_malloc(sizeof(Index) * self.d.nidx)
            if self.d.idx == NULL:
                raise MemoryError()
            memset(self.d.idx, 0, sizeof(Index) * self.d.nidx)
            for k in range(self.d.nidx):
                idx_init(&self.d.idx[k], list(index_cols[k]))
        if base is not None:
            if base.d.arity != arity or base.d.nidx != self.d.nidx:
                raise ValueError("overlay must have the base's shape")
            self._base = base
            self.d.base = base.d

    def __dealloc__(self):
        cdef RelData* d = self.d
        self.d = NULL
        if d == NULL:
            return
        if d.cap * (d.arity + 1) * 8 < BIG:
            rel_free(d)
        else:
            # returning a big relation's pages to the OS takes milliseconds:
            # nothing else can reach it any more, so do it without the GIL
            with nogil:
                rel_free(d)

    @property
    def arity(self):
        return self.d.arity

    @property
    def own_count(self):
        return self.d.n

    @property
    def base(self):
        return self._base

    def __len__(self):
        return self.d.n + (self.d.base.n if self.d.base != NULL else 0)

    def add(self, row):
        """Insert one row of ids; True if it was new."""
        cdef int64_t buf[64]
        cdef int k, a = self.d.arity
        if len(row) != a:
            raise ValueError(f"row of arity {len(row)} for relation of arity {a}")
        if a > 64:
            return self._add_big(row)
        for k in range(a):
            buf[k] = row[k]
        return rel_insert(self.d, buf) == 1

    def _add_big(self, row):
        cdef int64_t* buf = <int64_t*>PyMem_Malloc(sizeof(int64_t) * self.d.arity)
        cdef int k
        try:
            for k in range(self.d.arity):
                buf[k] = row[k]
            return rel_insert(self.d, buf) == 1
        finally:
            PyMem_Free(buf)

    def add_many(self, rows):
        """Insert many rows of ids; returns how many were new."""
        cdef int64_t added = 0, seen = 0
        cdef double last = now_seconds()
        for row in rows:
            if self.add(row):
                added += 1
            seen += 1
            if seen % CHECK_EVERY == 0 and now_seconds() - last > YIELD_AFTER:
                last = give_gil_turn()   # bulk loads run on reload threads: let requests in
        return added

    def add_columns(self, list cols):
        """Insert rows given column-wise (one list of ids per column).

        The bulk path for facts: no Python tuple is built per row.
        """
        cdef int64_t buf[64]
        cdef Py_ssize_t r, n
        cdef int k, a = self.d.arity
        cdef int64_t added = 0
        cdef double last = now_seconds()
        if len(cols) != a or a == 0 or a > 64:
            raise ValueError("add_columns needs one column per position (arity 1..64)")
        n = len(cols[0])
        for k in range(a):
            if type(cols[k]) is not list or len(cols[k]) != n:
                raise ValueError("columns must be lists of equal length")
        for r in range(n):
            for k in range(a):
                buf[k] = (<list>cols[k])[r]
            added += rel_insert(self.d, buf)
            if r % CHECK_EVERY == CHECK_EVERY - 1 and now_seconds() - last > YIELD_AFTER:
                last = give_gil_turn()
        return added

    def contains(self, row):
        """Whether this row of ids is present (here or in the base)."""
        cdef int64_t buf[64]
        cdef int k, a = self.d.arity
        if len(row) != a or a > 64:
            return row in set(self.rows())
        for k in range(a):
            buf[k] = row[k]
        if self.d.base != NULL and rel_find_own(self.d.base, buf) >= 0:
            return True
        return rel_find_own(self.d, buf) >= 0

    def rows(self):
        """Every row (base rows first) as tuples of ids."""
        out = []
        if self.d.base != NULL:
            out.extend(self._base.rows())
        cdef int64_t r
        cdef int k, a = self.d.arity
        for r in range(self.d.n):
            out.append(tuple([self.d.rows[r * a + k] for k in range(a)]))
        return out

    def value_rows(self, list table):
        """Every row as a tuple of Python values (``table[k]`` is the value of id ``2*k``).

        The end-to-end path: building the tuples here, in one pass, is several
        times faster than going through tuples of ids.
        """
        out = []
        if self.d.base != NULL:
            out.extend(self._base.value_rows(table))
        cdef int64_t r, ident, iv
        cdef int k, a = self.d.arity
        cdef object t, v
        cdef Py_ssize_t ntab = len(table)
        cdef double last = now_seconds()
        # Small non-negative integers recur across rows (node ids, counts):
        # share one int object per value instead of allocating one per cell.
        cdef list small = [None] * SMALL_INTS if self.d.n > SMALL_INTS else None
        for r in range(self.d.n):
            t = PyTuple_New(a)
            for k in range(a):
                ident = self.d.rows[r * a + k]
                if ident & 1:
                    iv = ident >> 1
                    if small is not None and 0 <= iv < SMALL_INTS:
                        v = small[iv]
                        if v is None:
                            v = PyLong_FromLongLong(iv)
                            small[iv] = v
                    else:
                        v = PyLong_FromLongLong(iv)
                else:
                    if (ident >> 1) >= ntab:
                        raise IndexError("id outside the symbol table")
                    v = table[ident >> 1]
                Py_INCREF(v)
                PyTuple_SET_ITEM(t, k, v)
            # Items are immutable scalars and entities: the tuple can never be
            # part of a cycle, so keep it out of the cyclic GC's work lists.
            PyObject_GC_UnTrack(<void*>t)
            out.append(t)
            if r % CHECK_EVERY == CHECK_EVERY - 1 and now_seconds() - last > YIELD_AFTER:
                last = give_gil_turn()
        return out

    def match(self, int index, key):
        """Rows whose columns of index ``index`` equal ``key`` (tuples of ids)."""
        cdef int64_t buf[64]
        cdef int k
        cdef Index* ix
        out = []
        if index < 0 or index >= self.d.nidx:
            raise IndexError(index)
        ix = &self.d.idx[index]
        if len(key) != ix.ncols or ix.ncols > 64:
            raise ValueError("key does not fit the index")
        for k in range(ix.ncols):
            buf[k] = key[k]
        if self.d.base != NULL:
            _collect(self.d.base, index, buf, out)
        _collect(self.d, index, buf, out)
        return out

    def set_tiers(self, int64_t stable_hi, int64_t recent_lo, int64_t recent_hi, int64_t all_hi):
        self.d.stable_hi = stable_hi
        self.d.recent_lo = recent_lo
        self.d.recent_hi = recent_hi
        self.d.all_hi = all_hi



cdef void _collect(const RelData* r, int index, const int64_t* key, list out):
    cdef const Index* ix = &r.idx[index]
    cdef int64_t row = idx_find(ix, r.rows, r.arity, key)
    cdef int k
    while row >= 0:
        out.append(tuple([r.rows[row * r.arity + k] for k in range(r.arity)]))
        row = ix.next[row]


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
        self.nregs = spec.nregs
        self.methods = spec.methods
        self.label = spec.label

    def __dealloc__(self):
        PyMem_Free(self.ops)
        PyMem_Free(self.pool)
        PyMem_Free(self.consts)


# --------------------------------------------------------------------------
# The executor


cdef class Executor:
    """Runs plans over a list of relations (indexed like the compiler's slots).

    ``hooks`` supplies the Python slow paths: ``arith(opcode, a, b) -> id``,
    ``compare(cmp, a, b) -> bool``, ``method(name, arg, id) -> bool``,
    ``aggregate(func, ids) -> id`` (each may raise EvalFailure), and
    ``limit(relation_name)`` / ``deadline()`` which raise the limit errors.
    """

    cdef RelData** rels
    cdef list relations
    cdef int nrels
    cdef int64_t* regs
    cdef int nregs
    cdef int64_t* stack
    cdef int64_t* coll
    cdef int64_t ncoll
    cdef int64_t collcap
    cdef object hooks
    cdef readonly int64_t derived    # new tuples
    cdef int64_t collected           # aggregate matches (work, counted with derived)
    cdef int64_t nbytes              # bytes of the derived rows
    cdef int64_t max_tuples
    cdef int64_t max_bytes
    cdef double deadline
    cdef int64_t steps
    cdef double last_yield
    cdef Plan plan
    cdef int64_t* rowbuf
    cdef int64_t* keybuf
    cdef readonly list diagnostics
    cdef dict method_memo

    def __cinit__(self, list relations, hooks, int64_t max_tuples, double deadline_seconds=0.0,
                  int64_t max_bytes=0):
        cdef int i
        self.relations = list(relations)
        self.nrels = len(relations)
        self.rels = <RelData**>PyMem_Malloc(sizeof(RelData*) * (self.nrels if self.nrels else 1))
        self.stack = <int64_t*>PyMem_Malloc(sizeof(int64_t) * STACK)
        self.collcap = 64
        self.coll = <int64_t*>big_malloc(sizeof(int64_t) * self.collcap)
        if self.rels == NULL or self.stack == NULL or self.coll == NULL:
            raise MemoryError()
        for i in range(self.nrels):
            self.rels[i] = (<Relation>self.relations[i]).d
        self.hooks = hooks
        self.max_tuples = max_tuples
        self.max_bytes = max_bytes
        self.deadline = (now_seconds() + deadline_seconds) if deadline_seconds > 0 else 0.0
        self.derived = 0
        self.collected = 0
        self.nbytes = 0
        self.steps = 0
        self.last_yield = now_seconds()
        self.diagnostics = []
        self.method_memo = {}
        self.regs = NULL
        self.rowbuf = NULL
        self.keybuf = NULL

    def __dealloc__(self):
        PyMem_Free(self.rels)
        PyMem_Free(self.regs)
        PyMem_Free(self.stack)
        big_free(self.coll)
        PyMem_Free(self.rowbuf)
        PyMem_Free(self.keybuf)

    cdef void tiers(self, int slot, int64_t s, int64_t lo, int64_t hi, int64_t a) noexcept:
        cdef RelData* r = self.rels[slot]
        r.stable_hi = s
        r.recent_lo = lo
        r.recent_hi = hi
        r.all_hi = a

    def run_stratum(self, list first, list members, list lower, bint recursive, list rounds, bint incremental):
        """Evaluate one stratum: ``first`` plans once, then semi-naive rounds.

        ``members`` are the stratum's slots, ``rounds`` its delta variants.
        Full mode: everything is read as complete. Incremental mode (a
        request on top of the model): the own rows of the ``lower`` slots and
        of the members are the first delta, and stay marked as news for
        the strata after this one.
        """
        cdef int slot, k, m = len(members)
        cdef int64_t n
        cdef int64_t* lo = <int64_t*>PyMem_Malloc(sizeof(int64_t) * (m if m else 1))
        cdef int64_t* hi = <int64_t*>PyMem_Malloc(sizeof(int64_t) * (m if m else 1))
        cdef bint changed
        if lo == NULL or hi == NULL:
            PyMem_Free(lo)
            PyMem_Free(hi)
            raise MemoryError()
        try:
            if incremental:
                for slot in lower:
                    n = self.rels[slot].n
                    self.tiers(slot, 0, 0, n, n)
            for k in range(m):
                slot = members[k]
                n = self.rels[slot].n
                lo[k] = n
                if incremental:
                    self.tiers(slot, 0, 0, n, n)
                else:
                    self.tiers(slot, n, n, n, n)
            for plan in first:
                self.run(plan)
            if incremental:
                for slot in lower:
                    n = self.rels[slot].n
                    self.tiers(slot, n, n, n, n)
            while recursive:
                changed = False
                for k in range(m):
                    hi[k] = self.rels[members[k]].n
                    if hi[k] != lo[k]:
                        changed = True
                if not changed:
                    break
                for k in range(m):
                    self.tiers(members[k], lo[k], lo[k], hi[k], hi[k])
                for plan in rounds:
                    self.run(plan)
                for k in range(m):
                    lo[k] = hi[k]
            for slot in members:
                n = self.rels[slot].n
                if incremental:
                    self.tiers(slot, 0, 0, n, n)   # news for the strata after this one
                else:
                    self.tiers(slot, n, n, n, n)
            if incremental:
                for slot in lower:
                    n = self.rels[slot].n
                    self.tiers(slot, 0, 0, n, n)
        finally:
            PyMem_Free(lo)
            PyMem_Free(hi)

    def set_relation(self, int slot, Relation rel):
        """Point a slot at another relation (a per-request overlay created late)."""
        if slot < 0 or slot >= self.nrels:
            raise IndexError(slot)
        self.relations[slot] = rel
        self.rels[slot] = rel.d

    def run(self, Plan plan):
        """Execute one plan to completion; returns the number of new head rows."""
        cdef int64_t before = self.derived
        cdef int need = plan.nregs if plan.nregs else 1
        cdef int maxar = 1
        cdef int i
        for i in range(self.nrels):
            if self.rels[i].arity > maxar:
                maxar = self.rels[i].arity
        self.regs = <int64_t*>PyMem_Realloc(self.regs, sizeof(int64_t) * need)
        self.rowbuf = <int64_t*>PyMem_Realloc(self.rowbuf, sizeof(int64_t) * maxar * 2)
        self.keybuf = <int64_t*>PyMem_Realloc(self.keybuf, sizeof(int64_t) * (plan.npool + 1))
        if self.regs == NULL or self.rowbuf == NULL or self.keybuf == NULL:
            raise MemoryError()
        memset(self.regs, 0, sizeof(int64_t) * need)
        self.plan = plan
        self.ncoll = 0
        self.step(0)
        self.plan = None
        return self.derived - before

    cdef inline int64_t src(self, int s) noexcept:
        if s >= 0:
            return self.regs[s]
        return self.plan.consts[-s - 1]

    cdef int tick(self) except -1:
        cdef double t
        self.steps += 1
        if self.steps % CHECK_EVERY == 0:
            t = now_seconds()
            if self.deadline > 0 and t > self.deadline:
                self.hooks.deadline(self.plan.label)
            # A long evaluation (a reload compiling on a background thread,
            # a heavy request) must not starve other threads of the GIL:
            # hand it over after every millisecond of work.
            if t - self.last_yield > YIELD_AFTER:
                self.last_yield = give_gil_turn()
        return 0

    cdef int step(self, int pc) except -1:
        cdef Op* op = &self.plan.ops[pc]
        cdef int k = op.kind
        if k == K_JOIN:
            return self.do_join(op, pc)
        if k == K_NOT:
            if not self.exists(op):
                return self.step(pc + 1)
            return 0
        if k == K_CMP:
            if self.compare(op):
                return self.step(pc + 1)
            return 0
        if k == K_ASSIGN:
            return self.do_assign(op, pc)
        if k == K_METHOD:
            if self.method(op):
                return self.step(pc + 1)
            return 0
        if k == K_AGG:
            return self.do_agg(op, pc)
        if k == K_EMIT:
            return self.emit(op)
        if k == K_COLLECT:
            return self.collect(op)
        raise RuntimeError(f"bad op kind {k}")

    # -- joins -------------------------------------------------------------

    cdef inline bint row_ok(self, Op* op, const int64_t* row) noexcept:
        cdef int j
        cdef int* p = self.plan.pool + op.check_off
        for j in range(op.ncheck):
            if row[p[2 * j]] != self.src(p[2 * j + 1]):
                return False
        return True

    cdef inline void bind(self, Op* op, const int64_t* row) noexcept:
        cdef int j
        cdef int* p = self.plan.pool + op.bind_off
        for j in range(op.nbind):
            self.regs[p[2 * j + 1]] = row[p[2 * j]]

    cdef int visit(self, Op* op, int pc, const int64_t* row) except -1:
        # every visited row counts (a scan whose rows all fail their checks
        # is work too): the deadline and the GIL hand-over depend on it
        self.tick()
        # bind first: a check may compare with a variable this same row binds
        self.bind(op, row)
        if self.row_ok(op, row):
            self.step(pc + 1)
        return 0

    cdef int do_join(self, Op* op, int pc) except -1:
        cdef RelData* r = self.rels[op.rel]
        cdef int64_t lo, hi, i, row
        cdef int j, a = r.arity
        cdef bint use_base = op.tier != T_RECENT and r.base != NULL
        cdef int64_t* key
        cdef int* kp
        cdef Index* ix
        cdef RelData* b
        if op.tier == T_ALL:
            lo = 0
            hi = r.all_hi
        elif op.tier == T_STABLE:
            lo = 0
            hi = r.stable_hi
        else:
            lo = r.recent_lo
            hi = r.recent_hi
        if op.index == INDEX_SCAN:
            if use_base:
                b = r.base
                for i in range(b.n):
                    self.visit(op, pc, b.rows + i * a)
            for i in range(lo, hi):
                self.visit(op, pc, r.rows + i * a)
            return 0
        # Each op has its own key slot (at its pool offset): an op is never
        # active twice at once, so nested steps cannot overwrite it.
        key = self.keybuf + op.key_off
        kp = self.plan.pool + op.key_off
        for j in range(op.nkey):
            key[j] = self.src(kp[j])
        if op.index == INDEX_ROW:
            if use_base and rel_find_own(r.base, key) >= 0:
                return self.visit(op, pc, key)
            row = rel_find_own(r, key)
            if row >= lo and row < hi:
                self.visit(op, pc, key)
            return 0
        if use_base:
            b = r.base
            ix = &b.idx[op.index]
            row = idx_find(ix, b.rows, a, key)
            while row >= 0:
                self.visit(op, pc, b.rows + row * a)
                row = b.idx[op.index].next[row]
        ix = &r.idx[op.index]
        row = idx_find(ix, r.rows, a, key)
        while row >= 0 and row < hi:
            if row >= lo:
                self.visit(op, pc, r.rows + row * a)
            row = r.idx[op.index].next[row]
        return 0

    cdef bint exists(self, Op* op) except -1:
        cdef RelData* r = self.rels[op.rel]
        cdef int64_t key[64]
        cdef int j
        cdef int* kp = self.plan.pool + op.key_off
        cdef RelData* b
        if op.nkey > 64:
            raise ValueError("negated atom with more than 64 bound columns")
        for j in range(op.nkey):
            key[j] = self.src(kp[j])
        if op.index == INDEX_ROW:
            if r.base != NULL and rel_find_own(r.base, key) >= 0:
                return True
            return rel_find_own(r, key) >= 0
        if op.index == INDEX_SCAN:  # nothing bound: any row at all
            return r.n > 0 or (r.base != NULL and r.base.n > 0)
        if r.base != NULL:
            b = r.base
            if idx_find(&b.idx[op.index], b.rows, b.arity, key) >= 0:
                return True
        return idx_find(&r.idx[op.index], r.rows, r.arity, key) >= 0

    # -- expressions -------------------------------------------------------

    cdef int eval_expr(self, int off, int length, int64_t* out) except -1:
        """Evaluate postfix code; returns 1 with ``out`` set, 0 if the binding fails."""
        cdef int sp = 0, i
        cdef int code, arg
        cdef int64_t a, b, res
        cdef int* p = self.plan.pool + off
        for i in range(length):
            code = p[2 * i]
            arg = p[2 * i + 1]
            if code == E_PUSH:
                if sp >= STACK:
                    raise RuntimeError("expression too deep")
                self.stack[sp] = self.src(arg)
                sp += 1
                continue
            b = self.stack[sp - 1]
            a = self.stack[sp - 2]
            sp -= 1
            if (a & 1) and (b & 1):
                if self.int_arith(code, a >> 1, b >> 1, &res):
                    self.stack[sp - 1] = res
                    continue
            try:
                self.stack[sp - 1] = self.hooks.arith(code, a, b)
            except EvalFailure as exc:
                self.note(str(exc))
                return 0
        out[0] = self.stack[0]
        return 1

    cdef bint int_arith(self, int code, int64_t a, int64_t b, int64_t* res) noexcept:
        """Integer fast path; False sends the operation to the Python slow path."""
        cdef int64_t r
        if code == E_ADD:
            r = a + b          # inline ints have 62 bits: cannot overflow int64
        elif code == E_SUB:
            r = a - b
        elif code == E_MUL:
            if mul_overflow(a, b, &r):
                return False
        elif code == E_DIV:
            if b == 0:
                return False
            r = a / b          # C semantics: truncates toward zero
        elif code == E_MOD:
            if b == 0:
                return False
            r = a % b
        else:
            return False
        if r < INLINE_MIN or r > INLINE_MAX:
            return False
        res[0] = r * 2 + 1
        return True

    cdef bint compare(self, Op* op) except -1:
        cdef int64_t a, b
        if not self.eval_expr(op.lhs_off, op.lhs_len, &a):
            return False
        if not self.eval_expr(op.rhs_off, op.rhs_len, &b):
            return False
        if (a & 1) and (b & 1):
            a >>= 1
            b >>= 1
            if op.cmp == C_EQ:
                return a == b
            if op.cmp == C_NE:
                return a != b
            if op.cmp == C_LT:
                return a < b
            if op.cmp == C_LE:
                return a <= b
            if op.cmp == C_GT:
                return a > b
            return a >= b
        if a == b:
            if op.cmp == C_EQ:
                return True
            if op.cmp == C_NE:
                return False
        return self.hooks.compare(op.cmp, a, b)

    cdef int do_assign(self, Op* op, int pc) except -1:
        cdef int64_t v
        if not self.eval_expr(op.lhs_off, op.lhs_len, &v):
            return 0
        self.regs[op.reg] = v
        return self.step(pc + 1)

    cdef bint method(self, Op* op) except -1:
        cdef int64_t v = self.regs[op.reg]
        spec = self.plan.methods[op.aux]
        key = (spec, v)      # memo shared by all plans: key by (method, arg), not position
        cached = self.method_memo.get(key)
        if cached is None:
            name, arg = spec
            cached = bool(self.hooks.method(name, arg, v))
            self.method_memo[key] = cached
            # A string method is linear in its string, which may be long:
            # look at the clock after every one that was not memoized.
            if self.deadline > 0 and now_seconds() > self.deadline:
                self.hooks.deadline(self.plan.label)
        return cached

    # -- aggregates --------------------------------------------------------

    cdef int collect(self, Op* op) except -1:
        if self.ncoll == self.collcap:
            self.collcap *= 2
            self.coll = <int64_t*>big_realloc(self.coll, sizeof(int64_t) * self.collcap)
            if self.coll == NULL:
                raise MemoryError()
        self.coll[self.ncoll] = self.regs[op.aux] if op.aux >= 0 else 1
        self.ncoll += 1
        self.collected += 1
        if self.derived + self.collected > self.max_tuples:
            self.hooks.limit(LIMIT_AGGREGATE, "", self.plan.label)
        self.tick()
        return 0

    cdef int do_agg(self, Op* op, int pc) except -1:
        cdef int64_t start = self.ncoll, n, i, s, v, res
        cdef bint fast
        self.step(op.sub_start)
        n = self.ncoll - start
        if op.cmp == A_COUNT:
            self.ncoll = start
            self.regs[op.reg] = n * 2 + 1
            return self.step(pc + 1)
        if n == 0:
            self.ncoll = start
            return 0
        fast = op.cmp == A_SUM
        s = 0
        if fast:
            for i in range(start, self.ncoll):
                v = self.coll[i]
                if not (v & 1) or add_overflow(s, v >> 1, &s):
                    fast = False
                    break
            if fast and (s < INLINE_MIN or s > INLINE_MAX):
                fast = False
        if fast:
            res = s * 2 + 1
        else:
            ids = [self.coll[i] for i in range(start, self.ncoll)]
            try:
                res = self.hooks.aggregate(op.cmp, ids)
            except EvalFailure as exc:
                self.ncoll = start
                self.note(str(exc))
                return 0
        self.ncoll = start
        self.regs[op.reg] = res
        return self.step(pc + 1)

    # -- heads -------------------------------------------------------------

    cdef int emit(self, Op* op) except -1:
        cdef RelData* r = self.rels[op.rel]
        cdef int j
        cdef int* kp = self.plan.pool + op.key_off
        for j in range(op.nkey):
            self.rowbuf[j] = self.src(kp[j])
        if rel_insert(r, self.rowbuf):
            self.derived += 1
            self.nbytes += 8 * (r.arity if r.arity else 1)
            if self.derived + self.collected > self.max_tuples:
                self.hooks.limit(LIMIT_TUPLES, (<Relation>self.relations[op.rel]).name, self.plan.label)
            if self.max_bytes > 0 and self.nbytes > self.max_bytes:
                self.hooks.limit(LIMIT_BYTES, (<Relation>self.relations[op.rel]).name, self.plan.label)
        return 0

    cdef void note(self, str message):
        if len(self.diagnostics) < 100:
            self.diagnostics.append(f"{self.plan.label}: {message}")
