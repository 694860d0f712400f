# The compiled core: interning facts in bulk.
#
# Textually included by _core.pyx (`include`) after the relations, which
# ``IdRows.insert_into`` fills. ``intern_rows`` must give exactly the ids
# ``Symbols.intern`` gives, in the same order (tests/test_intern_rows.py).


#: intern_rows prefetches the row this many rows ahead, and that row's
#: values half as far ahead (a row must be in cache to find its values).
DEF INTERN_AHEAD = 16


cdef class IdRows:
    """The facts of one relation as ``intern_rows`` interned them: ``n`` rows
    of ``arity`` ids in one C array.

    The bulk path's own form: no Python int per id and no tuple per row,
    and ``insert_into`` reads the rows where they lie. Iterating gives the
    rows as tuples of ids (for callers that need them one by one).
    """

    cdef int64_t* data
    cdef readonly Py_ssize_t n
    cdef readonly int arity

    def __dealloc__(self):
        big_free(self.data)

    def __len__(self):
        return self.n

    def __iter__(self):
        cdef Py_ssize_t r
        cdef int k
        for r in range(self.n):
            yield tuple([self.data[r * self.arity + k] for k in range(self.arity)])

    def insert_into(self, Relation rel not None):
        """Insert every row into ``rel`` (by batches, see ``rel_insert_batch``); returns how many were new."""
        cdef uint64_t hashes[INSERT_BATCH]
        cdef Py_ssize_t r = 0, nb
        cdef int a = self.arity
        cdef int64_t added = 0
        cdef double last = now_seconds()
        if rel.d.arity != a:
            raise ValueError("rows of arity %d cannot go into a relation of arity %d" % (a, rel.d.arity))
        while r < self.n:
            nb = min(<Py_ssize_t>INSERT_BATCH, self.n - r)
            added += rel_insert_batch(rel.d, self.data + r * a, <int>nb, hashes)
            r += nb
            if r % CHECK_EVERY < INSERT_BATCH and now_seconds() - last > YIELD_AFTER:
                last = give_gil_turn()
        return added


cdef int64_t _table_id(object v, dict table, tuple ups, list values, Py_ssize_t offset) except -2:
    """The id of a string or entity ``v`` in ``table`` (this table's own kind)
    or a frozen ancestor's, adding it here if none has it."""
    cdef PyObject* found = PyDict_GetItemWithError(table, v)
    cdef int64_t ident
    if found == NULL:
        for up in ups:
            found = PyDict_GetItemWithError(<dict>up, v)
            if found != NULL:
                break
    if found != NULL:
        return PyLong_AsLongLong(<object>found)
    ident = 2 * (offset + len(values))
    values.append(v)
    PyDict_SetItem(table, v, PyLong_FromLongLong(ident))
    return ident


cdef inline int64_t _intern_id(object v, dict strt, dict entt, tuple up_str, tuple up_ent,
                               list values, Py_ssize_t offset, object intern) except -2:
    """The id of one fact value (see ``intern_rows``); -2 (never an id) on error."""
    cdef int overflow
    cdef long long x
    if type(v) is str:
        return _table_id(v, strt, up_str, values, offset)
    if type(v) is _Entity:
        if type((<tuple>v)[0]) is not str or type((<tuple>v)[1]) is not str:
            return intern(v)            # raises the error Symbols.intern gives
        return _table_id(v, entt, up_ent, values, offset)
    if type(v) is int:
        x = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow == 0 and INLINE_MIN <= x <= INLINE_MAX:
            return 2 * x + 1
    return intern(v)


def intern_rows(symbols, rows, int arity):
    """Facts (a list or tuple of rows of values) -> their ids as ``IdRows``, or None.

    None when some row is not a plain tuple of ``arity`` values (the caller's
    row-by-row path then names the bad row; the values interned before it
    are the ones that path interns first anyway, in the same order).
    Strings, entities and inline integers are interned here, with a dict
    probe per value and no Python call; every other kind goes through
    ``symbols.intern``, which also raises for unsupported values. Must give
    exactly the ids ``symbols.intern`` would, row after row: same tables,
    same order of new entries.

    Rows and their values lie all over the heap, and a dict probe must read
    the value (its cached hash): each is a cache miss. The loop prefetches
    rows and values ahead of their turn so that those misses overlap.

    Other threads may run meanwhile (the GIL is handed over every
    ``YIELD_AFTER`` of work, and ``symbols.intern`` runs Python code), and
    may change a list the caller passed: every row is checked when its turn
    comes, against the list's length at that moment.
    """
    cdef list lrows = rows if type(rows) is list else list(rows)
    cdef Py_ssize_t n = len(lrows), i
    cdef int k
    cdef list values
    cdef dict strt, entt
    cdef tuple up_str, up_ent
    cdef object row, intern
    cdef PyObject* ahead
    cdef Py_ssize_t offset
    cdef IdRows out
    cdef int64_t* dst
    cdef double last = now_seconds()
    if arity <= 0 or n == 0:
        return None
    strt = symbols._str
    entt = symbols._ent
    up_str = symbols._up[0]
    up_ent = symbols._up[1]
    values = symbols._values
    offset = symbols._offset
    intern = symbols.intern
    out = IdRows.__new__(IdRows)
    out.data = <int64_t*>big_malloc(<size_t>n * arity * sizeof(int64_t))
    if out.data == NULL:
        raise MemoryError()
    out.arity = arity
    dst = out.data
    for i in range(n):
        if i >= list_size(lrows):
            return None                 # the list shrank under us
        if i + INTERN_AHEAD < list_size(lrows):
            prefetch(list_item(lrows, i + INTERN_AHEAD))
        if i + INTERN_AHEAD // 2 < list_size(lrows):
            ahead = list_item(lrows, i + INTERN_AHEAD // 2)
            if is_exact_tuple(ahead) and raw_tuple_size(ahead) == arity:
                for k in range(arity):
                    prefetch(raw_tuple_item(ahead, k))
        row = lrows[i]
        if type(row) is not tuple or PyTuple_GET_SIZE(row) != arity:
            return None
        for k in range(arity):
            dst[k] = _intern_id(<object>PyTuple_GET_ITEM(row, k), strt, entt, up_str, up_ent,
                                values, offset, intern)
        dst += arity
        if i % CHECK_EVERY == CHECK_EVERY - 1 and now_seconds() - last > YIELD_AFTER:
            last = give_gil_turn()
    out.n = n
    return out
