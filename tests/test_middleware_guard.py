"""The framework-neutral Guard: settings, defaults, rules, outcomes, audit, metrics.

Fast unit tests: the guard is called directly (``check``/``check_async``)
with plain values, as the adapters call it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rune_fast.middleware import (
    DRY_RUN,
    BodyTooLarge,
    Guard,
    RouteRule,
    RouteTable,
    rule,
)
from rune_fast.middleware.rules import rule_of

import rune_fast
from rune_fast import Entity, PolicyStore

POLICY = """version = "rune/1"
[data]
owner = [['Document::"a1"', 'User::"alice"']]
[policies]
@id("owner")
permit(principal, action, resource is Document) when { owner(resource, principal) };
@id("get-routes")
permit(principal, action == Action::"GET", resource is Route);
@id("ctx")
permit(principal, action == Action::"POST", resource == Route::"/ctx") when { context.client == "10.0.0.1" };
"""

ENGINE = rune_fast.load_text(POLICY)
DOC = RouteRule(action='Action::"read"', resource='Document::"{doc_id}"')


def guard(**kw: Any) -> Guard:
    kw.setdefault("principal", lambda req: req)
    kw.setdefault("metrics", False)
    return Guard(ENGINE, **kw)


def check(g: Guard, user: Any = 'User::"alice"', method: str = "GET", path: str = "/docs/a1",
          route: Optional[str] = "/docs/{doc_id}", params: Optional[dict] = None, client: str = "127.0.0.1",
          rule: Optional[RouteRule] = DOC) -> Any:
    return g.check(user, method, path, route, {"doc_id": "a1"} if params is None else params, client, rule)


# -- settings are checked at start-up ------------------------------------------------


@pytest.mark.parametrize("kw, err", [
    ({"mode": "audit"}, ValueError),
    ({"principal": "alice"}, TypeError),
    ({"exempt_methods": "OPTIONS"}, TypeError),
    ({"resource_type": "not a type"}, ValueError),
    ({"max_body": -1}, ValueError),
    ({"www_authenticate": "Bearer\r\nSet-Cookie: x"}, ValueError),
    ({"audit_logger": 42}, TypeError),
    ({"audit_hook": "drop"}, TypeError),
    ({"memo_size": -5}, ValueError),
])
def test_bad_settings_fail_at_construction(kw: dict, err: type) -> None:
    with pytest.raises(err):
        guard(**kw)


def test_bad_sources_fail_at_construction(tmp_path: Any) -> None:
    with pytest.raises(TypeError):
        Guard(42)
    with pytest.raises(rune_fast.RuneError):
        Guard(str(tmp_path / "missing.rune"))
    with pytest.raises(TypeError):
        Guard(ENGINE, store_options={"debounce": 1})


@pytest.mark.parametrize("kw", [
    {"resource": 'Document::{doc_id}'},        # no quotes
    {"resource": ("bad type", "{x}")},
    {"resource": 'Doc::"{0}"'},               # positional placeholder
    {"resource": 'Doc::"{x!r}"'},             # conversion
    {"action": 42},
    {"exempt": "yes"},
])
def test_bad_rules_fail_at_declaration(kw: dict) -> None:
    with pytest.raises((TypeError, ValueError)):
        RouteRule(**kw)


def test_route_table_rejects_unknown_parameters() -> None:
    with pytest.raises(ValueError):
        RouteTable({"/docs/{doc_id}": RouteRule(resource='Doc::"{other}"')})
    with pytest.raises(ValueError):
        RouteTable({"docs": RouteRule()})


# -- outcomes --------------------------------------------------------------------------


def test_allow_deny_and_the_decision() -> None:
    g = guard()
    v = check(g)
    assert v.status == 0 and v.outcome == "allow" and v.decision.reasons == ("owner",)
    assert v.version == ENGINE.version and v.decision_id
    v = check(g, user='User::"bob"')
    assert v.status == 403 and v.outcome == "deny" and v.decision.allowed is False
    assert check(g, user='User::"bob"', rule=RouteRule(action='Action::"read"', resource='Document::"{doc_id}"', hide=True)).status == 404


def test_default_action_and_resource_come_from_method_and_route() -> None:
    g = guard()
    assert check(g, rule=None).outcome == "allow"                       # Action::"GET" on Route::"/docs/{doc_id}"
    assert check(g, method="DELETE", rule=None).status == 403
    # no route template (generic middleware, unmatched path): the path is the route
    v = g.check('User::"alice"', "GET", "/raw/path", None, None, "")
    assert v.outcome == "allow"


def test_default_context_has_routing_facts_only() -> None:
    ctx = Guard.default_context("GET", "/docs/a1", "/docs/{doc_id}", {"doc_id": "a1"}, "10.0.0.1")
    assert ctx == {"method": "GET", "path": "/docs/a1", "route": "/docs/{doc_id}", "params": {"doc_id": "a1"}, "client": "10.0.0.1"}
    g = guard()
    assert g.check('User::"x"', "POST", "/ctx", "/ctx", None, "10.0.0.1").outcome == "allow"
    assert g.check('User::"x"', "POST", "/ctx", "/ctx", None, "10.0.0.2").outcome == "deny"  # memo keyed by client


def test_exempt_routes_and_methods() -> None:
    g = guard(principal=lambda req: 1 / 0)  # never called for an exempt request
    assert check(g, rule=RouteRule(exempt=True)).outcome == "exempt"
    v = check(g, method="OPTIONS")
    assert v.outcome == "exempt" and v.decision is None and g.headers(v) == []
    g2 = guard(exempt_methods=())
    assert check(g2, method="OPTIONS", user='User::"bob"').status == 403


def test_unauthenticated_is_401_and_never_evaluated() -> None:
    g = guard(principal=lambda req: None, www_authenticate='Bearer realm="x"')
    v = check(g)
    assert v.status == 401 and v.outcome == "unauthenticated"
    assert ("WWW-Authenticate", 'Bearer realm="x"') in g.headers(v)


def test_no_engine_is_503() -> None:
    class Empty:
        engine = None

    g = Guard(Empty(), principal=lambda req: req, metrics=False)
    v = check(g)
    assert v.status == 503 and v.outcome == "unavailable"
    assert ("Retry-After", "5") in g.headers(v)


@pytest.mark.parametrize("bad", [
    "alice",                         # not an entity literal
    ("bad type", "x"),
    {"type": "User"},
    ["User", "alice"],
    Entity("User", 3),               # type: ignore[arg-type]
    object(),
])
def test_malformed_principal_denies_with_reason(bad: Any) -> None:
    v = check(guard(), user=bad)
    assert v.status == 403 and v.outcome == "error" and "invalid authorization request" in v.reason


def test_resolver_raising_denies_with_located_reason() -> None:
    def principal(req: Any) -> Any:
        raise KeyError("session")

    v = check(guard(principal=principal))
    assert v.status == 403 and v.outcome == "error"
    assert re.search(r"principal resolver raised KeyError: 'session' \(at test_middleware_guard\.py:\d+ in principal\)", v.reason)
    for name in ("action", "resource", "context", "entities"):
        g = guard(**{name: lambda req: int("not a number")})
        v = check(g, rule=None)
        assert v.status == 403 and v.reason.startswith(f"{name} resolver raised ValueError"), (name, v)
    # a hidden route stays hidden even when a resolver fails
    assert check(guard(principal=principal), rule=RouteRule(resource='Document::"{doc_id}"', hide=True)).status == 404


def test_missing_route_parameter_denies() -> None:
    v = check(guard(), params={"other": "x"})
    assert v.status == 403 and "doc_id" in v.reason


def test_body_too_large_is_413() -> None:
    import io

    g = guard(max_body=10)
    assert g.read_stream(io.BytesIO(b"x" * 10).read, None) == b"x" * 10
    with pytest.raises(BodyTooLarge):
        g.read_stream(io.BytesIO(b"x" * 11).read, None)
    with pytest.raises(BodyTooLarge):
        g.read_stream(lambda n: pytest.fail("read despite Content-Length"), 10 * 1024 * 1024)

    def principal(req: Any) -> Any:
        g2.read_stream(io.BytesIO(b"y" * 100).read, 100)

    g2 = guard(principal=principal, max_body=10)
    v = check(g2)
    assert v.status == 413 and v.outcome == "too_large"


def test_dry_run_never_blocks_and_keeps_the_decision() -> None:
    g = guard(mode=DRY_RUN)
    v = check(g, user='User::"bob"')
    assert v.status == 0 and v.outcome == "would_deny" and v.decision.allowed is False
    assert check(guard(mode=DRY_RUN, principal=lambda r: None)).status == 0
    assert check(guard(mode=DRY_RUN, principal=lambda r: 1 / 0)).status == 0


def test_async_resolvers() -> None:
    async def principal(req: Any) -> Any:
        await asyncio.sleep(0)
        return req

    async def resource(req: Any) -> Any:
        await asyncio.sleep(0)
        return ("Document", "a1")

    g = guard(principal=principal, resource=resource)
    assert g.is_async
    v = asyncio.run(g.check_async('User::"alice"', "GET", "/x", "/x", None, "", None))
    assert v.outcome == "allow" and v.decision.reasons == ("owner",)
    v = asyncio.run(g.check_async('User::"bob"', "GET", "/x", "/x", None, "", RouteRule(action='Action::"read"')))
    assert v.status == 403
    ra = RouteRule(resource=resource)
    assert ra.is_async
    v = asyncio.run(guard().check_async('User::"alice"', "PUT", "/x", "/x", None, "", ra))
    assert v.outcome == "allow"


def test_entities_resolver_adds_request_attributes() -> None:
    eng = rune_fast.load_text('version = "rune/1"\n[policies]\n@id("lvl")\npermit(principal, action, resource) when { principal.level > 2 };\n')
    g = Guard(eng, principal=lambda r: 'User::"u"', metrics=False,
              entities=lambda r: [{"uid": {"type": "User", "id": "u"}, "attrs": {"level": r}}])
    assert g.check(3, "GET", "/", "/", None, "").outcome == "allow"
    assert g.check(1, "GET", "/", "/", None, "").outcome == "deny"
    assert g.check("x" * 3, "GET", "/", "/", None, "").status == 403


# -- one engine per request; the memo never outlives its engine ------------------------


def test_reload_swaps_the_engine_between_requests(tmp_path: Any) -> None:
    p = tmp_path / "p.rune"
    p.write_text('version = "rune/1"\n[policies]\npermit(principal, action, resource);\n')
    with PolicyStore(str(p), watch=False) as store:
        g = Guard(store, principal=lambda r: r, metrics=False)
        v1 = check(g, rule=None)
        assert v1.outcome == "allow"
        p.write_text('version = "rune/1"\n[policies]\nforbid(principal, action, resource);\n')
        assert store.reload().ok
        v2 = check(g, rule=None)
        assert v2.outcome == "deny" and v2.version != v1.version == v1.decision.version


def test_guard_owns_a_store_built_from_a_path(tmp_path: Any) -> None:
    p = tmp_path / "p.rune"
    p.write_text(POLICY)
    g = Guard(str(p), principal=lambda r: r, store_options={"watch": False}, metrics=False)
    try:
        assert isinstance(g.holder, PolicyStore) and check(g).outcome == "allow"
    finally:
        g.close()


def test_engine_caches_decisions_with_context() -> None:
    """The library change this work needed: context-only requests are cached."""
    eng = rune_fast.load_text(POLICY)
    args = ('User::"alice"', 'Action::"GET"', 'Route::"/x"', {"path": "/x"})
    assert eng.authorize(*args).cached is False
    assert eng.authorize(*args).cached is True


# -- headers and bodies ----------------------------------------------------------------


def test_problem_body_is_small_and_has_no_internals() -> None:
    import json

    g = guard(principal=lambda r: 1 / 0)
    v = check(g)
    body = json.loads(g.problem_body(v))
    assert body == {"type": "about:blank", "title": "Forbidden", "status": 403,
                    "decision_id": v.decision_id, "policy_version": ENGINE.version}
    g2 = guard(expose_reasons=True)
    eng_forbid = rune_fast.load_text('version = "rune/1"\n[policies]\n@id("nope")\nforbid(principal, action, resource);\n')
    g3 = Guard(eng_forbid, principal=lambda r: r, expose_reasons=True, metrics=False)
    assert json.loads(g3.problem_body(check(g3)))["reasons"] == ["nope"]
    assert "reasons" not in json.loads(g2.problem_body(check(g2, user='User::"bob"')))  # a plain deny has none
    hidden = check(guard(), user='User::"bob"', rule=RouteRule(resource='Document::"{doc_id}"', hide=True))
    assert g.headers(hidden) == [] and "decision_id" not in json.loads(g.problem_body(hidden))


def test_decision_ids_are_unique_in_a_process_and_across_fork() -> None:
    g = guard()
    ids = {check(g).decision_id for _ in range(1000)}
    assert len(ids) == 1000
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one id, exit without running pytest's teardown
        os.write(w, check(g).decision_id.encode())
        os._exit(0)
    os.close(w)
    child_id = os.read(r, 100).decode()
    os.waitpid(pid, 0)
    os.close(r)
    assert child_id and child_id[:10] != check(g).decision_id[:10]


# -- audit log and metrics -------------------------------------------------------------


def test_audit_record_per_decision(caplog: Any) -> None:
    g = guard()
    with caplog.at_level(logging.INFO, logger="rune_fast.middleware"):
        v = check(g, user='User::"bob"')
    (rec,) = [r for r in caplog.records if r.name == "rune_fast.middleware"]
    f = rec.rune  # type: ignore[attr-defined]
    assert f["decision_id"] == v.decision_id and f["outcome"] == "deny" and f["status"] == 403
    assert f["principal"] == 'User::"bob"' and f["action"] == 'Action::"read"' and f["resource"] == 'Document::"a1"'
    assert f["version"] == ENGINE.version and f["mode"] == "enforce" and f["latency_ms"] >= 0
    assert f"decision_id={v.decision_id}" in rec.getMessage()


def test_audit_hook_masks_and_drops(caplog: Any) -> None:
    def mask(fields: dict) -> Optional[dict]:
        if fields["outcome"] == "allow":
            return None  # drop allows
        return {**fields, "principal": "***"}

    g = guard(audit_hook=mask)
    with caplog.at_level(logging.INFO, logger="rune_fast.middleware"):
        check(g)
        check(g, user='User::"bob"')
    recs = [r for r in caplog.records if r.name == "rune_fast.middleware"]
    assert len(recs) == 1 and recs[0].rune["principal"] == "***" and "bob" not in recs[0].getMessage()  # type: ignore[attr-defined]

    def broken(fields: dict) -> dict:
        raise RuntimeError("hook bug")

    g2 = guard(audit_hook=broken)
    with caplog.at_level(logging.INFO, logger="rune_fast.middleware"):
        assert check(g2).outcome == "allow"  # the request is unaffected


def test_prometheus_metrics() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    reg = prometheus_client.CollectorRegistry()
    g = Guard(ENGINE, principal=lambda r: r, name="promtest", metrics_registry=reg, latency_metrics=True)
    for _ in range(3):
        check(g)
    check(g, user='User::"bob"')
    check(g, user="garbage")

    def value(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, {"guard": "promtest", **labels}) or 0.0

    assert value("rune_middleware_decisions_total", outcome="allow", mode="enforce") == 3
    assert value("rune_middleware_decisions_total", outcome="deny", mode="enforce") == 1
    assert value("rune_middleware_decisions_total", outcome="error", mode="enforce") == 1
    assert value("rune_middleware_decision_seconds_count") == 5


# -- rules on functions; route tables against a reference matcher -----------------------


def test_rule_decorator_per_method() -> None:
    @rule(action='Action::"read"', methods=("GET",))
    @rule(action='Action::"delete"', hide=True, methods=("DELETE",))
    def view() -> None: ...

    assert rule_of(view, "GET").action == 'Action::"read"'
    assert rule_of(view, "DELETE").hide is True
    assert rule_of(view, "PUT") is None

    @rule(exempt=True)
    def health() -> None: ...

    assert rule_of(health, "POST").exempt is True


def reference_match(templates: list[str], path: str) -> tuple:
    """Obviously correct: compare segment by segment."""
    segs = path.split("/")
    for t in templates:
        tsegs = t.split("/")
        if len(tsegs) != len(segs):
            continue
        params = {}
        for ts, s in zip(tsegs, segs):
            if ts.startswith("{") and ts.endswith("}"):
                if not s:
                    break
                params[ts[1:-1]] = s
            elif ts != s:
                break
        else:
            return t, params or None
    return None, None


SEG = st.text(alphabet="ab{}%.:-_", min_size=0, max_size=4)
NAME = st.sampled_from(["x", "y", "doc_id"])


@settings(max_examples=100, deadline=None)
@given(
    templates=st.lists(st.lists(st.one_of(st.sampled_from(["a", "b", "ab"]), NAME.map(lambda n: "{" + n + "}")),
                                min_size=1, max_size=3), min_size=1, max_size=4),
    path=st.lists(SEG, min_size=1, max_size=4),
)
def test_route_table_matches_like_the_reference(templates: list, path: list) -> None:
    ts = []
    for segs in templates:
        names = [s for s in segs if s.startswith("{")]
        if len(set(names)) == len(names):
            ts.append("/" + "/".join(segs))
    ts = list(dict.fromkeys(ts))
    # the table tries exact templates first: keep the reference in the same order
    ts.sort(key=lambda t: "{" in t)
    table = RouteTable({t: RouteRule() for t in ts})
    p = "/" + "/".join(path)
    got_t, got_p, _ = table.match(p)
    assert (got_t, got_p) == reference_match(ts, p)


@settings(max_examples=60, deadline=None)
@given(ident=st.text(max_size=30))
def test_template_parameters_are_ids_never_syntax(ident: str) -> None:
    """Whatever a client puts in a path parameter, it only ever becomes the id."""
    spec = RouteRule(resource='Document::"{doc_id}"').resource_spec
    assert spec is not None and spec.fill({"doc_id": ident}) == Entity("Document", ident)
    v = check(guard(), params={"doc_id": ident})
    assert v.outcome == ("allow" if ident == "a1" else "deny")


def test_decision_headers_off_keeps_them_on_refusals() -> None:
    g = guard(decision_headers=False)
    assert g.headers(check(g)) == []
    names = [k for k, _ in g.headers(check(g, user='User::"bob"'))]
    assert names == ["X-Rune-Decision-Id", "X-Rune-Policy-Version"]


def test_decision_headers_are_on_refusals_only_by_default() -> None:
    g = guard()
    assert g.headers(check(g)) == []  # an allowed request: no id, no policy version sent
    assert [k for k, _ in g.headers(check(g, user='User::"bob"'))] == ["X-Rune-Decision-Id", "X-Rune-Policy-Version"]
    on = guard(decision_headers=True)
    v = check(on)
    assert on.headers(v) == [("X-Rune-Decision-Id", v.decision_id), ("X-Rune-Policy-Version", ENGINE.version)]


# -- the per-request work: lazy ids, the memo and its keys -----------------------------


def test_decision_ids_are_drawn_lazily_and_kept() -> None:
    g = guard()
    a, b = check(g), check(g)
    assert a[2] is None and not a.__dict__  # nothing drawn by the decision itself
    first_b = b.decision_id                  # drawn out of order: still unique
    assert a.decision_id != first_b and a.decision_id == a.decision_id and b.decision_id == first_b
    assert re.fullmatch(r"[0-9a-f]{11,}", a.decision_id)
    assert repr(a).count(a.decision_id) == 1


CTX_POLICY = """version = "rune/1"
[policies]
@id("docs")
permit(principal, action == Action::"GET", resource == Route::"/docs/{doc_id}")
  unless { context.path like "/docs/secret*" || context.client == "10.6.6.6" };
"""

PLAIN_POLICY = """version = "rune/1"
[policies]
@id("docs")
permit(principal, action == Action::"GET", resource == Route::"/docs/{doc_id}");
"""


@pytest.mark.parametrize("route_rule", [None, RouteRule(resource=Entity("Route", "/docs/{doc_id}"))])
def test_memo_is_keyed_on_the_context_when_a_policy_reads_it(route_rule: Optional[RouteRule]) -> None:
    """Same principal, action and resource: only the context differs. A memo
    keyed without it would answer the second request from the first."""
    g = Guard(rune_fast.load_text(CTX_POLICY), principal=lambda r: r, metrics=False)

    def go(path: str, client: str = "127.0.0.1") -> str:
        return g.check('User::"u"', "GET", path, "/docs/{doc_id}", {"doc_id": path[6:]}, client, route_rule).outcome

    for _ in range(2):  # the second round is answered from the memo
        assert go("/docs/a1") == "allow"
        assert go("/docs/secret-plan") == "deny"
        assert go("/docs/a1", "10.6.6.6") == "deny"
        assert go("/docs/a1") == "allow"


def test_memo_skips_the_context_when_no_policy_reads_it(monkeypatch: Any) -> None:
    eng = rune_fast.load_text(PLAIN_POLICY)
    assert eng.reads_context is False
    g = Guard(eng, principal=lambda r: r, metrics=False)
    assert g.check('User::"u"', "GET", "/docs/a1", "/docs/{doc_id}", {"doc_id": "a1"}, "10.0.0.1").outcome == "allow"
    monkeypatch.setattr(Guard, "default_context", staticmethod(lambda *a: 1 / 0))  # never built again
    for path, client in (("/docs/b2", "10.0.0.2"), ("/docs/c3", "10.0.0.3")):
        assert g.check('User::"u"', "GET", path, "/docs/{doc_id}", {"doc_id": path[6:]}, client).outcome == "allow"
    assert len(g._memo[1]) == 1  # one entry for the route, whatever the path and client
    assert g.check('User::"v"', "POST", "/docs/a1", "/docs/{doc_id}", {"doc_id": "a1"}, "").outcome == "deny"


def test_memo_follows_a_reload_that_starts_reading_the_context() -> None:
    class Holder:
        engine: Any = rune_fast.load_text(PLAIN_POLICY)

    g = Guard(Holder(), principal=lambda r: r, metrics=False)

    def go(path: str) -> str:
        return g.check('User::"u"', "GET", path, "/docs/{doc_id}", {"doc_id": path[6:]}, "").outcome

    assert go("/docs/secret-1") == "allow" and go("/docs/a1") == "allow"
    Holder.engine = rune_fast.load_text(CTX_POLICY)
    assert go("/docs/secret-1") == "deny" and go("/docs/a1") == "allow"


def test_route_memo_tells_routes_from_raw_paths_and_methods() -> None:
    eng = rune_fast.load_text('version = "rune/1"\n[policies]\n'
                              'permit(principal, action == Action::"GET", resource == Route::"/a");\n')
    g = Guard(eng, principal=lambda r: r, metrics=False)
    for _ in range(2):
        assert g.check('User::"u"', "GET", "/a", None, None, "").outcome == "allow"   # the path is the route
        assert g.check('User::"u"', "GET", "/b", None, None, "").outcome == "deny"
        assert g.check('User::"u"', "GET", "/a", "/{x}", {"x": "a"}, "").outcome == "deny"
        assert g.check('User::"u"', "PUT", "/a", None, None, "").outcome == "deny"
        assert g.check('User::"w"', "GET", "/a", None, None, "").outcome == "allow"


def test_unhashable_principal_is_decided_without_the_memo() -> None:
    g = guard(principal=lambda r: ["User", "alice"])
    v = check(g, rule=None)
    assert v.status == 403 and v.outcome in ("deny", "error")


def test_decide_returns_shared_fields_until_a_verdict_is_needed(caplog: Any) -> None:
    g = guard(audit_logger="rune_fast.test_decide")
    logging.getLogger("rune_fast.test_decide").setLevel(logging.WARNING)  # silent: nothing draws an id
    args = ('User::"alice"', "GET", "/docs/a1", "/docs/{doc_id}", {"doc_id": "a1"}, "127.0.0.1", DOC)
    f1, f2 = g.decide(*args), g.decide(*args)
    assert type(f1) is tuple and f1 is f2  # the memo's tuple, no allocation per request
    v1, v2 = g.verdict(f1), g.verdict(f2)
    assert v1 == f1 and v1.outcome == "allow" and v1.decision_id != v2.decision_id
    assert g.verdict(v1) is v1 and type(g.check(*args)) is type(v1)
    hidden = g.decide('User::"bob"', *args[1:6], RouteRule(action='Action::"read"', resource='Document::"{doc_id}"', hide=True))
    assert hidden[0] == 404 and g.decide('User::"bob"', *args[1:])[0] == 403  # the memo's 403 is untouched
    with caplog.at_level(logging.INFO, logger="rune_fast.test_decide"):
        recorded = g.decide(*args)
    (rec,) = [r for r in caplog.records if r.name == "rune_fast.test_decide"]
    assert type(recorded) is not tuple and rec.rune["decision_id"] == g.verdict(recorded).decision_id  # type: ignore[attr-defined]
