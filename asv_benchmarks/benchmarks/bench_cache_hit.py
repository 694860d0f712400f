"""The decision-cache hit path against the floor of a dict lookup.

``engine.authorize(p, a, r)`` on a warm cache (every request decided once,
``cache_size=4096``) over the 2,000 requests of the document-sharing scenario, with
entities written the two ways applications write them: literals
(``'User::"u1"'``) and ``("User", "u1")`` tuples. The floor is the same
lookup without an engine: ``floor(p, a, r)`` = ``d.get((p, a, r))`` over a
dict keyed like the requests, called as a function like ``authorize``, and
``d.get((p, a, r))`` written inline in the loop. Each figure is the best of
``REPEAT`` timed loops over the requests divided by their number (no
per-call timer); the garbage collector is frozen out of the way first.

Run alone: ``python asv_benchmarks/benchmarks/bench_cache_hit.py``.
"""

from __future__ import annotations

import gc
import os
import sys
import time

try:
    from . import auth_scenario as S
except ImportError:  # run or imported as a plain module
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import auth_scenario as S  # type: ignore[no-redef]

import rune_fast
from rune_fast.values import parse_entity_literal

REPEAT = 20


def _requests() -> tuple[str, list[tuple], list[tuple]]:
    w = S.make_world()
    literal = [S.rune_request(u, a, d) for u, a, d, _exp in S.requests(w)]
    tuples = [tuple(tuple(parse_entity_literal(x)) for x in q) for q in literal]
    return S.rune_text(w), literal, tuples


def _best_ns(loop, reqs) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        t0 = time.perf_counter_ns()
        loop(reqs)
        best = min(best, time.perf_counter_ns() - t0)
    return best / len(reqs)


def measure() -> dict[str, float]:
    text, literal, tuples = _requests()
    out: dict[str, float] = {}
    for form, reqs in (("literal", literal), ("tuple", tuples)):
        engine = rune_fast.load_text(text, cache_size=4096)  # one request form per engine, as in an application
        for q in reqs:
            engine.authorize(*q)
        assert all(engine.authorize(*q).cached for q in reqs)
        d = {q: engine.authorize(*q) for q in reqs}
        get = d.get

        def floor(p, a, r):
            return get((p, a, r))

        def loop_engine(rs, authorize=engine.authorize):
            for p, a, r in rs:
                authorize(p, a, r)

        def loop_floor(rs):
            for p, a, r in rs:
                floor(p, a, r)

        def loop_inline(rs):
            for p, a, r in rs:
                get((p, a, r))

        gc.collect()
        gc.freeze()
        try:
            hit = _best_ns(loop_engine, reqs)
            fl = _best_ns(loop_floor, reqs)
            inline = _best_ns(loop_inline, reqs)
        finally:
            gc.unfreeze()
        out[f"{form}_hit_ns"] = hit
        out[f"{form}_floor_ns"] = fl
        out[f"{form}_inline_ns"] = inline
        out[f"{form}_ratio"] = hit / fl
        out[f"{form}_ratio_inline"] = hit / inline
    return out


class TrackCacheHit:
    """Cache hit ÷ dict floor (a function doing ``d.get((p, a, r))``); target ≤ 2."""

    params = ["literal", "tuple"]
    param_names = ["entities"]
    unit = "ratio"
    timeout = 300

    def setup_cache(self):
        return measure()

    def track_hit_over_floor(self, r, form):
        """authorize (cache hit) ÷ floor(p, a, r)"""
        return r[f"{form}_ratio"]

    def track_hit_over_inline_lookup(self, r, form):
        """authorize (cache hit) ÷ an inline d.get((p, a, r))"""
        return r[f"{form}_ratio_inline"]


def main() -> None:
    r = measure()
    for form in ("literal", "tuple"):
        print(f"{form:8s} hit {r[form + '_hit_ns']:6.0f} ns  floor fn {r[form + '_floor_ns']:6.0f} ns "
              f"({r[form + '_ratio']:.2f}x)  inline d.get {r[form + '_inline_ns']:6.0f} ns "
              f"({r[form + '_ratio_inline']:.2f}x)")


if __name__ == "__main__":
    main()
