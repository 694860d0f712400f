"""docs/explain-and-search.md shows real output: every block under a
``<!-- rune: ARGS -->`` marker is the output of ``rune ARGS`` run from the
repository root, and this test fails when one differs.

Regenerate after changing the examples or the output format with
``RUNE_REGENERATE_DOCS=1 python -m pytest tests/test_docs_explain_search.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
from pathlib import Path

from rune_fast.cli.app import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "explain-and-search.md"
BLOCK = re.compile(r"<!-- rune: (?P<args>.*?) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```\n", re.DOTALL)


def render(args: str) -> str:
    """``$ rune ARGS`` and its stdout (a one-line JSON answer indented)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(shlex.split(args))
    text = out.getvalue()
    if "--json" in args:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    return f"$ rune {args}\n{text}"


def test_doc_blocks_are_real_output(monkeypatch):
    monkeypatch.chdir(ROOT)
    doc = DOC.read_text(encoding="utf-8")
    blocks = list(BLOCK.finditer(doc))
    assert len(blocks) >= 8
    assert any("--explain" in b["args"] and "carol" in b["args"] for b in blocks)  # a why-not
    stale = []

    def replace(m: re.Match) -> str:
        want = render(m["args"])
        if m["body"] != want:
            stale.append(m["args"])
        return f"<!-- rune: {m['args']} -->\n```{m['lang']}\n{want}```\n"

    fresh = BLOCK.sub(replace, doc)
    if stale and os.environ.get("RUNE_REGENERATE_DOCS") == "1":
        DOC.write_text(fresh, encoding="utf-8")
        return
    assert not stale, (
        f"{len(stale)} block(s) of {DOC.name} differ from the real output (first: rune {stale[0]}); "
        "regenerate with RUNE_REGENERATE_DOCS=1 python -m pytest tests/test_docs_explain_search.py"
    )
