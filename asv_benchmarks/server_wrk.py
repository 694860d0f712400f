"""Throughput of the decision point under gunicorn, measured with wrk.

    python asv_benchmarks/server_wrk.py                  # 5 rounds x 3 s per row
    python asv_benchmarks/server_wrk.py --rounds 5 --duration 10 --connections 16

Needs ``wrk`` (Debian: ``apt-get install wrk``). Both apps run under
``gunicorn -c docs/gunicorn.conf.py`` with 2 sync workers on 127.0.0.1:

- ``hello``: ``asv_benchmarks/server_hello.py``, a Falcon endpoint that reads
  the body and answers a constant ``{"decision":true}`` (the floor of the
  HTTP stack);
- ``evaluation``: ``POST /access/v1/evaluation`` on examples/doc_sharing.rune
  (JSON parse, schema validation, mapping, decision, metrics, JSON answer);
- ``evaluations x100``: one ``POST /access/v1/evaluations`` with 100 items
  (decisions/s = requests/s x 100).

Rows are interleaved round by round; the report gives the median of each row
and the median of the per-round ratios (robust to background load). Targets:
evaluation >= 0.8 x hello requests/s; evaluations x100 >= 20 x the
decisions/s of single evaluations.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "doc_sharing.rune"
USERS = ["alice", "bob", "carol", "dave", "erin", "mallory"]
DOCS = ["design", "roadmap", "contract", "handbook", "mallory_notes"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn(app: str, port: int, workdir: str) -> subprocess.Popen:
    env = {**os.environ, "RUNE_WORKERS": "2", "RUNE_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=workdir)}
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "docs" / "gunicorn.conf.py"), "--chdir", str(ROOT / "asv_benchmarks"), app]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1)
            return p
        except urllib.error.HTTPError:
            return p  # the hello app answers 404 there: it is up
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise SystemExit(f"{app} did not start")


def _lua(path: Path, body: dict) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    return path


def _wrk(url: str, script: Path, duration: int, connections: int, threads: int) -> float:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="rune-wrk-")
    single = {"subject": {"type": "User", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "Document", "id": "roadmap"}}
    items = [{"subject": {"type": "User", "id": USERS[i % 6]}, "resource": {"type": "Document", "id": DOCS[i % 5]}} for i in range(100)]
    batch = {"action": {"name": "read"}, "evaluations": items}
    scripts = {
        "single": _lua(Path(work) / "single.lua", single),
        "batch": _lua(Path(work) / "batch.lua", batch),
    }
    hport, pport = _port(), _port()
    procs = [_gunicorn("server_hello:app", hport, work), _gunicorn(f"rune_fast.server:create_app({str(POLICY)!r})", pport, work)]
    rows: dict[str, list[float]] = {"hello": [], "evaluation": [], "evaluations x100": []}
    try:
        for url, script in ((f"http://127.0.0.1:{pport}/access/v1/evaluation", "single"), (f"http://127.0.0.1:{pport}/access/v1/evaluations", "batch")):
            _wrk(url, scripts[script], 1, args.connections, args.threads)  # warm-up
        for _ in range(args.rounds):
            rows["hello"].append(_wrk(f"http://127.0.0.1:{hport}/hello", scripts["single"], args.duration, args.connections, args.threads))
            rows["evaluation"].append(_wrk(f"http://127.0.0.1:{pport}/access/v1/evaluation", scripts["single"], args.duration, args.connections, args.threads))
            rows["evaluations x100"].append(
                _wrk(f"http://127.0.0.1:{pport}/access/v1/evaluations", scripts["batch"], args.duration, args.connections, args.threads)
            )
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rows.items()}
    # Ratios are taken per round (the rows of one round ran back to back, so
    # they saw the same background load) and the median ratio is reported.
    r1 = statistics.median(e / h for e, h in zip(rows["evaluation"], rows["hello"]))
    r2 = statistics.median(b * 100 / e for b, e in zip(rows["evaluations x100"], rows["evaluation"]))
    print(f"gunicorn -c docs/gunicorn.conf.py, 2 sync workers; wrk -t{args.threads} -c{args.connections} -d{args.duration}s; median of {args.rounds} rounds\n")
    print("per round (hello, evaluation, evaluations x100 req/s):", [tuple(round(rows[k][i]) for k in rows) for i in range(args.rounds)], "\n")
    print("| row | requests/s | decisions/s |")
    print("| --- | ---: | ---: |")
    print(f"| hello-world Falcon (POST, constant answer) | {med['hello']:,.0f} | - |")
    print(f"| /access/v1/evaluation | {med['evaluation']:,.0f} | {med['evaluation']:,.0f} |")
    print(f"| /access/v1/evaluations, 100 items | {med['evaluations x100']:,.0f} | {med['evaluations x100'] * 100:,.0f} |")
    print(f"\nevaluation / hello = {r1:.2f} (target >= 0.8): {'ok' if r1 >= 0.8 else 'MISSED'}")
    print(f"evaluations x100 decisions/s / evaluation decisions/s = {r2:.1f} (target >= 20): {'ok' if r2 >= 20 else 'MISSED'}")
    return 0 if r1 >= 0.8 and r2 >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
