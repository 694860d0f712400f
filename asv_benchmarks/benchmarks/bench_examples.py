"""Uncached ``authorize`` on the bundled examples, over their own embedded tests.

Each example (``examples/*.rune``) is loaded with ``cache_size=0`` and its
``[tests.*]`` requests are sent the way an application sends them:
``engine.authorize(principal, action, resource, context)`` with the entity
literals and the context dict exactly as written in the test (``context``
is ``None`` when the test has none; the tests carry no request entities).
Latency is ``time.perf_counter_ns`` around each call, ``PASSES`` passes over
the tests after one unrecorded warm-up pass, garbage collector enabled.

Rules that read the request (``cleared/2`` in ``doc_sharing``,
``would_exceed/1`` in ``api_rate_limit``, most of ``agent_guardrails``) are
answered by the engine's per-request plans (``rune_fast/request_plans/``);
``track_general_*`` measures the same requests with the plans switched off
(the general evaluator: the request's model computed bottom-up), for
comparison.

Run alone: ``python asv_benchmarks/benchmarks/bench_examples.py`` (``--runs 5``:
best of five measurements per example, for a shared machine).
"""

from __future__ import annotations

import os
import sys
import time

import rune_fast

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
NAMES = ("doc_sharing", "api_rate_limit", "agent_guardrails")
PASSES = 400


def example_requests(engine) -> list[tuple]:
    return [(t.principal, t.action, t.resource, t.context or None) for t in engine.tests]


def per_call_ns(engine, reqs: list, passes: int = PASSES) -> list[int]:
    """Sorted per-call times (ns) of ``engine.authorize`` over ``passes`` passes."""
    authorize = engine.authorize
    pc = time.perf_counter_ns
    for req in reqs:
        authorize(*req)
    out: list[int] = []
    append = out.append
    for _ in range(passes):
        for req in reqs:
            t0 = pc()
            authorize(*req)
            append(pc() - t0)
    out.sort()
    return out


def percentile_us(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, max(0, round(q / 100.0 * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1000.0


def measure(name: str, plans: bool = True, passes: int = PASSES) -> dict[str, float]:
    engine = rune_fast.load(os.path.join(EXAMPLES_DIR, f"{name}.rune"), cache_size=0)
    if not plans:
        from rune_fast.engine import _without_request_plans

        _without_request_plans(engine)
    ns = per_call_ns(engine, example_requests(engine), passes)
    return {"p50": percentile_us(ns, 50), "p99": percentile_us(ns, 99)}


class TrackExamples:
    """Per-call latency (us) of uncached ``authorize`` over each example's tests."""

    params = list(NAMES)
    param_names = ["example"]
    unit = "us"
    timeout = 300

    def setup_cache(self):
        return {name: {"plans": measure(name), "general": measure(name, plans=False, passes=40)} for name in NAMES}

    def track_uncached_p50(self, r, name):
        """p50, per-request plans on (the default)."""
        return r[name]["plans"]["p50"]

    def track_uncached_p99(self, r, name):
        """p99, per-request plans on (the default)."""
        return r[name]["plans"]["p99"]

    def track_general_p50(self, r, name):
        """p50 with the per-request plans off (general evaluator)."""
        return r[name]["general"]["p50"]

    def track_general_p99(self, r, name):
        """p99 with the per-request plans off (general evaluator)."""
        return r[name]["general"]["p99"]


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1,
                    help="measure each example this many times (a fresh engine each) and report the best "
                         "p50 and the best p99 (a shared machine's load only ever adds latency)")
    args = ap.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'example':18s} {'p50 us':>8s} {'p99 us':>8s}   general: {'p50':>7s} {'p99':>7s}")
    for name in NAMES:
        runs = [measure(name) for _ in range(max(1, args.runs))]
        m = {"p50": min(r["p50"] for r in runs), "p99": min(r["p99"] for r in runs)}
        g = measure(name, plans=False, passes=40)
        print(f"{name:18s} {m['p50']:8.2f} {m['p99']:8.2f}            {g['p50']:7.1f} {g['p99']:7.1f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main(sys.argv[1:])
