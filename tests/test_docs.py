"""The docs cannot go stale: their examples run, their commands exist, and
they stand alone.

- Every ```` ```console ```` block of ``docs/*.md`` is executed: each ``$ ``
  line (with ``\\`` continuations) runs in one bash session, in a fresh
  directory holding the page's titled files (```` ```toml title="first.rune" ````),
  and its output (stdout and stderr) must equal the lines shown after it.
  ``rune`` and ``python3`` are this interpreter's.
- ```` ```sh ```` blocks are too slow or too environment-specific to run
  (benchmarks, installs); their commands are checked instead: every script
  they run exists, every extra they install is defined in pyproject.toml,
  every ``rune`` subcommand exists.
- No page refers to files outside the repository, and mkdocs.yml lists every
  page.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(page: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of a page."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def console_steps(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every ``$ `` prompt of a console block."""
    steps: list[tuple[str, list[str]]] = []
    lines = body.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), f"console block line without a prompt: {line!r}"
        cmd_lines = [line[2:]]
        while cmd_lines[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd_lines.append(lines[i])
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i].rstrip())
            i += 1
        steps.append((" ".join(c.rstrip("\\").strip() for c in cmd_lines), expected))
    return steps


def titled_files(page: Path) -> dict[str, str]:
    files = {}
    for info, body in blocks(page):
        m = re.search(r'title="([^"]+)"', info)
        if m:
            files[m.group(1)] = body
    return files


CONSOLE_PAGES = [p for p in PAGES if any(info == "console" for info, _ in blocks(p))]


@pytest.fixture()
def shims(tmp_path):
    """A bin directory where ``rune`` and ``python3`` are this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in (("rune", f'"{sys.executable}" -m rune_fast'), ("python3", f'"{sys.executable}"')):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        shim.chmod(0o755)
    return bin_dir


def test_the_tutorial_is_executed():
    assert DOCS / "tutorial.md" in CONSOLE_PAGES
    assert "first.rune" in titled_files(DOCS / "tutorial.md")


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=lambda p: p.name)
def test_console_blocks_run_as_shown(page, tmp_path, shims):
    work = tmp_path / "work"
    work.mkdir()
    for name, text in titled_files(page).items():
        (work / name).write_text(text, encoding="utf-8")
    marker = "@@rune-docs-step@@"
    steps = [s for info, body in blocks(page) if info == "console" for s in console_steps(body)]
    # The marker goes out after each command, then `$?` is restored so that
    # a following `echo $?` shows the command's exit code.
    script = "".join(f"{cmd} 2>&1\n__rc=$?\necho {marker}\n(exit $__rc)\n" for cmd, _ in steps)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    outputs = proc.stdout.split(marker + "\n")[:-1]
    assert len(outputs) == len(steps), proc.stdout + proc.stderr
    for (cmd, expected), got in zip(steps, outputs):
        assert [line.rstrip() for line in got.rstrip("\n").split("\n") if got] == expected, f"$ {cmd}"


# ---------------------------------------------------------------------------
# sh blocks: checked, not run


def _extras() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([a-z0-9_-]+)\s*=", section, re.M))


def _subcommands() -> set[str]:
    from rune_fast.cli.app import SUBCOMMANDS

    return {s.name for s in SUBCOMMANDS}


def shell_commands(body: str) -> list[list[str]]:
    """The simple commands of a shell snippet, as argument lists.

    Quote-aware: a newline or ``#`` inside quotes (a multi-line JSON body
    for curl) is part of the argument; ``\\``-newline continues a line;
    ``&&``, ``||``, ``;`` and ``|`` separate commands.
    """
    lines: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(body):
        c = body[i]
        if quote:
            cur.append(c)
            if c == "\\" and quote == '"' and i + 1 < len(body):
                cur.append(body[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            cur.append(c)
        elif c == "\\" and body[i + 1 : i + 2] == "\n":
            i += 1
        elif c == "#" and (not cur or cur[-1].isspace()):
            while i < len(body) and body[i] != "\n":
                i += 1
            continue
        elif c == "\n":
            lines.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    lines.append("".join(cur))
    commands: list[list[str]] = []
    for line in lines:
        argv: list[str] = []
        for tok in shlex.split(line):
            if tok in ("&&", "||", ";", "|"):
                commands.append(argv)
                argv = []
            else:
                argv.append(tok)
        commands.append(argv)
    return [c for c in commands if c]


def sh_commands() -> list[tuple[str, str]]:
    out = []
    for page in [*PAGES, ROOT / "README.md"]:
        for info, body in blocks(page):
            if info.split(" ")[0] in ("sh", "bash", "shell"):
                out.extend((page.name, shlex.join(argv)) for argv in shell_commands(body))
    return out


SH = sh_commands()


def test_sh_commands_found():
    assert any("compare_authz.py" in c for _, c in SH)
    assert any(c.startswith("rune ") for _, c in SH)


@pytest.mark.parametrize("page, command", SH, ids=[f"{p}:{c[:40]}" for p, c in SH])
def test_sh_command_refers_to_what_exists(page, command):
    argv = shlex.split(command)
    if argv[0] == "cd":
        assert (ROOT / argv[1]).is_dir()
        return
    if argv[0] == "rune":
        assert argv[1] in _subcommands() or argv[1].startswith("-")
        return
    if argv[0] in ("python", "python3") and len(argv) > 1:
        if argv[1] == "-m" and argv[2] == "pip":
            for arg in argv[3:]:
                m = re.fullmatch(r"\.\[([a-z0-9_,-]+)\]", arg)
                if m:
                    wanted = set(m.group(1).split(","))
                    assert wanted <= _extras(), f"{page}: extras {sorted(wanted - _extras())} are not defined"
        elif argv[1] == "-m" and argv[2] == "rune_fast":
            assert argv[3] in _subcommands()
        elif argv[1] != "-m":
            assert (ROOT / argv[1]).is_file(), f"{page}: {argv[1]} does not exist"


# ---------------------------------------------------------------------------
# self-contained pages and the site


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_page_stands_alone(page):
    text = page.read_text(encoding="utf-8")
    for bad in ("SPEC.md", "SPEC §", "SPEC section", "../shared", "/work/"):
        assert bad not in text, f"{page.name} refers to {bad!r}, which users do not have"
    assert not re.search(r"\b[Ii]ssue #?\d", text), f"{page.name} cites an issue number; say what it means instead"
    for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", text):
        assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def test_mkdocs_nav_lists_every_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w.-]+\.md)\s*$", config, re.M))
    assert {p.name for p in PAGES} <= listed, "add the page to the nav of mkdocs.yml"
