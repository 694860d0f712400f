"""Engine build vs cedarpy parse in CPU instructions, on the compare_authz.py scenario.

    python asv_benchmarks/build_instructions.py     # needs valgrind; ~5 min

Wall-clock ratios on a shared machine move with its load (cedarpy's parse
suffers more from a busy neighbour than rune_fast's build); instruction
counts do not move at all. Each side runs in a fresh interpreter under
``valgrind --tool=callgrind`` twice: after one warm-up build, with 0 and
with ``--builds`` more builds; the difference divided by ``--builds`` is the
instructions of one build (``rune_fast.load_text(text, cache_size=0)``, or
``cedarpy.PolicySet.from_str`` + ``cedarpy.Entities.from_json_str``), with
the long-lived objects frozen out of the collector's view as in
compare_authz.py. Instructions are not time (memory stalls differ), so this
complements the timed comparison; it does not replace it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CHILD = r"""
import gc, sys
sys.path.insert(0, {repo!r})
import rune_fast, cedarpy
what, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(d + "/s.rune").read(); pol = open(d + "/s.cedar").read(); ents = open(d + "/s.json").read()
rune_fast.load_text(text, cache_size=0)
cedarpy.PolicySet.from_str(pol); cedarpy.Entities.from_json_str(ents)
gc.collect(); gc.freeze()
for _ in range(n):
    if what == "rune":
        rune_fast.load_text(text, cache_size=0)
    else:
        cedarpy.PolicySet.from_str(pol); cedarpy.Entities.from_json_str(ents)
"""


def instructions(d: str, what: str, n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out",
         sys.executable, f"{d}/child.py", what, str(n), d],
        capture_output=True, text=True, check=True,
    ).stderr
    m = re.search(r"Collected : (\d+)", out)
    if m is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builds", type=int, default=2, help="builds measured per side (after one warm-up)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "benchmarks"))
    import auth_scenario as S

    w = S.make_world()
    with tempfile.TemporaryDirectory() as d:
        for name, text in (("s.rune", S.rune_text(w)), ("s.cedar", S.cedar_policies(w)),
                           ("s.json", S.cedar_entities_json(w)), ("child.py", CHILD.format(repo=REPO))):
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        per = {}
        for what in ("rune", "cedar"):
            per[what] = (instructions(d, what, args.builds) - instructions(d, what, 0)) / args.builds
            print(f"{what}: {per[what] / 1e6:,.0f} M instructions per build", file=sys.stderr)
    print("| build / parse | instructions per build | ÷ cedarpy parse |")
    print("| --- | ---: | ---: |")
    print(f"| rune_fast `load_text(text, cache_size=0)` | {per['rune'] / 1e6:,.0f} M | {per['rune'] / per['cedar']:.2f} |")
    print(f"| cedarpy `PolicySet.from_str` + `Entities.from_json_str` | {per['cedar'] / 1e6:,.0f} M | 1.00 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
