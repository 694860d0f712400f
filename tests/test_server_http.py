"""The decision point as real processes: `rune serve` (3 workers), gunicorn
run directly with docs/gunicorn.conf.py, and uvicorn (ASGI), driven over
HTTP on 127.0.0.1. Every endpoint, every error status, admin auth and
broadcast, decision-log ids, /metrics totals, responses checked against the
served /openapi.json.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
import re
import sys
import time

import pytest
import requests

from server_helpers import (
    POLICY_V1,
    POLICY_V2,
    ROOT,
    Server,
    check_response,
    free_port,
    rune_cmd,
    wait_for,
)

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVAL = {"subject": {"type": "User", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "Doc", "id": "d1"}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("srv")
    policy = d / "policy.rune"
    policy.write_text(POLICY_V1)
    token = d / "token"
    token.write_text(TOKEN + "\n")
    log = d / "decisions.jsonl"
    port = free_port()
    cmd = rune_cmd(
        policy, port, "--workers", "3", "--no-watch", "--admin-token-file", str(token), "--decision-log", str(log),
        "--decision-log-mask", "context.password", "--max-body-bytes", "20000", "--max-batch-items", "50",
        "--max-query-rows", "2",
    )
    srv = Server(cmd, port, d)
    srv.start()
    try:
        yield srv, policy, log
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def doc(env):
    srv = env[0]
    return srv.get("/openapi.json").json()


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_endpoint_answers_as_documented(env, doc):
    srv = env[0]
    assert doc["openapi"].startswith("3.1")
    calls = [
        ("GET", "/.well-known/authzen-configuration", None, 200),
        ("POST", "/access/v1/evaluation", EVAL, 200),
        ("POST", "/access/v1/evaluations", {**EVAL, "evaluations": [{}, {"resource": {"type": "Doc", "id": "secret"}}]}, 200),
        ("POST", "/v1/authorize", {"principal": 'User::"alice"', "action": {"type": "Action", "id": "read"}, "resource": 'Doc::"d1"'}, 200),
        ("POST", "/v1/authorize/batch", {"requests": [{"principal": 'User::"bob"', "action": 'Action::"read"', "resource": 'Doc::"d1"'}]}, 200),
        ("POST", "/v1/query", {"query": 'member(U, G)'}, 200),
        ("GET", "/health/live", None, 200),
        ("GET", "/health/ready", None, 200),
        ("GET", "/v1/status", None, 200),
        ("GET", "/openapi.json", None, 200),
    ]
    for method, path, body, status in calls:
        r = srv.post(path, body) if method == "POST" else srv.get(path)
        assert r.status_code == status, (path, r.text)
        check_response(doc, path, method, r)
    cfg = srv.get("/.well-known/authzen-configuration").json()
    assert cfg["access_evaluation_endpoint"] == srv.url + "/access/v1/evaluation"
    assert cfg["search_action_endpoint"] == srv.url + "/access/v1/search/action"
    assert srv.post("/access/v1/evaluation", EVAL).json() == {"decision": True}
    bob = {**EVAL, "subject": {"type": "User", "id": "bob"}}
    assert srv.post("/access/v1/evaluation", bob).json() == {"decision": False}
    # properties become request attributes/parents are not needed here; the
    # native decision carries reasons and version
    d = srv.post("/v1/authorize", {"principal": 'User::"alice"', "action": 'Action::"read"', "resource": 'Doc::"d1"'}).json()
    assert d["decision"] == "permit" and d["reasons"] == ["staff-read"] and len(d["version"]) == 64
    q = srv.post("/v1/query", {"query": 'member(U, G)'}).json()
    assert q["rows"] == [{"U": 'User::"alice"', "G": 'Group::"staff"'}] and q["truncated"] is False
    # Another worker's counts reach /metrics up to Metrics.FLUSH_INTERVAL
    # late (documented): poll, bounded, until the decisions above show.
    deadline = time.monotonic() + 20
    m = srv.get("/metrics")
    while "rune_decisions_total" not in m.text and time.monotonic() < deadline:
        time.sleep(0.1)
        m = srv.get("/metrics")
    assert m.status_code == 200 and "rune_decisions_total" in m.text


def test_evaluations_semantics_and_defaults(env, doc):
    srv = env[0]
    items = [
        {"resource": {"type": "Doc", "id": "a"}},
        {"subject": {"type": "User", "id": "bob"}},
        {"resource": {"type": "Doc", "id": "c"}},
    ]
    body = {**EVAL, "evaluations": items}
    r = srv.post("/access/v1/evaluations", body)
    assert [e["decision"] for e in r.json()["evaluations"]] == [True, False, True]
    r = srv.post("/access/v1/evaluations", {**body, "options": {"evaluations_semantic": "deny_on_first_deny"}})
    assert [e["decision"] for e in r.json()["evaluations"]] == [True, False]
    r = srv.post("/access/v1/evaluations", {**body, "options": {"evaluations_semantic": "permit_on_first_permit"}})
    assert [e["decision"] for e in r.json()["evaluations"]] == [True]
    check_response(doc, "/access/v1/evaluations", "POST", r)
    # no evaluations: answered like a single evaluation
    r = srv.post("/access/v1/evaluations", dict(EVAL))
    assert r.json() == {"decision": True}
    # an item without subject and no default: 400 naming the field
    r = srv.post("/access/v1/evaluations", {"action": {"name": "read"}, "evaluations": [{"resource": {"type": "Doc", "id": "a"}}]})
    assert r.status_code == 400 and r.json()["field"] == "evaluations[0].subject"


BAD_CASES = [
    # (method, path, raw body, headers, status, field or None)
    ("POST", "/access/v1/evaluation", b"{not json", {"Content-Type": "application/json"}, 400, "(body)"),
    ("POST", "/access/v1/evaluation", b"", {"Content-Type": "application/json"}, 400, "(body)"),
    ("POST", "/access/v1/evaluation", json.dumps({**EVAL, "subject": {"type": "User"}}).encode(), {"Content-Type": "application/json"}, 400, "subject"),
    ("POST", "/access/v1/evaluation", json.dumps({**EVAL, "subject": {"type": "not a type", "id": "x"}}).encode(), {"Content-Type": "application/json"}, 400, "subject.type"),
    ("POST", "/access/v1/evaluation", json.dumps({**EVAL, "context": {"x": None}}).encode(), {"Content-Type": "application/json"}, 400, "context.x"),
    ("POST", "/v1/authorize", json.dumps({"principal": "nope", "action": 'Action::"read"', "resource": 'Doc::"d"'}).encode(), {"Content-Type": "application/json"}, 400, "principal"),
    ("POST", "/v1/query", json.dumps({"query": "member(("}).encode(), {"Content-Type": "application/json"}, 400, "query"),
    ("POST", "/access/v1/evaluation", json.dumps(EVAL).encode(), {"Content-Type": "text/plain"}, 415, None),
    ("POST", "/access/v1/evaluation", b"[" * 5000 + b"]" * 5000, {"Content-Type": "application/json"}, 400, "(body)"),
    ("POST", "/access/v1/evaluation", b"{" + b" " * 30000 + b"}", {"Content-Type": "application/json"}, 413, None),
    ("POST", "/v1/authorize/batch", json.dumps({"requests": [{"principal": 'User::"a"', "action": 'Action::"r"', "resource": 'Doc::"d"'}] * 51}).encode(), {"Content-Type": "application/json"}, 413, "requests"),
    ("POST", "/access/v1/evaluations", json.dumps({**EVAL, "evaluations": [{}] * 51}).encode(), {"Content-Type": "application/json"}, 413, "evaluations"),
    ("GET", "/no/such/path", None, {}, 404, None),
    ("DELETE", "/access/v1/evaluation", None, {}, 405, None),
    ("GET", "/access/v1/evaluation", None, {}, 405, None),
    ("POST", "/v1/admin/reload", None, {}, 401, None),
]


@pytest.mark.parametrize("method,path,raw,headers,status,field", BAD_CASES)
def test_error_statuses_are_json(env, doc, method, path, raw, headers, status, field):
    srv = env[0]
    r = requests.request(method, srv.url + path, data=raw, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert "title" in body and "Traceback" not in r.text
    if field is not None:
        assert body.get("field") == field, body
    if path in doc["paths"] and method.lower() in doc["paths"][path]:
        check_response(doc, path, method, r)


def test_admin_auth(env, doc):
    srv = env[0]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
        r = srv.get("/v1/admin/history", headers=headers)
        assert r.status_code == 401, headers
        check_response(doc, "/v1/admin/history", "GET", r)
    r = srv.get("/v1/admin/history", headers=AUTH)
    assert r.status_code == 200
    check_response(doc, "/v1/admin/history", "GET", r)
    assert r.json()["history"][-1]["version"] == r.json()["version"]
    r = srv.post("/v1/admin/rollback", {}, headers=AUTH)
    assert r.status_code == 409  # only one version so far
    check_response(doc, "/v1/admin/rollback", "POST", r)


def log_records(log) -> list[dict]:
    """The complete lines of the decision log (workers append while we read:
    a line without its newline yet is left for the next look)."""
    if not log.exists():
        return []
    return [json.loads(x) for x in log.read_text().split("\n")[:-1]]


def test_decision_log_ids_match_responses_and_hide_secrets(env):
    srv, _policy, log = env
    secret = "Bearer do-not-log-me-123"
    ids = []
    for i in range(6):
        body = {**EVAL, "context": {"password": "hunter2", "n": i}}
        r = srv.post("/access/v1/evaluation?detail=true", body, headers={"Authorization": secret, "Connection": "close"})
        ctx = r.json()["context"]
        ids.append((ctx["decision_id"], ctx["version"], r.json()["decision"]))
    r = srv.post("/v1/authorize/batch", {"requests": [{"principal": 'User::"alice"', "action": 'Action::"read"', "resource": 'Doc::"x"'}] * 3})
    ids += [(d["decision_id"], d["version"], d["allowed"]) for d in r.json()["results"]]
    lines = wait_for(lambda: log_records(log))
    by_id = {rec["decision_id"]: rec for rec in lines}
    for did, version, allowed in ids:
        rec = wait_for(lambda: {x["decision_id"]: x for x in log_records(log)}.get(did))
        assert rec["version"] == version and rec["allowed"] is allowed
        assert {"time", "latency_ms", "decision", "reasons", "errors", "endpoint", "request"} <= set(rec)
    text = log.read_text()
    assert "do-not-log-me" not in text and "hunter2" not in text
    assert any(rec.get("request", {}).get("context", {}).get("password") == "***" for rec in by_id.values())


def test_metrics_totals_across_three_workers(tmp_path):
    # A server of its own: every decision it counts comes from this test, so
    # the totals are exact whenever the other tests' requests get published.
    policy = tmp_path / "policy.rune"
    policy.write_text(POLICY_V1)
    port = free_port()
    with Server(rune_cmd(policy, port, "--workers", "3", "--no-watch"), port, tmp_path) as srv:
        # every worker has booted (each one publishes the version it serves)
        text = wait_for(lambda: (lambda t: t if len(serving_pids(t)) == 3 else None)(srv.get("/metrics").text), timeout=60)
        assert metric_sum(text, "rune_decisions_total") == 0
        n = 60

        def evaluate(i: int) -> int:
            body = EVAL if i % 3 else {**EVAL, "subject": {"type": "User", "id": "bob"}}
            return srv.post("/access/v1/evaluation", body, headers={"Connection": "close"}).status_code

        # Several client threads, so the requests land on more than one worker.
        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(evaluate, range(n))) == [200] * n
        wait_for(lambda: len(srv.worker_views()) >= 2, timeout=30)

        counts = {
            "decisions": ("rune_decisions_total", {"endpoint": "evaluation"}),
            "requests": ("rune_http_requests_total", {"route": "/access/v1/evaluation", "status": "200"}),
            "durations": ("rune_decision_duration_seconds_count", {"endpoint": "evaluation"}),
        }

        def published() -> str | None:
            # Workers publish their counts every Metrics.FLUSH_INTERVAL
            # (0.25 s): wait until all of them are in, then check them exactly.
            t = srv.get("/metrics").text
            return t if all(metric_sum(t, name, **labels) >= n for name, labels in counts.values()) else None

        after = wait_for(published, timeout=30, interval=0.1)
        for name, labels in counts.values():
            assert metric_sum(after, name, **labels) == n, name
        assert metric_sum(after, "rune_decisions_total", endpoint="evaluation", outcome="deny") == n // 3
        assert len(serving_pids(after)) == 3


def serving_pids(metrics_text: str) -> set[str]:
    return set(re.findall(r'rune_serving_version_info\{pid="(\d+)"', metrics_text))


def test_admin_reload_and_rollback_reach_every_worker(env, doc):
    srv, policy, _log = env
    # every worker up first: one that boots after the write below would load it
    # (run alone, this test can start before the module's server is fully up)
    v1 = set(wait_for(lambda: (lambda v: v if len(v) == 3 else None)(srv.worker_views()), timeout=30).values())
    assert len(v1) == 1
    policy.write_text(POLICY_V2)  # --no-watch: nothing happens until the admin call
    time.sleep(0.3)
    assert set(srv.worker_views().values()) == v1
    r = srv.post("/v1/admin/reload", None, headers=AUTH)
    assert r.status_code == 200, r.text
    check_response(doc, "/v1/admin/reload", "POST", r)
    v2 = r.json()["version"]
    assert v2 not in v1
    views = wait_for(lambda: (lambda v: v if len(v) >= 2 and set(v.values()) == {v2} else None)(srv.worker_views()), timeout=30)
    assert set(views.values()) == {v2}
    secret = {**EVAL, "resource": {"type": "Doc", "id": "secret"}}
    assert srv.post("/access/v1/evaluation", secret).json() == {"decision": False}
    # rollback by default goes to the previous version, in every worker
    r = srv.post("/v1/admin/rollback", {}, headers=AUTH)
    assert r.status_code == 200, r.text
    check_response(doc, "/v1/admin/rollback", "POST", r)
    (old,) = v1
    assert r.json()["version"] == old
    wait_for(lambda: (lambda v: len(v) >= 2 and set(v.values()) == {old})(srv.worker_views()), timeout=30)
    # a named version that is not in the history
    r = srv.post("/v1/admin/rollback", {"version": "f" * 64}, headers=AUTH)
    assert r.status_code == 404 and r.json()["field"] == "version"
    status = srv.get("/v1/status").json()
    assert status["sources"][0]["path"].endswith("policy.rune") and len(status["sources"][0]["sha256"]) == 64
    assert status["last_reload"]["ok"] is True


def test_sigterm_drains_and_exits_zero(tmp_path):
    # A server of its own: stopping the module's server would break every
    # test that runs after this one (with another order or selection).
    policy = tmp_path / "policy.rune"
    policy.write_text(POLICY_V1)
    port = free_port()
    with Server(rune_cmd(policy, port, "--workers", "2"), port, tmp_path) as srv:
        with ThreadPoolExecutor(4) as pool:  # some traffic first, from several clients at once
            assert set(pool.map(lambda _: srv.post("/access/v1/evaluation", EVAL, headers={"Connection": "close"}).status_code, range(20))) == {200}
        assert srv.stop() == 0


def test_broken_policy_refuses_to_start(tmp_path):
    bad = tmp_path / "bad.rune"
    bad.write_text('version = "rune/1"\n[policies]\npermit(principal, action, resource) when { nope(;\n')
    import subprocess

    p = subprocess.run(rune_cmd(bad, free_port()), capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert p.returncode == 1 and "bad.rune:" in p.stderr


def _asgi_module(tmp_path, policy):
    mod = tmp_path / "asgi_app.py"
    mod.write_text(f"from rune_fast.server import create_asgi_app\napp = create_asgi_app({str(policy)!r})\n")
    return mod


def test_gunicorn_directly_and_uvicorn_asgi(tmp_path):
    policy = tmp_path / "p.rune"
    policy.write_text(POLICY_V1)
    port = free_port()
    conf = ROOT / "docs" / "gunicorn.conf.py"
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(conf), "--bind", f"127.0.0.1:{port}", "--workers", "2",
           f"rune_fast.server:create_app({str(policy)!r})"]
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with Server(cmd, port, tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as srv:
        assert srv.post("/access/v1/evaluation", EVAL).json() == {"decision": True}
        assert srv.get("/v1/status").json()["watching"] is True
        assert "rune_serving_version_info" in srv.get("/metrics").text
        assert any(f.name.startswith("counter_") for f in metrics_dir.iterdir())
    assert srv.proc.returncode == 0

    _asgi_module(tmp_path, policy)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path), "--host", "127.0.0.1", "--port", str(port), "asgi_app:app"]
    with Server(cmd, port, tmp_path) as srv:
        assert srv.post("/access/v1/evaluation", EVAL).json() == {"decision": True}
        r = srv.post("/access/v1/evaluation", b"{", headers={"Content-Type": "application/json"}, data=b"{")
        assert r.status_code == 400 and r.json()["field"] == "(body)"
        r = srv.post("/access/v1/evaluation", None, data=b"{" + b" " * 2_000_000 + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert srv.get("/nope").status_code == 404


@pytest.mark.parametrize("worker_class", ["uvicorn", "gthread"])
def test_rune_serve_other_worker_classes(tmp_path, worker_class):
    policy = tmp_path / "p.rune"
    policy.write_text(POLICY_V1)
    port = free_port()
    with Server(rune_cmd(policy, port, "--worker-class", worker_class, "--workers", "1"), port, tmp_path) as srv:
        assert srv.post("/access/v1/evaluations", {**EVAL, "evaluations": [{}, {"subject": {"type": "User", "id": "bob"}}]}).json() == {
            "evaluations": [{"decision": True}, {"decision": False}]
        }
        assert "rune_decisions_total" in srv.get("/metrics").text
