"""Every `rune ...` command shown in the README's command-line section runs and succeeds."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands, current = [], ""
    for line in block.splitlines():
        line = line.split("  #", 1)[0].rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            commands.append(current.strip())
        current = ""
    return commands


COMMANDS = readme_commands()


def test_readme_documents_every_subcommand():
    names = {shlex.split(c)[1] if c.startswith("rune ") else shlex.split(c)[3] for c in COMMANDS}
    assert {"check", "test", "eval", "query"} <= names


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_succeeds(command):
    argv = shlex.split(command)
    if argv[0] == "rune":
        argv = [sys.executable, "-m", "rune_fast"] + argv[1:]
    elif argv[:3] == ["python", "-m", "rune_fast"]:
        argv = [sys.executable] + argv[1:]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip()
