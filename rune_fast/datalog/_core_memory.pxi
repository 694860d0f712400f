# The compiled core: the memory of relations, indexes and aggregate buffers.
#
# Textually included by _core.pyx (`include`) before the relations
# (_core_relations.pxi), which allocate every big array through here.
# Kept apart because it is process-wide state (the block cache) with its own
# lock, unlike everything else in the core, which belongs to one relation or
# one executor. Design notes: _core.pyx and docs/performance.md.


# --------------------------------------------------------------------------
# Memory of relations, indexes and aggregate buffers
#
# libc's allocator (not PyMem_*, which needs the GIL): growing a large array
# copies it, tens of milliseconds for a big relation, and that copy runs
# without the GIL so that other threads keep running. Every array allocated
# here is freed with ``big_free`` (and nothing else): that is where big
# blocks enter the block cache.
#
# The block cache. libc hands blocks of 128 kB or more straight to the
# kernel (mmap) and gives them back on free (munmap), so every evaluation
# would touch fresh pages again and pay a page fault per 4 kB page: 20-30% of
# an evaluation's time, more in a virtual machine. Instead a freed block of
# at least ``CACHE_MIN`` bytes is kept in a small process-wide cache (its
# pages stay mapped, with their huge-page hint) and the next ``big_*`` call
# of a suitable size takes it back: best fit among the cached blocks of
# ``n .. 2n`` bytes (sizes here are powers of two times a row width, so a
# grown array usually finds its exact size), cleared with ``memset`` for
# ``big_calloc``, copied into for ``big_realloc``. A block's size is what
# libc says it holds (``malloc_usable_size``): no header, and a stray
# ``free`` of a big block is still valid (merely not cached).
#
# Bounded: at most ``cache_limit`` bytes (``DEFAULT_CACHE_LIMIT``, 128 MiB)
# in at most ``CACHE_BLOCKS`` blocks. A block is cached only if it fits:
# the oldest blocks are evicted to make room, and one larger than the limit
# is freed at once. 128 MiB holds every array of the largest benchmark
# evaluation (~100 MiB for ~1M derived tuples), so repeated evaluations of
# that size fault in no page; a larger evaluation reuses what fits and faults
# in the rest, as without the cache. The cache only ever holds blocks the
# process's own evaluations freed, so a process of small evaluations keeps
# little. ``set_block_cache_limit`` changes the limit (0: cache nothing),
# ``release_cached_memory`` gives every block back to libc. One pthread
# mutex guards the list, held only while it is searched or changed, never
# while freeing, zeroing or making a Python object: ``big_*`` run with or
# without the GIL, and relations are freed from ``__dealloc__``.

DEF BIG = 1 << 20
DEF HUGE = 1 << 21               # the size of a transparent huge page (x86-64)
DEF CACHE_MIN = 1 << 17          # smallest block cached (libc's default mmap threshold)
DEF CACHE_BLOCKS = 128           # most blocks the cache holds
DEF DEFAULT_CACHE_LIMIT = 128 << 20

cdef extern from "<sys/mman.h>":
    int madvise(void* addr, size_t length, int advice) noexcept nogil
    int MADV_HUGEPAGE

cdef extern from "<malloc.h>":
    size_t malloc_usable_size(void* p) noexcept nogil

cdef extern from *:
    """
    #include <pthread.h>
    static pthread_mutex_t rf_block_cache_mutex = PTHREAD_MUTEX_INITIALIZER;
    static void rf_block_cache_lock(void) { pthread_mutex_lock(&rf_block_cache_mutex); }
    static void rf_block_cache_unlock(void) { pthread_mutex_unlock(&rf_block_cache_mutex); }
    /* fork() while another thread holds the mutex must not leave the
       child's copy locked forever: take it around fork (as libc does for
       its own allocator locks). */
    static int rf_block_cache_atfork_done = 0;   /* registered once per process */
    static int rf_block_cache_atfork(void) {
        if (rf_block_cache_atfork_done) return 0;
        rf_block_cache_atfork_done = 1;
        return pthread_atfork(rf_block_cache_lock, rf_block_cache_unlock, rf_block_cache_unlock);
    }
    """
    void cache_lock "rf_block_cache_lock"() noexcept nogil
    void cache_unlock "rf_block_cache_unlock"() noexcept nogil
    int cache_atfork "rf_block_cache_atfork"() noexcept nogil


cdef struct CachedBlock:
    void* p
    size_t size                  # malloc_usable_size(p)


# guarded by cache_lock; ``cached[0]`` is the oldest block
cdef CachedBlock cached[CACHE_BLOCKS]
cdef int ncached = 0
cdef size_t cached_bytes = 0
cdef size_t cache_limit = DEFAULT_CACHE_LIMIT
cdef uint64_t cache_hits = 0
cdef uint64_t cache_misses = 0

cache_atfork()


cdef void* cache_take(size_t n) noexcept nogil:
    """The smallest cached block of ``n .. 2n`` bytes, removed from the cache, or NULL."""
    global ncached, cached_bytes, cache_hits, cache_misses
    cdef int i, best = -1
    cdef size_t s
    cdef void* p = NULL
    cache_lock()
    for i in range(ncached):
        s = cached[i].size
        if s >= n and s / 2 <= n and (best < 0 or s < cached[best].size):
            best = i
    if best >= 0:
        p = cached[best].p
        cached_bytes -= cached[best].size
        ncached -= 1
        for i in range(best, ncached):
            cached[i] = cached[i + 1]
        cache_hits += 1
    else:
        cache_misses += 1
    cache_unlock()
    return p


cdef int take_oldest(void** out, size_t keep_bytes, int keep_blocks) noexcept nogil:
    """Remove the oldest cached blocks into ``out`` until at most ``keep_bytes``
    bytes in at most ``keep_blocks`` blocks stay; returns how many. Call with
    ``cache_lock`` held; free the blocks after releasing it."""
    global ncached, cached_bytes
    cdef int i, k = 0
    while k < ncached and (cached_bytes > keep_bytes or ncached - k > keep_blocks):
        out[k] = cached[k].p
        cached_bytes -= cached[k].size
        k += 1
    if k:
        for i in range(k, ncached):
            cached[i - k] = cached[i]
        ncached -= k
    return k


cdef bint cache_put(void* p, size_t size) noexcept nogil:
    """Keep block ``p`` (``size`` usable bytes), evicting the oldest blocks to make room; False if it does not fit."""
    global ncached, cached_bytes
    cdef void* evicted[CACHE_BLOCKS]
    cdef int i, nev = 0
    cdef bint kept = False
    cache_lock()
    if size <= cache_limit:
        nev = take_oldest(evicted, cache_limit - size, CACHE_BLOCKS - 1)
        cached[ncached].p = p
        cached[ncached].size = size
        ncached += 1
        cached_bytes += size
        kept = True
    cache_unlock()
    for i in range(nev):
        free(evicted[i])
    return kept


cdef size_t cache_drain(size_t keep) noexcept nogil:
    """Free the oldest cached blocks until at most ``keep`` bytes stay; returns the bytes freed."""
    cdef void* evicted[CACHE_BLOCKS]
    cdef int i, k
    cdef size_t before
    cache_lock()
    before = cached_bytes
    k = take_oldest(evicted, keep, CACHE_BLOCKS)
    before -= cached_bytes
    cache_unlock()
    for i in range(k):
        free(evicted[i])
    return before


cdef inline void want_huge_pages(void* p, size_t n) noexcept nogil:
    """Ask for transparent huge pages under a big array (a hint; errors are ignored).

    Hash slots and rows are read at random: with 4 kB pages nearly every
    probe of an array of megabytes also misses the TLB, and a page walk costs
    as much as the cache miss itself (more in a virtual machine). Many
    kernels give huge pages only where they are asked for (``madvise`` mode).
    A cached block keeps its hint: its pages are never returned meanwhile.
    """
    cdef size_t lo, hi
    if n < 2 * HUGE:
        return
    lo = (<size_t>p + HUGE - 1) & ~(<size_t>HUGE - 1)
    hi = (<size_t>p + n) & ~(<size_t>HUGE - 1)
    if hi > lo:
        madvise(<void*>lo, hi - lo, MADV_HUGEPAGE)


cdef inline void big_free(void* p) noexcept nogil:
    cdef size_t size
    if p == NULL:
        return
    size = malloc_usable_size(p)
    if size < CACHE_MIN or not cache_put(p, size):
        free(p)


cdef void* cached_or_malloc(size_t n) noexcept nogil:
    cdef void* p = cache_take(n)
    if p == NULL:
        p = malloc(n)
        if p != NULL:
            want_huge_pages(p, n)
    return p


cdef void* cached_or_calloc(size_t n, size_t size) noexcept nogil:
    cdef void* p = cache_take(n * size)
    if p != NULL:
        memset(p, 0, n * size)
    else:
        p = calloc(n, size)
        if p != NULL:
            want_huge_pages(p, n * size)
    return p


cdef void* cached_or_realloc(void* old, size_t have, size_t n) noexcept nogil:
    cdef void* p = cache_take(n)
    if p != NULL:
        if old != NULL:
            memcpy(p, old, have)
            big_free(old)
    else:
        p = realloc(old, n)
        if p != NULL:
            want_huge_pages(p, n)
    return p


# (below BIG the GIL is kept: releasing it would cost more than the call)

cdef inline void* big_malloc(size_t n) noexcept:
    cdef void* p
    if n < CACHE_MIN:
        return malloc(n)
    if n < BIG:
        return cached_or_malloc(n)
    with nogil:
        p = cached_or_malloc(n)
    return p


cdef inline void* big_realloc(void* old, size_t n) noexcept:
    """``realloc``; growing to a cached size takes a cached block if one fits
    (one copy, no fresh pages), else lets libc move the pages (``mremap``)."""
    cdef void* p
    cdef size_t have
    if n < CACHE_MIN:
        return realloc(old, n)
    have = malloc_usable_size(old) if old != NULL else 0
    if have >= n:
        return old
    if n < BIG:
        return cached_or_realloc(old, have, n)
    with nogil:
        p = cached_or_realloc(old, have, n)
    return p


cdef inline void* big_calloc(size_t n, size_t size) noexcept:
    """Zeroed memory: a cached block is cleared with ``memset`` (much cheaper
    than faulting in fresh pages); otherwise a big block comes from fresh
    pages the kernel zeroes on first touch."""
    cdef void* p
    if size and n > (<size_t>-1) / size:
        return NULL
    if n * size < CACHE_MIN:
        return calloc(n, size)
    if n * size < BIG:
        return cached_or_calloc(n, size)
    with nogil:
        p = cached_or_calloc(n, size)
    return p


def release_cached_memory():
    """Give every block the core keeps for reuse back to the C allocator; returns the bytes released.

    Evaluations reuse the big arrays of earlier ones (see ``block_cache_stats``);
    call this when a process stops evaluating for a long while.
    """
    cdef size_t freed
    with nogil:
        freed = cache_drain(0)
    return freed


def block_cache_stats():
    """The block cache now: ``bytes`` and ``blocks`` held, its ``limit`` (bytes), and ``hits``/``misses`` so far."""
    cdef size_t nbytes, limit
    cdef int nblocks
    cdef uint64_t hits, misses
    cache_lock()   # (no Python object is made while it is held: a GC could free a relation)
    nbytes = cached_bytes
    nblocks = ncached
    limit = cache_limit
    hits = cache_hits
    misses = cache_misses
    cache_unlock()
    return {"bytes": nbytes, "blocks": nblocks, "limit": limit, "hits": hits, "misses": misses}


def set_block_cache_limit(size_t nbytes):
    """Set the most bytes the block cache may hold (0: cache nothing), freeing blocks beyond it; returns the old limit."""
    global cache_limit
    cdef size_t old
    cache_lock()
    old = cache_limit
    cache_limit = nbytes
    cache_unlock()
    with nogil:
        cache_drain(nbytes)
    return old
