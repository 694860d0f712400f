"""``rune search ...`` and ``rune eval --explain``: output, JSON, paging and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rune_fast.cli.app import main

DOC = str(Path(__file__).resolve().parent.parent / "examples" / "doc_sharing.rune")
ALICE = ["--principal", 'User::"alice"']
READ = ["--action", 'Action::"read"']


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_resources_text_and_paging(capsys):
    code, out, _ = run(capsys, "search", "resources", DOC, *ALICE, *READ, "--type", "Document")
    assert code == 0
    assert out.splitlines() == ['Document::"design"', 'Document::"handbook"', 'Document::"mallory_notes"',
                                'Document::"roadmap"']
    code, out, _ = run(capsys, "search", "resources", DOC, *ALICE, *READ, "--type", "Document", "--limit", "3")
    lines = out.splitlines()
    assert lines[:3] == ['Document::"design"', 'Document::"handbook"', 'Document::"mallory_notes"']
    token = lines[3].split("--page-token ")[1]
    code, out, _ = run(capsys, "search", "resources", DOC, *ALICE, *READ, "--type", "Document", "--limit", "3",
                       "--page-token", token)
    assert code == 0 and out.splitlines() == ['Document::"roadmap"']


def test_search_within_subjects_actions_json(capsys):
    code, out, _ = run(capsys, "search", "resources", DOC, *ALICE, *READ, "--type", "Document",
                       "--within", 'Folder::"eng_backend"', "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "results": [{"type": "Document", "id": "design"}],
                                             "next_token": None}
    code, out, _ = run(capsys, "search", "subjects", DOC, "--action", 'Action::"edit"',
                       "--resource", 'Document::"design"', "--type", "User")
    assert code == 0 and out.splitlines() == ['User::"bob"', 'User::"dave"']
    code, out, _ = run(capsys, "search", "actions", DOC, "--principal", 'User::"erin"',
                       "--resource", 'Document::"design"')
    assert code == 0 and out.splitlines() == ['Action::"read"']


def test_search_exit_codes(capsys, tmp_path):
    code, out, _ = run(capsys, "search", "resources", DOC, "--principal", 'User::"zoe"', *READ, "--type", "Document")
    assert code == 1 and out.strip() == "none"
    code, _, err = run(capsys, "search", "resources", DOC, *ALICE, *READ, "--type", "Document", "--page-token", "x")
    assert code == 6 and "page_token" in err
    code, out, _ = run(capsys, "search", "actions", DOC, *ALICE, "--resource", "nope", "--json")
    assert code == 6 and json.loads(out)["ok"] is False
    bad = tmp_path / "bad.rune"
    bad.write_text('version = "rune/1"\n[rules]\np(X) :- .\n')
    code, _, _ = run(capsys, "search", "actions", str(bad), *ALICE, "--resource", 'Document::"x"')
    assert code == 5
    with pytest.raises(SystemExit):
        main(["search", "resources", DOC, *ALICE])  # --action and --type are required


def test_eval_explain_text_and_json(capsys):
    code, out, _ = run(capsys, "eval", DOC, "--principal", 'User::"carol"', *READ, "--resource",
                       'Document::"design"', "--explain")
    assert code == 3
    assert out.startswith('deny: User::"carol" / Action::"read" / Document::"design"\nwhy not:')
    code, out, _ = run(capsys, "eval", DOC, "--principal", 'User::"bob"', "--action", 'Action::"edit"',
                       "--resource", 'Document::"design"', "--explain", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["decision"] == "permit" and d["reasons"] == ["doc-rbac"]
    proof = d["explanation"]["policies"][0]["conditions"][0]["facts"][0]["proof"]
    assert proof["fact"] == 'can(User::"bob", Action::"edit", Document::"design")'
    assert proof["rule"]["line"] > 0 and proof["body"]
