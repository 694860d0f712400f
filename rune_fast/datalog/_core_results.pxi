# The compiled core: rows of ids out as Python values (``Relation.value_rows``).
#
# Textually included by _core.pyx (`include`) after the relations, whose
# rows these functions read. Kept apart because it is the other end of an
# evaluation, the one side of the core that builds Python objects: one
# tuple per row, built untracked by the cyclic GC, with the values of a
# symbol table (``table[k]`` is the value of id ``2*k``) and small
# non-negative integers shared (see ``Relation.value_rows``).


cdef int64_t check_ids(const RelData* d, Py_ssize_t ntab) except -2:
    """Raise if a row of ``d`` holds a table id past ``ntab`` entries; else
    the largest inline integer in ``0 .. SMALL_INTS - 1`` (-1 if none)."""
    cdef int64_t r, ident, iv, hi = -1
    for r in range(d.n * d.arity):
        ident = d.rows[r]
        if ident & 1:
            iv = ident >> 1
            if hi < iv < SMALL_INTS:
                hi = iv
        elif <uint64_t>(ident >> 1) >= <uint64_t>ntab:     # a negative id too
            raise IndexError("id outside the symbol table")
    return hi


cdef int fill_value_rows(const RelData* d, Py_ssize_t n, list table, tuple out, Py_ssize_t at,
                         PyObject** small, int64_t hi, double* last) except -1:
    """The first ``n`` rows of ``d`` as tuples of values into ``out[at:at + n]``.

    ``small``, if not NULL, caches one int object per integer in ``0 .. hi``
    (it holds its own reference to each). Other threads may run meanwhile
    (the GIL is handed over now and then, and a collection that an
    allocation triggers may run finalizers): the row array is looked up
    again for every row (rows are only ever appended, but the array may
    move) and every table index is checked when it is read.
    """
    cdef int64_t r, ident, iv
    cdef uint64_t nsmall = <uint64_t>(hi + 1) if small != NULL and hi >= 0 else 0
    cdef int k, a = d.arity
    cdef const int64_t* row
    cdef PyObject* t
    cdef PyObject* v
    cdef object fresh
    for r in range(n):
        t = untracked_tuple(a)
        if t == NULL:
            raise MemoryError()
        tuple_set(<PyObject*>out, at + r, t)    # owned by ``out`` from here (also if a value fails)
        row = d.rows + r * a
        for k in range(a):
            ident = row[k]
            if ident & 1:
                iv = ident >> 1
                if <uint64_t>iv < nsmall:       # 0 <= iv <= hi, with a table
                    v = small[iv]
                    if v == NULL:
                        fresh = PyLong_FromLongLong(iv)
                        v = <PyObject*>fresh
                        Py_XINCREF(v)           # the cache's reference
                        small[iv] = v
                    Py_XINCREF(v)
                else:
                    fresh = PyLong_FromLongLong(iv)
                    v = <PyObject*>fresh
                    Py_XINCREF(v)
            else:
                if <uint64_t>(ident >> 1) >= <uint64_t>list_size(table):   # or negative
                    raise IndexError("id outside the symbol table")
                v = list_item(table, ident >> 1)
                Py_XINCREF(v)
            tuple_set(t, k, v)                  # steals the reference
        # (The row was never tracked: its items are immutable scalars and
        # entities, so it can never be part of a cycle, and the cyclic GC
        # has no reason to walk it.)
        if r % CHECK_EVERY == CHECK_EVERY - 1 and now_seconds() - last[0] > YIELD_AFTER:
            last[0] = give_gil_turn()
    return 0
