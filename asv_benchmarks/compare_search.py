"""Search and explain on the 100k-document scenario, with checks.

    python asv_benchmarks/compare_search.py [--users N] [--rounds R] [--docs N]

1. Builds the engine (``cache_size=0``: every ``authorize`` below is computed).
2. For each measured user and action: ``authorize`` on every candidate
   document (the baseline a caller without search would run) and
   ``search_resources`` (all pages); the two must give the same documents
   (the script exits 1 otherwise). Reports both times and the ratio, paired
   per (user, action), search taken as the median of ``--rounds`` runs.
3. ``search_subjects`` for a few documents against ``authorize`` for every
   user, the same way.
4. ``explain`` of permitted requests: the first call, then p50/p99 per call
   (and ``authorize`` p50 of the same requests, to show the box's speed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks"))

import search_scenario as S

import rune_fast


def all_pages(fn) -> list:
    out, token = [], None
    while True:
        page = fn(page_token=token)
        out.extend(page.results)
        token = page.next_token
        if token is None:
            return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--docs", type=int, default=S.N_DOCS)
    args = ap.parse_args()

    t0 = time.perf_counter()
    text = S.rune_text(args.docs)
    engine = rune_fast.load_text(text, cache_size=0)
    build = time.perf_counter() - t0
    docs = [rune_fast.Entity("Document", f"d{i}") for i in range(args.docs)]
    docs.sort()
    users = S.users(args.users)
    print(f"scenario: {args.docs} documents, {S.N_USERS} users; text {len(text) / 1e6:.1f} MB; "
          f"text + build {build:.1f} s")

    # warm-up: first search builds the known-entity and reverse indexes
    t0 = time.perf_counter()
    engine.search_resources(users[0], 'Action::"read"', "Document", limit=1)
    print(f"first search (builds candidate and reverse indexes once per engine): "
          f"{(time.perf_counter() - t0) * 1e3:.0f} ms")

    rows = []
    bad = 0
    for u in users:
        for act in ('Action::"read"', 'Action::"write"'):
            t0 = time.perf_counter()
            brute = [d for d in docs if engine.authorize(u, act, d).allowed]
            t_brute = time.perf_counter() - t0
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                got = all_pages(lambda u=u, act=act, **kw: engine.search_resources(u, act, "Document", limit=10_000, **kw))
                times.append(time.perf_counter() - t0)
            if got != brute:
                bad += 1
                print(f"MISMATCH {u} {act}: search {len(got)} vs authorize {len(brute)}")
            t_search = statistics.median(times)
            rows.append((u, act, len(brute), t_brute, t_search))
    print("\n| principal | action | allowed | authorize × 100k (ms) | search (ms) | speed-up |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for u, act, n, tb, ts in rows:
        print(f"| {u} | {act} | {n} | {tb * 1e3:.0f} | {ts * 1e3:.2f} | {tb / ts:.0f}× |")
    ratios = [tb / ts for _, _, _, tb, ts in rows]
    print(f"\nresource search speed-up: median {statistics.median(ratios):.0f}×, min {min(ratios):.0f}×")

    # subjects
    all_users = [rune_fast.Entity("User", f"u{i}") for i in range(S.N_USERS)]
    all_users.sort()
    srows = []
    for d in docs[:: max(1, len(docs) // 5)][:5]:
        t0 = time.perf_counter()
        brute = [u for u in all_users if engine.authorize(u, 'Action::"read"', d).allowed]
        tb = time.perf_counter() - t0
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            got = all_pages(lambda d=d, **kw: engine.search_subjects('Action::"read"', d, "User", limit=10_000, **kw))
            times.append(time.perf_counter() - t0)
        if got != brute:
            bad += 1
            print(f"MISMATCH subjects {d}: {len(got)} vs {len(brute)}")
        srows.append((d, len(brute), tb, statistics.median(times)))
    print("\n| resource | readers | authorize × 500 (ms) | search_subjects (ms) | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for d, n, tb, ts in srows:
        print(f"| {d} | {n} | {tb * 1e3:.1f} | {ts * 1e3:.2f} | {tb / ts:.0f}× |")

    # explain
    permitted = []
    for u, act, *_ in rows:
        page = engine.search_resources(u, act, "Document", limit=50)
        permitted += [(u, act, d) for d in page.results]
    permitted = permitted[:300]
    t0 = time.perf_counter()
    first = engine.explain(*permitted[0])
    t_first = time.perf_counter() - t0
    assert first.decision.allowed
    for req in permitted:  # warm: every relation's row locations read once
        engine.explain(*req)
    lat = []
    for _ in range(3):
        for req in permitted:
            t0 = time.perf_counter_ns()
            ex = engine.explain(*req)
            lat.append(time.perf_counter_ns() - t0)
            if not ex.decision.allowed:
                bad += 1
    lat.sort()
    p50 = lat[len(lat) // 2] / 1e3
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e3
    auth = []
    for req in permitted:
        t0 = time.perf_counter_ns()
        engine.authorize(*req)
        auth.append(time.perf_counter_ns() - t0)
    auth.sort()
    print(f"\nexplain of a permit ({len(permitted)} permitted requests x 3): first call {t_first * 1e3:.0f} ms, "
          f"then p50 {p50:.0f} µs, p99 {p99:.0f} µs "
          f"(authorize of the same requests, uncached: p50 {auth[len(auth) // 2] / 1e3:.1f} µs)")
    print(f"\nmismatches: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
