# The compiled core: hashing, hash indexes and relations.
#
# Textually included by _core.pyx (`include`): one extension module, so the
# executor reaches RelData and Index as C structs with no call overhead. Kept
# apart because this is the storage layer (append-only rows, the dedup set,
# index chains in row order, base overlays) and the executor only reads it
# through idx_find/rel_find_own/rel_insert. Design notes: _core.pyx.


# --------------------------------------------------------------------------
# Hashing


cdef inline uint64_t mix(uint64_t h, uint64_t v) noexcept nogil:
    v = v * <uint64_t>0x9E3779B97F4A7C15ULL
    v ^= v >> 32
    h = (h ^ v) * <uint64_t>0xBF58476D1CE4E5B9ULL
    h ^= h >> 29
    return h


# (one and two columns, the common widths, unrolled: same values as the loops)

cdef inline uint64_t hash_cols(const int64_t* row, const int* cols, int ncols) noexcept nogil:
    cdef uint64_t h = 0x2545F4914F6CDD1DULL
    cdef int i
    if ncols == 1:
        return mix(h, <uint64_t>row[cols[0]])
    if ncols == 2:
        return mix(mix(h, <uint64_t>row[cols[0]]), <uint64_t>row[cols[1]])
    for i in range(ncols):
        h = mix(h, <uint64_t>row[cols[i]])
    return h


cdef inline uint64_t hash_vals(const int64_t* vals, int n) noexcept nogil:
    cdef uint64_t h = 0x2545F4914F6CDD1DULL
    cdef int i
    if n == 1:
        return mix(h, <uint64_t>vals[0])
    if n == 2:
        return mix(mix(h, <uint64_t>vals[0]), <uint64_t>vals[1])
    for i in range(n):
        h = mix(h, <uint64_t>vals[i])
    return h


cdef inline uint64_t hash_row(const int64_t* row, int arity) noexcept nogil:
    return hash_vals(row, arity)


cdef extern from *:
    # a hint to start loading a cache line (no effect on the program's meaning)
    void prefetch "__builtin_prefetch"(const void* p) noexcept nogil


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
    big_free(ix.cols)
    big_free(ix.slots)
    big_free(ix.ghead)
    big_free(ix.gtail)
    big_free(ix.ghash)
    big_free(ix.next)


cdef void rel_free(RelData* d) noexcept nogil:
    cdef int k
    for k in range(d.nidx):
        idx_free(&d.idx[k])
    big_free(d.idx)
    big_free(d.rows)
    big_free(d.fslots)
    big_free(d)


cdef inline bint key_equal(const int64_t* row, const int* cols, int ncols, const int64_t* vals) noexcept nogil:
    cdef int i
    if ncols == 1:
        return row[cols[0]] == vals[0]
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
    cdef int32_t* ns = <int32_t*>big_calloc(newcap, sizeof(int32_t))
    cdef int64_t g, i, m = newcap - 1
    if ns == NULL:
        raise MemoryError()
    # The index belongs to a relation being built by this thread (shared
    # relations are never written): rehash without holding the GIL.
    with nogil:
        for g in range(ix.ngroups):
            i = ix.ghash[g] & m
            while ns[i]:
                i = (i + 1) & m
            ns[i] = <int32_t>(g + 1)
    big_free(ix.slots)
    ix.slots = ns
    ix.mask = m
    return 0


cdef inline int idx_add(Index* ix, const int64_t* rows, int arity, int64_t r) except -1:
    """Append row ``r`` (already stored in ``rows``) to its key's chain."""
    return idx_add_h(ix, rows, arity, r, hash_cols(rows + r * arity, ix.cols, ix.ncols))


cdef int idx_add_h(Index* ix, const int64_t* rows, int arity, int64_t r, uint64_t h) except -1:
    """``idx_add`` with the key's hash already computed (``hash_cols``)."""
    cdef const int64_t* row = rows + r * arity
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
    ix.nbuilt = r + 1
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


DEF CATCH_UP_BATCH = 16


cdef int idx_catch_up(Index* ix, const RelData* r) except -1:
    """Add the rows a deferred index has not seen yet (``ix.nbuilt .. r.n``).

    One pass in row order, hashing a batch of keys and prefetching their
    slots before linking them, so the cache misses overlap. Hands the GIL
    over like the executor: this may be a million rows.
    """
    cdef uint64_t hashes[CATCH_UP_BATCH]
    cdef int64_t start, row, end, n = r.n
    cdef int a = r.arity
    cdef double last = now_seconds()
    cdef int64_t done = 0
    if n > ix.ncap:
        ix.next = <int32_t*>big_realloc(ix.next, sizeof(int32_t) * n)
        if ix.next == NULL:
            raise MemoryError()
        ix.ncap = n
    start = ix.nbuilt
    while start < n:
        end = start + CATCH_UP_BATCH if start + CATCH_UP_BATCH < n else n
        for row in range(start, end):
            hashes[row - start] = hash_cols(r.rows + row * a, ix.cols, ix.ncols)
            prefetch(&ix.slots[hashes[row - start] & ix.mask])
        for row in range(start, end):
            idx_add_h(ix, r.rows, a, row, hashes[row - start])
        done += end - start
        if done >= CHECK_EVERY:
            done = 0
            if now_seconds() - last > YIELD_AFTER:
                last = give_gil_turn()
        start = end
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
    return rel_find_own_h(r, vals, hash_row(vals, r.arity))


cdef inline int64_t rel_find_own_h(const RelData* r, const int64_t* vals, uint64_t h) noexcept nogil:
    """``rel_find_own`` with the row's hash already computed."""
    cdef int64_t slot
    return dedup_probe(r.fslots, r.fmask, r.fshift, r.rows, r.arity, vals, h, &slot)


cdef inline int64_t dedup_probe(const uint64_t* fslots, int64_t mask, int shift, const int64_t* stored, int a,
                                const int64_t* vals, uint64_t h, int64_t* slot) noexcept nogil:
    """Row id of the row equal to ``vals`` (hash ``h``) in a dedup set, or -1
    with ``slot[0]`` the free slot that would take it.

    The set's fields are arguments, not a ``RelData``, so that a caller
    inserting many rows can keep them in locals (``rel_insert_run``).
    """
    cdef uint64_t tag = h >> 32
    cdef int64_t i = <int64_t>(h >> shift), row
    cdef uint64_t e
    cdef int k
    cdef const int64_t* p
    cdef bint same
    while True:
        e = fslots[i]
        if e == 0:
            slot[0] = i
            return -1
        if (e >> 32) == tag:
            row = <int64_t>(e & 0xFFFFFFFFULL) - 1
            p = stored + row * a
            same = True
            for k in range(a):
                if p[k] != vals[k]:
                    same = False
                    break
            if same:
                return row
        i = (i + 1) & mask


cdef inline void copy_row(int64_t* dst, const int64_t* src, int a) noexcept nogil:
    cdef int k
    if a <= 4:   # a libc call per row costs more than the copy itself
        for k in range(a):
            dst[k] = src[k]
    else:
        memcpy(dst, src, sizeof(int64_t) * a)


cdef inline void tier_range(const RelData* r, int tier, int64_t* lo, int64_t* hi) noexcept:
    """The own rows a join of ``tier`` reads: ``lo[0] .. hi[0] - 1``."""
    if tier == T_ALL:
        lo[0] = 0
        hi[0] = r.all_hi
    elif tier == T_STABLE:
        lo[0] = 0
        hi[0] = r.stable_hi
    else:
        lo[0] = r.recent_lo
        hi[0] = r.recent_hi


cdef int rel_grow_fslots(RelData* r) except -1:
    """Double the dedup set: entries carry their hash tags, so no row is read."""
    cdef int64_t newcap = (r.fmask + 1) * 2
    cdef uint64_t* ns = <uint64_t*>big_calloc(newcap, sizeof(uint64_t))
    cdef uint64_t* old = r.fslots
    cdef int64_t j, i, m = newcap - 1, oldcap = r.fmask + 1
    cdef int sh = r.fshift - 1 - 32     # new home = tag >> sh
    cdef uint64_t e
    if ns == NULL:
        raise MemoryError()
    with nogil:  # see idx_grow_slots
        for j in range(oldcap):
            e = old[j]
            if e:
                i = <int64_t>((e >> 32) >> sh)
                while ns[i]:
                    i = (i + 1) & m
                ns[i] = e
    big_free(old)
    r.fslots = ns
    r.fmask = m
    r.fshift -= 1
    return 0


cdef int rel_insert(RelData* r, const int64_t* vals) except -1:
    """Add a row unless present (here or in the base); 1 if it was new."""
    return rel_insert_h(r, vals, hash_row(vals, r.arity))


cdef inline int rel_insert_h(RelData* r, const int64_t* vals, uint64_t h) except -1:
    """``rel_insert`` with the row's hash already computed (``hash_row``).

    One probe sequence both looks for the row and finds the free slot that
    takes it when it is new. Inline (the batch loop calls it per row); the
    rare steps (growing an array, linking indexes) are calls.
    """
    cdef int64_t i
    cdef int a = r.arity
    if r.base != NULL and rel_find_own_h(r.base, vals, h) >= 0:
        return 0
    if dedup_probe(r.fslots, r.fmask, r.fshift, r.rows, a, vals, h, &i) >= 0:
        return 0
    if r.n == r.cap:
        rel_grow_rows(r)
    copy_row(r.rows + r.n * a, vals, a)
    r.fslots[i] = ((h >> 32) << 32) | <uint64_t>(r.n + 1)
    if r.nlive:
        rel_link(r)
    r.n += 1
    if r.n * 2 > r.fmask + 1:
        rel_grow_fslots(r)
    return 1


cdef int rel_grow_rows(RelData* r) except -1:
    cdef int64_t newcap
    if r.cap >= 2147483646:   # row ids are int32 in the indexes
        raise OverflowError("relation has more than 2**31 rows")
    newcap = r.cap * 2 if r.cap else 16
    if newcap > 2147483646:
        newcap = 2147483646
    r.rows = <int64_t*>big_realloc(r.rows, sizeof(int64_t) * newcap * (r.arity if r.arity else 1))
    if r.rows == NULL:
        raise MemoryError()
    r.cap = newcap
    return 0


cdef int rel_link(RelData* r) except -1:
    """Add row ``r.n`` (just stored) to every index that is maintained row by row."""
    cdef int k
    for k in range(r.nidx):
        if not r.idx[k].deferred:
            idx_add(&r.idx[k], r.rows, r.arity, r.n)
    return 0


DEF CACHED_SLOTS = 1 << 15       # dedup slots (8 bytes each) that fit in a core's L2 cache


cdef int64_t rel_insert_batch(RelData* r, const int64_t* rows, int n, uint64_t* hashes) except -1:
    """Insert ``n`` rows (``rows``, each ``r.arity`` wide) unless present; returns how many were new.

    The probes are memory-bound (a dedup slot, the stored row it points to,
    an index slot per index, all anywhere in arrays of megabytes). Hashing
    the whole batch first and prefetching those slots, then the rows the
    dedup slots point to, lets the cache misses overlap instead of being
    paid one after another. ``hashes`` has room for ``n`` values.
    """
    cdef int i, k, a = r.arity
    cdef uint64_t h, e
    cdef const int64_t* row
    cdef Index* ix
    cdef int64_t new = 0
    if r.fmask < CACHED_SLOTS and r.base == NULL:
        # a dedup set this small stays in the cache: nothing to overlap
        if r.nlive == 0:
            return rel_insert_run(r, rows, n, NULL)
        for i in range(n):
            row = rows + <int64_t>i * a
            new += rel_insert_h(r, row, hash_row(row, a))
        return new
    for i in range(n):
        row = rows + <int64_t>i * a
        h = hash_row(row, a)
        hashes[i] = h
        prefetch(&r.fslots[h >> r.fshift])
        for k in range(r.nidx):
            ix = &r.idx[k]
            if not ix.deferred:
                prefetch(&ix.slots[hash_cols(row, ix.cols, ix.ncols) & ix.mask])
    for i in range(n):
        h = hashes[i]
        e = r.fslots[h >> r.fshift]
        if e and (e >> 32) == (h >> 32):
            prefetch(r.rows + <int64_t>((e & 0xFFFFFFFFULL) - 1) * a)
    if r.base == NULL and r.nlive == 0:
        return rel_insert_run(r, rows, n, hashes)
    for i in range(n):
        new += rel_insert_h(r, rows + <int64_t>i * a, hashes[i])
    return new


cdef int64_t rel_insert_run(RelData* r, const int64_t* rows, int n, const uint64_t* hashes) except -1:
    """``rel_insert_h`` for ``n`` rows in turn, into a relation with no base
    and no index kept up row by row (the usual head of a rule, and facts
    being loaded); returns how many were new. ``hashes``: the rows' hashes,
    or NULL to compute them here.

    The relation's fields stay in locals for the whole run: a store into
    the rows array could alias them as far as the C compiler knows, so it
    would otherwise load every field again after each row. A row that
    needs an array grown goes through ``rel_insert_h``, which grows it.
    """
    cdef int i, a = r.arity, sh = r.fshift
    cdef int64_t count = r.n, cap = r.cap, mask = r.fmask, slot, new = 0
    cdef uint64_t* fslots = r.fslots
    cdef int64_t* stored = r.rows
    cdef const int64_t* row
    cdef uint64_t h
    for i in range(n):
        row = rows + <int64_t>i * a
        h = hashes[i] if hashes != NULL else hash_row(row, a)
        if dedup_probe(fslots, mask, sh, stored, a, row, h, &slot) >= 0:
            continue
        if count == cap or (count + 1) * 2 > mask + 1:
            r.n = count
            new += rel_insert_h(r, row, h)
            count, cap, mask, sh = r.n, r.cap, r.fmask, r.fshift
            fslots, stored = r.fslots, r.rows
            continue
        copy_row(stored + count * a, row, a)
        fslots[slot] = ((h >> 32) << 32) | <uint64_t>(count + 1)
        count += 1
        new += 1
    r.n = count
    return new


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
        self.d.fshift = 60
        self.d.fslots = <uint64_t*>big_malloc(sizeof(uint64_t) * 16)
        if self.d.fslots == NULL:
            raise MemoryError()
        memset(self.d.fslots, 0, sizeof(uint64_t) * 16)
        self.d.nidx = len(index_cols)
        self.d.nlive = self.d.nidx
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
            if base.d.base != NULL:
                # dedup, counts and reads look one level down only
                raise ValueError("an overlay's base must not be an overlay itself")
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

    def reserve(self, int64_t n):
        """Make room for ``n`` rows before they come (a hint; never shrinks).

        Growing one doubling at a time rehashes every entry again and again
        and copies the rows each time: for a relation whose size is known
        roughly in advance (the same program evaluated again), that is most
        of the cost of building it. The reservation is what the previous
        evaluation ended up using: a fresh block's untouched capacity costs
        address space only (its pages are mapped when rows reach them), and
        a block reused from the block cache was resident anyway.
        """
        cdef RelData* d = self.d
        cdef int64_t want = 16
        cdef int shift = 60
        cdef uint64_t* slots
        cdef int64_t* rows
        if n <= d.cap or n > 2147483646:
            return
        while want < 2 * n:        # the load factor rel_insert keeps: at most one half
            want *= 2
            shift -= 1
        if d.n == 0 and want > d.fmask + 1:
            slots = <uint64_t*>big_calloc(want, sizeof(uint64_t))
            if slots == NULL:
                raise MemoryError()
            big_free(d.fslots)
            d.fslots = slots
            d.fmask = want - 1
            d.fshift = shift
        rows = <int64_t*>big_realloc(d.rows, sizeof(int64_t) * n * (d.arity if d.arity else 1))
        if rows == NULL:
            raise MemoryError()
        d.rows = rows
        d.cap = n

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
        """Every row (base rows first) as a tuple of tuples of Python values
        (``table[k]`` is the value of id ``2*k``).

        The end-to-end path: the rows are built here in one pass, straight
        into a tuple of the final size. Neither the rows nor the tuple that
        holds them are tracked by the cyclic GC: they are immutable and hold
        only scalars and entities, so they can never be part of a cycle, and
        a collection never walks a result of millions of rows.
        """
        cdef const RelData* base = self.d.base
        cdef Py_ssize_t nbase = base.n if base != NULL else 0
        cdef Py_ssize_t ntab = len(table)
        cdef int64_t iv, hi = SMALL_INTS - 1
        cdef Py_ssize_t nown = self.d.n     # the counts the result is sized for
        if nbase + nown < SMALL_INTS:
            # Size the small-int table to the largest value present (this
            # pass also checks every id, so a bad one raises before any
            # tuple is made). Past SMALL_INTS rows, the pass costs more than
            # a table of every small int would: fill_value_rows checks ids.
            hi = check_ids(self.d, ntab)
            if base != NULL:
                hi = max(hi, check_ids(base, ntab))
        cdef tuple out = PyTuple_New(nbase + nown)
        PyObject_GC_UnTrack(<void*>out)
        cdef PyObject** small = NULL
        cdef double last = now_seconds()
        # Small non-negative integers recur across rows (node ids, counts):
        # share one int object per value instead of allocating one per cell
        # (the table covers 0 .. hi, the largest such value in the rows).
        if nbase + nown > 256 and hi >= 0:
            small = <PyObject**>calloc(hi + 1, sizeof(PyObject*))
            if small == NULL:
                raise MemoryError()
        try:
            if base != NULL:
                fill_value_rows(base, nbase, table, out, 0, small, hi, &last)
            fill_value_rows(self.d, nown, table, out, nbase, small, hi, &last)
        finally:
            if small != NULL:
                for iv in range(hi + 1):
                    Py_XDECREF(small[iv])
                free(small)
        return out

    def value_set(self, list table):
        """``frozenset(self.value_rows(table))``, also left out of the cyclic GC:
        a set of immutable rows of scalars and entities can never be part of
        a cycle, so no collection needs to walk it (``Model.relation`` keeps
        one per relation for the model's lifetime)."""
        cdef frozenset out = frozenset(self.value_rows(table))
        PyObject_GC_UnTrack(<void*>out)
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
