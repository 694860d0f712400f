"""Compare rune_fast's Datalog core with peers on the benchmark workloads.

    python asv_benchmarks/compare_datalog.py            # full run (~12 min on 2 cores)
    python asv_benchmarks/compare_datalog.py --quick    # one repeat, lower pyDatalog timeout
    python asv_benchmarks/compare_datalog.py --workloads tc_chain_200,auth --engines rune_fast,clingo

Engines (``[compare]`` extra: clingo, pyDatalog):

* ``rune_fast``  -- ``rune_fast.datalog.Program`` with the compiled core;
* ``rune_pure``  -- the same with ``_core_module=rune_fast.datalog._pycore`` (plain-Python twin);
* ``plain``      -- ``benchmarks/plain_seminaive.py``, an independent plain-Python
  semi-naive evaluator (dict/set hash joins, cyclic GC off);
* ``clingo``     -- facts and rules as ASP text, ``Control.ground``, the stratified
  model read from ``solve(yield_=True)``;
* ``pyDatalog``  -- facts asserted, rules loaded, one query per output relation.

Two timings per engine, best of several repeats (``time.perf_counter``):

* **end-to-end**: Python facts in, every tuple of every output relation out
  as Python values, each engine in the form it naturally gives: rune_fast
  the tuple of distinct rows (``Model.rows``: tuples built in C), clingo the
  list of its model's shown atoms converted to tuples, plain its own result
  sets, pyDatalog its answer set. ``--as-frozenset`` makes rune_fast and
  clingo build a frozenset per relation as well (``Model.relation``);
* **evaluation only**: Python facts in, the model's size out without building
  Python tuples (rune_fast: ``Model.size``; clingo: ground + solve, count the
  shown symbols).  Not meaningful for ``plain`` and ``pyDatalog``, whose
  results are Python tuples already.

Every (workload, engine) pair runs in its own subprocess (fresh heap,
bounded by a timeout, peak RSS reported). The engines take turns, in
``--rounds`` rounds (2 by default) per workload, each keeping its best
time: on a shared machine a slow stretch then does not fall on one engine
alone.  All engines must derive the same
tuples: counts and an order-independent fingerprint of every output relation
are compared, and for results of at most ``--set-check`` tuples the sets
themselves.  The script prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "benchmarks"))
if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(HERE))

import workloads as W

ENGINES = ("rune_fast", "rune_pure", "plain", "clingo", "pyDatalog")
#: set by ``--as-frozenset`` (passed on to the child processes)
AS_FROZENSET = False
REFERENCE = "rune_fast"


# --------------------------------------------------------------------------
# Engine runners: each returns {"e2e": fn, "eval": fn or None}; e2e() returns
# {relation: set of tuples}, eval() the number of output tuples (all relations).


def rune_runner(w: W.Workload, pure: bool) -> dict:
    import rune_fast.datalog._pycore
    from rune_fast.datalog import Program

    # No evaluation deadline: the default 10 s load deadline stops the pure
    # core on the larger workloads when the machine is busy.
    prog = Program(w.rules, _core_module=rune_fast.datalog._pycore if pure else None, load_deadline_ms=0)

    def e2e():
        m = prog.evaluate(w.facts)
        if AS_FROZENSET:
            return {o: m.relation(o) for o in w.outputs}
        return {o: m.rows(o) for o in w.outputs}

    def evaluation():
        m = prog.evaluate(w.facts)
        return sum(m.size(o) for o in w.outputs)

    return {"e2e": e2e, "eval": evaluation}


def plain_runner(w: W.Workload) -> dict:
    import plain_seminaive

    rules = plain_seminaive.parse(w.rules)

    def e2e():
        model = plain_seminaive.evaluate(rules, w.facts)
        return {o: model[o] for o in w.outputs}

    return {"e2e": e2e, "eval": None}


def _asp_value(v) -> str:
    if type(v) is int:
        return str(v)
    if type(v) is str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"no ASP form for {v!r}")


def asp_facts(facts: dict) -> str:
    """Facts as ASP text; integer-only relations take a fast path."""
    parts = []
    for name, rows in facts.items():
        rows = list(rows)
        if all(type(v) is int for row in rows for v in row):
            parts.append("".join([f"{name}({','.join(map(str, row))}).\n" for row in rows]))
        else:
            parts.append("".join([f"{name}({','.join(map(_asp_value, row))}).\n" for row in rows]))
    return "".join(parts)


class _ClingoValues(dict):
    """Argument text -> Python value (ints and strings; the workloads use no other)."""

    def __missing__(self, tok: str):
        if tok[0] == '"':
            v = tok[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        else:
            v = int(tok)
        self[tok] = v
        return v


def clingo_runner(w: W.Workload) -> dict:
    import clingo

    shows = "".join(f"#show {o}/{w.arities[o]}.\n" for o in w.outputs)
    program = w.rules + shows

    def solve(convert: bool):
        ctl = clingo.Control(["--warn=none"])
        ctl.add("base", [], asp_facts(w.facts) + program)
        ctl.ground([("base", [])])
        out = None
        with ctl.solve(yield_=True) as handle:
            for model in handle:
                syms = model.symbols(shown=True)
                if not convert:
                    out = len(syms)
                    break
                # str() + split is the fastest public route from clingo symbols to
                # Python values (about 1.7x faster than Symbol.arguments/.number)
                values = _ClingoValues()
                get = values.__getitem__
                out = {o: [] for o in w.outputs}
                for text in map(str, syms):
                    k = text.index("(")
                    out[text[:k]].append(tuple(map(get, text[k + 1:-1].split(","))))
                if AS_FROZENSET:
                    out = {o: frozenset(rows) for o, rows in out.items()}
                break
        return out

    return {"e2e": lambda: solve(True), "eval": lambda: solve(False)}


def pydatalog_rules(text: str) -> str:
    """RUNE/ASP rule text -> pyDatalog ``load`` text (via the plain parser)."""
    import plain_seminaive

    fresh = [0]

    def term(a):
        if a[0] == "v":
            return a[1]
        if a[0] == "_":
            fresh[0] += 1
            return f"Anon{fresh[0]}"
        return repr(a[1])

    def atom(name, args):
        return f"{name}({', '.join(term(a) for a in args)})"

    lines = []
    for (hname, hargs), body in plain_seminaive.parse(text):
        parts = []
        for lit in body:
            if lit[0] == "atom":
                parts.append(atom(lit[1], lit[2]))
            elif lit[0] == "not":
                parts.append("~" + atom(lit[1], lit[2]))
            else:
                op = "==" if lit[1] == "=" else lit[1]
                parts.append(f"({term(lit[2])} {op} {term(lit[3])})")
        lines.append(f"{atom(hname, hargs)} <= {' & '.join(parts)}")
    return "\n".join(lines)


def pydatalog_runner(w: W.Workload) -> dict:
    from pyDatalog import pyDatalog

    text = pydatalog_rules(w.rules)

    def e2e():
        pyDatalog.clear()
        assert_fact = pyDatalog.assert_fact
        for name, rows in w.facts.items():
            for row in rows:
                assert_fact(name, *row)
        pyDatalog.load(text)
        out = {}
        for o in w.outputs:
            variables = ", ".join(f"V{i}" for i in range(w.arities[o]))
            answer = pyDatalog.ask(f"{o}({variables})")
            out[o] = set(map(tuple, answer.answers)) if answer is not None else set()
        return out

    return {"e2e": e2e, "eval": None}


def make_runner(engine: str, w: W.Workload) -> dict:
    if engine == "rune_fast":
        return rune_runner(w, pure=False)
    if engine == "rune_pure":
        return rune_runner(w, pure=True)
    if engine == "plain":
        return plain_runner(w)
    if engine == "clingo":
        return clingo_runner(w)
    if engine == "pyDatalog":
        return pydatalog_runner(w)
    raise ValueError(engine)


# --------------------------------------------------------------------------
# Child: measure one (workload, engine)


def fingerprint(rows) -> str:
    """Order-independent 64-bit digest of a set of tuples (two 32-bit checksums
    of each tuple's repr, summed)."""
    total = 0
    for t in rows:
        b = repr(t).encode()
        total += (zlib.crc32(b) << 32) | zlib.adler32(b)
    return format(total & 0xFFFFFFFFFFFFFFFF, "016x")


def best_of(fn, repeats: int, budget: float):
    """Best time of ``repeats`` runs (5 if a run takes under a second; stop
    repeating once ``budget`` seconds are spent)."""
    times, result, spent = [], None, 0.0
    n = repeats
    while len(times) < n:
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
        if len(times) == 1 and dt < 1.0:
            n = max(repeats, 5)
        if spent > budget:
            break
    return min(times), times, result


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not
    inherited from the parent across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(engine: str, name: str, repeats: int, budget: float, dump: str) -> None:
    w = W.get(name)
    runner = make_runner(engine, w)
    print("START", flush=True)
    report: dict = {"engine": engine, "workload": name}
    e2e, e2e_all, result = best_of(runner["e2e"], repeats, budget)
    report["e2e"], report["e2e_runs"] = e2e, e2e_all
    report["counts"] = {o: len(result[o]) for o in w.outputs}
    report["fingerprints"] = {o: fingerprint(result[o]) for o in w.outputs}
    if dump:
        with open(dump, "wb") as f:
            pickle.dump({o: set(result[o]) for o in w.outputs}, f)
    del result
    if runner["eval"] is not None:
        ev, ev_all, count = best_of(runner["eval"], repeats, budget)
        report["eval"], report["eval_runs"] = ev, ev_all
        if count != sum(report["counts"].values()):
            report["error"] = f"evaluation only counts {count} tuples, end-to-end {report['counts']}"
    report["maxrss_mb"] = peak_rss_mb()
    if engine.startswith("rune"):
        import rune_fast.datalog._core
        report["core_build"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.path.getmtime(rune_fast.datalog._core.__file__)))
    print("RESULT " + json.dumps(report), flush=True)


# --------------------------------------------------------------------------
# Parent


def run_child(engine: str, name: str, args, dump: str) -> dict:
    timeout = args.pydatalog_timeout if engine == "pyDatalog" else args.timeout
    repeats = 1 if engine in ("pyDatalog", "rune_pure") else args.repeats
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, name,
           "--repeats", str(repeats), "--budget", str(args.budget), "--dump", dump]
    if args.as_frozenset:
        cmd.append("--as-frozenset")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "START": inputs built, the clock starts now
        if not line.startswith("START"):
            out, err = proc.communicate(timeout=60)
            return {"error": (line + out + err).strip().splitlines()[-1] if (line + out + err).strip() else "crashed"}
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"timeout": timeout}
    for ln in out.splitlines():
        if ln.startswith("RESULT "):
            return json.loads(ln[7:])
    tail = (err.strip().splitlines() or ["no result"])[-1]
    return {"error": tail}


def merge_rounds(before: dict | None, r: dict) -> dict:
    """One engine's results over several rounds: the best times, every run's
    times, the highest peak RSS; a mismatch or failure in any round stays."""
    if before is None or ("e2e" in r and "e2e" not in before):
        return r
    if "e2e" not in r:
        return before
    out = dict(before)
    for key in ("e2e", "eval"):
        if r.get(key) is not None:
            out[key] = min(before[key], r[key]) if before.get(key) is not None else r[key]
            out[key + "_runs"] = before.get(key + "_runs", []) + r[key + "_runs"]
    out["maxrss_mb"] = max(before["maxrss_mb"], r["maxrss_mb"])
    out["mismatch"] = before.get("mismatch", False) or r.get("mismatch", False)
    out["set_checked"] = before.get("set_checked", False) or r.get("set_checked", False)
    return out


def fmt_s(x) -> str:
    if x is None:
        return "—"
    return f"{x:.3f}" if x >= 0.01 else f"{x * 1000:.2f} ms"


def fmt_ratio(x) -> str:
    if x is None:
        return "—"
    return f"{x:.1f}×" if x >= 0.95 else f"1/{1 / x:.1f}×"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one repeat; pyDatalog timeout 30 s")
    ap.add_argument("--workloads", default=",".join(W.WORKLOADS))
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2,
                    help="engines take turns this many times per workload; each keeps its best time")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds of repeats per timing")
    ap.add_argument("--timeout", type=float, default=600.0, help="per engine and workload")
    ap.add_argument("--pydatalog-timeout", type=float, default=120.0)
    ap.add_argument("--set-check", type=int, default=300_000,
                    help="compare the sets themselves when a result has at most this many tuples")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--as-frozenset", action="store_true",
                    help="rune_fast and clingo also build a frozenset per output relation (end to end)")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "WORKLOAD"), help=argparse.SUPPRESS)
    ap.add_argument("--dump", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global AS_FROZENSET
    AS_FROZENSET = args.as_frozenset
    if args.child:
        child(args.child[0], args.child[1], args.repeats, args.budget, args.dump)
        return 0
    if args.quick:
        args.repeats, args.pydatalog_timeout, args.budget, args.rounds = 1, 30.0, 5.0, 1
    workloads = [x for x in args.workloads.split(",") if x]
    engines = [x for x in args.engines.split(",") if x]
    if REFERENCE not in engines:
        engines.insert(0, REFERENCE)
    results: dict = {}
    problems: list = []
    tmp = tempfile.mkdtemp(prefix="rune_compare_")
    try:
        for name in workloads:
            W.get(name)  # fails early on an unknown workload name
            results[name] = {}
            ref_sets = None
            # Engines take turns, round after round: each engine's best time
            # then comes from the same stretches of machine time as the
            # others', so a slow phase of a shared machine does not land on
            # one engine only.
            for rnd in range(args.rounds):
                for engine in engines:
                    # the sets themselves are compared in the first round only
                    dump = os.path.join(tmp, f"{name}.{engine}.pkl") if rnd == 0 else ""
                    r = run_child(engine, name, args, dump)
                    print(f"# {name:16s} {engine:10s} round {rnd + 1} " + (
                        f"e2e {fmt_s(r['e2e'])}  eval {fmt_s(r.get('eval'))}  {sum(r['counts'].values())} tuples"
                        if "e2e" in r else (f"timeout after {r['timeout']:.0f} s" if "timeout" in r else r["error"])),
                        file=sys.stderr, flush=True)
                    if "e2e" not in r and "error" in r and rnd > 0:
                        # (a failed first round shows in the table; a later one would not)
                        problems.append(f"{name}/{engine}: round {rnd + 1} failed: {r['error']}")
                    if "e2e" in r:
                        if r.get("error"):
                            problems.append(f"{name}/{engine}: {r['error']}")
                        ref = results[name].get(REFERENCE, r)
                        if engine != REFERENCE and "e2e" in ref:
                            if r["counts"] != ref["counts"] or r["fingerprints"] != ref["fingerprints"]:
                                r["mismatch"] = True
                                problems.append(f"{name}/{engine}: derives {r['counts']} (fingerprints "
                                                f"{r['fingerprints']}), rune_fast {ref['counts']} ({ref['fingerprints']})")
                        small = sum(r["counts"].values()) <= args.set_check
                        if small and dump and os.path.exists(dump):
                            with open(dump, "rb") as f:
                                sets = pickle.load(f)
                            if engine == REFERENCE:
                                ref_sets = sets
                            elif ref_sets is not None and sets != ref_sets:
                                r["mismatch"] = True
                                problems.append(f"{name}/{engine}: sets differ from rune_fast's")
                            r["set_checked"] = ref_sets is not None
                    if dump and os.path.exists(dump):
                        os.remove(dump)
                    results[name][engine] = merge_rounds(results[name].get(engine), r)
    finally:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)
    builds = sorted({r["core_build"] for w in results.values() for r in w.values() if "core_build" in r})
    if len(builds) > 1:
        problems.append(f"the compiled core was rebuilt during the run (extension mtimes {', '.join(builds)} UTC): "
                        "rows measured with different builds")
    print(render(results, workloads, engines, args))
    print(f"\ncompiled core built {', '.join(builds) or '?'} UTC; Python {sys.version.split()[0]}; "
          f"{os.cpu_count()} CPUs; end-to-end results as "
          + ("frozensets (rune_fast, clingo)" if args.as_frozenset else "rows as built (rune_fast: a tuple, clingo: a list)"))
    if problems:
        print("\n**Disagreements / errors:**\n")
        for p in problems:
            print(f"- {p}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "argv": sys.argv[1:], "python": sys.version,
                       "cpus": os.cpu_count()}, f, indent=1)
    return 1 if problems else 0


def render(results: dict, workloads: list, engines: list, args) -> str:
    out = ["| workload | tuples | engine | end-to-end (s) | eval only (s) | e2e: engine / rune_fast | "
           "eval: engine / rune_fast | peak RSS (MB) | same tuples |",
           "|---|---:|---|---:|---:|---:|---:|---:|:-:|"]
    for name in workloads:
        ref = results[name].get(REFERENCE, {})
        tuples = sum(ref["counts"].values()) if "counts" in ref else None
        first = True
        for engine in engines:
            r = results[name].get(engine, {})
            label = f"{name}" if first else ""
            size = f"{tuples:,}" if first and tuples is not None else ""
            first = False
            if "e2e" not in r:
                why = (f"timeout (> {r['timeout']:.0f} s)" if "timeout" in r else f"failed: {r.get('error', '?')}")
                out.append(f"| {label} | {size} | {engine} | {why} | | | | | |")
                continue
            e2e_ratio = r["e2e"] / ref["e2e"] if "e2e" in ref and engine != REFERENCE else None
            ev_ratio = (r["eval"] / ref["eval"]) if r.get("eval") and ref.get("eval") and engine != REFERENCE else None
            same = "ref" if engine == REFERENCE else ("**NO**" if r.get("mismatch") else
                                                       ("yes (sets)" if r.get("set_checked") else "yes"))
            out.append(f"| {label} | {size} | {engine} | {fmt_s(r['e2e'])} | {fmt_s(r.get('eval'))} | "
                       f"{fmt_ratio(e2e_ratio)} | {fmt_ratio(ev_ratio)} | {r['maxrss_mb']:.0f} | {same} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
