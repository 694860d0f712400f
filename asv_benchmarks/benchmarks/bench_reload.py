"""Hot-reload benchmarks: reload time, and authorize latency during reloads.

asv: ``TimeReload`` (compile + swap of the examples and of a 10^5-fact
policy) and ``TrackReloadLatency`` (p99 ``authorize`` latency while a
background thread reloads continuously, next to the steady-state p99 of the
same run, and their ratio; the target is a ratio <= 1.5).

Also a script, for docs/reload.md:

    python asv_benchmarks/benchmarks/bench_reload.py                 # everything
    python asv_benchmarks/benchmarks/bench_reload.py --skip-times --threads 2
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if __name__ == "__main__" and __package__ in (None, ""):  # running from a checkout
    sys.path.insert(0, REPO)

from rune_fast import PolicyStore

EXAMPLES = os.path.join(REPO, "examples")


def fact_policy(n_facts: int, variant: int = 0) -> str:
    """A policy whose size is its data: ``n_facts`` ownership and membership
    facts, a recursive rule over them, and policies that call the relations.
    ``variant`` changes one fact, giving a different version of equal cost."""
    n_users = max(n_facts // 10, 10)
    n_groups = max(n_users // 50, 4)
    owner = []
    for i in range(n_facts // 2):
        owner.append(f"['User::\"u{i % n_users}\"', 'Doc::\"d{i}\"']")
    member = []
    for i in range(n_facts - len(owner) - n_groups):
        member.append(f"['User::\"u{i % n_users}\"', 'Group::\"g{i % n_groups}\"']")
    for g in range(1, n_groups):
        member.append(f"['Group::\"g{g}\"', 'Group::\"g{g // 2}\"']")
    member.append(f"['User::\"variant{variant}\"', 'Group::\"g0\"']")
    return f"""version = "rune/1"

[data]
owner = [
{",".join(owner)}
]
member = [
{",".join(member)}
]

[rules]
in_group(X, G) :- member(X, G).
in_group(X, G) :- member(X, H), in_group(H, G).
owns(U, D) :- owner(U, D).

[policies]
@id("owner")
permit(principal, action, resource is Doc) when {{ owns(principal, resource) }};
@id("staff-read")
permit(principal, action == Action::"read", resource is Doc) when {{ in_group(principal, Group::"g1") }};
@id("no-delete")
forbid(principal, action == Action::"delete", resource) unless {{ owns(principal, resource) }};
"""


def _write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _alternating(paths: list[str]) -> Callable[..., Any]:
    """A loader (the real ``rune_fast.engine.load``) that alternates between
    equally expensive versions, so every reload compiles *and* swaps."""
    from rune_fast.engine import load

    state = {"i": 0}

    def loader(_path: str, **options: Any) -> Any:
        state["i"] += 1
        return load(paths[state["i"] % len(paths)], **options)

    return loader


def _requests(n_facts: int, count: int = 2000) -> list[tuple]:
    n_users = max(n_facts // 10, 10)
    out = []
    actions = ["read", "write", "delete"]
    for i in range(count):
        doc = (i * 7919) % max(n_facts // 2, 1)
        user = (doc % n_users) if i % 2 else (i * 31) % n_users
        out.append((("User", f"u{user}"), ("Action", actions[i % 3]), ("Doc", f"d{doc}")))
    return out


def _percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    k = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[k] / 1000.0  # microseconds


def measure_reload_latency(
    n_facts: int = 100_000,
    seconds: float = 3.0,
    threads: int = 1,
    cache_size: int = 0,
    workdir: str | None = None,
) -> dict:
    """p50/p99 of ``store.authorize`` with and without continuous reloading.

    One run: steady phase (seconds/2), reload phase (seconds; a background
    thread calls ``store.reload()`` back to back, each one compiling a fresh
    engine and swapping it in), steady phase again (seconds/2). ``threads``
    request threads call ``authorize`` in a closed loop over a fixed set of
    requests; ``cache_size=0`` turns the engine's decision cache off so every
    call evaluates.
    """
    tmp = workdir or tempfile.mkdtemp(prefix="rune-reload-bench-")
    try:
        paths = [_write(os.path.join(tmp, f"v{v}.rune"), fact_policy(n_facts, v)) for v in (0, 1)]
        opts = {"cache_size": cache_size} if cache_size is not None else {}
        store = PolicyStore(paths[0], watch=False, loader=_alternating(paths), **opts)
        reqs = _requests(n_facts)
        for r in reqs[:200]:  # warm up code paths
            store.authorize(*r)

        phase = {"name": "steady"}
        samples: dict[str, list[int]] = {"steady": [], "reload": []}
        lock = threading.Lock()
        stop = threading.Event()

        def requester(offset: int) -> None:
            local: dict[str, list[int]] = {"steady": [], "reload": []}
            pc = time.perf_counter_ns
            i = offset
            n = len(reqs)
            while not stop.is_set():
                p, a, r = reqs[i % n]
                i += 1
                name = phase["name"]
                t0 = pc()
                store.authorize(p, a, r)
                local[name].append(pc() - t0)
            with lock:
                for k, v in local.items():
                    samples[k].extend(v)

        reload_durations: list[float] = []
        reloading = threading.Event()

        def reloader() -> None:
            while not stop.is_set():
                if not reloading.wait(0.05):
                    continue
                res = store.reload()
                if res.ok:
                    reload_durations.append(res.duration)

        workers = [threading.Thread(target=requester, args=(k * 997,), daemon=True) for k in range(threads)]
        bg = threading.Thread(target=reloader, daemon=True)
        gc.collect()
        for t in workers:
            t.start()
        bg.start()
        time.sleep(seconds / 2)
        phase["name"] = "reload"
        reloading.set()
        time.sleep(seconds)
        reloading.clear()
        # let an in-flight reload finish before measuring steady state again
        deadline = time.monotonic() + 60
        attempts = store.stats.attempts
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if store.stats.attempts == attempts:
                break
            attempts = store.stats.attempts
        phase["name"] = "steady"
        time.sleep(seconds / 2)
        stop.set()
        for t in workers:
            t.join(30)
        bg.join(120)
        store.close()

        steady = sorted(samples["steady"])
        during = sorted(samples["reload"])
        res = {
            "n_facts": n_facts,
            "threads": threads,
            "cache_size": cache_size,
            "reloads": len(reload_durations),
            "reload_mean_ms": statistics.fmean(reload_durations) * 1000 if reload_durations else float("nan"),
            "steady_calls": len(steady),
            "reload_calls": len(during),
            "steady_p50_us": _percentile(steady, 0.50),
            "steady_p99_us": _percentile(steady, 0.99),
            "steady_p999_us": _percentile(steady, 0.999),
            "reload_p50_us": _percentile(during, 0.50),
            "reload_p99_us": _percentile(during, 0.99),
            "reload_p999_us": _percentile(during, 0.999),
            "steady_max_us": _percentile(steady, 1.0),
            "reload_max_us": _percentile(during, 1.0),
            # calls per second of request-thread time: what the reload costs in throughput
            "steady_calls_per_s": len(steady) / seconds,
            "reload_calls_per_s": len(during) / seconds,
        }
        res["p99_ratio"] = res["reload_p99_us"] / res["steady_p99_us"]
        return res
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def measure_reload_time(path: str, repeat: int = 5, **options: Any) -> dict:
    """Median/min wall time of one reload (read, parse, check, compile, swap)."""
    tmp = tempfile.mkdtemp(prefix="rune-reload-time-")
    try:
        if os.path.isdir(path):
            src_paths = [path]
            other = os.path.join(tmp, "copy")
            shutil.copytree(path, other)
            src_paths.append(other)
        else:
            other = os.path.join(tmp, os.path.basename(path))
            with open(path, encoding="utf-8") as f:
                _write(other, f.read() + "\n# copy\n")
            src_paths = [path, other]
        store = PolicyStore(path, watch=False, loader=_alternating(src_paths), **options)
        times = []
        for _ in range(repeat):
            r = store.reload()
            if not r.ok:
                raise RuntimeError(r.error_summary)
            times.append(r.duration)
        store.close()
        return {"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- under load


def _chunked_write(path: str, text: str, chunks: int = 4, pause: float = 0.001) -> None:
    """Rewrite ``path`` in place in ``chunks`` writes, flushing between them:
    the watcher sees truncated files, which must never be installed (every
    cut falls inside the ``[data]`` arrays, so each prefix is invalid)."""
    cut = [len(text) * k // (chunks + 1) for k in range(1, chunks)] + [len(text)]
    with open(path, "w", encoding="utf-8") as f:
        start = 0
        for end in cut:
            f.write(text[start:end])
            f.flush()
            start = end
            time.sleep(pause)


def _atomic_write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _writer_process(path: str, versions: list, invalid: str, interval: float, go: Any, halt: Any, counts: Any) -> None:
    """Every ``interval`` s until ``halt``: 3 in 5 writes a new version by
    atomic rename, 1 in 5 rewrites it in place in chunks, 1 in 5 installs
    an invalid version by atomic rename; ends on a valid version."""
    go.wait(60)
    n = 0
    while not halt.is_set():
        n += 1
        kind = (0, 0, 1, 0, 2)[n % 5]
        if kind == 1:
            _chunked_write(path, versions[n % len(versions)])
        else:
            _atomic_write(path, invalid if kind == 2 else versions[n % len(versions)])
        counts[kind] += 1
        time.sleep(interval)
    _atomic_write(path, versions[0])


def measure_reload_under_load(
    seconds: float = 10.0,
    readers: int = 8,
    n_facts: int = 2000,
    interval: float = 0.02,
    debounce: float = 0.01,
    workdir: str | None = None,
    gc_freeze: bool = True,
) -> dict:
    """Reader latency while a watched policy is rewritten continuously.

    A ``PolicyStore`` (``watch=True``, ``debounce``) watches one ``.rune`` file
    of ``n_facts`` facts. ``readers`` threads call ``store.authorize`` in a
    closed loop, alternating between a hot set of 64 requests (decision
    cache hits) and a cold set of 20,000 distinct requests (misses, the
    cache holds 1,024). Phases: steady (``seconds / 2``: nothing written),
    writing (``seconds``: every ``interval`` seconds the writer installs a
    new version: 3 in 5 by atomic rename, 1 in 5 rewritten in place in
    chunks, 1 in 5 an invalid version by atomic rename, which must be
    refused), steady again (``seconds / 2``). Every valid version decides
    every request alike, so a reader compares each decision with the
    expected one: a difference, an exception or a decision with errors
    counts as an error.
    """
    tmp = workdir or tempfile.mkdtemp(prefix="rune-reload-load-")
    try:
        path = os.path.join(tmp, "policy.rune")
        logger = logging.getLogger("rune_fast")
        level = logger.level
        logger.setLevel(logging.CRITICAL)  # refused loads are expected here
        versions = [fact_policy(n_facts, v) for v in range(4)]
        invalid = versions[0].replace("[rules]", "[rules]\nbroken(X :- .", 1)
        _atomic_write(path, versions[0])
        # The writer is another process (as an editor or a deploy tool would
        # be): it must not wait for the GIL of the readers. Forked before the
        # store starts any thread.
        ctx = multiprocessing.get_context("fork")
        go, halt = ctx.Event(), ctx.Event()
        counts = ctx.Array("i", 3)
        writer = ctx.Process(target=_writer_process, args=(path, versions, invalid, interval, go, halt, counts),
                             daemon=True)
        writer.start()
        store = PolicyStore(path, watch=True, debounce=debounce, cache_size=1024, gc_freeze=gc_freeze)
        n_users = max(n_facts // 10, 10)
        hot = _requests(n_facts, 64)
        cold = [(("User", f"u{i % n_users}"), ("Action", ("read", "write", "delete")[i % 3]),
                 ("Doc", f"d{(i * 7919) % (n_facts // 2 + 7)}")) for i in range(20_000)]
        expected = {q: store.authorize(*q).decision for q in hot + cold}
        phase = {"name": "steady"}
        samples: dict[str, list[int]] = {"steady": [], "writing": [], "settling": []}
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def reader(k: int) -> None:
            local: dict[str, list[int]] = {"steady": [], "writing": [], "settling": []}
            bad: list[str] = []
            pc = time.perf_counter_ns
            i = k * 7919
            nh, nc = len(hot), len(cold)
            while not stop.is_set():
                q = hot[i % nh] if i & 1 else cold[(i >> 1) % nc]
                i += 1
                name = phase["name"]
                t0 = pc()
                try:
                    d = store.authorize(*q)
                except Exception as exc:  # counted, never raised
                    bad.append(f"{type(exc).__name__}: {exc}")
                    continue
                local[name].append(pc() - t0)
                if d.errors or d.decision != expected[q]:
                    bad.append(f"{q}: {d.decision} {d.errors}")
            with lock:
                for key, v in local.items():
                    samples[key].extend(v)
                errors.extend(bad)

        threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(readers)]
        for t in threads:
            t.start()
        time.sleep(seconds / 4)
        gen0 = store.stats.generation
        phase["name"] = "writing"
        go.set()
        time.sleep(seconds)
        halt.set()
        phase["name"] = "settling"
        writer.join(30)
        time.sleep(max(0.5, debounce * 20))
        stats = store.stats
        phase["name"] = "steady"
        time.sleep(seconds / 4)
        stop.set()
        for t in threads:
            t.join(30)
        store.close()
        steady = sorted(samples["steady"])
        during = sorted(samples["writing"])
        res = {
            "readers": readers,
            "gc_freeze": gc_freeze,
            "n_facts": n_facts,
            "seconds": seconds,
            "writes": {"atomic": counts[0], "chunked": counts[1], "invalid": counts[2]},
            "swaps": stats.generation - gen0,
            "failed_loads": stats.failures,
            "errors": len(errors),
            "first_errors": errors[:3],
            "steady_calls": len(steady),
            "writing_calls": len(during),
            "steady_p50_us": _percentile(steady, 0.50),
            "steady_p99_us": _percentile(steady, 0.99),
            "steady_p999_us": _percentile(steady, 0.999),
            "writing_p50_us": _percentile(during, 0.50),
            "writing_p99_us": _percentile(during, 0.99),
            "writing_p999_us": _percentile(during, 0.999),
            "last_reload_ms": stats.last_duration * 1000,
        }
        res["p99_ratio"] = res["writing_p99_us"] / res["steady_p99_us"]
        res["p999_ratio"] = res["writing_p999_us"] / res["steady_p999_us"]
        logger.setLevel(level)
        return res
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def format_under_load(r: dict) -> str:
    return (
        f"reload under load (gc_freeze={r['gc_freeze']}): {r['readers']} readers, {r['n_facts']}-fact policy rewritten every 20 ms "
        f"for {r['seconds']:.0f} s ({r['writes']}; {r['swaps']} swaps, {r['failed_loads']} refused loads)\n"
        f"  steady : p50 {r['steady_p50_us']:7.1f} us  p99 {r['steady_p99_us']:8.1f} us  "
        f"p99.9 {r['steady_p999_us']:8.1f} us  ({r['steady_calls']} calls)\n"
        f"  writing: p50 {r['writing_p50_us']:7.1f} us  p99 {r['writing_p99_us']:8.1f} us  "
        f"p99.9 {r['writing_p999_us']:8.1f} us  ({r['writing_calls']} calls)\n"
        f"  p99 ratio {r['p99_ratio']:.2f} (target <= 1.5), p99.9 ratio {r['p999_ratio']:.2f} (target <= 3), "
        f"errors {r['errors']} (target 0) {r['first_errors'] or ''}"
    )


# --------------------------------------------------------------------------- asv


class TimeReload:
    """Wall time of ``store.reload()``: compile + swap (each reload alternates
    between two equally sized versions so the swap always happens)."""

    params = ["doc_sharing", "agent_guardrails", "facts_1e5"]
    param_names = ["policy"]
    timeout = 300
    number = 1
    repeat = (3, 10, 60.0)

    def setup(self, policy: str) -> None:
        self._tmp = tempfile.mkdtemp(prefix="rune-asv-")
        if policy == "facts_1e5":
            paths = [_write(os.path.join(self._tmp, f"v{v}.rune"), fact_policy(100_000, v)) for v in (0, 1)]
        else:
            src = os.path.join(EXAMPLES, f"{policy}.rune")
            if not os.path.exists(src):
                raise NotImplementedError(f"{src} not found")  # asv: skip
            with open(src, encoding="utf-8") as f:
                text = f.read()
            paths = [src, _write(os.path.join(self._tmp, f"{policy}.rune"), text + "\n# copy\n")]
        self.store = PolicyStore(paths[0], watch=False, loader=_alternating(paths))

    def teardown(self, policy: str) -> None:
        self.store.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def time_reload(self, policy: str) -> None:
        self.store.reload()


class TrackReloadLatency:
    """p99 ``authorize`` latency while reloading continuously vs steady state
    (one measurement run shared by the three tracks)."""

    timeout = 600

    def setup_cache(self) -> dict:
        return measure_reload_latency(n_facts=100_000, seconds=4.0, threads=1, cache_size=0)

    def track_p99_steady(self, r: dict) -> float:
        return r["steady_p99_us"]

    track_p99_steady.unit = "us"  # type: ignore[attr-defined]

    def track_p99_during_reload(self, r: dict) -> float:
        return r["reload_p99_us"]

    track_p99_during_reload.unit = "us"  # type: ignore[attr-defined]

    def track_p99_ratio(self, r: dict) -> float:
        return r["p99_ratio"]

    track_p99_ratio.unit = "ratio"  # type: ignore[attr-defined]


class TrackReloadUnderLoad:
    """The headline reload metric: reader latency while the watched policy
    is rewritten every 20 ms (``measure_reload_under_load``: 8 readers, a
    2,000-fact policy, atomic renames, in-place chunked writes and invalid
    versions, 10 s), as ratios to the steady state of the same run."""

    timeout = 600

    def setup_cache(self) -> dict:
        return measure_reload_under_load()

    def track_p99_ratio(self, r: dict) -> float:
        """reader p99 while rewriting / steady p99 (target <= 1.5)"""
        return r["p99_ratio"]

    track_p99_ratio.unit = "ratio"  # type: ignore[attr-defined]

    def track_p999_ratio(self, r: dict) -> float:
        """reader p99.9 while rewriting / steady p99.9 (target <= 3)"""
        return r["p999_ratio"]

    track_p999_ratio.unit = "ratio"  # type: ignore[attr-defined]

    def track_p99_writing(self, r: dict) -> float:
        return r["writing_p99_us"]

    track_p99_writing.unit = "us"  # type: ignore[attr-defined]

    def track_errors(self, r: dict) -> float:
        """reader errors (exceptions, wrong or erroring decisions): target 0"""
        return float(r["errors"])

    track_errors.unit = "errors"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-size", type=int, default=0)
    ap.add_argument("--skip-times", action="store_true", help="only the latency measurement")
    ap.add_argument("--no-gc-freeze", action="store_true", help="PolicyStore(gc_freeze=False), for comparison")
    ap.add_argument("--under-load", action="store_true",
                    help="only the reload-under-load measurement (8 readers, policy rewritten every 20 ms)")
    args = ap.parse_args(argv)
    if args.under_load:
        print(format_under_load(measure_reload_under_load(seconds=args.seconds, gc_freeze=not args.no_gc_freeze)))
        return 0

    if not args.skip_times:
        print("reload time (read + parse + check + compile + swap):")
        for name in ("doc_sharing", "agent_guardrails"):
            p = os.path.join(EXAMPLES, f"{name}.rune")
            if os.path.exists(p):
                r = measure_reload_time(p)
                print(f"  {name:<18} median {r['median_ms']:8.2f} ms   min {r['min_ms']:8.2f} ms")
        tmp = tempfile.mkdtemp(prefix="rune-reload-time-")
        try:
            for n in (10_000, 100_000):
                p = _write(os.path.join(tmp, f"f{n}.rune"), fact_policy(n))
                r = measure_reload_time(p, repeat=5)
                print(f"  {n:>7} facts      median {r['median_ms']:8.2f} ms   min {r['min_ms']:8.2f} ms")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    r = measure_reload_latency(args.facts, args.seconds, args.threads, args.cache_size)
    print(
        f"authorize latency, {r['n_facts']} facts, {r['threads']} request thread(s), cache_size={r['cache_size']}:\n"
        f"  steady   : p50 {r['steady_p50_us']:7.1f} us  p99 {r['steady_p99_us']:7.1f} us  "
        f"p99.9 {r['steady_p999_us']:7.1f} us  max {r['steady_max_us'] / 1000:7.2f} ms  "
        f"({r['steady_calls_per_s']:.0f} calls/s)\n"
        f"  reloading: p50 {r['reload_p50_us']:7.1f} us  p99 {r['reload_p99_us']:7.1f} us  "
        f"p99.9 {r['reload_p999_us']:7.1f} us  max {r['reload_max_us'] / 1000:7.2f} ms  "
        f"({r['reload_calls_per_s']:.0f} calls/s; {r['reloads']} reloads, mean {r['reload_mean_ms']:.0f} ms each)\n"
        f"  p99 ratio (reloading / steady): {r['p99_ratio']:.2f}  (target <= 1.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
