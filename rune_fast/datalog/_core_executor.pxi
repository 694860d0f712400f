# The compiled core, part 2 of 2: the plan executor.
#
# Textually included by _core.pyx (`include`) after the relations and the
# Plan class it runs: nested loops over a register file of ids, semi-naive
# tiers, aggregates, limits and the deadline. Kept apart from the storage
# layer (_core_relations.pxi) because it is the evaluation semantics the
# pure twin (_pycore.py) mirrors operation by operation. Design notes: _core.pyx.


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
    cdef int64_t* keybuf
    # Emitted head rows wait here and are inserted in batches (``flush``):
    # ``nbuf`` rows of relation ``brel``, each as wide as that relation.
    # Sized in run() for the widest relation, so any head fits.
    cdef int64_t* ebuf
    cdef uint64_t* ehash
    cdef int nbuf
    cdef int brel
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
        self.keybuf = NULL
        self.ebuf = NULL
        self.ehash = <uint64_t*>PyMem_Malloc(sizeof(uint64_t) * EMIT_BATCH)
        if self.ehash == NULL:
            raise MemoryError()
        self.nbuf = 0
        self.brel = -1

    def __dealloc__(self):
        PyMem_Free(self.rels)
        PyMem_Free(self.regs)
        PyMem_Free(self.stack)
        big_free(self.coll)
        PyMem_Free(self.keybuf)
        PyMem_Free(self.ebuf)
        PyMem_Free(self.ehash)

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
            self.defer_indexes(members, first, rounds)
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
            self.complete_indexes(members)

    cdef int defer_indexes(self, list members, list first, list rounds) except -1:
        """Stop maintaining, row by row, the members' indexes this stratum never probes.

        Such an index serves only later strata (or requests): it is built in
        one pass when the stratum ends (``complete_indexes``), with its cache
        misses overlapped, instead of costing every derived row a random
        probe while the joins run.
        """
        cdef set probed = set()
        cdef Plan plan
        cdef Op* op
        cdef int i, k, slot
        cdef RelData* r
        for plan in first + rounds:
            for i in range(plan.nops):
                op = &plan.ops[i]
                if (op.kind == K_JOIN or op.kind == K_NOT) and op.index >= 0:
                    probed.add((op.rel, op.index))
        for slot in members:
            r = self.rels[slot]
            for k in range(r.nidx):
                if (slot, k) not in probed and not r.idx[k].deferred:
                    r.idx[k].deferred = 1
                    r.nlive -= 1
        return 0

    cdef int complete_indexes(self, list members) except -1:
        """Bring the deferred indexes of ``members`` up to date; every index is maintained again."""
        cdef int k, slot
        cdef RelData* r
        for slot in members:
            r = self.rels[slot]
            for k in range(r.nidx):
                if r.idx[k].deferred:
                    r.idx[k].deferred = 0
                    r.nlive += 1
                    idx_catch_up(&r.idx[k], r)
        return 0

    def set_relation(self, int slot, Relation rel not None):
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
        self.keybuf = <int64_t*>PyMem_Realloc(self.keybuf, sizeof(int64_t) * (plan.npool + 1))
        self.ebuf = <int64_t*>PyMem_Realloc(self.ebuf, sizeof(int64_t) * maxar * EMIT_BATCH)
        if self.regs == NULL or self.keybuf == NULL or self.ebuf == NULL:
            raise MemoryError()
        memset(self.regs, 0, sizeof(int64_t) * need)
        self.plan = plan
        self.ncoll = 0
        self.nbuf = 0     # rows left over by a run that raised are dropped with it
        self.brel = -1
        if plan.nfused and no_base_reads(self, plan):
            if plan.nscan_probe == 2:
                fused_scan_probe(self, plan)
            elif plan.nscan_probe == 3:
                fused_scan_probe_probe(self, plan)
            else:
                fused_joins(self, plan)
        else:
            self.step(0)
        self.flush()
        self.plan = None
        return self.derived - before

    cdef inline int64_t src(self, int s) noexcept:
        if s >= 0:
            return self.regs[s]
        return self.plan.consts[-s - 1]

    cdef inline int tick(self) except -1:
        # the common case inline (a counter and a mask); the clock only every CHECK_EVERY steps
        self.steps += 1
        if (self.steps & (CHECK_EVERY - 1)) == 0:
            return self.look_at_clock()
        return 0

    cdef int look_at_clock(self) except -1:
        cdef double t = now_seconds()
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
        cdef int j, n = op.nbind
        cdef const int* p = self.plan.pool + op.bind_off
        cdef int64_t* regs = self.regs   # (a local: the stores cannot alias it)
        for j in range(n):
            regs[p[2 * j + 1]] = row[p[2 * j]]

    cdef inline int visit(self, Op* op, int pc, const int64_t* row, Op* head) except -1:
        """One matching row: bind, check, go on with the next op.

        ``head`` is the next op when it is the rule's EMIT (the last join of
        a plan, the common case): its row is queued right here, without the
        dispatch of ``step``.
        """
        # every visited row counts (a scan whose rows all fail their checks
        # is work too): the deadline and the GIL hand-over depend on it
        self.tick()
        # bind first: a check may compare with a variable this same row binds
        self.bind(op, row)
        if op.ncheck and not self.row_ok(op, row):
            return 0
        if head != NULL:
            return self.emit(head)
        return self.step(pc + 1)

    cdef int do_join(self, Op* op, int pc) except -1:
        cdef RelData* r = self.rels[op.rel]
        cdef int64_t lo, hi, i, row
        cdef int j, a = r.arity
        cdef bint use_base = op.tier != T_RECENT and r.base != NULL
        cdef int64_t* key
        cdef int* kp
        cdef const int32_t* nxt
        cdef const int64_t* rows
        cdef RelData* b
        cdef Op* head = &self.plan.ops[pc + 1] if op.emit_next else NULL
        tier_range(r, op.tier, &lo, &hi)
        if op.index == INDEX_SCAN:
            if use_base:
                b = r.base
                for i in range(b.n):
                    self.visit(op, pc, b.rows + i * a, head)
            for i in range(lo, hi):
                if op.la_n and i + LOOK_AHEAD_ROWS < hi:
                    self.look_ahead(op, r.rows + (i + LOOK_AHEAD_ROWS) * a)
                self.visit(op, pc, r.rows + i * a, head)
            return 0
        # Each op has its own key slot (at its pool offset): an op is never
        # active twice at once, so nested steps cannot overwrite it.
        key = self.keybuf + op.key_off
        kp = self.plan.pool + op.key_off
        for j in range(op.nkey):
            key[j] = self.src(kp[j])
        if op.index == INDEX_ROW:
            if use_base and rel_find_own(r.base, key) >= 0:
                return self.visit(op, pc, key, head)
            row = rel_find_own(r, key)
            if row >= lo and row < hi:
                self.visit(op, pc, key, head)
            return 0
        if use_base:
            b = r.base
            rows = b.rows
            nxt = b.idx[op.index].next
            row = idx_find(&b.idx[op.index], rows, a, key)
            while row >= 0:
                if nxt[row] >= 0:
                    prefetch(rows + nxt[row] * a)
                self.visit(op, pc, rows + row * a, head)
                row = nxt[row]
        # The chain is in increasing row order: skip to ``lo``, stop at ``hi``.
        # Rows are only appended behind ``hi`` by ``flush``, which moves the
        # arrays: re-read them after every visit that may have flushed.
        row = idx_find(&r.idx[op.index], r.rows, a, key)
        while row >= 0 and row < hi:
            nxt = r.idx[op.index].next
            if nxt[row] >= 0:
                # chains jump around the rows: start loading the next one now
                prefetch(r.rows + nxt[row] * a)
                if op.la_n:
                    self.look_ahead(op, r.rows + nxt[row] * a)
            if row >= lo:
                self.visit(op, pc, r.rows + row * a, head)
            row = r.idx[op.index].next[row]
        return 0

    cdef inline void look_ahead(self, Op* op, const int64_t* row) noexcept:
        """Prefetch the dedup slot the whole-row probe after ``op`` will read for ``row``.

        That probe (``resource(R)`` after ``anc(R, F)``, ``not reach(S, X)``
        after ``node(X)``) misses the cache once per row of this join;
        starting the load a few rows early overlaps the misses. Only a hint:
        the probe itself is unchanged.
        """
        cdef int64_t key[LOOK_AHEAD_KEY]
        cdef int j
        cdef const int* p = self.plan.la + op.la_off
        cdef RelData* t = self.rels[(op + 1).rel]
        cdef uint64_t h
        for j in range(op.la_n):
            key[j] = row[p[2 * j + 1]] if p[2 * j] == 0 else self.src(p[2 * j + 1])
        h = hash_vals(key, op.la_n)
        prefetch(&t.fslots[h >> t.fshift])

    cdef bint exists(self, Op* op) except -1:
        cdef int64_t key[64]
        cdef int j
        cdef int* kp = self.plan.pool + op.key_off
        if op.nkey > 64:
            raise ValueError("negated atom with more than 64 bound columns")
        for j in range(op.nkey):
            key[j] = self.src(kp[j])
        return self.exists_key(op, key)

    cdef bint exists_key(self, Op* op, const int64_t* key) except -1:
        """Whether the negated atom ``op`` has a row matching ``key`` (its bound columns)."""
        cdef RelData* r = self.rels[op.rel]
        cdef RelData* b
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
        return self.compare_ids(op.cmp, a, b)

    cdef inline bint compare_ids(self, int cmp, int64_t a, int64_t b) except -1:
        """``a cmp b`` for two ids: inline integers and equal ids here, the rest in Python."""
        if (a & 1) and (b & 1):
            a >>= 1
            b >>= 1
            if cmp == C_EQ:
                return a == b
            if cmp == C_NE:
                return a != b
            if cmp == C_LT:
                return a < b
            if cmp == C_LE:
                return a <= b
            if cmp == C_GT:
                return a > b
            return a >= b
        if a == b:
            if cmp == C_EQ:
                return True
            if cmp == C_NE:
                return False
        return self.hooks.compare(cmp, a, b)

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

    cdef inline int emit(self, Op* op) except -1:
        """Queue the head row; ``flush`` inserts it.

        Delaying the insertion changes nothing a plan can see: rows derived
        by a running round lie beyond ``all_hi`` and are read only by the
        next round, which starts after the last flush.
        """
        cdef int a = op.nkey      # the head's arity (plan.validate)
        cdef int j
        cdef int* kp = self.plan.pool + op.key_off
        cdef int64_t* row
        cdef int64_t* regs = self.regs
        if self.brel != op.rel:
            if self.nbuf:
                self.flush()
            self.brel = op.rel
        row = self.ebuf + <int64_t>self.nbuf * a
        if op.regs_only:
            for j in range(a):
                row[j] = regs[kp[j]]
        else:
            for j in range(a):
                row[j] = self.src(kp[j])
        self.nbuf += 1
        if self.nbuf == EMIT_BATCH:
            self.flush()
        return 0

    cdef int flush(self) except -1:
        """Insert the queued head rows (``rel_insert_batch``), counting the new ones against the limits."""
        cdef int n = self.nbuf, a
        cdef int64_t new
        if n == 0:
            return 0
        self.nbuf = 0
        a = self.rels[self.brel].arity
        new = rel_insert_batch(self.rels[self.brel], self.ebuf, n, self.ehash)
        if new:
            self.derived += new
            self.nbytes += 8 * new * (a if a else 1)
            if self.derived + self.collected > self.max_tuples:
                self.hooks.limit(LIMIT_TUPLES, (<Relation>self.relations[self.brel]).name, self.plan.label)
            if self.max_bytes > 0 and self.nbytes > self.max_bytes:
                self.hooks.limit(LIMIT_BYTES, (<Relation>self.relations[self.brel]).name, self.plan.label)
        return 0

    cdef void note(self, str message):
        if len(self.diagnostics) < 100:
            self.diagnostics.append(f"{self.plan.label}: {message}")
