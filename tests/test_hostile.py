"""The hostile-input suite (issue 8): random requests, policies and file
operations thrown at the library and at a PolicyStore.

The only acceptable outcomes are a correct decision, a ``RuneError`` /
``RuneRequestError``, or a deny.  Never:

- an allow that a fresh engine would not give (each decision of a long-lived,
  cached engine that has already seen many hostile requests is compared with
  a fresh load of the same text, without cache, and with the reference
  policy evaluator of tests/reference_policies.py);
- a bare exception (anything that is not a ``RuneError``);
- a hang: every call runs under a watchdog thread (``hostile.WATCHDOG_S``),
  the engines under a ``deadline_ms`` of ``hostile.DEADLINE_MS``;
- memory past a budget: tracemalloc peak per decision
  (``hostile.DECISION_MEMORY_BUDGET``), peak RSS growth per test.

Default budget: a few dozen examples per property, about 20 s on 2 cores.
``pytest -m fuzz tests/test_hostile.py`` runs the same properties with a
large budget (``RUNE_FUZZ_EXAMPLES``, default 2000 per property).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile as H
import reference_policies
from rune_fast import PolicyStore, RuneError, load
from rune_fast.lang.manifest import write_manifest
from rune_fast.lang.parser import bundle_manifest

COMMON = dict(deadline=None, derandomize=False, suppress_health_check=list(HealthCheck), database=None)
QUICK = settings(max_examples=int(os.environ.get("RUNE_HOSTILE_EXAMPLES", "40")), **COMMON)
LONG = settings(max_examples=int(os.environ.get("RUNE_FUZZ_EXAMPLES", "2000")), **COMMON)

#: The independent policy evaluator of the test suite (the second oracle).
REFERENCE = reference_policies.generate

#: Peak RSS may grow by at most this much during one property (bytes).
RSS_BUDGET = 512 * 1024 * 1024

# Long-lived engines: they see every hostile request of the run, so any memo
# or cache poisoned by one request shows up as a difference on a later one.
_WARM: dict[str, Any] = {}


def warm(policy: str):
    if policy not in _WARM:
        _WARM[policy] = H.fresh(policy, cache_size=256)
    return _WARM[policy]


@pytest.fixture
def rss_budget():
    before = H.peak_rss_bytes()
    yield
    grown = H.peak_rss_bytes() - before
    assert grown <= RSS_BUDGET, f"peak RSS grew by {grown / 2**20:.0f} MiB"


# --------------------------------------------------------------------------
# Random requests


@st.composite
def policy_and_request(draw):
    policy = draw(st.sampled_from(sorted(H.POLICIES)))
    return policy, draw(H.requests(policy))


def check_request(case) -> None:
    policy, req = case
    engine = warm(policy)
    res, peak = H.measured(lambda: H.decide(engine, req))
    got = H.outcome(res)
    assert peak <= H.DECISION_MEMORY_BUDGET, f"one decision peaked at {peak / 2**20:.1f} MiB"
    expected = H.outcome(H.bounded(lambda: H.decide(H.fresh(policy, cache_size=0), req)))
    other = H.outcome(H.bounded(lambda: H.decide(H.fresh(policy, cache_size=0, policy_generator=REFERENCE), req)))
    if got[:2] == ("decision", "permit") or expected[:2] == ("decision", "permit"):
        # an allow must be exactly what a fresh engine gives
        assert got == expected, f"warm engine {got} vs fresh {expected} for {policy}: {req!r}"[:3000]
    assert got[0] == expected[0] == other[0], (got, expected, other)
    if got[0] == "decision":
        assert got == expected == other, (got, expected, other)


@QUICK
@given(case=policy_and_request())
def test_random_requests(case, rss_budget):
    check_request(case)


@pytest.mark.fuzz
@LONG
@given(case=policy_and_request())
def test_random_requests_long(case, rss_budget):
    check_request(case)


@QUICK
@given(order=st.permutations(range(6)), ctx_age=st.sampled_from([None, 17, "17", 30]))
def test_request_dependent_parent_in_any_order(order, ctx_age):
    """Issue 8 finding 1's shape: the answer for one request must not depend
    on which requests came before it."""
    engine = H.fresh("request_parent", cache_size=64)
    reqs = [
        (("User", u), ("Action", "delete"), ("Doc", d), None if ctx_age is None else {"age": ctx_age}, None)
        for u in ("eve", "mallory") for d in ("old", "live", "new")
    ]
    for i in order:
        got = H.outcome(H.bounded(lambda: H.decide(engine, reqs[i])))
        want = H.outcome(H.bounded(lambda: H.decide(H.fresh("request_parent", cache_size=0), reqs[i])))
        assert got == want, (reqs[i], got, want)


# --------------------------------------------------------------------------
# Random policies


def check_policy(text: str) -> None:
    def build(generator, cache: int):
        return H.bounded(lambda: H.load_text(text, base_dir=H.EXAMPLES_DIR, deadline_ms=H.DEADLINE_MS,
                                            max_tuples=200_000, cache_size=cache, policy_generator=generator))

    a, b = build(None, 64), build(REFERENCE, 0)
    for kind, value in (a, b):
        if kind == "raised":
            assert isinstance(value, RuneError), f"bare {type(value).__name__} while loading: {value!r}"[:2000]
            value.render()
    assert a[0] == b[0], "the engine and the reference evaluator disagree on whether the policy loads"
    if a[0] != "ok":
        return
    pool = H.known_entities(text) or [("User", "u")]
    for i in range(6):
        p, act, r = pool[i % len(pool)], pool[(i * 7 + 1) % len(pool)], pool[(i * 3 + 2) % len(pool)]
        req = (p, act, r, {"age": i * 5, "ok": bool(i % 2), "level": i}, None)
        x = H.outcome(H.bounded(lambda: H.decide(a[1], req)))
        y = H.outcome(H.bounded(lambda: H.decide(b[1], req)))
        assert x == y, (req, x, y)


@QUICK
@given(text=H.mutated_policies())
def test_random_policies(text, rss_budget):
    check_policy(text)


@pytest.mark.fuzz
@LONG
@given(text=H.mutated_policies())
def test_random_policies_long(text, rss_budget):
    check_policy(text)


# --------------------------------------------------------------------------
# Random file operations against a store

BUNDLE_TEXTS = [
    # 0: everyone but the blocked users (blocked.csv) and mallory
    'version = "rune/1"\n\n[sources]\nblocked = "blocked.csv"\n\n[policies]\n'
    '@id("all") permit(principal, action, resource);\n'
    '@id("no-blocked") forbid(principal, action, resource) when { blocked(principal) };\n'
    '@id("no-mallory") forbid(principal == User::"mallory", action, resource);\n',
    # 1: readers only
    'version = "rune/1"\n\n[data]\nreader = [\'User::"alice"\']\n\n[policies]\n'
    '@id("read") permit(principal, action == Action::"read", resource) when { reader(principal) };\n',
    # 2: does not load
    'version = "rune/1"\n\n[policies]\npermit(principal, action resource);\n',
]
BLOCKED = ['User::"bob"\nUser::"mallory"\n', 'User::"bob"\n']
PROBES = [(("User", u), ("Action", a), ("Doc", "d")) for u in ("alice", "bob", "mallory") for a in ("read", "write")]
SMALL_FILES = 16 * 1024  # max_file_bytes of the store under test

file_ops = st.one_of(
    st.tuples(st.just("atomic"), st.integers(0, len(BUNDLE_TEXTS) - 1)),
    st.tuples(st.just("inplace_prefix"), st.integers(0, len(BUNDLE_TEXTS) - 1), st.floats(0, 1)),
    st.tuples(st.just("source"), st.integers(0, len(BLOCKED) - 1), st.floats(0, 1)),
    st.tuples(st.just("fifo"), st.sampled_from(["p.rune", "blocked.csv", "q.rune", "rune.manifest"])),
    st.tuples(st.just("symlink_out"), st.just("blocked.csv")),
    st.tuples(st.just("huge"), st.sampled_from(["p.rune", "blocked.csv"])),
    st.tuples(st.just("garbage"), st.sampled_from(["p.rune", "blocked.csv", "rune.manifest"]), st.binary(max_size=64)),
    st.tuples(st.just("delete"), st.sampled_from(["p.rune", "blocked.csv", "rune.manifest"])),
    st.tuples(st.just("directory"), st.sampled_from(["q.rune", "blocked.csv"])),
    st.tuples(st.just("seal")),
    st.tuples(st.just("rollback")),
)


def _clear(path: Path) -> None:
    if path.is_symlink() or path.exists() or stat.S_ISFIFO(_lmode(path)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _lmode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def apply(op: tuple, d: Path, outside: Path) -> None:
    kind = op[0]
    if kind == "atomic":
        tmp = d / ".p.rune.tmp"
        tmp.write_text(BUNDLE_TEXTS[op[1]])
        _clear(d / "p.rune")
        os.replace(tmp, d / "p.rune")
    elif kind == "inplace_prefix":  # a writer paused part-way through an in-place write
        text = BUNDLE_TEXTS[op[1]]
        _clear(d / "p.rune")
        (d / "p.rune").write_text(text[: int(len(text) * op[2])])
    elif kind == "source":
        text = BLOCKED[op[1]]
        _clear(d / "blocked.csv")
        (d / "blocked.csv").write_text(text[: int(len(text) * op[2])])
    elif kind == "fifo":
        _clear(d / op[1])
        os.mkfifo(d / op[1])
    elif kind == "symlink_out":
        _clear(d / op[1])
        os.symlink(outside / "secret.csv", d / op[1])
    elif kind == "huge":
        _clear(d / op[1])
        (d / op[1]).write_bytes(b"#" * (SMALL_FILES + 1))
    elif kind == "garbage":
        _clear(d / op[1])
        (d / op[1]).write_bytes(op[2])
    elif kind == "delete":
        _clear(d / op[1])
    elif kind == "directory":
        _clear(d / op[1])
        (d / op[1]).mkdir()


def snapshot_engine(d: Path, tmp: Path, mode: str):
    """A fresh engine from a copy of what is on disk now (the oracle)."""
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(d, tmp, symlinks=True, ignore=lambda _d, names: [
        n for n in names if not (d / n).is_symlink() and stat.S_ISFIFO(_lmode(d / n))])
    return load(tmp, manifest=mode, max_file_bytes=SMALL_FILES, cache_size=0)


def decisions(engine) -> list:
    return [H.outcome(H.bounded(lambda: engine.authorize(*p))) for p in PROBES]


def unblock_fifos(d: Path) -> None:
    for name in os.listdir(d):
        if stat.S_ISFIFO(_lmode(d / name)):
            try:
                os.close(os.open(d / name, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


def check_file_ops(ops: list, mode: str, tmp_path_factory) -> None:
    base = tmp_path_factory.mktemp("store")
    d, outside, scratch = base / "bundle", base / "outside", base / "scratch"
    d.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text('User::"outsider-7f3a"\n')
    (d / "p.rune").write_text(BUNDLE_TEXTS[0])
    (d / "blocked.csv").write_text(BLOCKED[0])
    sealed: dict[str, list] = {}  # version -> decisions, for every version a manifest sealed

    def seal() -> None:
        try:
            target, digests = bundle_manifest(str(d), limits=None)
        except RuneError:
            return
        write_manifest(target, digests)
        try:
            e = snapshot_engine(d, scratch, "require")
        except RuneError:
            return
        sealed[e.version] = decisions(e)

    if mode == "require":
        seal()
    kind, store = H.bounded(lambda: PolicyStore(d, watch=False, manifest=mode, max_file_bytes=SMALL_FILES,
                                                deadline_ms=H.DEADLINE_MS, cache_size=64))
    assert kind == "ok", store
    expected = {store.version: decisions(snapshot_engine(d, scratch, mode))}
    try:
        for op in ops:
            if op[0] == "seal":
                seal()
            elif op[0] == "rollback":
                if len(store.history) > 1:
                    assert H.bounded(store.rollback)[0] == "ok"
                continue
            else:
                apply(op, d, outside)
            kind, r = H.bounded(store.reload)
            assert kind == "ok", f"reload raised {r!r}"  # a result, never an exception
            if r.ok and r.changed:
                expected[store.version] = decisions(snapshot_engine(d, scratch, mode))
            # The store serves exactly what a fresh engine of its version decides.
            assert decisions(store.engine) == expected[store.version]
            if mode == "require":
                # Safe mode: only content sealed by a manifest is ever served.
                assert store.version in sealed, "served a version no manifest sealed"
                assert expected[store.version] == sealed[store.version]
            for err in r.errors:
                assert 'outsider-7f3a' not in err.render()  # nothing from outside/secret.csv leaks
    finally:
        unblock_fifos(d)


@QUICK
@given(ops=st.lists(file_ops, min_size=1, max_size=8), mode=st.sampled_from(["auto", "require"]))
def test_random_file_operations(ops, mode, tmp_path_factory, rss_budget):
    check_file_ops(ops, mode, tmp_path_factory)


@pytest.mark.fuzz
@LONG
@given(ops=st.lists(file_ops, min_size=1, max_size=20), mode=st.sampled_from(["auto", "require"]))
def test_random_file_operations_long(ops, mode, tmp_path_factory, rss_budget):
    check_file_ops(ops, mode, tmp_path_factory)
