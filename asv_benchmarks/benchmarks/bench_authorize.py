"""asv benchmarks of the engine on the document-sharing scenario (auth_scenario.py).

The scenario (200 users, 20 nested groups, 50 folders, 5,000 documents, 40
grants, 2,000 seeded requests, half allowed) comes from ``auth_scenario.py``;
its docstring describes the model. Every benchmark states whether the
decision cache is on:

- ``TimeBuild.time_load_text``: ``rune_fast.load_text(text, cache_size=0)``
  on the scenario's one ``.rune`` text, already in memory (parse + checks +
  rule evaluation + policy compilation).
- ``TimeAuthorize.time_authorize_uncached``: the 2,000 requests through
  ``engine.authorize`` with ``cache_size=0`` (no decision cache; the engine's
  memo of parsed entity literals is warm, as in a running service).
- ``TimeAuthorize.time_authorize_cached``: the same with the default cache
  (``cache_size=4096``), every request already cached (warm: all hits).
- ``TimeAuthorize.time_authorize_batch_uncached``: one
  ``engine.authorize_batch`` of the 2,000 requests, ``cache_size=0``.
- ``TrackLatency.track_*``: per-call p50 / p99 in microseconds, uncached
  (``cache_size=0``) and cached (warm), from ``time.perf_counter_ns`` around
  each call over ``PASSES`` passes of the 2,000 requests (after one unrecorded
  warm-up pass). The two ``perf_counter_ns`` calls (~0.05-0.1 us) are
  included; the garbage collector stays enabled.

Peers (cedarpy, casbin, a dict lookup) are measured side by side in
``asv_benchmarks/compare_authz.py``.
"""

from __future__ import annotations

import functools
import os
import sys
import time

try:
    from . import auth_scenario as S
except ImportError:  # run or imported as a plain module
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import auth_scenario as S  # type: ignore[no-redef]

import rune_fast

PASSES = 5


@functools.cache
def scenario() -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """The ``.rune`` text and the 2,000 ``(principal, action, resource)`` literals."""
    w = S.make_world()
    reqs = tuple(S.rune_request(u, a, d) for u, a, d, _exp in S.requests(w))
    return S.rune_text(w), reqs


def per_call_ns(fn, reqs, passes: int = PASSES) -> list[int]:
    """Sorted per-call times (ns) of ``fn(p, a, r)`` over ``passes`` passes."""
    pc = time.perf_counter_ns
    for p, a, r in reqs:  # warm-up, not recorded
        fn(p, a, r)
    out = []
    append = out.append
    for _ in range(passes):
        for p, a, r in reqs:
            t0 = pc()
            fn(p, a, r)
            append(pc() - t0)
    out.sort()
    return out


def percentile_us(sorted_ns: list[int], q: float) -> float:
    """The q-th percentile (nearest rank) of sorted nanosecond samples, in us."""
    i = min(len(sorted_ns) - 1, max(0, round(q / 100.0 * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1000.0


class TimeBuild:
    """Engine build from the in-memory ``.rune`` text (``cache_size=0``)."""

    timeout = 120

    def setup(self):
        self.text, _ = scenario()

    def time_load_text(self):
        rune_fast.load_text(self.text, cache_size=0)

    def peakmem_load_text(self):
        rune_fast.load_text(self.text, cache_size=0)


class TimeAuthorize:
    """The 2,000 requests, one call each: uncached (``cache_size=0``), cached
    (``cache_size=4096``, all warm) and one uncached batch."""

    timeout = 120

    def setup(self):
        self.text, self.reqs = scenario()
        self.uncached = rune_fast.load_text(self.text, cache_size=0)
        self.cached = rune_fast.load_text(self.text, cache_size=4096)
        self.batch = list(self.reqs)
        for p, a, r in self.reqs:  # warm the entity memo and fill the cache
            self.uncached.authorize(p, a, r)
            self.cached.authorize(p, a, r)

    def time_authorize_uncached(self):
        authorize = self.uncached.authorize
        for p, a, r in self.reqs:
            authorize(p, a, r)

    def time_authorize_cached(self):
        authorize = self.cached.authorize
        for p, a, r in self.reqs:
            authorize(p, a, r)

    def time_authorize_batch_uncached(self):
        self.uncached.authorize_batch(self.batch)


class TrackLatency:
    """Per-call latency percentiles in microseconds (``perf_counter_ns``
    around each call, ``PASSES`` passes over the 2,000 requests)."""

    unit = "us"
    timeout = 180

    def setup_cache(self):
        text, reqs = scenario()
        uncached = rune_fast.load_text(text, cache_size=0)
        cached = rune_fast.load_text(text, cache_size=4096)
        u = per_call_ns(uncached.authorize, reqs)
        c = per_call_ns(cached.authorize, reqs)
        return {
            "uncached_p50": percentile_us(u, 50),
            "uncached_p99": percentile_us(u, 99),
            "cached_p50": percentile_us(c, 50),
            "cached_p99": percentile_us(c, 99),
        }

    def track_uncached_p50(self, r):
        """``authorize`` p50, ``cache_size=0``."""
        return r["uncached_p50"]

    def track_uncached_p99(self, r):
        """``authorize`` p99, ``cache_size=0``."""
        return r["uncached_p99"]

    def track_cached_p50(self, r):
        """``authorize`` p50, ``cache_size=4096``, all requests cached."""
        return r["cached_p50"]

    def track_cached_p99(self, r):
        """``authorize`` p99, ``cache_size=4096``, all requests cached."""
        return r["cached_p99"]
