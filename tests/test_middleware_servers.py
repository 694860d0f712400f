"""Every adapter inside a real app, served by a real server, over real HTTP.

Falcon WSGI under gunicorn (sync and gthread workers), Falcon ASGI and
FastAPI under uvicorn, Flask and Django under gunicorn. The apps
(tests/mw_apps/) share routes and rules, so one check list runs against
each: allow, deny, 401, 503, 404-hiding, exempt routes, OPTIONS, per-route
overrides, the decision seen by the handler, and hostile inputs (a resolver
that raises, a malformed entity, a 10 MB body, odd path encodings), each
refused with a reason in the server's audit log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mw_servers import (
    TEST_POLICY,
    Server,
    free_port,
    gunicorn,
    raw_request,
    serve,
    uvicorn,
)

APPS = {
    "falcon-gunicorn-sync": lambda port: gunicorn("falcon_wsgi_app:app", port, "sync", workers=2),
    "falcon-gunicorn-gthread": lambda port: gunicorn("falcon_wsgi_app:app", port, "gthread", workers=2, threads=4),
    "falcon-uvicorn": lambda port: uvicorn("falcon_asgi_app:app", port),
    "flask-gunicorn": lambda port: gunicorn("flask_app:app", port, "sync", workers=1),
    "django-gunicorn": lambda port: gunicorn("django_app:application", port, "sync", workers=1),
    "fastapi-uvicorn": lambda port: uvicorn("fastapi_app:app", port),
}


@pytest.fixture(scope="module", params=sorted(APPS))
def server(request: Any, tmp_path_factory: Any) -> Any:
    d = tmp_path_factory.mktemp("policy")
    policy = d / "policy.rune"
    policy.write_text(TEST_POLICY)
    off = d / "off"
    port = free_port()
    env = {"RUNE_TEST_POLICY": str(policy), "RUNE_TEST_OFF": str(off)}
    with serve(APPS[request.param](port), env, port) as s:
        s.kind = request.param  # type: ignore[attr-defined]
        s.off = off  # type: ignore[attr-defined]
        yield s


ALICE = {"X-User": "alice"}


def is_problem(r: Any, status: int) -> None:
    """A refusal: the status, a small JSON body, the decision headers."""
    assert r.status == status, r
    body = json.loads(r.body)
    assert isinstance(body, dict) and len(r.body) < 600, r
    assert "x-rune-decision-id" in r.headers, r
    if r.headers["content-type"].startswith("application/problem+json"):
        assert body["status"] == status and body["decision_id"] == r.headers["x-rune-decision-id"]
    else:  # FastAPI's own error shape
        assert r.headers["content-type"].startswith("application/json") and "detail" in body
    assert b"Traceback" not in r.body


def test_allow_and_handler_sees_decision(server: Server) -> None:
    r = server.request("GET", "/docs/a1", ALICE)
    assert r.status == 200, r
    body = r.json()
    assert body["doc"] == "a1" and body["seen"] and body["allowed"] and body["decision"] == "permit"
    assert body["reasons"] == ["owner-all"]
    assert r.headers["x-rune-policy-version"] == body["version"] and len(body["version"]) == 64
    assert r.headers["x-rune-decision-id"]
    r2 = server.request("GET", "/docs/pub", ALICE)
    assert r2.status == 200 and r2.json()["reasons"] == ["public-read"]
    assert r2.headers["x-rune-decision-id"] != r.headers["x-rune-decision-id"]


def test_deny_is_403_with_headers(server: Server) -> None:
    r = server.request("GET", "/docs/b1", ALICE)
    is_problem(r, 403)
    assert r.headers["x-rune-policy-version"]
    forbid = server.request("GET", "/docs/a1", {"X-User": "mallory"})
    is_problem(forbid, 403)
    if forbid.headers["content-type"].startswith("application/problem+json"):
        assert forbid.json()["reasons"] == ["no-mallory"]  # expose_reasons=True in the test apps


def test_default_route_resource_and_action(server: Server) -> None:
    r = server.request("GET", "/whoami", ALICE)
    assert r.status == 200 and r.json()["reasons"] == ["whoami"], r
    assert server.request("POST", "/whoami", ALICE, body=b"{}").status == 200
    is_problem(server.request("GET", "/whoami", {"X-User": "mallory"}), 403)


def test_unauthenticated_is_401_with_challenge(server: Server) -> None:
    r = server.request("GET", "/docs/a1")
    assert r.status == 401, r
    assert r.headers["www-authenticate"] == 'Bearer realm="docs"'
    assert b"Traceback" not in r.body


def test_hidden_route_answers_404_without_decision_headers(server: Server) -> None:
    r = server.request("DELETE", "/docs/b1", ALICE)
    assert r.status == 404, r
    assert "x-rune-decision-id" not in r.headers and "x-rune-policy-version" not in r.headers
    ok = server.request("DELETE", "/docs/a1", ALICE)
    assert ok.status == 200 and ok.json() == {"deleted": "a1"}, ok


def test_exempt_route_and_options(server: Server) -> None:
    r = server.request("GET", "/health")
    assert r.status == 200 and "x-rune-decision-id" not in r.headers, r
    o = server.request("OPTIONS", "/whoami", {"Origin": "http://example.test", "Access-Control-Request-Method": "GET"})
    assert o.status == 200 and "x-rune-decision-id" not in o.headers, o
    if server.kind.startswith(("falcon", "flask", "django")):  # type: ignore[attr-defined]
        assert o.json() == {"seen": False}


def test_no_engine_is_503(server: Server) -> None:
    server.off.write_text("")  # type: ignore[attr-defined]
    try:
        r = server.request("GET", "/docs/a1", ALICE)
        is_problem(r, 503)
        assert r.headers.get("retry-after")
    finally:
        server.off.unlink()  # type: ignore[attr-defined]
    assert server.request("GET", "/docs/a1", ALICE).status == 200


def test_resolver_that_raises_denies_with_logged_reason(server: Server) -> None:
    r = server.request("GET", "/docs/a1", {"X-User": "alice", "X-Boom": "1"})
    is_problem(r, 403)
    assert b"unreachable" not in r.body  # the reason is logged, not sent
    log = server.wait_log("identity provider unreachable")
    assert "principal resolver raised RuntimeError: identity provider unreachable (at common.py:" in log
    assert f"decision_id={r.headers['x-rune-decision-id']}" in log


def test_malformed_entity_denies_with_logged_reason(server: Server) -> None:
    r = server.request("GET", "/docs/a1", {"X-User": "!alice"})
    is_problem(r, 403)
    log = server.wait_log(r.headers["x-rune-decision-id"])
    line = next(ln for ln in log.splitlines() if r.headers["x-rune-decision-id"] in ln)
    assert "outcome=error" in line and "invalid authorization request" in line and "principal" in line


ODD_PATHS = [
    "/docs/%62%31",              # b1, percent-encoded
    "/docs/b1%2F..%2Fa1",        # an encoded slash and dot-dot inside the id
    "/docs/b1/../a1",            # dot segments
    "/docs/a1%00",               # NUL
    "/docs/%ff%fe",              # invalid UTF-8
    "/docs/%c0%afa1",            # overlong UTF-8 slash
    "/docs/" + "b" * 4000,       # long
    "/docs/a1%20",               # trailing space
    "/docs/%E2%80%AEa1",         # right-to-left override
]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_odd_path_encodings_never_allow_or_crash(server: Server, path: str) -> None:
    r = server.request("GET", path, ALICE)
    assert 400 <= r.status < 500, (path, r)
    assert b"Traceback" not in r.body
    decision_id = r.headers.get("x-rune-decision-id")
    if decision_id:  # decided (not refused by the router first): the refusal is in the audit log
        line = next(ln for ln in server.wait_log(decision_id).splitlines() if decision_id in ln)
        assert "outcome=deny" in line or "outcome=error" in line, line


def test_ten_megabyte_body(server: Server) -> None:
    size = 10 * 1024 * 1024
    for user, expect in (("mallory", 403), ("", 401)):
        head = (f"POST /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n"
                + (f"X-User: {user}\r\n" if user else "") + "Connection: close\r\n\r\n").encode()
        assert raw_request(server.port, head, size) == expect
    if server.kind.startswith("falcon-gunicorn"):  # type: ignore[attr-defined]
        # a resolver that reads the body is bounded (1 KiB here): 413, reason logged
        head = (f"POST /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n"
                "X-User: alice\r\nX-Body: 1\r\nConnection: close\r\n\r\n").encode()
        assert raw_request(server.port, head, size) == 413
        assert "outcome=too_large" in server.wait_log("outcome=too_large")
    assert server.request("GET", "/docs/a1", ALICE).status == 200  # still serving


@pytest.mark.parametrize("server", ["falcon-gunicorn-sync", "falcon-gunicorn-gthread"], indirect=True)
def test_dry_run_never_blocks_but_records(server: Server) -> None:
    """The dry-run hook route lives in the Falcon WSGI app."""
    r = server.request("GET", "/dry/docs/b1", ALICE)
    assert r.status == 200, r
    body = r.json()
    assert body["seen"] and body["allowed"] is False and body["decision"] == "deny"
    assert r.headers["x-rune-decision-id"]
    log = server.wait_log(r.headers["x-rune-decision-id"])
    line = next(ln for ln in log.splitlines() if r.headers["x-rune-decision-id"] in ln)
    assert "outcome=would_deny" in line and "mode=dry_run" in line
    anon = server.request("GET", "/dry/docs/b1")
    assert anon.status == 200 and anon.json()["allowed"] is False


@pytest.mark.parametrize("server", ["fastapi-uvicorn"], indirect=True)
def test_websocket_authorized_at_handshake(server: Server) -> None:
    """The websocket route (generic ASGI middleware) lives in the FastAPI app."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{server.port}/ws/docs/a1"
    with connect(url, additional_headers=ALICE, open_timeout=10) as ws:
        msg = json.loads(ws.recv(timeout=10))
    assert msg["doc"] == "a1" and msg["allowed"] is True and msg["reasons"] == ["owner-all"]
    for path, headers in (("/ws/docs/b1", ALICE), ("/ws/docs/a1", {})):
        with pytest.raises(InvalidStatus) as e:
            connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers, open_timeout=10)
        assert e.value.response.status_code == 403
