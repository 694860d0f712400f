"""Fast in-process tests of the decision point (falcon.testing, no sockets):
body limits and validation, mapping, evaluation semantics against a
reference, masking, the control channel, admin auth, WSGI == ASGI."""

from __future__ import annotations

import json
import os

import falcon.testing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_fast.server import create_app, create_asgi_app
from rune_fast.server.control import ControlChannel
from rune_fast.server.decision_log import mask
from rune_fast.server.http import depth_within
from rune_fast.server.mapping import request_entities, to_request
from rune_fast.values import Entity

POLICY = '''version = "rune/1"
[data]
member = [['User::"alice"', 'Group::"staff"'], ['User::"bob"', 'Group::"staff"'], ['User::"carol"', 'Group::"guests"']]
[rules]
parent(U, G) :- member(U, G).
[policies]
@id("staff-read")
permit(principal in Group::"staff", action == Action::"read", resource);
@id("level")
permit(principal, action == Action::"write", resource is Doc) when { resource has level && resource.level < 3 };
'''


@pytest.fixture
def policy(tmp_path):
    p = tmp_path / "p.rune"
    p.write_text(POLICY)
    return p


@pytest.fixture
def client(policy, tmp_path):
    token = tmp_path / "token"
    token.write_text("tok\n")
    app = create_app(str(policy), watch=False, admin_token_file=str(token), max_batch_items=10, max_query_rows=2,
                     max_body_bytes=5000, run_dir=str(tmp_path / "run"))
    yield falcon.testing.TestClient(app)
    app.rune_state.close()


def ev(user, action="read", resource=("Doc", "d"), props=None):
    res = {"type": resource[0], "id": resource[1]}
    if props:
        res["properties"] = props
    return {"subject": {"type": "User", "id": user}, "action": {"name": action}, "resource": res}


# ---------------------------------------------------------------- depth


def _depth(o):
    if isinstance(o, dict):
        return 1 + max((_depth(v) for v in o.values()), default=0)
    if isinstance(o, list):
        return 1 + max((_depth(v) for v in o), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='k[]{}"\\', max_size=4), inner, max_size=3),
    max_leaves=25,
)


@given(json_values, st.integers(min_value=0, max_value=8))
@settings(max_examples=150, deadline=None)
def test_depth_within_matches_reference(value, limit):
    assert depth_within(json.dumps(value).encode(), limit) == (_depth(value) <= limit)


# ---------------------------------------------------------------- mapping


def test_properties_become_request_entities_and_merge():
    p, a, r, ctx, ents = to_request(
        {"type": "user", "id": "u", "properties": {"x": 1}}, {"name": "read"}, {"type": "user", "id": "u", "properties": {"y": 2}}, {}
    )
    assert (p, a, r, ctx) == (Entity("user", "u"), Entity("Action", "read"), Entity("user", "u"), None)
    assert ents == [{"uid": {"type": "user", "id": "u"}, "attrs": {"x": 1, "y": 2}}]
    assert request_entities([(Entity("a", "b"), None), (Entity("a", "c"), {})]) is None


def test_resource_properties_are_attributes(client):
    assert client.simulate_post("/access/v1/evaluation", json=ev("zed", "write", props={"level": 2})).json == {"decision": True}
    assert client.simulate_post("/access/v1/evaluation", json=ev("zed", "write", props={"level": 5})).json == {"decision": False}
    r = client.simulate_post("/access/v1/evaluation", json=ev("zed", "write", props={"level": None}))
    assert r.status_code == 400 and r.json["field"] == "resource.properties.level"


# ---------------------------------------------------------------- semantics


def _reference(allowed: list, semantic: str) -> list:
    out = []
    for a in allowed:
        out.append(a)
        if semantic == "deny_on_first_deny" and not a:
            break
        if semantic == "permit_on_first_permit" and a:
            break
    return out


@given(st.lists(st.booleans(), min_size=1, max_size=10), st.sampled_from(["execute_all", "deny_on_first_deny", "permit_on_first_permit", None]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # the app is stateless here
def test_evaluations_semantics_match_reference(client, allowed, semantic):
    body = {"action": {"name": "read"}, "resource": {"type": "Doc", "id": "d"},
            "evaluations": [{"subject": {"type": "User", "id": "alice" if a else "carol"}} for a in allowed]}
    if semantic:
        body["options"] = {"evaluations_semantic": semantic}
    got = client.simulate_post("/access/v1/evaluations", json=body).json["evaluations"]
    assert [x["decision"] for x in got] == _reference(allowed, semantic or "execute_all")


def test_limits(client):
    body = {"action": {"name": "read"}, "resource": {"type": "Doc", "id": "d"}, "evaluations": [{"subject": {"type": "User", "id": "a"}}] * 11}
    assert client.simulate_post("/access/v1/evaluations", json=body).status_code == 413
    r = client.simulate_post("/access/v1/evaluation", body=b"{" + b" " * 6000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    q = client.simulate_post("/v1/query", json={"query": "member(U, G)"}).json
    assert len(q["rows"]) == 2 and q["truncated"] is True
    q = client.simulate_post("/v1/query", json={"query": "member(U, G)", "limit": 1}).json
    assert len(q["rows"]) == 1 and q["truncated"] is True
    q = client.simulate_post("/v1/query", json={"query": 'member(User::"carol", G)'}).json
    assert q["rows"] == [{"G": 'Group::"guests"'}] and q["truncated"] is False
    nested: object = 1
    for _ in range(40):
        nested = [nested]
    deep = {**ev("alice"), "context": {"a": nested}}
    r = client.simulate_post("/access/v1/evaluation", json=deep)
    assert r.status_code == 400 and "nested deeper" in r.json["description"]


def test_native_batch_one_snapshot_in_order(client):
    reqs = [{"principal": f'User::"{u}"', "action": 'Action::"read"', "resource": 'Doc::"d"'} for u in ["alice", "carol", "bob"]]
    r = client.simulate_post("/v1/authorize/batch", json={"requests": reqs}).json
    assert [x["allowed"] for x in r["results"]] == [True, False, True]
    assert {x["version"] for x in r["results"]} == {r["version"]}
    r = client.simulate_post("/v1/authorize/batch", json={"requests": reqs + [{**reqs[0], "context": {"x": None}}]})
    assert r.status_code == 400 and r.json["field"] == "requests[3].context.x"


def test_detail_and_explain_flags(client):
    r = client.simulate_post("/v1/authorize", json={"principal": 'User::"alice"', "action": 'Action::"read"', "resource": 'Doc::"d"'}, params={"detail": "true"})
    assert len(r.json["decision_id"]) == 32
    r = client.simulate_post("/access/v1/evaluation", json=ev("alice"), params={"detail": "maybe"})
    assert r.status_code == 400 and r.json["field"] == "detail"
    r = client.simulate_post("/access/v1/evaluation", json=ev("alice"), params={"explain": "true"}).json
    assert r["decision"] is True and r["context"]["reasons"] == ["staff-read"]
    assert r["context"]["explain"]["decision"]["decision"] == "permit"
    r = client.simulate_post("/access/v1/evaluations", json={"evaluations": [ev("alice"), ev("carol")]}, params={"explain": "true"}).json
    assert [e["context"]["explain"]["decision"]["decision"] for e in r["evaluations"]] == ["permit", "deny"]
    r = client.simulate_post("/v1/authorize", json={"principal": 'User::"carol"', "action": 'Action::"read"', "resource": 'Doc::"d"'}, params={"explain": "1"}).json
    assert r["allowed"] is False and r["explain"]["decision"]["decision"] == "deny"


def test_search_pages_and_stale_tokens(client, policy):
    body = {"subject": {"type": "User"}, "action": {"name": "read"}, "resource": {"type": "Doc", "id": "d"}, "page": {"limit": 1}}
    r = client.simulate_post("/access/v1/search/subject", json=body).json
    assert r["results"] == [{"type": "User", "id": "alice"}] and r["page"]["count"] == 1
    token = r["page"]["next_token"]
    r2 = client.simulate_post("/access/v1/search/subject", json={**body, "page": {"limit": 1, "token": token}}).json
    assert r2["results"] == [{"type": "User", "id": "bob"}] and r2["page"]["next_token"] == ""
    policy.write_text(POLICY + "\n// v2\n")
    assert client.simulate_post("/v1/admin/reload", headers={"Authorization": "Bearer tok"}).json["changed"]
    r3 = client.simulate_post("/access/v1/search/subject", json={**body, "page": {"limit": 1, "token": token}})
    assert r3.status_code == 400  # a token from another policy version


# ---------------------------------------------------------------- admin


def test_admin_disabled_without_token_file(policy):
    c = falcon.testing.TestClient(create_app(str(policy), watch=False))
    r = c.simulate_post("/v1/admin/reload", headers={"Authorization": "Bearer x"})
    assert r.status_code == 403


def test_admin_token_compared_exactly(client):
    for header in ("Bearer to", "Bearer tokk", "bearer  ", "Bearer", ""):
        assert client.simulate_get("/v1/admin/history", headers={"Authorization": header}).status_code == 401
    assert client.simulate_get("/v1/admin/history", headers={"Authorization": "Bearer tok"}).status_code == 200


def test_admin_reload_then_rollback_by_steps_and_version(client, policy):
    auth = {"Authorization": "Bearer tok"}
    v1 = client.simulate_get("/v1/status").json["version"]
    policy.write_text(POLICY.replace("< 3", "< 4"))
    r = client.simulate_post("/v1/admin/reload", headers=auth).json
    assert r["ok"] and r["changed"] and r["previous_version"] == v1 and r["broadcast"] == 1
    policy.write_text("broken [")
    r = client.simulate_post("/v1/admin/reload", headers=auth)
    assert r.status_code == 409 and r.json["ok"] is False and r.json["errors"]
    assert client.simulate_post("/v1/admin/rollback", json={"steps": 5}, headers=auth).status_code == 409
    r = client.simulate_post("/v1/admin/rollback", json={"version": v1[:12]}, headers=auth).json
    assert r["version"] == v1
    assert client.simulate_get("/v1/status").json["version"] == v1


# ---------------------------------------------------------------- control channel


def test_control_channel_broadcasts_to_other_workers(tmp_path):
    seen_a, seen_b = [], []
    a = ControlChannel(str(tmp_path), 0.05, seen_a.append)
    b = ControlChannel(str(tmp_path), 0.05, seen_b.append)
    seq = a.publish("rollback", version="v1")
    a.check()
    b.check()
    assert seen_a == [] and [m["version"] for m in seen_b] == ["v1"] and seen_b[0]["seq"] == seq
    b.check()
    assert len(seen_b) == 1  # each message applied once
    c = ControlChannel(str(tmp_path), 0.05, seen_a.append)  # a worker started later
    c.check()
    assert seen_a == []
    b.publish("reload")
    a.check()
    c.check()
    assert [m["op"] for m in seen_a] == ["reload", "reload"]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# ---------------------------------------------------------------- masking


def test_mask_paths():
    req = {"context": {"password": "x", "keep": 1}, "subject": {"type": "u", "id": "i", "properties": {"ssn": "1"}}}
    out = mask(req, [("context", "password"), ("subject", "properties", "ssn"), ("nope", "x"), ("*", "id")])
    assert out["context"] == {"password": "***", "keep": 1}
    assert out["subject"]["properties"]["ssn"] == "***" and out["subject"]["id"] == "***"
    assert req["context"]["password"] == "x"  # the request itself is untouched


# ---------------------------------------------------------------- WSGI == ASGI


def test_asgi_answers_like_wsgi(policy, tmp_path):
    wsgi = falcon.testing.TestClient(create_app(str(policy), watch=False))
    asgi_app = create_asgi_app(str(policy), watch=False)
    cases = [
        ("POST", "/access/v1/evaluation", ev("alice")),
        ("POST", "/access/v1/evaluations", {"evaluations": [ev("alice"), ev("carol")]}),
        ("POST", "/v1/authorize", {"principal": "bad", "action": 'Action::"read"', "resource": 'Doc::"d"'}),
        ("POST", "/v1/query", {"query": "member(U, G)", "limit": 1}),
        ("GET", "/nope", None),
        ("GET", "/.well-known/authzen-configuration", None),
    ]
    asgi = falcon.testing.TestClient(asgi_app)  # loads on the first request
    for method, path, body in cases:
        kw = {"json": body} if body is not None else {}
        a = asgi.simulate_request(method, path, **kw)
        w = wsgi.simulate_request(method, path, **kw)
        assert (a.status_code, a.json) == (w.status_code, w.json), path
    r = asgi.simulate_post("/access/v1/evaluation", body=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


# ---------------------------------------------------------------- bundle options


def test_bundle_options_reach_the_store(tmp_path):
    # recursive: the policy lives in a subdirectory; manifest="require"
    # refuses the bundle until a manifest exists (not ready, 503).
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.rune").write_text(POLICY)
    body = ev("alice")
    for kwargs, ready in (({"recursive": True}, True), ({}, False), ({"recursive": True, "manifest": "require"}, False)):
        app = create_app(str(tmp_path), watch=False, run_dir=str(tmp_path / "run"), **kwargs)
        try:
            c = falcon.testing.TestClient(app)
            r = c.simulate_post("/access/v1/evaluation", json=body)
            assert r.status_code == (200 if ready else 503), (kwargs, r.text)
            if ready:
                assert r.json == {"decision": True}
            assert (c.simulate_get("/health/ready").status_code == 200) is ready, kwargs
        finally:
            app.rune_state.close()


def test_bad_bundle_options_fail_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="manifest"):
        create_app(str(tmp_path), manifest="sometimes")
    with pytest.raises(ValueError, match="settle"):
        create_app(str(tmp_path), settle=-1)
