"""Search (``Engine.search_resources/subjects/actions``): equal to brute-force
``authorize`` over every candidate on random programs and requests, stable
paging, tokens tied to the engine version and the query, bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from search_programs import (
    ACTIONS,
    DOCS,
    USERS,
    brute_actions,
    brute_resources,
    brute_subjects,
    programs,
    request_parts,
)

import rune_fast
from rune_fast import Entity, RuneRequestError, SearchPage

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "doc_sharing.rune")


def _all_pages(search, limit: int) -> list:
    """Concatenate every page of a search (bounded)."""
    out: list = []
    token = None
    for _ in range(100):
        page = search(limit=limit, page_token=token)
        assert isinstance(page, SearchPage)
        assert len(page.results) <= limit
        out.extend(page.results)
        token = page.next_token
        if token is None:
            return out
        assert page.results, "a token must never lead to an empty page"
    raise AssertionError("paging did not terminate")


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


BARE = """version = "rune/1"
[data]
member = [['User::"u0"', 'Group::"g0"']]
located = [['Doc::"d0"', 'Folder::"f0"']]
[policies]
permit(principal is User, action in [Action::"a0", Action::"a2"], resource is Doc) when { context.flag };
"""
#: A request entity with neither attributes nor parents (found by a long
#: randomized run): it changes no decision, but it is still a candidate.
BARE_USER = ({"flag": True}, [{"uid": 'User::"new"'}])
BARE_DOC = ({"flag": True}, [{"uid": 'Doc::"new"', "parents": []}])


@PROPS
@example(BARE, BARE_DOC, 'User::"u0"', 'Action::"a0"', "Doc", None, 1)
@given(programs(), request_parts(), st.sampled_from(USERS), st.sampled_from(ACTIONS),
       st.sampled_from(["Doc", "Folder"]), st.sampled_from([None, 'Folder::"f0"', 'Folder::"f1"']),
       st.integers(1, 3))
def test_resources_equal_brute_force(text, req, principal, action, rtype, within, limit):
    engine = rune_fast.load_text(text)
    ctx, ents = req
    expected = brute_resources(engine, principal, action, rtype, ctx, ents, within)
    got = engine.search_resources(principal, action, rtype, context=ctx, entities=ents, within=within, limit=100)
    assert list(got.results) == expected
    assert got.next_token is None
    paged = _all_pages(lambda **kw: engine.search_resources(principal, action, rtype, context=ctx, entities=ents,
                                                            within=within, **kw), limit)
    assert paged == expected


@PROPS
@example(BARE, BARE_USER, 'Action::"a0"', 'Doc::"d0"')
@given(programs(), request_parts(), st.sampled_from(ACTIONS), st.sampled_from(DOCS + ['Doc::"new"', 'Folder::"f1"']))
def test_subjects_equal_brute_force(text, req, action, resource):
    engine = rune_fast.load_text(text)
    ctx, ents = req
    expected = brute_subjects(engine, action, resource, "User", ctx, ents)
    assert list(engine.search_subjects(action, resource, "User", context=ctx, entities=ents).results) == expected
    assert _all_pages(lambda **kw: engine.search_subjects(action, resource, "User", context=ctx, entities=ents, **kw), 1) == expected


@PROPS
@given(programs(), request_parts(), st.sampled_from(USERS), st.sampled_from(DOCS + ['Folder::"f0"']))
def test_actions_equal_brute_force(text, req, principal, resource):
    engine = rune_fast.load_text(text)
    ctx, ents = req
    expected = brute_actions(engine, principal, resource, ctx, ents)
    assert list(engine.search_actions(principal, resource, context=ctx, entities=ents).results) == expected


# ---------------------------------------------------------------------------
# Concrete behaviour on the bundled example


@pytest.fixture(scope="module")
def doc_engine():
    return rune_fast.load(EXAMPLE)


def test_example_resources_subjects_actions(doc_engine):
    alice = 'User::"alice"'
    read = 'Action::"read"'
    docs = doc_engine.search_resources(alice, read, "Document").results
    assert docs == tuple(Entity("Document", d) for d in ("design", "handbook", "mallory_notes", "roadmap"))
    # contract is classified 3 (alice is cleared) but she has no role on legal
    assert Entity("Document", "contract") not in docs
    assert doc_engine.search_resources(alice, read, "Document", within='Folder::"eng_backend"').results == (
        Entity("Document", "design"),)
    # bob lacks clearance for the roadmap: the forbid removes it
    bob_docs = doc_engine.search_resources('User::"bob"', read, "Document").results
    assert Entity("Document", "roadmap") not in bob_docs and Entity("Document", "design") in bob_docs
    # mallory is suspended: nothing at all
    assert doc_engine.search_resources('User::"mallory"', read, "Document").results == ()
    readers = doc_engine.search_subjects(read, 'Document::"design"', "User").results
    assert readers == tuple(Entity("User", u) for u in ("alice", "bob", "dave", "erin"))
    acts = doc_engine.search_actions(alice, 'Document::"roadmap"').results
    assert acts == tuple(Entity("Action", a) for a in ("comment", "delete", "edit", "read", "share"))


def test_request_entities_are_candidates(doc_engine):
    # a document only the request knows, placed in a folder alice can read
    ents = [{"uid": {"type": "Document", "id": "draft"}, "parents": [{"type": "Folder", "id": "public"}]}]
    # the rules read located_in, not parent, so only the auditors' `in` policy sees it
    got = doc_engine.search_resources('User::"erin"', 'Action::"read"', "Document", entities=ents).results
    assert Entity("Document", "draft") in got
    assert Entity("Document", "draft") not in doc_engine.search_resources(
        'User::"erin"', 'Action::"read"', "Document").results


@pytest.mark.parametrize("ents", [[{"uid": 'User::"new"'}], [{"uid": 'User::"new"', "attrs": {}, "parents": []}],
                                  [{"uid": 'User::"new"', "attrs": {}}]])
def test_request_entity_without_attributes_or_parents_is_a_candidate(ents):
    """Regression: a request entity with no attributes and no parents was not a
    candidate, so search missed a principal, resource or action that
    ``authorize`` permits (and whose decision needs nothing from the entity)."""
    engine = rune_fast.load_text(BARE + 'permit(principal, action, resource is Folder) when { context.flag };\n')
    ctx = {"flag": True}
    new_user = Entity("User", "new")
    assert engine.authorize(new_user, 'Action::"a0"', 'Doc::"d0"', ctx, ents).allowed
    got = engine.search_subjects('Action::"a0"', 'Doc::"d0"', "User", context=ctx, entities=ents).results
    assert got == (new_user, Entity("User", "u0"))
    assert got == tuple(brute_subjects(engine, 'Action::"a0"', 'Doc::"d0"', "User", ctx, ents))
    # the same entity type as the searched resource, and as an action
    docs = [{**e, "uid": 'Doc::"new"'} for e in ents]
    got = engine.search_resources('User::"u0"', 'Action::"a0"', "Doc", context=ctx, entities=docs).results
    assert got == (Entity("Doc", "d0"), Entity("Doc", "new"))
    assert got == tuple(brute_resources(engine, 'User::"u0"', 'Action::"a0"', "Doc", ctx, docs))
    acts = [{**e, "uid": 'Action::"new"'} for e in ents]
    got = engine.search_actions('User::"u0"', 'Folder::"f0"', context=ctx, entities=acts).results
    assert Entity("Action", "new") in got
    assert got == tuple(brute_actions(engine, 'User::"u0"', 'Folder::"f0"', ctx, acts))
    # without the request entity it is not a candidate
    assert new_user not in engine.search_subjects('Action::"a0"', 'Doc::"d0"', "User", context=ctx).results


def test_paging_is_stable_and_token_checked(doc_engine):
    alice, read = 'User::"alice"', 'Action::"read"'
    full = doc_engine.search_resources(alice, read, "Document").results
    p1 = doc_engine.search_resources(alice, read, "Document", limit=3)
    assert p1.results == full[:3] and p1.next_token
    p2 = doc_engine.search_resources(alice, read, "Document", limit=3, page_token=p1.next_token)
    assert p2.results == full[3:] and p2.next_token is None
    # the next page is the same whether the first page's results are still remembered or not
    from rune_fast.analysis import search as search_module

    search_module._RECENT.clear()
    assert doc_engine.search_resources(alice, read, "Document", limit=3, page_token=p1.next_token) == p2
    # the same token on a different query is refused
    with pytest.raises(RuneRequestError, match="different search"):
        doc_engine.search_resources('User::"bob"', read, "Document", page_token=p1.next_token)
    # a token from another engine version is refused, not misread
    other = rune_fast.load_text(Path(EXAMPLE).read_text() + "\n# changed\n")
    assert other.version != doc_engine.version
    with pytest.raises(RuneRequestError, match="another engine version"):
        other.search_resources(alice, read, "Document", limit=3, page_token=p1.next_token)
    for bad in ("", "x", "!!!!", "WzFd", 42, "A" * 5000):
        with pytest.raises(RuneRequestError):
            doc_engine.search_resources(alice, read, "Document", page_token=bad)


@pytest.mark.parametrize("kw", [{"limit": 0}, {"limit": -1}, {"limit": 10**6}, {"limit": "3"}, {"limit": True}])
def test_bad_limits(doc_engine, kw):
    with pytest.raises(RuneRequestError):
        doc_engine.search_resources('User::"alice"', 'Action::"read"', "Document", **kw)


def test_bad_requests(doc_engine):
    with pytest.raises(RuneRequestError):
        doc_engine.search_resources("alice", 'Action::"read"', "Document")
    with pytest.raises(RuneRequestError):
        doc_engine.search_resources('User::"alice"', 'Action::"read"', "Not a type")
    with pytest.raises(RuneRequestError):
        doc_engine.search_subjects('Action::"read"', 'Document::"x"', "")
    with pytest.raises(RuneRequestError):
        doc_engine.search_actions('User::"alice"', 'Document::"x"', context=[1])
    with pytest.raises(RuneRequestError):
        doc_engine.search_resources('User::"alice"', 'Action::"read"', "Document", within="nope")


def test_store_mirrors_engine(tmp_path):
    path = tmp_path / "b.rune"
    path.write_text(Path(EXAMPLE).read_text())
    with rune_fast.PolicyStore(str(path), watch=False) as store:
        e = store.engine
        args = ('User::"alice"', 'Action::"read"', "Document")
        assert store.search_resources(*args) == e.search_resources(*args)
        assert store.search_subjects('Action::"read"', 'Document::"design"', "User") == e.search_subjects(
            'Action::"read"', 'Document::"design"', "User")
        assert store.search_actions('User::"alice"', 'Document::"roadmap"', limit=2) == e.search_actions(
            'User::"alice"', 'Document::"roadmap"', limit=2)


def test_page_to_dict(doc_engine):
    page = doc_engine.search_actions('User::"alice"', 'Document::"roadmap"', limit=2)
    d = page.to_dict()
    assert d["results"] == [{"type": "Action", "id": "comment"}, {"type": "Action", "id": "delete"}]
    assert isinstance(d["next_token"], str)


RICH = r'''
version = "rune/1"
[data]
member = [['User::"u0"', 'Group::"g1"'], ['Group::"g1"', 'Group::"g0"'], ['User::"u1"', 'Group::"g2"'],
          ['Group::"g2"', 'Group::"g1"']]
located = [['Doc::"d0"', 'Folder::"f2"'], ['Folder::"f2"', 'Folder::"f1"'], ['Folder::"f1"', 'Folder::"f0"'],
           ['Doc::"d1"', 'Folder::"f1"'], ['Doc::"d2"', 'Folder::"f3"'], ['Doc::"d3"', 'Folder::"f0"']]
parent = [['Doc::"d0"', 'Folder::"f2"'], ['Folder::"f2"', 'Folder::"f1"'], ['Folder::"f1"', 'Folder::"f0"'],
          ['Doc::"d1"', 'Folder::"f1"'], ['Doc::"d2"', 'Folder::"f3"'], ['Doc::"d3"', 'Folder::"f0"'],
          ['User::"u0"', 'Group::"g1"'], ['Group::"g1"', 'Group::"g0"'], ['User::"u1"', 'Group::"g2"'],
          ['Group::"g2"', 'Group::"g1"']]
grant = [['Group::"g0"', 'Action::"a0"', 'Folder::"f1"'], ['Group::"g2"', 'Action::"a1"', 'Folder::"f3"']]
can_folder = [['User::"u2"', 'Action::"a2"', 'Folder::"f3"'], ['User::"u0"', 'Action::"a2"', 'Folder::"f0"']]
attr = [['Doc::"d0"', "folder", 'Folder::"f0"'], ['Doc::"d2"', "folder", 'Folder::"f3"'],
        ['Doc::"d1"', "owner", 'User::"u2"'], ['Doc::"d3"', "level", 3], ['User::"u0"', "level", 1],
        ['User::"u1"', "level", 5], ['Doc::"d2"', "secret", true], ['User::"u2"', "level", 2]]
[rules]
in_group(M, G) :- member(M, G).
in_group(M, G) :- member(M, H), in_group(H, G).
below(R, F) :- located(R, F).
below(R, F) :- located(R, P), below(P, F).
can(U, A, R) :- in_group(U, G), grant(G, A, F), below(R, F).
cleared(U, R) :- principal(U), resource(R), attr(U, "level", C), attr(R, "level", L), C >= L.
[policies]
permit(principal, action, resource) when { can(principal, action, resource) };
permit(principal, action == Action::"a2", resource) when { can_folder(principal, action, resource.folder) };
permit(principal, action == Action::"a3", resource is Doc) when { resource.owner == principal };
permit(principal in Group::"g0", action == Action::"a4", resource in Folder::"f1");
permit(principal == User::"u2", action == Action::"a5", resource) when { resource in Folder::"f0" };
permit(principal, action == Action::"a6", resource) when { context.open };
forbid(principal, action, resource) when { resource has secret && resource.secret } unless { principal.level > 4 };
forbid(principal, action, resource) when { resource has level } unless { cleared(principal, resource) };
forbid(principal == User::"u1", action == Action::"a4", resource);
'''

RICH_REQUESTS = [
    (None, None),
    ({"open": True}, None),
    ({"open": True}, [{"uid": 'Doc::"d9"', "attrs": {"owner": {"__entity": {"type": "User", "id": "u0"}},
                                                     "folder": {"__entity": {"type": "Folder", "id": "f0"}}}}]),
    (None, [{"uid": 'Doc::"d9"', "parents": ['Folder::"f2"']}, {"uid": 'Folder::"f3"', "parents": ['Folder::"f1"']}]),
    (None, [{"uid": 'Doc::"d1"', "attrs": {"owner": {"__entity": {"type": "User", "id": "u0"}}, "level": 2}},
            {"uid": 'User::"u2"', "attrs": {"level": 9}, "parents": ['Group::"g0"']}]),
]


@pytest.mark.parametrize("req", range(len(RICH_REQUESTS)))
def test_rich_program_every_generator_equals_brute_force(req):
    engine = rune_fast.load_text(RICH)
    ctx, ents = RICH_REQUESTS[req]
    users = [f'User::"u{i}"' for i in range(3)]
    actions = [f'Action::"a{i}"' for i in range(7)]
    seen = 0
    for p in users:
        for a in actions:
            for rtype in ("Doc", "Folder"):
                want = brute_resources(engine, p, a, rtype, ctx, ents)
                assert list(engine.search_resources(p, a, rtype, context=ctx, entities=ents).results) == want, (p, a)
                seen += len(want)
    for a in actions:
        for r in ['Doc::"d0"', 'Doc::"d1"', 'Doc::"d2"', 'Doc::"d3"', 'Doc::"d9"', 'Folder::"f2"']:
            want = brute_subjects(engine, a, r, "User", ctx, ents)
            assert list(engine.search_subjects(a, r, "User", context=ctx, entities=ents).results) == want, (a, r)
            seen += len(want)
    assert seen > 10  # the program allows enough for the comparison to mean something


SETS = r'''
version = "rune/1"
[data]
attr = [['Doc::"a"', "tags", "x"], ['Doc::"a"', "tags", "y"], ['Doc::"b"', "tags", "x"],
        ['Doc::"c"', "n", 1.0], ['Doc::"d"', "n", 1], ['User::"u"', "tags", "x"], ['User::"u"', "tags", "y"],
        ['User::"u"', "n", 1]]
[policies]
permit(principal, action == Action::"sets", resource) when { resource.tags == principal.tags };
permit(principal, action == Action::"nums", resource) when { resource.n == principal.n };
'''


@pytest.mark.parametrize("action", ['Action::"sets"', 'Action::"nums"'])
def test_attribute_equality_with_sets_and_mixed_numbers(action):
    """Multi-valued attributes are sets; 1 == 1.0 in policies: generators must not miss either."""
    engine = rune_fast.load_text(SETS)
    want = brute_resources(engine, 'User::"u"', action, "Doc", None, None)
    assert want  # Doc::"a" (same tag set), or Doc::"c" and Doc::"d" (1.0 and 1)
    assert list(engine.search_resources('User::"u"', action, "Doc").results) == want


def test_request_entity_without_attrs_or_parents_is_a_candidate():
    """An entity given in the request with only its uid is searched like any other."""
    engine = rune_fast.load_text(
        'version = "rune/1"\n\n[data]\nattr = [[\'Doc::"d0"\', "level", 1]]\n\n[policies]\n'
        'permit(principal is User, action == Action::"read", resource is Doc) when { context.flag };\n'
    )
    ctx, ents = {"flag": True}, [{"uid": 'Doc::"d1"'}]
    seen: list = []
    token = None
    while True:
        page = engine.search_resources('User::"u"', 'Action::"read"', "Doc", context=ctx, entities=ents,
                                       limit=1, page_token=token)
        seen.extend(page.results)
        token = page.next_token
        if token is None:
            break
    brute = [d for d in (rune_fast.Entity("Doc", "d0"), rune_fast.Entity("Doc", "d1"))
             if engine.authorize('User::"u"', 'Action::"read"', d, ctx, ents).allowed]
    assert seen == brute == [rune_fast.Entity("Doc", "d0"), rune_fast.Entity("Doc", "d1")]


def test_remembered_pages_are_keyed_on_the_whole_request():
    """Regression: the query digest (which names a search's remembered results
    and checks its page tokens) made a set and its ``str`` one value, so page
    2 of one search was read from another's results and listed a resource the
    principal cannot access."""
    engine = rune_fast.load_text('''version = "rune/1"
[data]
parent = [['Doc::"d1"', 'Folder::"f"'], ['Doc::"d2"', 'Folder::"f"'], ['Doc::"d0"', 'Folder::"g"'],
          ['Doc::"d3"', 'Folder::"g"']]
[policies]
permit(principal, action, resource in Folder::"f") when { context.tags.contains("x") };
permit(principal, action, resource in Folder::"g");
''')
    u, a = 'User::"u"', 'Action::"r"'
    as_text, as_set = {"tags": "{'x'}"}, {"tags": {"x"}}
    assert engine.search_resources(u, a, "Doc", context=as_text).results == (Entity("Doc", "d0"), Entity("Doc", "d3"))
    p1 = engine.search_resources(u, a, "Doc", context=as_text, limit=1)
    engine.search_resources(u, a, "Doc", context=as_set, limit=1)  # remembers its own, longer result list
    p2 = engine.search_resources(u, a, "Doc", context=as_text, limit=1, page_token=p1.next_token)
    assert p2.results == (Entity("Doc", "d3"),)
    assert not engine.authorize(u, a, 'Doc::"d1"', as_text).allowed
    with pytest.raises(RuneRequestError, match="different search"):
        engine.search_resources(u, a, "Doc", context=as_set, limit=1, page_token=p1.next_token)


ERRORING_FORBID = '''version = "rune/1"
[data]
attr = [['Doc::"d0"', "level", 1], ['Doc::"d1"', "level", "high"], ['Doc::"d2"', "level", 3],
        ['User::"u"', "level", 2]]
[policies]
permit(principal, action, resource is Doc);
forbid(principal, action, resource) when { resource.level > principal.level && principal has level };
'''


@pytest.mark.parametrize("strict", [False, True])
def test_an_erroring_forbid_under_strict_forbid(strict):
    """Regression: with ``strict_forbid`` a forbid whose condition raises
    denies, but search treated the error as "forbid not satisfied" and listed
    the resource (and the principal) anyway."""
    engine = rune_fast.load_text(ERRORING_FORBID, strict_forbid=strict)
    u, a = 'User::"u"', 'Action::"r"'
    want = brute_resources(engine, u, a, "Doc", None, None)
    assert want == ([Entity("Doc", "d0"), Entity("Doc", "d1")] if not strict else [Entity("Doc", "d0")])
    assert list(engine.search_resources(u, a, "Doc").results) == want
    for doc in ('Doc::"d0"', 'Doc::"d1"', 'Doc::"d2"'):
        assert list(engine.search_subjects(a, doc, "User").results) == brute_subjects(engine, a, doc, "User", None, None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(), request_parts(), st.sampled_from(USERS), st.sampled_from(ACTIONS), st.sampled_from(DOCS))
def test_strict_forbid_equals_brute_force(text, req, principal, action, resource):
    """The random programs' forbids raise (``context.level`` missing,
    ``resource.level`` absent): under strict_forbid that denies."""
    engine = rune_fast.load_text(text, strict_forbid=True)
    ctx, ents = req
    assert list(engine.search_resources(principal, action, "Doc", context=ctx, entities=ents).results) == \
        brute_resources(engine, principal, action, "Doc", ctx, ents)
    assert list(engine.search_subjects(action, resource, "User", context=ctx, entities=ents).results) == \
        brute_subjects(engine, action, resource, "User", ctx, ents)
