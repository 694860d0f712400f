"""Readers keep getting the GIL while a pathological load or request runs (issue #8, finding 9).

One thread runs something heavy in the Datalog core (a reload deriving
millions of tuples; a request that blows up until its deadline), another
calls ``authorize`` every millisecond and records how long each call took
from the moment it wanted to run. The issue asks for a p99 under 10 ms.

The bound is generous in one honest way: on a shared, loaded runner the
operating system alone delays a thread by milliseconds when another thread
of the process keeps a core busy. So the same reader is first measured
while the other thread burns CPU *without* holding the GIL (hashing a large
buffer): that is the best any GIL policy could give, and the bound is
``max(10 ms, 3 x that baseline's p99)``. The measurement runs in a fresh
interpreter, away from threads other tests may have left running. Before the fix the core released
the GIL and took it straight back, so readers waited for whole evaluations:
p99 of 60+ ms and stalls of a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import rune_fast
from rune_fast.datalog import _core, compiler

POLICY = 'version = "rune/1"\n[policies]\npermit(principal, action, resource) when { context.x == 1 };\n'


def reader_latencies(heavy) -> list[float]:
    engine = rune_fast.load_text(POLICY, cache_size=0)
    stop = threading.Event()
    lat: list[float] = []

    def reader() -> None:
        for _ in range(100_000):  # bounded; stopped by the event long before
            if stop.is_set():
                return
            t = time.perf_counter()
            time.sleep(0.001)
            d = engine.authorize('User::"u"', 'Action::"a"', 'Doc::"d"', context={"x": 1})
            lat.append(time.perf_counter() - t - 0.001)
            assert d.allowed

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.1)
        lat.clear()
        heavy()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    return sorted(lat)


def p99(lat: list[float]) -> float:
    assert len(lat) >= 50, len(lat)
    return lat[int(len(lat) * 0.99)]


def chain_bundle(n: int) -> str:
    edges = ", ".join(f"[{i}, {i + 1}]" for i in range(n))
    return ('version = "rune/1"\n[data]\nedge = [' + edges + ']\n[rules]\n'
            "path(X, Y) :- edge(X, Y).\npath(X, Z) :- path(X, Y), edge(Y, Z).\n")


def burn_without_the_gil(seconds: float) -> None:
    data = b"x" * (16 << 20)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        hashlib.sha256(data).digest()  # releases the GIL for large buffers


def measure() -> dict:
    # The hand-over under test is the compiled core's (the pure core is
    # Python code, switched by the interpreter itself): use it even under
    # RUNE_FAST_PURE=1.
    compiler.core = _core
    baseline_lat = reader_latencies(lambda: burn_without_the_gil(1.0))

    text = chain_bundle(1500)  # ~1.1 million path tuples: about a second of core work
    during_load = reader_latencies(lambda: rune_fast.load_text(text, load_deadline_ms=0))

    blowup = rune_fast.load_text(
        'version = "rune/1"\n[data]\nn = [' + ", ".join(f"[{i}]" for i in range(9000)) + "]\n[rules]\n"
        # 81 million aggregate matches, about 5 s of work on a fast idle core
        # (the 9 million of an earlier version took ~0.5 s: on a quiet machine
        # they sometimes finished before the deadline). The 500 ms deadline
        # stops it. The aggregate reads the request, so loading does not
        # evaluate it.
        'pairs(N) :- context("go", true), N = count : { context("go", true), n(X), n(Y), X != Y }.\n'
        "[policies]\npermit(principal, action, resource) when { pairs(0) };\n",
        cache_size=0, deadline_ms=500, max_request_tuples=10**9, max_request_model_bytes=1 << 40,
    )

    def heavy_request() -> None:
        for _ in range(3):  # 1.5 s in all: enough samples for a p99
            d = blowup.authorize('User::"u"', 'Action::"a"', 'Doc::"d"', context={"go": True})
            # stopped by its deadline: deny, with the limit as the reason
            assert not d.allowed and any("deadline_ms" in msg for _, msg in d.errors), (d.allowed, d.errors)

    during_request = reader_latencies(heavy_request)
    return {"baseline": baseline_lat, "reload": during_load, "request": during_request}


def run_measurement() -> tuple[dict, float]:
    # A fresh interpreter: threads left running by other tests of the suite
    # would compete for the GIL too and blur what is measured here.
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout.strip().splitlines()[-1])
    for name, lat in runs.items():
        print(f"reader latency during {name}: n={len(lat)} p50={lat[len(lat) // 2] * 1e3:.2f} ms "
              f"p99={p99(lat) * 1e3:.2f} ms max={lat[-1] * 1e3:.2f} ms")
    return runs, max(0.010, 3 * p99(runs["baseline"]))


def test_authorize_gets_turns_during_a_heavy_reload_and_a_heavy_request():
    # A neighbour on a shared runner can spoil one measurement (the baseline
    # tail moves by tens of ms); fail only if two in a row miss. The core
    # that never handed the GIL over missed by 20x.
    misses = []
    for _ in range(2):
        runs, bound = run_measurement()
        worst = max(p99(runs["reload"]), p99(runs["request"]))
        if worst < bound:
            return
        misses.append((worst, bound))
    raise AssertionError(f"reader p99 above the bound twice: {misses}")


if __name__ == "__main__":
    print(json.dumps(measure()))
