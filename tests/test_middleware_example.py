"""The example app, started with its documented command, enforces doc_sharing.rune."""

from __future__ import annotations

import sys

from mw_servers import REPO, free_port, serve


def bearer(user: str) -> dict:
    return {"Authorization": f"Bearer {user}"}


def test_example_docs_api_under_gunicorn() -> None:
    port = free_port()
    # README / docs: `gunicorn examples.docs_api:app`, run from the repository root
    argv = [sys.executable, "-m", "gunicorn", "examples.docs_api:app", "-b", f"127.0.0.1:{port}", "-w", "1"]
    with serve(argv, {}, port, cwd=REPO) as s:
        r = s.request("GET", "/docs/design", bearer("alice"))
        assert r.status == 200 and r.json()["why"] == ["doc-rbac"], r
        assert s.request("PUT", "/docs/design", bearer("bob"), body=b"v2").json() == {"id": "design", "text": "v2"}
        assert s.request("PUT", "/docs/design", bearer("alice"), body=b"v3").status == 403
        assert s.request("GET", "/docs/design", bearer("alice")).json()["text"] == "v2"
        assert s.request("GET", "/docs/roadmap", bearer("bob")).status == 403      # clearance forbid
        assert s.request("GET", "/docs/design", bearer("erin")).status == 200      # auditors
        assert s.request("POST", "/docs/design/comments", bearer("bob"), body=b"lgtm").status == 201
        assert s.request("POST", "/docs/design/comments", bearer("carol"), body=b"x").status == 403
        r = s.request("GET", "/docs/design")
        assert r.status == 401 and r.headers["www-authenticate"] == 'Bearer realm="docs"'
        assert s.request("DELETE", "/docs/mallory_notes", bearer("mallory")).status == 404  # suspended, hidden
        assert s.request("DELETE", "/docs/design", bearer("dave")).status == 204            # owner
        assert s.request("GET", "/health").json()["ok"] is True
