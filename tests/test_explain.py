"""Explanations (``Engine.explain``): proof trees verified by an independent
checker on random programs and requests, the decision equal to
``authorize``'s, why-not reports, JSON and text forms, fact locations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proof_checker import Checker, ProofError
from search_programs import ACTIONS, DOCS, FOLDERS, USERS, programs, request_parts

import rune_fast
from rune_fast import Entity, Explanation
from rune_fast.analysis.explain import _Context
from rune_fast.analysis.locate import array_element_lines

ROOT = Path(__file__).resolve().parent.parent
DOC = str(ROOT / "examples" / "doc_sharing.rune")

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _proofs(ex: Explanation):
    for rep in ex.policies:
        for s in rep.scope:
            yield from s.path
        for c in rep.conditions:
            for f in c.facts:
                if f.proof is not None:
                    yield f.proof


@PROPS
@given(programs(), request_parts(), st.sampled_from(USERS), st.sampled_from(ACTIONS),
       st.sampled_from(DOCS + FOLDERS[:1] + ['Doc::"new"']))
def test_explanations_agree_and_every_proof_verifies(text, req, p, a, r):
    engine = rune_fast.load_text(text)
    ctx, ents = req
    ex = engine.explain(p, a, r, ctx, ents)
    d = engine.authorize(p, a, r, ctx, ents)
    assert (ex.decision.decision, ex.decision.reasons, ex.decision.errors) == (d.decision, d.reasons, d.errors)
    json.dumps(ex.to_dict())
    assert ex.render().startswith(d.decision)
    checker = Checker(engine, text, p, a, r, ctx, ents)
    for proof in _proofs(ex):
        checker.check(proof)
    by_id = {rep.id: rep for rep in ex.policies}
    for pid in d.reasons:
        assert by_id[pid].status == "satisfied" and by_id[pid].determining
    for pid, _ in d.errors:
        assert by_id[pid].status == "error"
    if d.decision == "deny":
        assert ex.why_not
        for rep in ex.policies:
            assert rep.status != "satisfied"
            if rep.status == "condition":
                failing = [c for c in rep.conditions if not c.holds]
                assert len(failing) == 1 and failing[0] is rep.conditions[-1] and failing[0].blame is not None


@PROPS
@given(programs(), request_parts(), st.sampled_from(USERS), st.sampled_from(DOCS))
def test_every_fact_of_the_model_has_a_verified_proof(text, req, p, r):
    engine = rune_fast.load_text(text)
    ctx, ents = req
    a = 'Action::"a0"'
    checker = Checker(engine, text, p, a, r, ctx, ents)
    parsed = engine._parse_request(p, a, r, ctx, ents)
    cx = _Context(engine, *parsed)
    n = 0
    for rel in engine.info.idb:
        for bindings in engine.query(f"{rel}({', '.join(f'X{i}' for i in range(engine.info.arities[rel]))})",
                                     principal=p, action=a, resource=r, context=ctx, entities=ents):
            row = tuple(bindings[f"X{i}"] for i in range(engine.info.arities[rel]))
            proof = cx.proof_of(rel, row)
            assert proof is not None and proof.kind != "omitted", (rel, row)
            checker.check(proof)
            n += 1


def test_checker_rejects_broken_proofs():
    """The checker is not a rubber stamp: tampered proofs fail."""
    from dataclasses import replace

    text = Path(DOC).read_text()
    engine = rune_fast.load(DOC)
    args = ('User::"bob"', 'Action::"edit"', 'Document::"design"')
    ex = engine.explain(*args)
    proof = next(_proofs(ex))
    checker = Checker(engine, text, *args)
    checker.check(proof)
    with pytest.raises(ProofError):  # a wrong binding
        checker.check(replace(proof, bindings=tuple((k, Entity("User", "eve") if k == "U" else v)
                                                    for k, v in proof.bindings)))
    with pytest.raises(ProofError):  # a missing body proof
        checker.check(replace(proof, children=proof.children[:-1]))
    with pytest.raises(ProofError):  # a derived fact passed off as stated
        checker.check(replace(proof, kind="data"))
    child = proof.children[0]
    with pytest.raises(ProofError):  # a cycle: the fact under itself
        checker.check(replace(proof, children=(replace(child, children=(proof,) + child.children[1:]),)
                              + proof.children[1:]))


# ---------------------------------------------------------------------------
# The bundled example


@pytest.fixture(scope="module")
def doc():
    return rune_fast.load(DOC)


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_permit_proof_reaches_data_rows_with_lines(doc):
    text = Path(DOC).read_text()
    ex = doc.explain('User::"bob"', 'Action::"edit"', 'Document::"design"')
    assert ex.decision.allowed and ex.decision.reasons == ("doc-rbac",)
    (rep,) = ex.policies
    assert rep.determining and rep.status == "satisfied"
    assert rep.loc.line == _line_of(text, '@id("doc-rbac")')
    proof = rep.conditions[0].facts[0].proof
    assert proof.fact == 'can(User::"bob", Action::"edit", Document::"design")'
    assert proof.rule.loc.line == _line_of(text, "can(U, A, R) :- has_role(U, R, Role), role_action(Role, A).")
    leaves = {}

    def walk(n):
        if n.kind == "rule":
            for c in n.children:
                walk(c)
        else:
            leaves[n.fact] = n.origin

    walk(proof)
    assert leaves['member(User::"bob", Group::"backend")'] == {
        "kind": "data", "file": DOC, "line": _line_of(text, """['User::"bob"',     'Group::"backend"']""")}
    assert leaves['role_action("editor", Action::"edit")']["line"] == _line_of(text, """["editor", 'Action::"edit"']""")
    assert "[data] " + DOC in ex.render()


def test_in_scope_shows_the_parent_chain(doc):
    ex = doc.explain('User::"erin"', 'Action::"read"', 'Document::"design"')
    rep = ex.policies[0]
    assert rep.id == "doc-auditors-read"
    res = rep.scope[2]
    assert res.matched
    assert [n.row for n in res.path] == [
        (Entity("Document", "design"), Entity("Folder", "eng_backend")),
        (Entity("Folder", "eng_backend"), Entity("Folder", "eng")),
        (Entity("Folder", "eng"), Entity("Folder", "root")),
    ]


def test_why_not_names_the_failing_parts(doc):
    ex = doc.explain('User::"carol"', 'Action::"read"', 'Document::"design"')
    assert ex.decision.decision == "deny" and ex.why_not
    reps = {r.id: r for r in ex.policies}
    assert set(reps) == {"doc-rbac", "doc-auditors-read"}  # the permits for read; forbids are not listed
    rbac = reps["doc-rbac"]
    assert rbac.status == "condition"
    assert rbac.conditions[0].blame["detail"] == 'can(User::"carol", Action::"read", Document::"design") is absent'
    aud = reps["doc-auditors-read"]
    assert aud.status == "scope" and not aud.scope[0].matched
    assert 'User::"carol" is not in Group::"auditors"' in aud.scope[0].detail
    assert "why not" in ex.render()


def test_forbid_shows_the_unless_fact_absent(doc):
    ex = doc.explain('User::"bob"', 'Action::"read"', 'Document::"roadmap"')
    assert ex.decision.decision == "forbid"
    (rep,) = ex.policies
    assert rep.id == "doc-clearance"
    unless = rep.conditions[1]
    assert unless.kind == "unless" and unless.holds and unless.value is False
    assert [(f.fact, f.present) for f in unless.facts] == [('cleared(User::"bob", Document::"roadmap")', False)]


VALUES = r'''
version = "rune/1"
[data]
attr = [['User::"u"', "level", 1], ['Doc::"d"', "level", 2]]
suspended = ['User::"s"']
[rules]
[policies]
@id("levels")
permit(principal is User, action == Action::"read", resource is Doc)
  when { principal has level && resource.level <= principal.level };
@id("not-suspended")
permit(principal, action, resource) when { context.ok } unless { suspended(principal) };
@id("other-action")
permit(principal, action == Action::"write", resource);
'''


def test_why_not_shows_compared_values_and_present_facts():
    engine = rune_fast.load_text(VALUES)
    ex = engine.explain('User::"u"', 'Action::"read"', 'Doc::"d"', {"ok": False})
    reps = {r.id: r for r in ex.policies}
    assert set(reps) == {"levels", "not-suspended"}  # other-action cannot apply to read
    blame = reps["levels"].conditions[0].blame
    assert blame["text"] == "resource.level <= principal.level"
    assert "left resource.level = 2" in blame["detail"] and "right principal.level = 1" in blame["detail"]
    assert reps["not-suspended"].conditions[0].blame["text"] == "context.ok"
    ex2 = engine.explain('User::"s"', 'Action::"read"', 'Doc::"d"', {"ok": True})
    unless = {r.id: r for r in ex2.policies}["not-suspended"].conditions[1]
    assert not unless.holds and unless.blame["detail"] == 'suspended(User::"s") is present'
    assert unless.facts[0].proof.origin["kind"] == "data"


def test_errors_are_reported(doc):
    engine = rune_fast.load_text(VALUES)
    ex = engine.explain('User::"u"', 'Action::"read"', 'Doc::"d"')  # no context.ok: an error
    rep = {r.id: r for r in ex.policies}["not-suspended"]
    assert rep.status == "error" and "ok" in rep.error
    assert ex.decision.errors and ex.decision.errors[0][0] == "not-suspended"


def test_request_facts_are_leaves():
    text = r'''
version = "rune/1"
[rules]
mfa(U) :- principal(U), context("mfa", true).
[policies]
@id("mfa") permit(principal, action, resource) when { mfa(principal) };
'''
    engine = rune_fast.load_text(text)
    ex = engine.explain('User::"a"', 'Action::"x"', 'Doc::"d"', {"mfa": True})
    proof = ex.policies[0].conditions[0].facts[0].proof
    assert [c.origin for c in proof.children] == [{"kind": "request", "field": "principal"},
                                                  {"kind": "request", "field": "context.mfa"}]


def test_store_explain(tmp_path):
    path = tmp_path / "b.rune"
    path.write_text(Path(DOC).read_text())
    with rune_fast.PolicyStore(str(path), watch=False) as store:
        ex = store.explain('User::"bob"', 'Action::"edit"', 'Document::"design"')
        assert ex.decision.allowed


def test_array_element_lines():
    text = 'a = 1\nk = [\n  ["x", "]"],  # c ]\n  [\'y\',\n   2],\n  ["z", """m\nl"""],\n]\nz = 3\n'
    assert array_element_lines(text, 2) == [3, 4, 6]
    assert array_element_lines("k = [1, 2,\n 3]\n", 1) == [1, 1, 2]
    assert array_element_lines("k = 'v'\n", 1) == [1]


def test_proofs_verify_when_no_rule_reads_the_request():
    """Without request-dependent rules the explanation reads the engine's own
    model (no per-request evaluation); its proofs must verify all the same."""
    text = Path(DOC).read_text()
    text = text.replace('cleared(U, D) :- principal(U), resource(D), attr(U, "clearance", C), '
                        'attr(D, "classification", L), C >= L.', "")
    text = text.replace("unless { cleared(principal, resource) }", "unless { false }")
    engine = rune_fast.load_text(text)
    assert not engine._core_dep
    n = 0
    for p in ('User::"alice"', 'User::"bob"', 'User::"erin"', 'User::"dave"'):
        for r in ('Document::"design"', 'Document::"roadmap"', 'Document::"handbook"'):
            a = 'Action::"read"'
            ex = engine.explain(p, a, r)
            assert ex.decision.decision == engine.authorize(p, a, r).decision
            checker = Checker(engine, text, p, a, r)
            for proof in _proofs(ex):
                checker.check(proof)
                n += 1
    assert n > 5
