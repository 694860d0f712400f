"""``rune check`` through ``cli.main``: exit codes and what is printed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rune_fast.cli import app as cli


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

THREE_MISTAKES = '''version = "rune/1"

[data]
member = [["alice", "admins"]]

[rules]
admin(U) :- member(U, "admins").
boss(U, V) :- admin(U).
typo(U) :- membr(U, _).

[policies]
permit(principal, action, resource) when { admin(principal, resource) };
'''


def test_check_examples_ok(capsys):
    assert cli.main(["check", EXAMPLES]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: 3 files, ")
    assert "rules" in out and "policies" in out and "tests" in out
    assert err == ""


@pytest.mark.parametrize("name", ["doc_sharing.rune", "agent_guardrails.rune", "api_rate_limit.rune"])
def test_check_each_example_ok(name, capsys):
    assert cli.main(["check", os.path.join(EXAMPLES, name)]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("ok: 1 file, ")


def test_check_reports_all_three_mistakes(tmp_path, capsys):
    path = tmp_path / "broken.rune"
    path.write_text(THREE_MISTAKES, encoding="utf-8")
    assert cli.main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:8:9: RuneSafetyError" in err          # V in boss(U, V)
    assert f"{path}:9:12: RuneUndefinedError" in err      # membr
    assert f"{path}:12:44: RuneArityError" in err         # admin/2 in the policy
    assert "did you mean member?" in err
    assert "    boss(U, V) :- admin(U)." in err and "^" in err
    assert err.rstrip().endswith("3 errors")


def test_check_missing_path(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nope.rune")]) == 1
    _, err = capsys.readouterr()
    assert "nope.rune" in err


def test_check_empty_directory(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path)]) == 1
    _, err = capsys.readouterr()
    assert "no .rune files" in err


def test_check_recursive(tmp_path, capsys):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.rune").write_text('version = "rune/1"\n[data]\nq = [1]\n', encoding="utf-8")
    assert cli.main(["check", str(tmp_path)]) == 1
    capsys.readouterr()
    assert cli.main(["check", "--recursive", str(tmp_path)]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == "ok: 1 file, 1 fact, 0 rules, 0 policies, 0 tests"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main([])
    assert ei.value.code == 2
    with pytest.raises(SystemExit) as ei:
        cli.main(["frobnicate"])
    assert ei.value.code == 2


def test_python_dash_m(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rune_fast", "check", EXAMPLES],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: 3 files")
