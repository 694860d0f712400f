# The compiled core: fused joins, the executor's loop for the commonest plans.
#
# Textually included by _core.pyx (`include`) after the executor, whose
# state these functions drive (``Executor.run`` picks them for a plan that
# ``Plan.find_fused_joins`` recognised). Kept apart because it is a second,
# faster route to the same results as the general ``step``/``do_join``
# recursion: tests/test_core_fused_joins.py holds the two to the same models.


cdef bint no_base_reads(Executor ex, Plan plan) noexcept:
    """Whether no join of ``plan`` reads an overlay's base (``fused_joins`` reads own rows only)."""
    cdef int i
    cdef Op* op
    for i in range(plan.nops):
        op = &plan.ops[i]
        if op.kind == K_JOIN and op.tier != T_RECENT and ex.rels[op.rel].base != NULL:
            return False
    return True


cdef int fused_joins(Executor ex, Plan plan) except -1:
    """The nested loops of ``do_join``, ``exists`` and ``emit``, fused for a plan ``Plan.find_fused_joins`` recognised.

    The same rows in the same order as the general path, with one
    cursor per level instead of a call per row and level: key values
    and head values are read straight from the joined rows (no
    registers), and the one-column probe is inlined. A membership test,
    a negation or a comparison is a level that lets the rows above it
    through at most once. A flush of head rows may move the arrays of any relation
    read here (the head is often one): the row pointers are then taken
    again from the row numbers.
    """
    cdef int n = plan.nfused, last = plan.nfused - 1, L, k, ah = plan.ops[n].nkey, kind
    cdef RelData* rels[MAX_FUSED]
    cdef Index* ix[MAX_FUSED]        # the index a FUSE_INDEX level probes
    cdef int64_t lo[MAX_FUSED]
    cdef int64_t hi[MAX_FUSED]
    cdef int64_t cur[MAX_FUSED]      # the row each level is on
    cdef int64_t nxt[MAX_FUSED]      # the next candidate row of each level (-1: none)
    cdef const int64_t* row[MAX_FUSED]   # where cur[L] is stored (until a flush)
    # per FUSE_INDEX level: the last key probed and the first row it found
    # (-2: none yet). A key that only an outer level binds is the same for
    # every row of the levels in between (``par(Y, B)`` under ``par(X, A)``
    # from an ``sg(A, B)`` row): its probe is then not repeated. The first
    # row of a key's chain never changes; rows added since lie past ``hi``.
    cdef int64_t memo_key[MAX_FUSED]
    cdef int64_t memo_first[MAX_FUSED]
    cdef int hl[64]                  # head value k: column hc[k] of level hl[k]'s row
    cdef int hc[64]
    cdef const int* kinds = plan.fused_kind
    cdef int* src
    cdef int head_rel = plan.ops[n].rel
    cdef int64_t j, key
    cdef const int32_t* next_in_chain
    cdef int64_t* out
    if ah > 64:
        return ex.step(0)
    for k in range(ah):
        hl[k] = plan.fused_head[2 * k]
        hc[k] = plan.fused_head[2 * k + 1]
    for L in range(n):
        rels[L] = ex.rels[plan.ops[L].rel]
        ix[L] = &rels[L].idx[plan.ops[L].index] if kinds[L] == FUSE_INDEX else NULL
        tier_range(rels[L], plan.ops[L].tier, &lo[L], &hi[L])
        memo_first[L] = -2
    if ex.brel != head_rel:
        ex.flush()
        ex.brel = head_rel
    L = 0
    nxt[0] = lo[0]
    while True:
        # the next row of level L, or back up a level
        j = nxt[L]
        kind = kinds[L]
        if kind == FUSE_INDEX:
            next_in_chain = ix[L].next
            while j >= 0 and j < lo[L]:
                j = next_in_chain[j]
            if j < 0 or j >= hi[L]:
                L -= 1
                continue
            nxt[L] = next_in_chain[j]
            if nxt[L] >= 0:
                # chains jump around the rows: start loading the next one now
                prefetch(rels[L].rows + nxt[L] * rels[L].arity)
        elif kind == FUSE_SCAN:
            if j >= hi[L]:
                if L == 0:
                    break
                L -= 1
                continue
            nxt[L] = j + 1
            if (L < last and (kinds[L + 1] == FUSE_ROW or kinds[L + 1] == FUSE_NOT)
                    and j + LOOK_AHEAD_ROWS < hi[L]):
                fused_look_ahead(ex, plan, L, rels[L].rows + (j + LOOK_AHEAD_ROWS) * rels[L].arity, row)
        else:                        # a test: passed once, or not at all
            if j < 0:
                L -= 1
                continue
            nxt[L] = -1
        if kind <= FUSE_INDEX:
            cur[L] = j
            row[L] = rels[L].rows + j * rels[L].arity
            ex.tick()
        if L == last:
            out = ex.ebuf + <int64_t>ex.nbuf * ah
            for k in range(ah):
                out[k] = row[hl[k]][hc[k]]
            ex.nbuf += 1
            if ex.nbuf == EMIT_BATCH:
                ex.flush()
                for k in range(L + 1):
                    if kinds[k] <= FUSE_INDEX:
                        row[k] = rels[k].rows + cur[k] * rels[k].arity
            continue
        # go down: the next level's first candidate
        L += 1
        src = plan.fused_src + plan.fused_off[L]
        if kinds[L] == FUSE_SCAN:
            nxt[L] = lo[L]
        elif kinds[L] == FUSE_INDEX:
            key = row[src[0]][src[1]] if src[0] >= 0 else plan.consts[src[1]]
            if memo_first[L] == -2 or memo_key[L] != key:
                memo_key[L] = key
                memo_first[L] = fused_first(rels[L], ix[L], key)
            nxt[L] = memo_first[L]
        elif kinds[L] == FUSE_CMP:
            nxt[L] = 0 if ex.compare_ids(plan.ops[L].cmp, fused_value(plan, src, row),
                                         fused_value(plan, src + 2, row)) else -1
        else:
            nxt[L] = 0 if fused_test(ex, plan, &plan.ops[L], kinds[L], src, row, lo[L], hi[L]) else -1
    return 0


cdef inline int64_t fused_value(Plan plan, const int* src, const int64_t** row) noexcept:
    """The value a (level, column) pair names: a column of that level's row, or a constant (level -1)."""
    return plan.consts[src[1]] if src[0] < 0 else row[src[0]][src[1]]


cdef inline int64_t fused_first(const RelData* r, const Index* x, int64_t key) noexcept:
    """``idx_find`` specialised to a one-column key: the innermost step of
    every fused probe. Calling the general ``idx_find`` (any key width)
    here costs 3-6 % more instructions on the benchmark workloads."""
    cdef uint64_t h = hash_vals(&key, 1)
    cdef int64_t slot = h & x.mask, g
    cdef int32_t s
    while True:
        s = x.slots[slot]
        if s == 0:
            return -1
        g = s - 1
        if x.ghash[g] == h and r.rows[<int64_t>x.ghead[g] * r.arity + x.cols[0]] == key:
            return x.ghead[g]
        slot = (slot + 1) & x.mask


cdef inline void fused_look_ahead(Executor ex, Plan plan, int L, const int64_t* ahead, const int64_t** row) noexcept:
    """Prefetch the slot the whole-row test after scan level ``L`` will read for the row ``ahead``.

    That test (``not reach(S, X)`` after ``node(X)``) misses the cache
    once per scanned row; starting the load a few rows early overlaps
    the misses. Only a hint: the test itself is unchanged.
    """
    cdef Op* op = &plan.ops[L + 1]
    cdef const int* src = plan.fused_src + plan.fused_off[L + 1]
    cdef int64_t key[LOOK_AHEAD_KEY]
    cdef int j
    cdef RelData* t = ex.rels[op.rel]
    if op.index != INDEX_ROW or op.nkey > LOOK_AHEAD_KEY:
        return
    for j in range(op.nkey):
        if src[2 * j] < 0:
            key[j] = plan.consts[src[2 * j + 1]]
        elif src[2 * j] == L:
            key[j] = ahead[src[2 * j + 1]]
        else:
            key[j] = row[src[2 * j]][src[2 * j + 1]]
    prefetch(&t.fslots[hash_vals(key, op.nkey) >> t.fshift])


cdef bint fused_test(Executor ex, Plan plan, Op* op, int kind, const int* src, const int64_t** row,
                     int64_t lo, int64_t hi) except -1:
    """A membership test (FUSE_ROW) or a negation (FUSE_NOT) of ``fused_joins``, its key read from the rows."""
    cdef int64_t* key = ex.keybuf + op.key_off
    cdef int j
    cdef int64_t found
    for j in range(op.nkey):
        key[j] = plan.consts[src[2 * j + 1]] if src[2 * j] < 0 else row[src[2 * j]][src[2 * j + 1]]
    if kind == FUSE_NOT:
        return not ex.exists_key(op, key)
    found = rel_find_own(ex.rels[op.rel], key)
    return lo <= found < hi
