# The compiled core: fused joins of fixed shapes, a scan then one or two probes.
#
# Textually included by _core.pyx (`include`) after _core_fused.pxi, whose
# general loop (``fused_joins``) these specialise: ``Executor.run`` picks
# one for a plan of its shape (``Plan.nscan_probe``, set once from
# ``scan_probe_levels`` when the plan is built). With the shape
# fixed, every cursor, key and head source is a local the C compiler keeps
# in a register, instead of an entry of a per-level array read on every
# step. They must give the same rows in the same order as ``fused_joins``
# (tests/test_core_fused_joins.py holds all three to the same models).


cdef int scan_probe_levels(Plan plan) noexcept:
    """2 or 3 if ``plan`` is a scan then one or two probes (``fused_scan_probe``,
    ``fused_scan_probe_probe``), else 0 (``fused_joins`` runs it)."""
    cdef int L, n = plan.nfused
    if n < 2 or n > 3 or plan.fused_kind[0] != FUSE_SCAN or plan.ops[n].nkey > 64:
        return 0
    for L in range(1, n):
        if plan.fused_kind[L] != FUSE_INDEX:
            return 0
    return n


cdef int clock_check(Executor ex, int64_t steps) except -1:
    """``ex.tick()``'s rare half, for a loop that counts steps in a local
    (``steps += 1``, then this every CHECK_EVERY steps)."""
    ex.steps = steps
    return ex.look_at_clock()


cdef int fused_scan_probe(Executor ex, Plan plan) except -1:
    """``fused_joins`` for two levels: scan a relation, probe another through a one-column index.

    The body of most recursive rules (``path(X, Z) :- path(X, Y),
    edge(Y, Z)``, ``anc(X, A) :- anc(X, B), within(B, A)``) and of many
    others. The general fused loop keeps a cursor per level in arrays and
    decides what each level is on every step; with the shape fixed, the
    cursors, the key, the step count and the head's sources stay in
    registers. Same rows, same order and the same steps as ``fused_joins``.
    """
    cdef int ah = plan.ops[2].nkey, k
    cdef RelData* r0 = ex.rels[plan.ops[0].rel]
    cdef RelData* r1 = ex.rels[plan.ops[1].rel]
    cdef Index* x = &r1.idx[plan.ops[1].index]
    cdef const int* src = plan.fused_src + plan.fused_off[1]
    cdef int kc = src[1], a0 = r0.arity, a1 = r1.arity
    cdef bint const_key = src[0] < 0
    cdef int64_t lo0, hi0, lo1, hi1, j, g, key, first = -1, last_key = 0
    cdef int64_t steps = ex.steps
    cdef int nbuf
    cdef bint have_first = False
    cdef const int64_t* row0
    cdef const int64_t* row1
    cdef int hl[64]
    cdef int hc[64]
    cdef int64_t* out
    cdef int head_rel = plan.ops[2].rel
    for k in range(ah):
        hl[k] = plan.fused_head[2 * k]
        hc[k] = plan.fused_head[2 * k + 1]
    tier_range(r0, plan.ops[0].tier, &lo0, &hi0)
    tier_range(r1, plan.ops[1].tier, &lo1, &hi1)
    if ex.brel != head_rel:
        ex.flush()
        ex.brel = head_rel
    nbuf = ex.nbuf
    out = ex.ebuf + <int64_t>nbuf * ah
    for j in range(lo0, hi0):
        row0 = r0.rows + j * a0
        steps += 1                      # ``ex.tick()``, with the count kept here
        if (steps & (CHECK_EVERY - 1)) == 0:
            clock_check(ex, steps)
        key = plan.consts[kc] if const_key else row0[kc]
        if not have_first or key != last_key:
            # consecutive rows often share their key (a relation sorted by
            # its first column): probe once per run of them
            first = fused_first(r1, x, key)
            last_key = key
            have_first = True
        g = first
        while g >= 0 and g < lo1:
            g = x.next[g]
        while g >= 0 and g < hi1:
            steps += 1
            if (steps & (CHECK_EVERY - 1)) == 0:
                clock_check(ex, steps)
            row1 = r1.rows + g * a1
            if ah == 2:                 # the commonest head, unrolled
                out[0] = (row0 if hl[0] == 0 else row1)[hc[0]]
                out[1] = (row0 if hl[1] == 0 else row1)[hc[1]]
            else:
                for k in range(ah):
                    out[k] = (row0 if hl[k] == 0 else row1)[hc[k]]
            out += ah
            nbuf += 1
            g = x.next[g]
            if g >= 0:
                prefetch(r1.rows + g * a1)
            if nbuf == EMIT_BATCH:
                # may move the arrays of either relation (the head is often
                # one): the scanned row is found again from its number
                ex.nbuf = nbuf
                ex.flush()
                nbuf = 0
                out = ex.ebuf
                row0 = r0.rows + j * a0
    ex.nbuf = nbuf
    ex.steps = steps
    return 0


cdef int fused_scan_probe_probe(Executor ex, Plan plan) except -1:
    """``fused_joins`` for three levels: a scan, then two probes through one-column indexes.

    ``sg(X, Y) :- par(X, A), sg(A, B), par(Y, B)`` from the ``sg``
    delta, and other three-atom rules, in the manner of
    ``fused_scan_probe``: the second probe's key comes from either row
    above, and when the scanned row gives it, it is probed once per
    scanned row, not once per row of the first probe. Same rows, same
    order and the same steps as ``fused_joins``.
    """
    cdef int ah = plan.ops[3].nkey, k
    cdef RelData* r0 = ex.rels[plan.ops[0].rel]
    cdef RelData* r1 = ex.rels[plan.ops[1].rel]
    cdef RelData* r2 = ex.rels[plan.ops[2].rel]
    cdef Index* x1 = &r1.idx[plan.ops[1].index]
    cdef Index* x2 = &r2.idx[plan.ops[2].index]
    cdef const int* src1 = plan.fused_src + plan.fused_off[1]
    cdef const int* src2 = plan.fused_src + plan.fused_off[2]
    cdef int a0 = r0.arity, a1 = r1.arity, a2 = r2.arity
    cdef int64_t lo0, hi0, lo1, hi1, lo2, hi2, j, g1, g2, key
    cdef int64_t first1 = -1, key1 = 0, first2 = -1, key2 = 0
    cdef bint have1 = False, have2 = False
    cdef int64_t steps = ex.steps
    cdef int nbuf
    cdef const int64_t* rows[3]          # the row each level is on
    cdef int hl[64]
    cdef int hc[64]
    cdef int64_t* out
    cdef int head_rel = plan.ops[3].rel
    for k in range(ah):
        hl[k] = plan.fused_head[2 * k]
        hc[k] = plan.fused_head[2 * k + 1]
    tier_range(r0, plan.ops[0].tier, &lo0, &hi0)
    tier_range(r1, plan.ops[1].tier, &lo1, &hi1)
    tier_range(r2, plan.ops[2].tier, &lo2, &hi2)
    if ex.brel != head_rel:
        ex.flush()
        ex.brel = head_rel
    nbuf = ex.nbuf
    out = ex.ebuf + <int64_t>nbuf * ah
    for j in range(lo0, hi0):
        rows[0] = r0.rows + j * a0
        steps += 1
        if (steps & (CHECK_EVERY - 1)) == 0:
            clock_check(ex, steps)
        key = plan.consts[src1[1]] if src1[0] < 0 else rows[0][src1[1]]
        if not have1 or key != key1:
            first1 = fused_first(r1, x1, key)
            key1 = key
            have1 = True
        g1 = first1
        while g1 >= 0 and g1 < lo1:
            g1 = x1.next[g1]
        while g1 >= 0 and g1 < hi1:
            steps += 1
            if (steps & (CHECK_EVERY - 1)) == 0:
                clock_check(ex, steps)
            rows[1] = r1.rows + g1 * a1
            key = plan.consts[src2[1]] if src2[0] < 0 else rows[src2[0]][src2[1]]
            if not have2 or key != key2:
                first2 = fused_first(r2, x2, key)
                key2 = key
                have2 = True
            g2 = first2
            while g2 >= 0 and g2 < lo2:
                g2 = x2.next[g2]
            while g2 >= 0 and g2 < hi2:
                steps += 1
                if (steps & (CHECK_EVERY - 1)) == 0:
                    clock_check(ex, steps)
                rows[2] = r2.rows + g2 * a2
                if ah == 2:             # the commonest head, unrolled
                    out[0] = rows[hl[0]][hc[0]]
                    out[1] = rows[hl[1]][hc[1]]
                else:
                    for k in range(ah):
                        out[k] = rows[hl[k]][hc[k]]
                out += ah
                nbuf += 1
                g2 = x2.next[g2]
                if g2 >= 0:
                    prefetch(r2.rows + g2 * a2)
                if nbuf == EMIT_BATCH:
                    # may move any of the three relations' arrays: the
                    # rows above are found again from their numbers
                    ex.nbuf = nbuf
                    ex.flush()
                    nbuf = 0
                    out = ex.ebuf
                    rows[0] = r0.rows + j * a0
                    rows[1] = r1.rows + g1 * a1
            g1 = x1.next[g1]
            if g1 >= 0:
                prefetch(r1.rows + g1 * a1)
    ex.nbuf = nbuf
    ex.steps = steps
    return 0
