"""The ``rune`` command line for scripts: exit codes, ``--json`` (errors
included), request errors that name their field, ``--help``, and the lints
and error order of ``rune check``.

In-process through ``cli.main`` (fast); ``test_cli_check.py`` and the docs
tests run the real ``rune`` process.
"""

from __future__ import annotations

import json
import os

import pytest

from rune_fast.cli import app
from rune_fast.cli.common import (
    EXIT_BAD_REQUEST,
    EXIT_CODES,
    EXIT_DENY,
    EXIT_FORBID,
    EXIT_LOAD_ERROR,
    EXIT_NEGATIVE,
    EXIT_OK,
    EXIT_USAGE,
)

POLICY = r'''version = "rune/1"

[data]
member = [['User::"alice"', 'Group::"eng"'], ['User::"bob"', 'Group::"ops"']]
attr = [['User::"bob"', "suspended", true]]

[rules]
in_group(U, G) :- member(U, G).

[policies]
@id("eng-reads")
permit(principal, action == Action::"read", resource)
  when { in_group(principal, Group::"eng") };

@id("suspended")
forbid(principal, action, resource)
  when { principal has suspended && principal.suspended };

@id("mfa-edit")
permit(principal, action == Action::"edit", resource)
  when { context.mfa };

[tests.alice_reads]
principal = 'User::"alice"'
action    = 'Action::"read"'
resource  = 'Doc::"d1"'
expect    = "permit"

[tests.bob_reads]
principal = 'User::"bob"'
action    = 'Action::"read"'
resource  = 'Doc::"d1"'
expect    = "forbid"
'''

WRONG_TEST = '''
[tests.wrong_on_purpose]
principal = 'User::"carol"'
action    = 'Action::"read"'
resource  = 'Doc::"d1"'
expect    = "permit"
'''

ALICE, BOB, CAROL = 'User::"alice"', 'User::"bob"', 'User::"carol"'
READ, EDIT, D1 = 'Action::"read"', 'Action::"edit"', 'Doc::"d1"'


@pytest.fixture()
def policy(tmp_path):
    p = tmp_path / "p.rune"
    p.write_text(POLICY, encoding="utf-8")
    return str(p)


@pytest.fixture()
def broken(tmp_path):
    p = tmp_path / "broken.rune"
    p.write_text('version = "rune/1"\n[policies]\npermit(principal, action resource);\n', encoding="utf-8")
    return str(p)


def run(capsys, *argv):
    code = app.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert out.count("\n") == 1, out  # exactly one JSON value, on stdout
    return code, json.loads(out), err


def request(principal, action, resource=D1):
    return ["--principal", principal, "--action", action, "--resource", resource]


# ---------------------------------------------------------------------------
# exit codes


def test_exit_codes_are_distinct_and_documented():
    codes = [c for c, _ in EXIT_CODES]
    assert len(set(codes)) == len(codes)
    assert {EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE, EXIT_DENY, EXIT_FORBID, EXIT_LOAD_ERROR, EXIT_BAD_REQUEST} == set(codes)
    assert (EXIT_OK, EXIT_DENY, EXIT_FORBID) == (0, 3, 4)


@pytest.mark.parametrize("argv", [["--help"], ["eval", "--help"], ["query", "--help"], ["check", "--help"]])
def test_help_lists_exit_codes(capsys, argv):
    with pytest.raises(SystemExit) as ei:
        app.main(argv)
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code, meaning in EXIT_CODES:
        assert f"  {code}  {meaning}" in out


def test_eval_permit_deny_forbid(capsys, policy):
    code, out, _ = run(capsys, "eval", policy, *request(ALICE, READ))
    assert code == EXIT_OK and out.splitlines() == ["permit", "reasons: eng-reads"]
    code, out, _ = run(capsys, "eval", policy, *request(CAROL, READ))
    assert code == EXIT_DENY and out.splitlines() == ["deny"]
    code, out, _ = run(capsys, "eval", policy, *request(BOB, READ))
    assert code == EXIT_FORBID and out.splitlines() == ["forbid", "reasons: suspended"]


def test_eval_reports_condition_errors_and_uses_context(capsys, policy):
    code, out, _ = run(capsys, "eval", policy, *request(ALICE, EDIT))  # context.mfa is missing
    assert code == EXIT_DENY
    assert out.splitlines()[0] == "deny" and "error in mfa-edit:" in out
    code, out, _ = run(capsys, "eval", policy, *request(ALICE, EDIT), "--context", '{"mfa": true}')
    assert code == EXIT_OK and out.splitlines() == ["permit", "reasons: mfa-edit"]


def test_eval_load_error_is_5(capsys, broken, tmp_path):
    code, out, err = run(capsys, "eval", broken, *request(ALICE, READ))
    assert code == EXIT_LOAD_ERROR and out == ""
    assert f"{broken}:3:" in err and err.rstrip().endswith("1 error")
    code, _, err = run(capsys, "eval", tmp_path / "missing.rune", *request(ALICE, READ))
    assert code == EXIT_LOAD_ERROR and "missing.rune" in err


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--principal", "User::alice"], "principal"),
        (["--resource", "Doc"], "resource"),
        (["--context", "{nope"], "context"),
        (["--context", "[]"], "context"),
        (["--entities", "{}"], "entities"),
        (["--entities", '[{"uid": {"type": "User", "id": "x"}, "attrs": 5}]'], "entities[0].attrs"),
    ],
)
def test_eval_bad_request_names_its_field(capsys, policy, extra, field):
    argv = ["eval", policy, *request(ALICE, READ), *extra]  # later options win
    code, out, err = run(capsys, *argv)
    assert code == EXIT_BAD_REQUEST and out == ""
    assert err.startswith(f"bad request: field {field!r}: ")
    code, data, _ = run_json(capsys, *argv)
    assert code == EXIT_BAD_REQUEST
    assert data["ok"] is False and data["errors"][0]["field"] == field
    assert data["errors"][0]["class"] == "RuneRequestError" and data["errors"][0]["message"]


def test_subcommands_are_a_fixed_table():
    """No registration at import time: the table is an immutable tuple built
    from each subcommand module's COMMANDS (test_layers.py checks that no CLI
    module imports app.py back)."""
    import importlib
    import pkgutil

    import rune_fast.cli as cli_pkg

    assert isinstance(app.SUBCOMMANDS, tuple)
    names = [s.name for s in app.SUBCOMMANDS]
    assert names[:4] == ["check", "eval", "test", "query"] and len(names) == len(set(names))
    # every subcommand module's COMMANDS is in the table, and nothing else is
    modules = [importlib.import_module(f"rune_fast.cli.{m.name}") for m in pkgutil.iter_modules(cli_pkg.__path__)]
    exported = [c for mod in modules for c in getattr(mod, "COMMANDS", ())]
    assert sorted(c.name for c in exported) == sorted(names)


def test_usage_error_is_2(capsys, policy):
    with pytest.raises(SystemExit) as ei:
        app.main(["eval", policy, "--principal", ALICE])  # --action, --resource missing
    assert ei.value.code == EXIT_USAGE


# ---------------------------------------------------------------------------
# --json


def test_eval_json(capsys, policy):
    code, data, err = run_json(capsys, "eval", policy, *request(BOB, READ))
    assert code == EXIT_FORBID and err == ""
    assert data["ok"] is True and data["decision"] == "forbid" and data["allowed"] is False
    assert data["reasons"] == ["suspended"] and data["errors"] == []
    code, data, _ = run_json(capsys, "eval", policy, *request(ALICE, EDIT))
    assert code == EXIT_DENY and data["errors"][0]["policy"] == "mfa-edit"


def test_eval_json_load_errors(capsys, broken):
    code, data, err = run_json(capsys, "eval", broken, *request(ALICE, READ))
    assert code == EXIT_LOAD_ERROR and err == ""
    assert data["ok"] is False
    [e] = data["errors"]
    assert e["class"] == "RuneSyntaxError" and e["file"] == broken and e["line"] == 3 and e["column"] > 0


def test_test_exit_codes_and_json(capsys, policy, tmp_path):
    code, out, _ = run(capsys, "test", policy)
    assert code == EXIT_OK and out.strip() == "2 passed, 0 failed"
    code, data, _ = run_json(capsys, "test", policy)
    assert code == EXIT_OK and data["ok"] is True and (data["passed"], data["failed"]) == (2, 0)
    assert [r["name"] for r in data["results"]] == ["alice_reads", "bob_reads"]
    assert data["results"][1]["actual"] == "forbid" and data["results"][1]["reasons"] == ["suspended"]

    wrong = tmp_path / "wrong.rune"
    wrong.write_text(POLICY + WRONG_TEST, encoding="utf-8")
    code, out, _ = run(capsys, "test", wrong)
    assert code == EXIT_NEGATIVE and "wrong_on_purpose" in out and "2 passed, 1 failed" in out
    code, data, _ = run_json(capsys, "test", wrong)
    assert code == EXIT_NEGATIVE and data["ok"] is False and data["failed"] == 1
    failed = [r for r in data["results"] if not r["passed"]]
    assert failed[0]["name"] == "wrong_on_purpose" and failed[0]["expected"] == "permit"
    assert failed[0]["actual"] == "deny" and failed[0]["line"] > 0


def test_test_load_errors(capsys, broken):
    code, _, err = run(capsys, "test", broken)
    assert code == EXIT_LOAD_ERROR and f"{broken}:3:" in err
    code, data, _ = run_json(capsys, "test", broken)
    assert code == EXIT_LOAD_ERROR and data["errors"][0]["line"] == 3


def test_query_answers_no_answer_and_json(capsys, policy):
    code, out, _ = run(capsys, "query", policy, "in_group(U, G)")
    assert code == EXIT_OK
    assert out.splitlines() == ['U = User::"alice", G = Group::"eng"', 'U = User::"bob", G = Group::"ops"']
    code, out, _ = run(capsys, "query", policy, 'in_group(User::"alice", Group::"eng")')
    assert code == EXIT_OK and out.strip() == "yes"
    code, out, _ = run(capsys, "query", policy, 'in_group(User::"alice", Group::"ops")')
    assert code == EXIT_NEGATIVE and out.strip() == "no"
    code, data, _ = run_json(capsys, "query", policy, 'in_group(U, Group::"eng")')
    assert code == EXIT_OK and data == {"ok": True, "answers": [{"U": {"__entity": {"type": "User", "id": "alice"}}}]}
    code, data, _ = run_json(capsys, "query", policy, 'in_group(U, Group::"nobody")')
    assert code == EXIT_NEGATIVE and data == {"ok": True, "answers": []}


def test_query_errors(capsys, policy, broken):
    code, _, err = run(capsys, "query", policy, "nope(X)")
    assert code == EXIT_BAD_REQUEST and "nope" in err
    code, data, _ = run_json(capsys, "query", policy, "nope(X)")
    assert code == EXIT_BAD_REQUEST and data["ok"] is False and "nope" in data["errors"][0]["message"]
    code, data, _ = run_json(capsys, "query", broken, "p(X)")
    assert code == EXIT_LOAD_ERROR and data["errors"][0]["class"] == "RuneSyntaxError"
    code, data, _ = run_json(capsys, "query", policy, "in_group(U, G)", "--principal", "nope")
    assert code == EXIT_BAD_REQUEST and data["errors"][0]["field"] == "principal"


def test_check_json(capsys, policy, broken):
    code, data, err = run_json(capsys, "check", policy)
    assert code == EXIT_OK and err == ""
    assert data == {"ok": True, "errors": [], "warnings": [],
                    "counts": {"files": 1, "facts": 3, "rules": 1, "policies": 3, "tests": 2}}
    code, data, _ = run_json(capsys, "check", broken)
    assert code == EXIT_NEGATIVE and data["ok"] is False
    assert [(e["class"], e["line"]) for e in data["errors"]] == [("RuneSyntaxError", 3)]


# ---------------------------------------------------------------------------
# lints in rune check

LINTED = r'''version = "rune/1"

[data]
owner = [['User::"alice"', 'Doc::"d1"'], ["User::dave", 'Doc::"d2"'], ['User::"x" ', 'Doc::"d3"']]
audit_log = [["alice", 1]]
flagged = []

[rules]
owns(U, D) :- owner(U, D).
bad(U) :- flagged(U).

[policies]
@id("owner") permit(principal, action, resource) when { owns(principal, resource) };
@id("off") permit(principal, action, resource) when { owns(principal, resource) && false };
@id("never") forbid(principal, action, resource) when { bad(principal) };
@id("always-unless") permit(principal, action, resource) unless { true };
'''


@pytest.fixture()
def linted(tmp_path):
    p = tmp_path / "linted.rune"
    p.write_text(LINTED, encoding="utf-8")
    return str(p)


def test_lints_are_warnings(capsys, linted):
    code, out, err = run(capsys, "check", linted)
    assert code == EXIT_OK and out.startswith("ok: 1 file, ")
    lines = [line for line in err.splitlines() if ": warning[" in line]
    assert [line.split(": warning[")[1].split("]")[0] for line in lines] == [
        "broken-entity", "broken-entity", "unread-relation", "dead-policy", "dead-policy", "dead-policy",
    ]
    assert f"{linted}:4:1: warning[broken-entity]: owner: fact 2 has the string 'User::dave'" in err
    assert """did you mean the entity 'User::"dave"'?""" in err
    assert "fact 3 has the string 'User::\"x\" '" in err
    assert f"{linted}:5:1: warning[unread-relation]: relation audit_log has facts" in err
    assert "policy off can never apply: its when condition is always false" in err
    assert "policy never can never apply: its when condition calls bad" in err
    assert "policy always-unless can never apply: its unless condition is always true" in err
    assert err.rstrip().endswith("6 warnings")


def test_strict_makes_lints_fail(capsys, linted, policy):
    code, _, _ = run(capsys, "check", "--strict", linted)
    assert code == EXIT_NEGATIVE
    code, data, _ = run_json(capsys, "check", "--strict", linted)
    assert code == EXIT_NEGATIVE and data["ok"] is False and data["errors"] == []
    assert {w["code"] for w in data["warnings"]} == {"broken-entity", "unread-relation", "dead-policy"}
    assert all(w["line"] > 0 for w in data["warnings"])
    code, _, _ = run(capsys, "check", "--strict", policy)  # clean: strict changes nothing
    assert code == EXIT_OK


def test_lint_quiet_cases(capsys, tmp_path):
    """Correct entities, strings with :: that are not entity-like, read relations,
    derivable relations and request relations raise no warning."""
    p = tmp_path / "quiet.rune"
    p.write_text(r'''version = "rune/1"
[data]
owner = [['User::"alice"', "std::io"], ['App::Doc::"d1"', "a::b"]]
base = [1]
[rules]
derived(X) :- base(X).
later(X) :- derived(X), X > 0.
[policies]
permit(principal, action, resource) when { owner(principal, _) && later(1) };
permit(principal, action, resource) when { context("mfa", true) } unless { false };
''', encoding="utf-8")
    code, out, err = run(capsys, "check", "--strict", p)
    assert code == EXIT_OK and err == "", err


@pytest.mark.parametrize("example", sorted(
    f for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "examples")) if f.endswith(".rune")
))
def test_examples_are_lint_clean(capsys, example):
    path = os.path.join(os.path.dirname(__file__), "..", "examples", example)
    code, _, err = run(capsys, "check", "--strict", path)
    assert code == EXIT_OK and err == ""


# ---------------------------------------------------------------------------
# errors in order, across files and stages


def test_bundle_errors_sorted_with_checker_errors(capsys, tmp_path):
    """A parse error in a.rune, a safety error and an arity error in b.rune,
    a duplicate id across b.rune and c.rune: one load reports all of them, by
    file, line and column, whichever stage found them."""
    (tmp_path / "b.rune").write_text('''version = "rune/1"
[data]
edge = [[1, 2]]
[rules]
p(X, Y) :- edge(X, _).
q(X) :- edge(X).
[policies]
@id("dup") permit(principal, action, resource);
''', encoding="utf-8")
    (tmp_path / "a.rune").write_text('''version = "rune/1"
[policies]
permit(principal, action resource);
''', encoding="utf-8")
    (tmp_path / "c.rune").write_text('''version = "rune/1"
[policies]
@id("dup") forbid(principal, action, resource) when { false };
''', encoding="utf-8")
    code, data, _ = run_json(capsys, "check", tmp_path)
    assert code == EXIT_NEGATIVE
    got = [(os.path.basename(e["file"]), e["line"], e["column"], e["class"]) for e in data["errors"]]
    assert got == sorted(got, key=lambda g: g[:3])
    classes = {(g[0], g[3]) for g in got}
    assert ("a.rune", "RuneSyntaxError") in classes
    assert ("b.rune", "RuneSafetyError") in classes      # Y in p(X, Y)
    assert ("b.rune", "RuneArityError") in classes       # edge/1 vs edge/2
    assert ("c.rune", "RuneDuplicateIdError") in classes
    assert len(got) == len(set(got))                     # nothing reported twice


def test_undefined_relations_not_blamed_on_a_broken_file(capsys, tmp_path):
    """b.rune reads a relation that a.rune (broken) defines: no spurious
    undefined-relation error, but b.rune's own safety error is reported."""
    (tmp_path / "a.rune").write_text('version = "rune/1"\n[data]\nmember = [["x", "y"]]\n[rules]\noops(\n',
                                     encoding="utf-8")
    (tmp_path / "b.rune").write_text('version = "rune/1"\n[rules]\nq(X, Z) :- member(X, _).\n', encoding="utf-8")
    code, data, _ = run_json(capsys, "check", tmp_path)
    assert code == EXIT_NEGATIVE
    classes = [(os.path.basename(e["file"]), e["class"]) for e in data["errors"]]
    assert classes[0][0] == "a.rune" and ("b.rune", "RuneSafetyError") in classes
    assert not any(c == "RuneUndefinedError" for _, c in classes)


def test_source_errors_and_checker_errors_together(capsys, tmp_path):
    (tmp_path / "m.csv").write_text('a,1\nb\n', encoding="utf-8")  # row 2 has the wrong width
    (tmp_path / "p.rune").write_text('''version = "rune/1"
[sources]
m = "m.csv"
[rules]
r(X) :- m(X, _), typo(X).
s(X, Y) :- m(X, _).
''', encoding="utf-8")
    code, data, _ = run_json(capsys, "check", tmp_path)
    assert code == EXIT_NEGATIVE
    got = [(os.path.basename(e["file"]), e["class"]) for e in data["errors"]]
    assert ("m.csv", "RuneSourceError") in got
    assert ("p.rune", "RuneUndefinedError") in got      # typo is not a source relation
    assert ("p.rune", "RuneSafetyError") in got
    assert [g[0] for g in got] == sorted(g[0] for g in got)
