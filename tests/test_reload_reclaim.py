"""Old engines are reclaimed promptly (issue 13): a replaced engine dies as
soon as its last reader is done, by reference counting alone (engines hold
no reference cycles, so this holds even with the cyclic collector off or
the engine frozen by ``gc.freeze``), and memory stays flat over hundreds of
reloads."""

from __future__ import annotations

import gc
import os
import sys
import threading
import weakref

import pytest

import rune_fast
from rune_fast import PolicyStore

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "asv_benchmarks", "benchmarks"))
from bench_reload import _alternating, fact_policy

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _versions(tmp_path, n_facts: int) -> list[str]:
    paths = []
    for v in (0, 1):
        p = tmp_path / f"v{v}.rune"
        p.write_text(fact_policy(n_facts, v), encoding="utf-8")
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("name", ["doc_sharing", "api_rate_limit", "agent_guardrails"])
def test_an_engine_is_freed_by_reference_counting(name):
    """No reference cycles: dropping the last reference frees the engine
    (and every object it owns) without the cyclic collector."""
    path = os.path.join(EXAMPLES, f"{name}.rune")

    def used_engine():
        e = rune_fast.load(path)
        for t in e.tests:  # per-request plans, caches and memos in use
            e.authorize(t.principal, t.action, t.resource, t.context or None)
        return e

    used_engine()  # first-use garbage of the libraries (imports, caches)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        e = used_engine()
        ref = weakref.ref(e)
        del e
        assert ref() is None
        assert gc.collect() == 0  # nothing was left behind in a cycle
    finally:
        if was:
            gc.enable()


def test_a_replaced_engine_dies_once_its_readers_are_done(tmp_path):
    paths = _versions(tmp_path, 200)
    store = PolicyStore(paths[0], watch=False, history=1, loader=_alternating(paths))
    try:
        gc.disable()  # prove it is reference counting, not a collection
        first = store.engine
        ref = weakref.ref(first)
        holding = threading.Event()
        release = threading.Event()
        decided = []

        def reader(engine) -> None:  # a request in flight on the old engine
            holding.set()
            release.wait(10)
            decided.append(engine.authorize(("User", "u1"), ("Action", "read"), ("Doc", "d1")).decision)

        t = threading.Thread(target=reader, args=(first,))
        del first
        t.start()
        assert holding.wait(10)
        assert store.reload().changed
        assert store.engine is not ref()
        assert ref() is not None  # the in-flight request still holds it
        release.set()
        t.join(10)
        del t
        assert decided == ["permit"]
        assert ref() is None  # the reader is done: freed at once
    finally:
        gc.enable()
        store.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_memory_is_flat_over_500_reloads(tmp_path):
    """After 500 reloads RSS is within 10% of RSS after 50 (engines of a
    2,000-fact policy, requests between reloads, default gc_freeze)."""
    paths = _versions(tmp_path, 2000)
    store = PolicyStore(paths[0], watch=False, loader=_alternating(paths))
    try:
        reqs = [(("User", f"u{i % 200}"), ("Action", "read"), ("Doc", f"d{i}")) for i in range(50)]
        rss = {}
        for n in range(1, 501):
            assert store.reload().changed
            for q in reqs:
                store.authorize(*q)
            if n in (50, 500):
                rss[n] = _rss_bytes()
        assert rss[500] <= rss[50] * 1.10, rss
    finally:
        store.close()
