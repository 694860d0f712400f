"""Instructions per request of the middleware benchmark, counted by callgrind.

Why: on a shared, loaded machine the timings of bench_middleware.py move by
tens of percent between runs; instruction counts do not. Both apps of that
benchmark (bare and guarded, same defaults) run in one process, each loop
under a different C builtin, so callgrind's inclusive cost of each builtin
is that loop's instructions:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/mw.cg \\
        python asv_benchmarks/microbench/middleware_instructions.py
    python asv_benchmarks/microbench/middleware_instructions.py --report /tmp/mw.cg

(about two minutes under valgrind). Instructions are a proxy, not time: they
do not see cache misses, which a loaded machine adds to the bigger path.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys

N = 1500
LOOPS = {"functools_reduce": "bare route", "builtin_sum": "with middleware (defaults)",
         "builtin_any": "with middleware, decision_headers=True"}


def run() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(here), "benchmarks"))
    sys.path.insert(0, os.path.dirname(os.path.dirname(here)))
    import bench_middleware as bm

    bare, guarded, headers = bm.make_call(False), bm.make_call(True), bm.make_call(True, decision_headers=True)
    for _ in range(300):  # warm: memos, caches, specialized bytecode
        bare(), guarded(), headers()
    functools.reduce(lambda acc, _: bare(), range(N), None)
    sum(guarded() or 0 for _ in range(N))
    any(headers() for _ in range(N))


def report(path: str) -> None:
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", path], capture_output=True, text=True, check=True).stdout
    per = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) .*:(\w+)(?: \[|$)", line)
        if m and m.group(2) in LOOPS and "clinic" not in line and m.group(2) not in per:
            per[m.group(2)] = int(m.group(1).replace(",", "")) / N
    bare = per["functools_reduce"]
    for fn, label in LOOPS.items():
        n = per[fn]
        print(f"{label:42s} {n:8.0f} instructions/request  (+{100.0 * (n - bare) / bare:.1f} %)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        run()
