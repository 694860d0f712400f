"""Issue 8, finding 3: a slow in-place write must not install a truncated policy.

The reproduction: ``permit all; forbid mallory`` written in place by a writer
that pauses after the permit line.  Without a manifest a reload during the
pause installs the prefix and permits mallory; with a manifest (written
last, from the final files) no reload can install anything that does not
match it, so mallory is never permitted.  Plus the settle check and
``rune manifest``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from rune_fast import PolicyStore, RuneError, RuneManifestError, load
from rune_fast.cli.app import main as cli_main
from rune_fast.cli.common import EXIT_LOAD_ERROR, EXIT_NEGATIVE
from rune_fast.lang import manifest as M
from rune_fast.lang import parser
from reload_helpers import wait_for

HEAD = 'version = "rune/1"\n\n[policies]\n'
PERMIT_ALL = '@id("all") permit(principal, action, resource);\n'
FORBID_MALLORY = '@id("no-mallory") forbid(principal == User::"mallory", action, resource);\n'
OLD = HEAD + FORBID_MALLORY  # nobody is permitted
NEW = HEAD + PERMIT_ALL + FORBID_MALLORY  # everyone but mallory

MALLORY = ('User::"mallory"', 'Action::"read"', 'Doc::"d"')
ALICE = ('User::"alice"', 'Action::"read"', 'Doc::"d"')


def seal(path) -> None:
    """What a deploy does last: write the manifest from the final files."""
    target, digests = parser.bundle_manifest(str(path))
    M.write_manifest(target, digests)


class SlowWriter:
    """Writes ``NEW`` in place (truncate, write the permit line, flush,
    pause, write the rest), like a script or a slow copy would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(HEAD + PERMIT_ALL)
            f.flush()
            self.paused.set()
            self.resume.wait(10)
            f.write(FORBID_MALLORY)

    def __enter__(self) -> "SlowWriter":
        self.thread.start()
        assert self.paused.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self.resume.set()
        self.thread.join(5)


@pytest.mark.parametrize("bundle_is_dir", [True, False])
def test_paused_in_place_write_is_never_installed_with_a_manifest(tmp_path, bundle_is_dir):
    p = tmp_path / "p.rune"
    p.write_text(OLD)
    seal(tmp_path if bundle_is_dir else p)
    store = PolicyStore(tmp_path if bundle_is_dir else p, watch=False, manifest="require")
    old = store.version
    with SlowWriter(p):
        r = store.reload()  # the file is the permit-only prefix right now
        assert not r.ok and isinstance(r.error, RuneManifestError)
        assert "p.rune does not match" in r.error.message
        assert store.version == old and not store.authorize(*MALLORY).allowed
    r = store.reload()  # complete file, stale manifest: still refused
    assert not r.ok and store.version == old
    seal(tmp_path if bundle_is_dir else p)
    assert store.reload().ok and store.version != old
    assert store.authorize(*ALICE).allowed and not store.authorize(*MALLORY).allowed


def test_without_a_manifest_the_prefix_is_installed(tmp_path):
    """The failure the manifest exists for (documented as not guaranteed)."""
    p = tmp_path / "p.rune"
    p.write_text(OLD)
    store = PolicyStore(p, watch=False)
    with SlowWriter(p):
        assert store.reload().ok
        assert store.authorize(*MALLORY).allowed  # the truncated policy
    assert store.reload().ok and not store.authorize(*MALLORY).allowed


def test_watched_store_never_serves_the_truncated_policy(tmp_path):
    """End to end with the watcher: a reader polls mallory during the write;
    the manifest written last is what installs the new version."""
    p = tmp_path / "p.rune"
    p.write_text(OLD)
    seal(tmp_path)
    seen_allowed: list = []
    stop = threading.Event()
    with PolicyStore(tmp_path, debounce=0.05) as store:
        old = store.version

        def poll() -> None:
            while not stop.is_set():
                d = store.authorize(*MALLORY)
                if d.allowed:
                    seen_allowed.append(d.version)
                time.sleep(0.002)

        reader = threading.Thread(target=poll, daemon=True)
        reader.start()
        try:
            with SlowWriter(p):
                wait_for(lambda: store.stats.failures >= 1, timeout=30)  # the watcher saw the prefix
            seal(tmp_path)
            wait_for(lambda: store.version != old, timeout=30)
        finally:
            stop.set()
            reader.join(5)
        assert seen_allowed == []
        assert store.authorize(*ALICE).allowed and not store.authorize(*MALLORY).allowed


def test_manifest_checks_every_file_and_source(tmp_path):
    (tmp_path / "a.rune").write_text(HEAD + PERMIT_ALL + '\n[sources]\nblocked = "blocked.csv"\n')
    (tmp_path / "blocked.csv").write_text('User::"mallory"\n')
    (tmp_path / "b.rune").write_text('version = "rune/1"\n')
    seal(tmp_path)
    doc = json.loads((tmp_path / "rune.manifest").read_text())
    assert doc["format"] == "rune-manifest/1" and sorted(doc["files"]) == ["a.rune", "b.rune", "blocked.csv"]
    assert load(tmp_path, manifest="require").authorize(*ALICE).allowed

    def refused(match: str) -> None:
        with pytest.raises(RuneManifestError, match=match):
            load(tmp_path)

    (tmp_path / "blocked.csv").write_text('User::"mallo')  # a source half-copied
    refused("blocked.csv does not match")
    (tmp_path / "blocked.csv").write_text('User::"mallory"\n')
    (tmp_path / "c.rune").write_text('version = "rune/1"\n')  # a new file not in the manifest
    refused("c.rune is not listed")
    (tmp_path / "c.rune").unlink()
    (tmp_path / "b.rune").unlink()  # a listed file missing
    refused("b.rune is listed but not part of the bundle")
    (tmp_path / "b.rune").write_text('version = "rune/1"\n')
    load(tmp_path)  # matches again
    (tmp_path / "rune.manifest").write_text('{"format": "rune-manifest/1", "files": {"a.ru')  # half-written
    refused("not valid JSON")
    (tmp_path / "rune.manifest").write_text('{"format": "other", "files": {}}')
    refused("must be a JSON object")
    (tmp_path / "rune.manifest").write_text('{"format": "rune-manifest/1", "files": {"a.rune": "xyz"}}')
    refused("SHA-256 hex digest")
    assert load(tmp_path, manifest="off").authorize(*ALICE).allowed
    (tmp_path / "rune.manifest").unlink()
    assert load(tmp_path).authorize(*ALICE).allowed  # auto: no manifest, nothing to check
    with pytest.raises(RuneManifestError, match="manifest='require'"):
        load(tmp_path, manifest="require")
    with pytest.raises(ValueError):
        load(tmp_path, manifest="sometimes")


def test_manifest_fifo_is_refused_without_blocking(tmp_path):
    (tmp_path / "a.rune").write_text(OLD)
    os.mkfifo(tmp_path / "rune.manifest")
    out: list = []
    def load_in_thread() -> None:
        with pytest.raises(RuneManifestError) as info:
            load(tmp_path)
        out.append(info)

    t = threading.Thread(target=load_in_thread, daemon=True)
    t.start()
    t.join(5)
    try:
        assert not t.is_alive(), "reading a FIFO manifest blocked"
        assert "FIFO" in str(out[0].value)
    finally:
        try:
            os.close(os.open(tmp_path / "rune.manifest", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


def test_single_file_manifest_may_describe_neighbours(tmp_path):
    (tmp_path / "a.rune").write_text(HEAD + "@id(\"other\") forbid(principal, action, resource);\n")
    (tmp_path / "b.rune").write_text(NEW)
    seal(tmp_path)
    assert not load(tmp_path / "b.rune", manifest="require").authorize(*MALLORY).allowed
    (tmp_path / "b.rune").write_text(HEAD + PERMIT_ALL)
    with pytest.raises(RuneManifestError):
        load(tmp_path / "b.rune")


def test_cli_manifest_writes_and_checks(tmp_path, capsys):
    (tmp_path / "a.rune").write_text(NEW)
    assert cli_main(["manifest", "--check", str(tmp_path)]) == EXIT_NEGATIVE  # none yet
    assert cli_main(["manifest", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli_main(["manifest", "--check", str(tmp_path)]) == 0
    (tmp_path / "a.rune").write_text(HEAD + PERMIT_ALL)
    assert cli_main(["manifest", "--check", str(tmp_path)]) == EXIT_NEGATIVE
    assert "does not match" in capsys.readouterr().err
    (tmp_path / "a.rune").write_text("version = \n")  # does not parse: no manifest is written
    before = (tmp_path / "rune.manifest").read_bytes()
    assert cli_main(["manifest", str(tmp_path)]) == EXIT_LOAD_ERROR
    assert (tmp_path / "rune.manifest").read_bytes() == before


# --------------------------------------------------------------------------
# Settle check


def test_settle_rereads_a_bundle_that_changed_and_refuses_one_that_keeps_changing(tmp_path, monkeypatch):
    p = tmp_path / "p.rune"
    p.write_text(OLD)
    real_sleep = time.sleep
    writes = iter([NEW, NEW + "\n"])

    def sleep_while_writing(s):  # a writer that is active during the settle interval
        text = next(writes, None)
        if text is not None:
            p.write_text(text)
            os.utime(p, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
        real_sleep(0)

    monkeypatch.setattr(parser.time, "sleep", sleep_while_writing)
    b = parser.load_bundle(p, settle=0.01)  # two changes, third read is stable
    assert b.files[0].policies[0].id == "all"
    writes = iter([NEW, OLD, NEW, OLD])
    with pytest.raises(RuneError, match="still changing"):
        parser.load_bundle(p, settle=0.01)


def test_settle_store_rejects_a_file_changed_during_compile(tmp_path):
    p = tmp_path / "p.rune"
    p.write_text(OLD)

    def loader(path, **kw):
        engine = load(path, **kw)
        if getattr(loader, "tamper", False):
            p.write_text(HEAD + PERMIT_ALL)  # written after it was read, before the swap
        return engine

    store = PolicyStore(p, watch=False, loader=loader, settle=0.001)
    old = store.version
    p.write_text(NEW)
    loader.tamper = True  # type: ignore[attr-defined]
    r = store.reload()
    assert not r.ok and "changed while the bundle was compiled" in r.error.message
    assert store.version == old
    loader.tamper = False  # type: ignore[attr-defined]
    p.write_text(NEW)  # the writer finishes
    assert store.reload().ok and store.authorize(*ALICE).allowed and not store.authorize(*MALLORY).allowed
