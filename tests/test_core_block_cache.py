"""The compiled core's block cache: evaluations reuse the big arrays earlier ones freed.

Freed arrays of 128 KiB or more (relation rows, dedup sets, index slots and
chains) are kept in a bounded process-wide cache and handed out again, zeroed
where the core asks for zeroed memory. These tests evaluate programs of mixed
arities and sizes again and again, so that every growth path (rows and index
arrays reallocated, hash tables rehashed) runs on reused blocks, and compare
each model with an obviously-correct reference: a reused block that kept stale
entries, or was too small, would show as a wrong answer or a crash. They also
check the bound, the release and the counters that prove blocks are reused.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rune_fast.datalog as datalog
from rune_fast.datalog import Program, _core, _pycore

MIB = 1 << 20

# Mixed arities (1, 2, 3) and joins that give the 3-wide relation a two-column
# index with one group per row: index slots, group arrays and row chains all
# grow past the cached size.
RULES = """
path(X, Y) :- edge(X, Y).
path(X, Z) :- path(X, Y), edge(Y, Z).
step(X, Y, Z) :- path(X, Y), edge(Y, Z).
both(X, Z) :- path(X, Y), step(X, Y, Z).
node(X) :- path(X, _).
far(X, Y) :- path(X, Y), not edge(X, Y).
"""


def closure(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Transitive closure by a search from every node (the reference)."""
    succ: dict[int, set[int]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)
    out = set()
    for start in succ:
        seen: set[int] = set()
        todo = list(succ[start])
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(succ.get(n, ()))
        out.update((start, n) for n in seen)
    return out


def expected(edges: set[tuple[int, int]]) -> dict[str, set[tuple]]:
    path = closure(edges)
    succ: dict[int, list[int]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    step = {(x, y, z) for x, y in path for z in succ.get(y, ())}
    return {
        "path": path,
        "step": step,
        "both": {(x, z) for x, _, z in step},
        "node": {(x,) for x, _ in path},
        "far": path - edges,
    }


def chain(n: int) -> set[tuple[int, int]]:
    return {(i, i + 1) for i in range(n - 1)}


@functools.cache
def expected_for_chain(n: int) -> dict[str, set[tuple]]:
    return expected(chain(n))


def check(program: Program, edges: set[tuple[int, int]], want: dict[str, set[tuple]] | None = None) -> None:
    """Evaluate and compare every relation; the model (and so its arrays) is freed on return."""
    model = program.evaluate({"edge": sorted(edges)})
    for name, rows in (want or expected(edges)).items():
        assert model.relation(name) == rows, name


def check_chain(program: Program, n: int) -> None:
    check(program, chain(n), expected_for_chain(n))


@pytest.fixture
def cache():
    """An empty cache with the default limit; restores the limit afterwards."""
    _core.release_cached_memory()
    limit = _core.block_cache_stats()["limit"]
    try:
        yield _core
    finally:
        _core.set_block_cache_limit(limit)
        _core.release_cached_memory()


def test_default_limit_is_bounded(cache):
    stats = cache.block_cache_stats()
    assert 0 < stats["limit"] <= 256 * MIB
    assert stats["bytes"] == 0 and stats["blocks"] == 0


def test_repeated_evaluations_of_mixed_sizes_stay_correct(cache):
    """Chains of 300 nodes (45k paths and steps: rows, dedup sets and indexes
    of 1-2 MiB each) between smaller ones: blocks move between relations and sizes."""
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    before = cache.block_cache_stats()
    for n in (300, 40, 260, 120, 300):
        check_chain(program, n)
    stats = cache.block_cache_stats()
    assert stats["hits"] > before["hits"]          # blocks were reused ...
    assert 0 < stats["bytes"] <= stats["limit"]    # ... and some are kept
    assert stats["blocks"] <= 128


def test_steady_state_takes_every_block_from_the_cache(cache):
    """Evaluating the same program again allocates no fresh big block."""
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    for _ in range(3):
        check_chain(program, 250)
    before = cache.block_cache_stats()
    check_chain(program, 250)
    after = cache.block_cache_stats()
    assert after["misses"] == before["misses"]
    assert after["hits"] > before["hits"]


def test_reused_blocks_behave_as_zeroed(cache):
    """Fill the cache with blocks full of row ids and hash entries, then
    evaluate different data whose tables take exactly those blocks: a stale
    dedup or index entry would drop or duplicate tuples."""
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    dense = {(i, j) for i in range(120) for j in (i + 1, i + 3, i + 7) if j < 120}
    check(program, dense)
    # same sizes, other values: shifted node numbers and a reversed chain
    check(program, {(a + 1000, b + 1000) for a, b in dense})
    check(program, {(b, a) for a, b in chain(300)})
    assert cache.block_cache_stats()["hits"] > 0


def test_the_limit_holds_and_lowering_it_frees_blocks(cache):
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    check_chain(program, 300)
    assert cache.block_cache_stats()["bytes"] > 2 * MIB
    default = cache.block_cache_stats()["limit"]
    assert cache.set_block_cache_limit(2 * MIB) == default
    assert cache.block_cache_stats()["bytes"] <= 2 * MIB
    for n in (300, 150):
        check_chain(program, n)
        stats = cache.block_cache_stats()
        assert stats["limit"] == 2 * MIB
        assert stats["bytes"] <= 2 * MIB
    assert cache.set_block_cache_limit(0) == 2 * MIB
    assert cache.block_cache_stats()["bytes"] == 0
    check_chain(program, 300)                     # no cache at all: still right
    assert cache.block_cache_stats()["bytes"] == 0
    with pytest.raises(OverflowError):
        cache.set_block_cache_limit(-1)


def test_release_returns_every_cached_block(cache):
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    check_chain(program, 300)
    held = cache.block_cache_stats()["bytes"]
    assert held > 0
    assert datalog.release_cached_memory() == held
    stats = cache.block_cache_stats()
    assert stats["bytes"] == 0 and stats["blocks"] == 0
    assert datalog.release_cached_memory() == 0
    check_chain(program, 280)                     # fresh blocks again


def test_the_pure_core_has_the_same_functions():
    assert _pycore.release_cached_memory() == 0
    assert _pycore.block_cache_stats() == {"bytes": 0, "blocks": 0, "limit": 0, "hits": 0, "misses": 0}
    assert _pycore.set_block_cache_limit(1 << 20) == 0
    with pytest.raises(OverflowError):
        _pycore.set_block_cache_limit(-1)


def test_threads_share_the_cache(cache):
    """Evaluations in several threads (the core frees and grows arrays without
    the GIL) under a small limit, so blocks are evicted and reused all the time."""
    cache.set_block_cache_limit(6 * MIB)
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    errors: list[BaseException] = []

    def work(sizes):
        try:
            for n in sizes:
                check_chain(program, n)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(sizes,))
               for sizes in ((220, 60, 200), (180, 240, 90), (250, 120, 160))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert cache.block_cache_stats()["bytes"] <= 6 * MIB


@settings(max_examples=8, deadline=None, derandomize=True)
@given(st.integers(60, 220), st.lists(st.tuples(st.integers(0, 219), st.integers(0, 219)), max_size=300))
def test_random_graphs_after_reuse_match_the_reference(n, extra):
    """Random graphs (a chain for size plus random edges, cycles allowed),
    one after another in one process: each evaluation inherits the cache the
    previous ones left, with other sizes and other contents."""
    edges = chain(n) | {(a, b) for a, b in extra if a < n and b < n}
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    check(program, edges)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the lock is taken around fork(), which only POSIX systems have")
def test_a_forked_child_can_use_the_cache(cache):
    """Fork while another thread keeps taking and giving back blocks: the
    child inherits a usable cache (its lock is not left taken)."""
    program = Program(RULES, load_deadline_ms=0, _core_module=_core)
    check_chain(program, 200)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            check_chain(program, 120)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        pids = []
        for _ in range(3):
            with warnings.catch_warnings():  # (forking a threaded process: the point of the test)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                try:
                    check_chain(program, 200)
                    _core.release_cached_memory()
                    os._exit(0)
                except BaseException:
                    os._exit(1)
            pids.append(pid)
        for pid in pids:
            deadline = time.monotonic() + 60
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    pytest.fail("a forked child hung")
                time.sleep(0.01)
    finally:
        stop.set()
        worker.join(timeout=60)
