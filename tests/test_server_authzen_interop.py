"""AuthZEN interop conformance, through a real `rune serve`.

The expected decisions are those the AuthZEN working group publishes for its
interop scenarios (the "Todo" application, evaluation and boxcarred
evaluations, and the "Search" demo's subject/resource/action searches),
transcribed here as tables; the policies are tests/authzen/todo.rune and
tests/authzen/search.rune, served together as one bundle.
"""

from __future__ import annotations

import pytest

from server_helpers import AUTHZEN_DIR, Server, check_response, free_port, rune_cmd

# ---------------------------------------------------------------- Todo
PID = {
    "rick": "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "morty": "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "summer": "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "beth": "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
    "jerry": "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
}
EMAIL = {
    "rick": "rick@the-citadel.com",
    "morty": "morty@the-citadel.com",
    "summer": "summer@the-smiths.com",
    "beth": "beth@the-smiths.com",
    "jerry": "jerry@the-smiths.com",
}
TODO_ID = "7240d0db-8ff0-41ec-98b2-34a096273b9f"

# (user, action, resource kind, expected): resource kinds are "beth" (user
# beth@...), "self" (the user's own profile), "list" (todo-1), and
# "own"/"rick" (a todo owned by the user / by Rick; for Rick, by Morty).
TODO_DECISIONS = [
    (u, a, k, exp)
    for u, row in {
        "rick": "TTTT TTTT",
        "morty": "TTTT FTFT",
        "summer": "TTTT FTFT",
        "beth": "TTTF FFFF",
        "jerry": "TTTF FFFF",
    }.items()
    for (a, k), exp in zip(
        [
            ("can_read_user", "beth"),
            ("can_read_user", "self"),
            ("can_read_todos", "list"),
            ("can_create_todo", "list"),
            ("can_update_todo", "other"),
            ("can_update_todo", "own"),
            ("can_delete_todo", "other"),
            ("can_delete_todo", "own"),
        ],
        [c == "T" for c in row.replace(" ", "")],
    )
]


def todo_request(user: str, action: str, kind: str) -> dict:
    if kind == "beth":
        resource = {"type": "user", "id": EMAIL["beth"]}
    elif kind == "self":
        resource = {"type": "user", "id": EMAIL[user]}
    elif kind == "list":
        resource = {"type": "todo", "id": "todo-1"}
    else:
        owner = user if kind == "own" else ("morty" if user == "rick" else "rick")
        resource = {"type": "todo", "id": TODO_ID, "properties": {"ownerID": EMAIL[owner]}}
    return {"subject": {"type": "user", "id": PID[user]}, "action": {"name": action}, "resource": resource, "context": {}}


@pytest.fixture(scope="module")
def pdp(tmp_path_factory):
    port = free_port()
    srv = Server(rune_cmd(AUTHZEN_DIR, port, "--workers", "2"), port, tmp_path_factory.mktemp("interop"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def doc(pdp):
    return pdp.get("/openapi.json").json()


def test_todo_evaluation(pdp, doc):
    assert len(TODO_DECISIONS) == 40
    wrong = []
    for user, action, kind, expected in TODO_DECISIONS:
        r = pdp.post("/access/v1/evaluation", todo_request(user, action, kind))
        check_response(doc, "/access/v1/evaluation", "POST", r)
        if r.json()["decision"] is not expected:
            wrong.append((user, action, kind, expected))
    assert wrong == []


def test_todo_evaluations_boxcarred(pdp, doc):
    cases = [("rick", ["rick", "jerry"], [True, True]), ("morty", ["rick", "morty"], [False, True]), ("jerry", ["rick", "jerry"], [False, False])]
    for user, owners, expected in cases:
        body = {
            "subject": {"type": "user", "id": PID[user]},
            "action": {"name": "can_update_todo"},
            "resource": {},
            "context": {},
            "evaluations": [{"resource": {"type": "todo", "id": TODO_ID, "properties": {"ownerID": EMAIL[o]}}} for o in owners],
        }
        r = pdp.post("/access/v1/evaluations", body)
        check_response(doc, "/access/v1/evaluations", "POST", r)
        assert [e["decision"] for e in r.json()["evaluations"]] == expected, user
    # All 40 single decisions in one call give the same answers.
    body = {"evaluations": [todo_request(*case[:3]) for case in TODO_DECISIONS]}
    r = pdp.post("/access/v1/evaluations", body)
    assert [e["decision"] for e in r.json()["evaluations"]] == [case[3] for case in TODO_DECISIONS]


# ---------------------------------------------------------------- Search
USERS = ["alice", "bob", "carol", "dan", "erin", "felix"]
RECORDS = [str(i) for i in range(101, 121)]

# record -> (view, edit, delete) users, as published for the subject search.
SUBJECTS = {
    "101": ("alice bob carol dan", "alice", "alice"),
    "102": ("alice bob carol dan", "bob", "bob"),
    "103": ("alice bob carol dan", "carol", "carol"),
    "104": ("alice dan felix", "dan", "dan"),
    "105": ("alice bob carol dan erin", "erin", "erin"),
    "106": ("alice dan felix", "felix", "felix"),
    "107": ("alice dan", "alice", "alice"),
    "108": ("alice bob carol dan", "bob", "bob"),
    "109": ("alice carol dan felix", "carol", "carol"),
    "110": ("alice dan", "alice dan", "dan"),
    "111": ("alice dan erin felix", "erin", "erin"),
    "112": ("alice bob carol dan felix", "felix", "felix"),
    "113": ("alice dan", "alice", "alice"),
    "114": ("alice bob dan felix", "bob", "bob"),
    "115": ("alice carol dan erin", "carol dan", "carol"),
    "116": ("alice bob carol dan", "dan", "dan"),
    "117": ("alice bob carol dan erin", "erin", "erin"),
    "118": ("alice dan felix", "felix", "felix"),
    "119": ("alice bob carol dan", "alice", "alice"),
    "120": ("alice bob dan felix", "bob", "bob"),
}

# user -> (view, edit, delete) records, as published for the resource search.
RESOURCES = {
    "alice": (" ".join(RECORDS), "101 107 110 113 119", "101 107 113 119"),
    "bob": ("101 102 103 105 108 112 114 116 117 119 120", "102 108 114 120", "102 108 114 120"),
    "carol": ("101 102 103 105 108 109 112 115 116 117 119", "103 109 115", "103 109 115"),
    "dan": (" ".join(RECORDS), "104 110 115 116", "104 110 116"),
    "erin": ("105 111 115 117", "105 111 117", "105 111 117"),
    "felix": ("104 106 109 111 112 114 118 120", "106 112 118", "106 112 118"),
}
ACTIONS = ("view", "edit", "delete")


def test_published_search_tables_agree():
    """The subject and resource tables are two views of one relation (and
    the action search is a third): check the transcription."""
    by_subject = {(u, r, a) for r, row in SUBJECTS.items() for a, users in zip(ACTIONS, row) for u in users.split()}
    by_resource = {(u, r, a) for u, row in RESOURCES.items() for a, recs in zip(ACTIONS, row) for r in recs.split()}
    assert by_subject == by_resource


def _all_pages(pdp, path, body, limit):
    out, token, pages = [], None, 0
    while True:
        page = {"limit": limit}
        if token:
            page["token"] = token
        r = pdp.post(path, {**body, "page": page})
        assert r.status_code == 200, r.text
        data = r.json()
        assert len(data["results"]) <= limit
        out += data["results"]
        pages += 1
        token = data["page"]["next_token"]
        if not token:
            return out, pages
        assert pages < 100


def test_search_subject(pdp, doc):
    for rec, row in SUBJECTS.items():
        for action, users in zip(ACTIONS, row):
            body = {"subject": {"type": "user"}, "action": {"name": action}, "resource": {"type": "record", "id": rec}}
            r = pdp.post("/access/v1/search/subject", body)
            check_response(doc, "/access/v1/search/subject", "POST", r)
            got = [x["id"] for x in r.json()["results"]]
            assert all(x["type"] == "user" for x in r.json()["results"])
            assert sorted(got) == sorted(users.split()), (rec, action)
    empty = pdp.post("/access/v1/search/subject", {"subject": {"type": "user"}, "action": {"name": "view"}, "resource": {"type": "record", "id": "999"}})
    assert empty.json()["results"] == [] and empty.json()["page"]["next_token"] == ""


def test_search_resource_with_paging(pdp, doc):
    for user, row in RESOURCES.items():
        for action, recs in zip(ACTIONS, row):
            body = {"subject": {"type": "user", "id": user}, "action": {"name": action}, "resource": {"type": "record"}}
            r = pdp.post("/access/v1/search/resource", body)
            check_response(doc, "/access/v1/search/resource", "POST", r)
            assert sorted(x["id"] for x in r.json()["results"]) == sorted(recs.split()), (user, action)
            paged, pages = _all_pages(pdp, "/access/v1/search/resource", body, 3)
            assert [x["id"] for x in paged] == [x["id"] for x in r.json()["results"]]
            assert pages >= len(recs.split()) // 3
    r = pdp.post("/access/v1/search/resource", {"subject": {"type": "user", "id": "alice"}, "action": {"name": "view"}, "resource": {"type": "record"}, "page": {"token": "garbage"}})
    assert r.status_code == 400


def test_search_action(pdp, doc):
    expected = {(u, r): [] for u in USERS for r in RECORDS}
    for u, row in RESOURCES.items():
        for a, recs in zip(ACTIONS, row):
            for r in recs.split():
                expected[(u, r)].append(a)
    for (user, rec), actions in expected.items():
        body = {"subject": {"type": "user", "id": user}, "resource": {"type": "record", "id": rec}}
        r = pdp.post("/access/v1/search/action", body)
        check_response(doc, "/access/v1/search/action", "POST", r)
        assert sorted(x["name"] for x in r.json()["results"]) == sorted(actions), (user, rec)
