"""Concurrent HTTP load while the policy file is rewritten (valid and invalid).

A real gunicorn (gthread: 2 workers x 4 threads) serves the Falcon test app
with a watching PolicyStore. Four client threads send the same probe request
for at least five seconds while a writer replaces the policy file by atomic
renames: valid versions alternately allowing and denying the probe, and
invalid ones (which must never be served). The test knows each valid
version's hash (it loads the same text itself), so every response is
checked against the answer its own ``X-Rune-Policy-Version`` promises: no
5xx, no wrong answer, one outcome per version, and at the end the outcome of
the last valid file.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mw_servers import free_port, gunicorn, serve

import rune_fast

PROBE = ("GET", "/docs/p1", {"X-User": "alice"})
LOAD_SECONDS = 5.5
CLIENTS = 4


def version_text(rev: int, allow: bool) -> str:
    owner = "['Document::\"p1\"', 'User::\"alice\"']" if allow else "['Document::\"p1\"', 'User::\"bob\"']"
    return f"""version = "rune/1"
# revision {rev}
[data]
owner = [{owner}]
[policies]
@id("owner-all")
permit(principal, action, resource is Document) when {{ owner(resource, principal) }};
@id("whoami")
permit(principal is User, action, resource == Route::"/whoami");
"""


def invalid_text(rev: int) -> str:
    return f'version = "rune/1"\n# revision {rev}\n[policies]\npermit(principal, action\n'


def test_reload_under_concurrent_load(tmp_path: Any) -> None:
    live = tmp_path / "live"
    stage = tmp_path / "stage"
    live.mkdir()
    stage.mkdir()
    policy = live / "policy.rune"
    expected: dict[str, int] = {}

    def write(rev: int, text: str, valid: bool) -> None:
        staged = stage / "policy.rune"
        staged.write_text(text)
        if valid:  # the hash the server will report for this text (same file name)
            expected[rune_fast.load(str(staged)).version] = 200 if "alice" in text else 403
        tmp = tmp_path / f"policy.{rev}.tmp"
        tmp.write_text(text)
        os.replace(tmp, policy)  # atomic: the store never reads half a file

    write(0, version_text(0, True), True)
    port = free_port()
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # the port it really got
        out = []
        try:
            while not stop.is_set():
                method, path, headers = PROBE
                conn.request(method, path, headers=headers)
                r = conn.getresponse()
                r.read()
                out.append((r.status, r.getheader("X-Rune-Policy-Version") or ""))
        except BaseException as e:  # recorded, asserted below
            errors.append(e)
        finally:
            conn.close()
            results.extend(out)

    with serve(gunicorn("falcon_wsgi_app:app", port, "gthread", workers=2, threads=4),
               {"RUNE_TEST_POLICY": str(policy)}, port) as server:
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        start = time.monotonic()
        rev = 1
        last_allow = True
        while time.monotonic() - start < LOAD_SECONDS:
            time.sleep(0.15)
            if rev % 3 == 0:
                write(rev, invalid_text(rev), False)
            else:
                last_allow = rev % 2 == 1
                write(rev, version_text(rev, last_allow), True)
            rev += 1
        # end on a valid version
        rev += 1
        last_allow = not last_allow
        final_text = version_text(rev, last_allow)
        write(rev, final_text, True)
        final_version = rune_fast.load(str(stage / "policy.rune")).version
        stop.set()
        for t in threads:
            t.join(20)

        # Both workers must converge on the last valid file. Probes go out
        # from several threads at once (sequential connections may all reach
        # one worker), until both workers have answered with the final version.
        deadline = time.monotonic() + 60  # returns as soon as both workers agree
        finals: list[Any] = []
        pids: set[str] = set()
        with ThreadPoolExecutor(8) as pool:
            while time.monotonic() < deadline:
                finals = list(pool.map(lambda _: server.request(*PROBE), range(16)))
                if all(r.headers.get("x-rune-policy-version") == final_version for r in finals):
                    pids |= {r.headers.get("x-worker-pid", "") for r in finals}
                    if len(pids) >= 2:
                        break
                else:
                    pids = set()
                time.sleep(0.1)
        log = server.log()

    assert not errors, errors[:3]
    assert len(results) > 200, len(results)
    assert rev >= 10  # the file really was rewritten many times (every third one invalid)
    statuses = {s for s, _ in results}
    assert statuses <= {200, 403}, statuses  # never a 5xx
    seen: dict[str, set] = {}
    for status, version in results:
        assert version in expected, f"served an unknown (invalid?) version {version[:12]}"
        seen.setdefault(version, set()).add(status)
    for version, outcomes in seen.items():
        assert outcomes == {expected[version]}, (version[:12], outcomes, expected[version])
    assert len(seen) >= 3, "reloads were not observed under load"
    assert all(r.headers.get("x-rune-policy-version") == final_version for r in finals), "did not converge"
    assert len(pids) >= 2, f"heard from {len(pids)} worker(s) only"
    assert all(r.status == (200 if last_allow else 403) for r in finals)
    assert "Traceback" not in log
