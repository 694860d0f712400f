"""rune_fast vs cedarpy vs pycasbin vs a dict lookup, on the document-sharing scenario, in one run.

    python asv_benchmarks/compare_authz.py                 # 7 rounds, prints a markdown report
    python asv_benchmarks/compare_authz.py --rounds 3 --casbin-rounds 1

The scenario (``benchmarks/auth_scenario.py``) is generated once; every
engine is first checked against the generator's oracle on all 2,000 requests
(0 mismatches required, else exit 1). Then each measurement is repeated
``--rounds`` times, the measurements interleaved round by round so that
background load hits all of them alike, and the report gives the median over
rounds. Targets are checked on ratios of those medians (same run).

Rows (every ``authorize`` row states its cache setting):

- rune_fast ``engine.authorize`` with ``cache_size=0`` (no decision cache;
  the engine's memo of parsed entity literals is warm after a first pass) and
  with ``cache_size=4096`` after every request was decided once (all hits);
  ``engine.authorize_batch`` over the 2,000 requests, both settings.
- cedarpy ``is_authorized`` / ``is_authorized_batch`` with pre-parsed handles
  ``cedarpy.PolicySet.from_str(...)`` and ``cedarpy.Entities.from_json_str(...)``
  (the fastest form this cedarpy offers; policies and entities are not
  re-parsed per call). Requests are dicts without ``context`` (a context dict
  makes cedarpy's wrapper ``json.dumps`` and copy it per call), in two forms:
  entity literals (``'User::"u1"'``) and ``{"type", "id"}`` dicts; the faster
  median is the one the targets use.
- pycasbin ``Enforcer.enforce(user, doc, action)`` on the model in
  ``auth_scenario.py`` (clearance < 3, secret and suspended precomputed as
  roles; see there).
- the floor: ``floor(p, a, r)`` = ``d.get((p, a, r))`` over a dict of the
  precomputed answers, called as a function like ``authorize``; and the same
  lookup written inline in the loop.

p50/p99 come from ``time.perf_counter_ns`` around each call (the timer pair
itself costs what the "timer only" row shows; it is included in every p50/p99
and not subtracted). "mean/req" is a plain loop over the 2,000 requests timed
as a whole, divided by 2,000 (no per-call timer). The garbage collector stays
enabled; the long-lived objects (scenario, engines, cedarpy handles, casbin
enforcer) are moved out of its view with ``gc.freeze()`` before measuring, so
that a build pays for its own garbage, not for scanning its peers' heaps.

Build rows: ``rune_fast.load_text(text, cache_size=0)`` on the one ``.rune``
text in memory; ``PolicySet.from_str`` + ``Entities.from_json_str`` on the
Cedar policy text and entities JSON (strings in memory); ``tomllib.loads`` and
``rtoml.loads`` on the ``[data]`` section alone; the casbin ``Enforcer``
(model + policy files) for reference.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)  # this checkout's rune_fast, whatever is installed
sys.path.insert(0, os.path.join(HERE, "benchmarks"))

import auth_scenario as S

import rune_fast

pc = time.perf_counter_ns


# ---------------------------------------------------------------------------
# measurement helpers


def per_call(fn, reqs, passes: int) -> list[int]:
    """Sorted per-call ns of ``fn(*req)`` over ``passes`` passes."""
    out: list[int] = []
    append = out.append
    for _ in range(passes):
        for q in reqs:
            t0 = pc()
            fn(*q)
            append(pc() - t0)
    out.sort()
    return out


def per_call_inline_dict(d, reqs, passes: int) -> list[int]:
    out: list[int] = []
    append = out.append
    get = d.get
    for _ in range(passes):
        for p, a, r in reqs:
            t0 = pc()
            get((p, a, r))
            append(pc() - t0)
    out.sort()
    return out


def per_call_timer_only(reqs, passes: int) -> list[int]:
    out: list[int] = []
    append = out.append
    for _ in range(passes):
        for _q in reqs:
            t0 = pc()
            append(pc() - t0)
    out.sort()
    return out


def loop_ns(fn, reqs, passes: int) -> int:
    """Median over ``passes`` of the time (ns) of one plain loop of ``fn(*req)`` over ``reqs``."""
    times = []
    for _ in range(passes):
        t0 = pc()
        for q in reqs:
            fn(*q)
        times.append(pc() - t0)
    return statistics.median(times)


def loop_inline_dict_ns(d, reqs, passes: int) -> int:
    times = []
    get = d.get
    for _ in range(passes):
        t0 = pc()
        for p, a, r in reqs:
            get((p, a, r))
        times.append(pc() - t0)
    return statistics.median(times)


def pct(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, max(0, round(q / 100.0 * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1000.0


def timed_ms(fn) -> float:
    t0 = pc()
    fn()
    return (pc() - t0) / 1e6


class Stats:
    """Per-round values of every metric; reported as medians."""

    def __init__(self) -> None:
        self.v: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.v.setdefault(key, []).append(value)

    def med(self, key: str) -> float | None:
        xs = self.v.get(key)
        return statistics.median(xs) if xs else None

    def rng(self, key: str) -> tuple[float, float] | None:
        xs = self.v.get(key)
        return (min(xs), max(xs)) if xs else None


def fmt(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{nd}f}"


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="repetitions of every measurement (median reported)")
    ap.add_argument("--passes", type=int, default=3, help="passes over the 2,000 requests per round (fast rows)")
    ap.add_argument("--chunks", type=int, default=10, help="request chunks interleaved across engines")
    ap.add_argument("--casbin-rounds", type=int, default=3, help="rounds for pycasbin (slow: ~1-2 ms a call)")
    ap.add_argument("--no-casbin", action="store_true")
    ap.add_argument("--no-verify", action="store_true", help="skip the oracle check (not for reported numbers)")
    args = ap.parse_args(argv)

    import json

    import cedarpy
    import rtoml
    import tomllib

    try:
        import casbin
    except ImportError:
        casbin = None
        args.no_casbin = True

    from importlib.metadata import version

    load0 = os.getloadavg()
    t_start = time.time()
    w = S.make_world()
    text = S.rune_text(w)
    data_toml = S.rune_data_toml(w)
    pol_text = S.cedar_policies(w)
    ents_json = S.cedar_entities_json(w)
    reqs4 = S.requests(w)
    expected = {S.rune_request(u, a, d): exp == "permit" for u, a, d, exp in reqs4}
    rune_reqs = [S.rune_request(u, a, d) for u, a, d, _ in reqs4]
    cedar_str = [({"principal": p, "action": a, "resource": r},) for p, a, r in rune_reqs]
    cedar_uid = [
        ({"principal": {"type": "User", "id": u}, "action": {"type": "Action", "id": a},
          "resource": {"type": "Document", "id": d}},)
        for u, a, d, _ in reqs4
    ]
    casbin_reqs = [(u, d, a) for u, a, d, _ in reqs4]
    n = len(rune_reqs)

    print(f"# compare_authz: {n} requests, rounds={args.rounds}, passes={args.passes}", file=sys.stderr)
    print(f"rune_fast from {os.path.dirname(rune_fast.__file__)}", file=sys.stderr)

    if not args.no_verify:
        counts = S.verify(w, reqs4, casbin=not args.no_casbin, out=lambda s: print(s, file=sys.stderr))
        if any(counts.values()):
            print("MISMATCHES against the oracle: not reporting numbers", file=sys.stderr)
            return 1
    else:
        counts = {}

    # Engines and handles used by the request rows.
    eng_u = rune_fast.load_text(text, cache_size=0)
    eng_c = rune_fast.load_text(text, cache_size=4096)
    ps = cedarpy.PolicySet.from_str(pol_text)
    ents = cedarpy.Entities.from_json_str(ents_json)
    enf = S.casbin_enforcer(w) if not args.no_casbin else None
    floor_d = dict(expected)
    floor_get = floor_d.get

    def floor(p, a, r):
        return floor_get((p, a, r))

    def cedar_single(req):
        return cedarpy.is_authorized(req, ps, ents)

    cedar_batch_str = [q for (q,) in cedar_str]
    cedar_batch_uid = [q for (q,) in cedar_uid]

    # warm-up: entity memo, cache fill, first-call costs everywhere
    for q in rune_reqs:
        eng_u.authorize(*q)
        eng_c.authorize(*q)
    assert eng_c.cache_len() == n and all(eng_c.authorize(*q).cached for q in rune_reqs), "cache not warm"
    assert not any(eng_u.authorize(*q).cached for q in rune_reqs[:100])
    for (q,) in cedar_str[:50]:
        cedar_single(q)
    if enf is not None:
        for q in casbin_reqs[:20]:
            enf.enforce(*q)

    # Everything long-lived exists now (scenario, engines, handles, enforcer):
    # move it out of the collector's view, so that a build measured below
    # pays for collecting its own objects and not for scanning these.
    gc.collect()
    gc.freeze()

    st = Stats()
    P = args.passes
    chunk = max(1, n // args.chunks)
    chunks = [list(range(i, min(n, i + chunk))) for i in range(0, n, chunk)]
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr)
        with_casbin = enf is not None and rnd < args.casbin_rounds
        # builds, in A B B A order so a drift in background load hits both alike
        br, bcd = [], []
        br.append(timed_ms(lambda: rune_fast.load_text(text, cache_size=0)))
        bcd.append(timed_ms(lambda: (cedarpy.PolicySet.from_str(pol_text), cedarpy.Entities.from_json_str(ents_json))))
        bcd.append(timed_ms(lambda: (cedarpy.PolicySet.from_str(pol_text), cedarpy.Entities.from_json_str(ents_json))))
        br.append(timed_ms(lambda: rune_fast.load_text(text, cache_size=0)))
        st.add("build_rune", statistics.mean(br))
        st.add("build_cedar", statistics.mean(bcd))
        st.add("ratio_build", sum(br) / sum(bcd))
        st.add("build_tomllib", timed_ms(lambda: tomllib.loads(data_toml)))
        st.add("build_rtoml", timed_ms(lambda: rtoml.loads(data_toml)))
        st.add("build_json", timed_ms(lambda: json.loads(ents_json)))
        if with_casbin:
            st.add("build_casbin", timed_ms(lambda: S.casbin_enforcer(w)))
        gc.collect()

        # Per-call samples, chunk by chunk: every engine runs the same
        # ~200 requests back to back, so all see the same background load.
        rows = [
            ("rune_u", eng_u.authorize, rune_reqs, P),
            ("rune_c", eng_c.authorize, rune_reqs, P),
            ("floor_fn", floor, rune_reqs, P),
            ("cedar_str", cedar_single, cedar_str, 1),
            ("cedar_uid", cedar_single, cedar_uid, 1),
        ]
        if with_casbin:
            rows.append(("casbin", enf.enforce, casbin_reqs, 1))
        samples: dict[str, list[int]] = {k: [] for k, *_ in rows}
        samples["floor_inline"], samples["timer"] = [], []
        loops: dict[str, int] = {"rune_u": 0, "rune_c": 0, "floor_fn": 0, "floor_inline": 0}
        for idx in chunks:
            for key, fn, rq, passes in rows:
                sub = [rq[i] for i in idx]
                samples[key] += per_call(fn, sub, passes)
            sub = [rune_reqs[i] for i in idx]
            samples["floor_inline"] += per_call_inline_dict(floor_d, sub, P)
            samples["timer"] += per_call_timer_only(sub, P)
            # whole-loop means (no per-call timer), median of P passes per chunk
            loops["rune_u"] += loop_ns(eng_u.authorize, sub, P)
            loops["rune_c"] += loop_ns(eng_c.authorize, sub, P)
            loops["floor_fn"] += loop_ns(floor, sub, P)
            loops["floor_inline"] += loop_inline_dict_ns(floor_d, sub, P)
        for s in samples.values():
            s.sort()
        cref = min(("cedar_str", "cedar_uid"), key=lambda k: pct(samples[k], 50))
        for key, s in samples.items():
            st.add(key + "_p50", pct(s, 50))
            st.add(key + "_p99", pct(s, 99))
            st.add(key + "_vs_cedar", pct(samples[cref], 50) / pct(s, 50))
            if key in ("cedar_str", "cedar_uid", "casbin"):  # one pass: the samples give the mean
                st.add(key + "_mean", sum(s) / len(s) / 1000.0)
        for key, t in loops.items():
            st.add(key + "_mean", t / n / 1000.0)
        st.add("ratio_p50", pct(samples[cref], 50) / pct(samples["rune_u"], 50))
        st.add("ratio_p99", pct(samples[cref], 99) / pct(samples["rune_u"], 99))
        st.add("ratio_cached", loops["rune_c"] / loops["floor_fn"])

        st.add("rune_batch_u_mean", timed_ms(lambda: eng_u.authorize_batch(rune_reqs)) * 1000 / n)
        st.add("rune_batch_c_mean", timed_ms(lambda: eng_c.authorize_batch(rune_reqs)) * 1000 / n)
        st.add("cedar_batch_str_mean", timed_ms(lambda: cedarpy.is_authorized_batch(cedar_batch_str, ps, ents)) * 1000 / n)
        st.add("cedar_batch_uid_mean", timed_ms(lambda: cedarpy.is_authorized_batch(cedar_batch_uid, ps, ents)) * 1000 / n)
        gc.collect()

    load1 = os.getloadavg()
    m = st.med


    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    out = []
    out.append(f"Scenario: document sharing, seed {w.seed}: {len(w.users)} users, {len(w.groups)} groups, "
               f"{len(w.folders)} folders, {len(w.docs)} documents, {len(w.grants)} grants, {n} requests "
               f"({sum(expected.values())} allowed). Oracle check: "
               + (", ".join(f"{k} {v}" for k, v in counts.items()) + " mismatches" if counts else "skipped") + ".")
    out.append("")
    out.append(f"Python {platform.python_version()}, cedarpy {version('cedarpy')}"
               + (f", casbin {version('casbin')}" if casbin else "") + f", rtoml {version('rtoml')}; "
               f"{os.cpu_count()} CPUs, load average {load0[0]:.1f} at start, {load1[0]:.1f} at end; "
               f"{args.rounds} rounds (casbin {min(args.casbin_rounds, args.rounds) if enf else 0}), medians; "
               f"{time.time() - t_start:.0f} s.")
    out.append("")
    out.append("| request path | cache | p50 µs | p99 µs | mean µs/req | cedarpy single p50 ÷ this p50 (paired per round) |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: |")

    def row(label, cache, key, mean_key=None):
        p50, p99 = m(key + "_p50"), m(key + "_p99")
        mean = m(mean_key or key + "_mean")
        r = m(key + "_vs_cedar")
        out.append(f"| {label} | {cache} | {fmt(p50)} | {fmt(p99)} | {fmt(mean)} | {fmt(r, 1) + '×' if r else '—'} |")

    row("rune_fast `engine.authorize`", "off (`cache_size=0`)", "rune_u")
    row("rune_fast `engine.authorize`", "on, all hits (`cache_size=4096`)", "rune_c")
    row("rune_fast `engine.authorize_batch` (per request)", "off", "rune_batch_u")
    row("rune_fast `engine.authorize_batch` (per request)", "on, all hits", "rune_batch_c")
    form = {"cedar_str": "literal strings", "cedar_uid": "type/id dicts"}
    row(f"cedarpy `is_authorized`, pre-parsed `PolicySet`+`Entities`, {form['cedar_str']}", "n/a (none)", "cedar_str")
    row(f"cedarpy `is_authorized`, pre-parsed `PolicySet`+`Entities`, {form['cedar_uid']}", "n/a (none)", "cedar_uid")
    row("cedarpy `is_authorized_batch` (per request), literal strings", "n/a (none)", "cedar_batch_str")
    row("cedarpy `is_authorized_batch` (per request), type/id dicts", "n/a (none)", "cedar_batch_uid")
    if enf is not None:
        row("pycasbin `enforce`", "n/a (none)", "casbin")
    row("floor: `floor(p, a, r)` = `d.get((p, a, r))`", "precomputed answers", "floor_fn")
    row("floor: `d.get((p, a, r))` inline", "precomputed answers", "floor_inline")
    row("timer only (`perf_counter_ns` pair)", "—", "timer", mean_key="none")
    out.append("")
    out.append("| build / parse | median ms | min–max ms | ÷ cedarpy parse |")
    out.append("| --- | ---: | ---: | ---: |")
    bc = m("build_cedar")
    for label, key in [
        ("rune_fast `load_text(text, cache_size=0)` (one `.rune` text in memory)", "build_rune"),
        ("cedarpy `PolicySet.from_str` + `Entities.from_json_str`", "build_cedar"),
        ("`tomllib.loads` of the `[data]` section alone", "build_tomllib"),
        ("`rtoml.loads` of the `[data]` section alone", "build_rtoml"),
        ("`json.loads` of the Cedar entities JSON alone", "build_json"),
        ("pycasbin `Enforcer(model, policy)` (files)", "build_casbin"),
    ]:
        if st.med(key) is None:
            continue
        lo, hi = st.rng(key)
        out.append(f"| {label} | {fmt(m(key), 1)} | {fmt(lo, 1)}–{fmt(hi, 1)} | {ratio(m(key), bc):.2f} |")
    lo, hi = st.rng("ratio_build")
    out.append(f"| rune_fast build ÷ cedarpy parse, paired within each round | | | "
               f"{m('ratio_build'):.2f} ({lo:.2f}–{hi:.2f}) |")
    out.append("")

    # targets: medians of the per-round ratios (each ratio paired within one round)
    r50, r99 = m("ratio_p50"), m("ratio_p99")
    rc_loop = m("ratio_cached")
    rc_p50 = ratio(m("rune_c_p50"), m("floor_fn_p50"))
    rc_inline = ratio(m("rune_c_mean"), m("floor_inline_mean"))
    rb = m("ratio_build")

    def ok(b: bool) -> str:
        return "**met**" if b else "**missed**"

    out.append("Targets (median over rounds of the ratio measured within each round; cedarpy reference: "
               "the faster of its two request forms in that round):")
    out.append("")
    out.append(f"- uncached p50 ≥ 20× faster than cedarpy single: {fmt(r50, 1)}× — {ok(r50 >= 20)}")
    out.append(f"- uncached p99 ≥ 10× faster than cedarpy single: {fmt(r99, 1)}× — {ok(r99 >= 10)}")
    out.append(f"- cached ≤ 2× the dict floor (function call, loop mean): {rc_loop:.2f}× — {ok(rc_loop <= 2)} "
               f"(per-call p50 incl. timer: {rc_p50:.2f}×; vs the inline lookup: {rc_inline:.2f}×)")
    out.append(f"- build ≤ 50% of cedarpy parse: {100 * rb:.0f}% — {ok(rb <= 0.5)}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
