"""Reading untrusted paths (issue 8, findings 6, 7 and the file items of 10).

- ``[sources]`` are confined to the bundle directory (resolved real paths):
  absolute paths, ``..`` and symlinks out are located ``RuneSourceError``s;
  ``source_roots`` allow-lists more directories; text from outside the
  bundle never appears in an error.
- Only regular files are read: a FIFO (as a ``.rune`` file, a source, a
  manifest, the bundle path) or a device is refused without blocking.
- The store never holds the lock ``rollback()`` needs while it reads files.

Every call that could hang runs on a daemon thread joined with a timeout
(``bounded``), so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest

from rune_fast import PolicyStore, RuneError, RuneLimitError, RuneSourceError, load, load_text
from rune_fast.cli.app import main as cli_main
from rune_fast.cli.common import EXIT_BAD_REQUEST
from rune_fast.lang import parser

POLICY = """version = "rune/1"

[sources]
secret = "{src}"

[policies]
permit(principal, action, resource) when {{ secret("x") }};
"""

SECRET = "TOPSECRET-abc123"


def bounded(fn, timeout: float = 15.0):
    """Run ``fn`` on a daemon thread; return ("ok", value) or ("raised", exc).
    Fails the test if it has not finished within ``timeout`` seconds."""
    out: list = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:
            out.append(("raised", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"call still running after {timeout}s (it blocked)"
    return out[0]


def release_fifo(path: Path) -> None:
    """Unblock a reader stuck on a FIFO (if a regression made one block)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


@pytest.fixture
def layout(tmp_path):
    bundle = tmp_path / "bundle"
    outside = tmp_path / "outside"
    bundle.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text(f"{SECRET}\n")
    return bundle, outside


def write_policy(bundle: Path, src: str) -> Path:
    p = bundle / "p.rune"
    p.write_text(POLICY.format(src=src))
    return p


def refused(p, **kw) -> RuneSourceError:
    with pytest.raises(RuneSourceError) as ei:
        load(p, **kw)
    (err,) = ei.value.errors
    assert isinstance(err, RuneSourceError)
    # located at the [sources] entry of the policy, never quoting the file read
    assert err.file == str(p) and err.line == 4
    assert err.source_line is not None and err.source_line.startswith("secret =")
    assert SECRET not in str(err) and SECRET not in err.render()
    return err


# --------------------------------------------------------------------------
# Finding 6: confinement


def test_absolute_path_outside_the_bundle_is_refused(layout):
    bundle, outside = layout
    err = refused(write_policy(bundle, str(outside / "secret.csv")))
    assert "outside the bundle directory" in err.message and "source_roots" in err.message


def test_dotdot_out_of_the_bundle_is_refused(layout):
    bundle, _ = layout
    refused(write_policy(bundle, "../outside/secret.csv"))
    refused(write_policy(bundle, "sub/../../outside/secret.csv"))


def test_symlinked_file_pointing_out_is_refused(layout):
    bundle, outside = layout
    os.symlink(outside / "secret.csv", bundle / "link.csv")
    refused(write_policy(bundle, "link.csv"))


def test_symlinked_directory_pointing_out_is_refused(layout):
    bundle, outside = layout
    os.symlink(outside, bundle / "data")
    refused(write_policy(bundle, "data/secret.csv"))


def test_system_files_are_refused(layout):
    bundle, _ = layout
    for target in ("/etc/passwd", "/proc/self/environ", "../../../../../../etc/passwd"):
        refused(write_policy(bundle, target))


def test_load_text_is_confined_to_base_dir(layout):
    bundle, outside = layout
    text = POLICY.format(src="../outside/secret.csv")
    with pytest.raises(RuneSourceError, match="outside the bundle"):
        load_text(text, base_dir=str(bundle))
    assert load_text(text, base_dir=str(bundle), source_roots=[outside]).authorize(
        'User::"a"', 'A::"b"', 'R::"c"'
    ).decision == "deny"


def test_symlinks_inside_the_bundle_are_fine(layout):
    # The ConfigMap shape: name -> ..data/name, ..data -> timestamped dir, all inside.
    bundle, _ = layout
    (bundle / "..2024").mkdir()
    (bundle / "..2024" / "facts.csv").write_text("x\n")
    os.symlink("..2024", bundle / "..data")
    os.symlink("..data/facts.csv", bundle / "facts.csv")
    e = load(write_policy(bundle, "facts.csv"))
    assert e.authorize('User::"a"', 'A::"b"', 'R::"c"').decision == "permit"
    # and a subdirectory of the bundle
    (bundle / "sub").mkdir()
    (bundle / "sub" / "f.csv").write_text("x\n")
    assert load(write_policy(bundle, "sub/f.csv")).authorize('User::"a"', 'A::"b"', 'R::"c"').allowed


PERMIT_ALL = 'version = "rune/1"\n[policies]\npermit(principal, action, resource);\n'


def test_symlink_loops_in_a_recursive_bundle_end(tmp_path):
    # Two links back to the bundle itself: following them naively walks
    # 2**40 paths before the kernel says ELOOP.
    (tmp_path / "a.rune").write_text(PERMIT_ALL)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.rune").write_text(PERMIT_ALL.replace("permit(", '@id("b")\npermit('))
    os.symlink(".", tmp_path / "l1")
    os.symlink("..", tmp_path / "sub" / "up")
    status, value = bounded(lambda: load(str(tmp_path), recursive=True))
    assert status == "ok", value
    assert value.authorize('User::"a"', 'A::"b"', 'R::"c"').allowed
    assert sorted(os.path.basename(f) for f in value.watched_paths if f.endswith(".rune")) == ["a.rune", "b.rune"]


def test_rune_file_symlinked_out_of_the_bundle_is_refused(layout):
    bundle, outside = layout
    (outside / "evil.rune").write_text(PERMIT_ALL)
    (bundle / "ok.rune").write_text(PERMIT_ALL.replace("permit(", '@id("ok")\npermit('))
    os.symlink(outside / "evil.rune", bundle / "evil.rune")
    with pytest.raises(RuneError, match="leads out of the bundle"):
        load(str(bundle))
    # an explicit root allows it
    assert load(str(bundle), source_roots=[str(outside)]).authorize('User::"a"', 'A::"b"', 'R::"c"').allowed


def test_directory_symlinked_out_of_a_recursive_bundle_is_refused(layout):
    bundle, outside = layout
    (outside / "evil.rune").write_text(PERMIT_ALL)
    (bundle / "ok.rune").write_text(PERMIT_ALL)
    os.symlink(outside, bundle / "more")
    with pytest.raises(RuneError, match="leads out of the bundle"):
        load(str(bundle), recursive=True)
    # not recursive: subdirectories are not read at all, links included
    assert load(str(bundle)).authorize('User::"a"', 'A::"b"', 'R::"c"').allowed


def test_allow_listed_root_is_read_but_never_quoted(layout):
    bundle, outside = layout
    p = write_policy(bundle, str(outside / "secret.csv"))
    e = load(p, source_roots=[str(outside)])
    assert e.authorize('User::"a"', 'A::"b"', 'R::"c"').decision == "deny"  # secret("x") is not a fact
    (outside / "secret.csv").write_text(f"{SECRET},1\n{SECRET}\n")  # ragged: an error on line 2
    with pytest.raises(RuneSourceError) as ei:
        load(p, source_roots=[str(outside)])
    err = ei.value.errors[0]
    assert err.line == 2 and err.source_line is None
    assert SECRET not in str(ei.value)
    # the same error inside the bundle quotes the line (it is the user's own file)
    (bundle / "own.csv").write_text(f"{SECRET},1\n{SECRET}\n")
    with pytest.raises(RuneSourceError) as ei:
        load(write_policy(bundle, "own.csv"))
    assert ei.value.errors[0].source_line == SECRET


def test_quoted_source_lines_are_bounded(layout):
    bundle, _ = layout
    (bundle / "big.csv").write_text("a,b\n" + "y" * 100_000 + "\n")
    with pytest.raises(RuneSourceError) as ei:
        load(write_policy(bundle, "big.csv"))
    assert len(ei.value.errors[0].source_line) <= 160
    assert len(str(ei.value)) < 2_000


def test_store_passes_source_roots(layout):
    bundle, outside = layout
    p = write_policy(bundle, str(outside / "secret.csv"))
    with pytest.raises(RuneSourceError):
        PolicyStore(p, watch=False)
    with PolicyStore(p, watch=False, source_roots=[str(outside)]) as store:
        assert store.authorize('User::"a"', 'A::"b"', 'R::"c"').decision == "deny"


# --------------------------------------------------------------------------
# Finding 7: only regular files, never blocking


def test_fifo_rune_file_in_a_bundle_is_refused(tmp_path):
    (tmp_path / "a.rune").write_text('version = "rune/1"\n\n[policies]\npermit(principal, action, resource);\n')
    fifo = tmp_path / "b.rune"
    os.mkfifo(fifo)
    try:
        for recursive in (False, True):
            kind, err = bounded(lambda: load(tmp_path, recursive=recursive))
            assert kind == "raised" and isinstance(err, RuneError), err
            assert "FIFO" in str(err) and str(fifo) in str(err)
        kind, err = bounded(lambda: load(fifo))
        assert kind == "raised" and "FIFO" in str(err)
    finally:
        release_fifo(fifo)


def test_fifo_source_is_refused(tmp_path):
    fifo = tmp_path / "facts.csv"
    os.mkfifo(fifo)
    p = write_policy(tmp_path, "facts.csv")
    try:
        kind, err = bounded(lambda: load(p))
        assert kind == "raised" and isinstance(err, RuneSourceError), err
        assert "FIFO" in err.message and err.line == 4
    finally:
        release_fifo(fifo)


def test_devices_are_refused(tmp_path):
    p = write_policy(tmp_path, "/dev/zero")
    kind, err = bounded(lambda: load(p, source_roots=["/dev"]))
    assert kind == "raised" and isinstance(err, RuneSourceError) and "character device" in err.message
    kind, err = bounded(lambda: load("/dev/null"))
    assert kind == "raised" and isinstance(err, RuneError) and "character device" in str(err)


def test_directory_named_like_a_source_is_refused(tmp_path):
    (tmp_path / "facts.csv").mkdir()
    with pytest.raises(RuneSourceError, match="a directory, not a regular file"):
        load(write_policy(tmp_path, "facts.csv"))


def test_rollback_is_not_blocked_by_a_stuck_reload(tmp_path):
    """The loader blocks (a hostile file system); rollback() must still work
    at once, and the stuck build, once it returns, must not undo it."""
    p = tmp_path / "p.rune"
    p.write_text("x")
    gate = threading.Event()
    entered = threading.Event()
    versions = iter(["v1", "v2", "v3"])

    class FakeEngine:
        def __init__(self, version):
            self.version = version
            self.watched_paths = (str(p),)

    def loader(path, **kw):
        v = next(versions)
        if v == "v3":
            entered.set()
            assert gate.wait(60)
        return FakeEngine(v)

    store = PolicyStore(p, watch=False, loader=loader)
    assert store.reload().ok and store.engine.version == "v2"
    results: list = []
    t = threading.Thread(target=lambda: results.append(store.reload()), daemon=True)
    t.start()
    try:
        assert entered.wait(30)
        # generous bounds (the stuck build holds the gate for up to 60 s):
        # a blocked call fails the test, a slow machine does not
        kind, r = bounded(store.rollback, timeout=15.0)
        assert kind == "ok" and r.ok and store.engine.version == "v1"
        assert bounded(lambda: store.stats, timeout=15.0)[0] == "ok"
    finally:
        gate.set()
        t.join(30)
    assert not t.is_alive()
    (late,) = results
    assert not late.ok and "rollback" in late.error.message
    assert store.engine.version == "v1"  # the rollback won


def test_store_reload_refuses_a_fifo_swapped_in(tmp_path):
    p = tmp_path / "p.rune"
    p.write_text('version = "rune/1"\n\n[policies]\npermit(principal, action, resource);\n')
    store = PolicyStore(p, watch=False)
    v = store.version
    p.unlink()
    os.mkfifo(p)
    try:
        kind, r = bounded(store.reload)
        assert kind == "ok" and not r.ok and "FIFO" in r.error_summary
        assert store.version == v and store.authorize('User::"a"', 'A::"b"', 'R::"c"').allowed
    finally:
        release_fifo(p)


# --------------------------------------------------------------------------
# Finding 10, file items


def test_unreadable_directory_is_reported_as_unreadable(tmp_path, monkeypatch):
    (tmp_path / "a.rune").write_text('version = "rune/1"\n')
    real_listdir = os.listdir

    def listdir(d):
        if os.path.abspath(d) == str(tmp_path):
            raise PermissionError(13, "Permission denied", d)
        return real_listdir(d)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(RuneError) as ei:
        load(tmp_path)
    assert "unreadable" in str(ei.value) and "no such" not in str(ei.value)
    assert ei.value.file == str(tmp_path)


def test_unstat_able_path_is_reported_as_unreadable(tmp_path, monkeypatch):
    real_stat = os.stat
    target = str(tmp_path / "locked")

    def fake_stat(path, *a, **kw):
        if os.fspath(path) == target:
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *a, **kw)

    monkeypatch.setattr(os, "stat", fake_stat)
    with pytest.raises(RuneError) as ei:
        parser.load_bundle(target)
    assert "unreadable" in str(ei.value) and "no such" not in str(ei.value)
    with pytest.raises(RuneError, match="no such file"):
        parser.load_bundle(str(tmp_path / "really-missing"))


def test_load_time_limit_error_is_located_at_the_file(tmp_path):
    p = tmp_path / "p.rune"
    p.write_text(
        'version = "rune/1"\n\n[data]\ne = [[1, 2], [2, 3], [3, 4], [4, 5]]\n\n[rules]\n'
        "path(X, Y) :- e(X, Y).\npath(X, Z) :- path(X, Y), e(Y, Z).\n\n"
        "[policies]\npermit(principal, action, resource);\n"
    )
    with pytest.raises(RuneLimitError) as ei:
        load(p, max_tuples=3)
    assert ei.value.file == str(p)
    assert ei.value.line == 7 and ei.value.source_line.startswith("path(X, Y)")


# --------------------------------------------------------------------------
# Finding 10, CLI items: a clean error and a documented exit code, never a traceback

CLI_POLICY = """version = "rune/1"

[rules]
who(P) :- principal(P).
ctx(V) :- context("a", V).

[policies]
permit(principal, action, resource) when { who(principal) };
"""


def rune(monkeypatch, *args: str, encoding: str = "utf-8") -> tuple[int, str, str]:
    """Run the CLI in-process with strict stdout/stderr in ``encoding`` (as a
    terminal would have); any exception escaping ``main`` fails the test."""
    out = io.TextIOWrapper(io.BytesIO(), encoding=encoding, write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding=encoding, write_through=True)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = cli_main(list(args))
    return code, out.buffer.getvalue().decode(encoding), err.buffer.getvalue().decode(encoding)


def test_cli_deeply_nested_json_is_a_clean_bad_request(tmp_path, monkeypatch):
    p = tmp_path / "p.rune"
    p.write_text(CLI_POLICY)
    deep_obj = '{"a":' * 5000 + "1" + "}" * 5000
    deep_arr = "[" * 5000 + "]" * 5000
    req = ["--principal", 'User::"a"', "--action", 'Action::"r"', "--resource", 'Doc::"d"']
    for args in (["eval", str(p), *req, "--context", deep_obj],
                 ["eval", str(p), *req, "--entities", deep_arr],
                 ["query", str(p), "who(X)", "--context", deep_obj]):
        code, _out, err = rune(monkeypatch, *args)
        assert code == EXIT_BAD_REQUEST and "nested too deeply" in err


def test_cli_lone_surrogates_never_cause_a_traceback(tmp_path, monkeypatch):
    p = tmp_path / "p.rune"
    p.write_text(CLI_POLICY)
    for encoding in ("utf-8", "ascii"):
        # a lone surrogate in a context string is a value like any other: printed escaped
        code, out, _ = rune(monkeypatch, "query", str(p), "ctx(X)", "--context", '{"a": "\\ud800x\\u00e9"}',
                            encoding=encoding)
        assert code == 0 and "\\ud800x" in out
        # in an id (as a JSON escape, or undecodable argv bytes arriving as
        # surrogateescape) it is a bad request, reported without a traceback
        for principal in ('User::"\\ud800x"', 'Us\udcffer::"a"', 'User::"\udcff"'):
            code, _, err = rune(monkeypatch, "eval", str(p), "--principal", principal, "--action", 'A::"r"',
                                "--resource", 'D::"d"', encoding=encoding)
            assert code == EXIT_BAD_REQUEST and "principal" in err
