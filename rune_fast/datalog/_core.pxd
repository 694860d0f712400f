# The compiled core's C-level types. See _core.pyx for the design notes.

from libc.stdint cimport int32_t, int64_t, uint64_t


cdef struct Index:
    # A hash index on some columns: key -> chain of row ids in insertion order.
    int ncols
    int* cols
    int32_t* slots        # open addressing: group id + 1, 0 = empty
    int64_t mask          # len(slots) - 1 (a power of two minus one)
    int64_t ngroups
    int64_t gcap
    int32_t* ghead        # first row of each key group (also its representative)
    int32_t* gtail        # last row, so that chains stay in increasing row order
    uint64_t* ghash
    int32_t* next         # per row: the next row of the same key, -1 at the end
    int64_t ncap
    int64_t nbuilt        # rows 0 .. nbuilt-1 are in the index
    int deferred          # 1: inserts leave the index behind (see Executor.run_stratum)


cdef struct RelData:
    # A relation: fixed-width rows of interned ids, deduplicated, append-only.
    int arity
    int64_t n
    int64_t cap
    int64_t* rows
    # The dedup set, open addressing: an entry is the row's hash tag (the
    # hash's high 32 bits) << 32 | (row id + 1); 0 = empty. The home slot is
    # the hash's top bits (``h >> fshift``), so growing the table maps slots
    # in order (a streaming pass) and reads no row; a probe reads a row only
    # when the tags agree.
    uint64_t* fslots
    int64_t fmask
    int fshift            # 64 - log2(number of slots)
    int nidx
    int nlive             # indexes not deferred (maintained by every insert)
    Index* idx
    RelData* base         # an immutable relation this one extends (per-request overlays)
    # Tiers of semi-naive evaluation, as ranges of this relation's own rows.
    # Base rows (if any) always count as stable.
    int64_t stable_hi
    int64_t recent_lo
    int64_t recent_hi
    int64_t all_hi


cdef struct Op:
    int kind
    int rel
    int tier
    int index             # -1 scan, -2 whole-row membership, >= 0 an index number
    int nkey
    int key_off           # pool[key_off:key_off+nkey]: value sources of the key columns
    int nbind
    int bind_off          # pool pairs (column, register)
    int ncheck
    int check_off         # pool pairs (column, source): equality tests on a row
    int cmp
    int lhs_off
    int lhs_len
    int rhs_off
    int rhs_len
    int reg
    int aux
    int sub_start
    # -- derived by Plan from the fields above (not part of the plan format)
    int emit_next         # JOIN: the next op is the rule's EMIT
    int regs_only         # EMIT: every head value comes from a register (no constant)
    int la_n              # JOIN followed by a whole-row probe: its key width (0: none) ...
    int la_off            # ... and where Plan.la says how to build that key from a row of this JOIN
