"""Strategies, oracles and guards shared by the hostile-input suites.

``test_hostile.py`` runs them with a small budget in the default suite;
``test_hostile.py -m fuzz`` runs the same properties with a large one
(docs/security.md, "Fuzzing").  Everything here is deliberately simple: the
oracle for a decision is a *fresh* engine loaded from the same text (no
cache, no memo, no earlier request), plus the reference policy evaluator.
"""

from __future__ import annotations

import os
import re
import resource
import threading
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from hypothesis import strategies as st

from rune_fast import Decision, Engine, Entity, RuneError, RuneRequestError, load_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES_DIR = os.path.join(ROOT, "examples")
EXAMPLES = {
    name: Path(EXAMPLES_DIR, name).read_text(encoding="utf-8")
    for name in sorted(os.listdir(EXAMPLES_DIR))
    if name.endswith(".rune")
}

#: Issue 8 finding 1: a rule that derives the action's parent from the request.
REQUEST_PARENT = """version = "rune/1"

[data]
attr = [['Doc::"old"', "archived", true], ['Doc::"live"', "archived", false]]

[rules]
parent(A, Action::"archive_ops") :- action(A), resource(R), attr(R, "archived", true).

[policies]
permit(principal, action in Action::"archive_ops", resource);
forbid(principal, action, resource) when { context has age && context.age < 18 };
permit(principal == User::"mallory", action == Action::"read", resource) when { context.level > 2 };
"""

POLICIES = dict(EXAMPLES, request_parent=REQUEST_PARENT)

#: Every decision runs under this watchdog (seconds): far above any normal
#: decision, far below "hung".  The engines under test use ``DEADLINE_MS``.
WATCHDOG_S = 10.0
DEADLINE_MS = 250.0
#: tracemalloc peak allowed for one decision (bytes), whatever the request.
DECISION_MEMORY_BUDGET = 48 * 1024 * 1024

_LITERAL = re.compile(r'([A-Z][A-Za-z0-9_]*(?:::[A-Z][A-Za-z0-9_]*)*)::"([^"\\]*)"')


def known_entities(text: str) -> list[tuple[str, str]]:
    return sorted(set(_LITERAL.findall(text)))


def known_context_keys(text: str) -> list[str]:
    keys = set(re.findall(r'context\("([a-z_]+)"', text)) | set(re.findall(r"context\.([a-z_]+)", text))
    keys |= set(re.findall(r"context has ([a-z_]+)", text))
    return sorted(keys) or ["x"]


# --------------------------------------------------------------------------
# Guards


class Hang(AssertionError):
    pass


def bounded(fn: Callable[[], Any], timeout: float = WATCHDOG_S) -> tuple[str, Any]:
    """Run ``fn`` on a daemon thread: ``("ok", value)`` or ``("raised", exc)``;
    raises ``Hang`` if it is still running after ``timeout`` seconds."""
    out: list = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:
            out.append(("raised", e))

    t = threading.Thread(target=run, daemon=True, name="hostile-case")
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Hang(f"still running after {timeout}s")
    return out[0]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured(fn: Callable[[], Any]) -> tuple[tuple[str, Any], int]:
    """``bounded(fn)`` and the tracemalloc peak of the call (bytes)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        res = bounded(fn)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()
    return res, peak


def outcome(res: tuple[str, Any]) -> tuple:
    """Classify a decision call: ``("decision", decision, reasons)`` or
    ``("request_error",)``/``("error", class)``; anything else fails."""
    kind, value = res
    if kind == "ok":
        assert isinstance(value, Decision), f"authorize returned {type(value).__name__}"
        if value.allowed:
            assert value.decision == "permit"
        return ("decision", value.decision, tuple(sorted(value.reasons)))
    if isinstance(value, RuneRequestError):
        return ("request_error",)
    if isinstance(value, RuneError):
        return ("error", type(value).__name__)
    raise AssertionError(f"bare exception escaped: {type(value).__name__}: {value!r}"[:2000]) from value


# --------------------------------------------------------------------------
# Strategies

HOSTILE_CHARS = ["\n", "\r", "\x00", "\t", " ", '"', "\\", "::", "\ud800", "\udcff", "\u2028", "\ufeff", "é", "*"]


def hostile_strings(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=max_size),
        st.lists(st.sampled_from(HOSTILE_CHARS + ["a", "User", "Action"]), max_size=12).map("".join),
        st.integers(1, 6).map(lambda k: "x" * (4 ** k * 16)),  # 64 B .. 64 KiB
    )


def type_names() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["User", "Action", "Doc", "Document", "Group", "Agent", "Tool", "Client"]),
        st.sampled_from(["User\n", "User ", " User", "user", "User::", "App::User", "", "1User", "Us\u0000er"]),
        hostile_strings(20),
    )


@st.composite
def entities(draw: Any, pool: list[tuple[str, str]]) -> Any:
    """An entity in one of the accepted (or almost accepted) shapes."""
    if pool and draw(st.booleans()):
        t, i = draw(st.sampled_from(pool))
    else:
        t, i = draw(type_names()), draw(hostile_strings())
    if draw(st.integers(0, 9)) == 0:  # mutate a known one slightly
        t = t + draw(st.sampled_from(["\n", " ", "\r\n", "\x00", ":"]))
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return (t, i)
    if shape == 1:
        return f'{t}::"{i}"'
    if shape == 2:
        return {"type": t, "id": i}
    if shape == 3:
        return ("Entity", t, i)  # built under the guard (the constructor may refuse)
    if shape == 4:
        return draw(st.sampled_from([None, 5, 1.5, [], {}, {"type": t}, (t,), (t, i, "x"), b"User", {"type": 1, "id": i}]))
    return f"{t}::{i}"  # missing quotes


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(),
        st.integers(-(2 ** 70), 2 ** 70),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_strings(30),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_strings(8), inner, max_size=4)),
        max_leaves=max_leaves,
    )


def deep(depth: int, kind: str) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v] if kind == "list" else {"a": v}
    return v


@st.composite
def contexts(draw: Any, keys: list[str]) -> Any:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.sampled_from([None, [], "ctx", 3, {"": 1}]))
    if choice == 1:
        return {draw(st.sampled_from(keys)): deep(draw(st.integers(50, 3000)), draw(st.sampled_from(["list", "dict"])))}
    d = draw(st.dictionaries(st.one_of(st.sampled_from(keys), hostile_strings(10)), json_values(), max_size=5))
    for k in draw(st.lists(st.sampled_from(keys), max_size=3)):
        d[k] = draw(st.one_of(st.integers(-5, 40), st.booleans(), st.sampled_from(["17", "a/b", "*", "x" * 5000])))
    return d


@st.composite
def request_entities(draw: Any, pool: list[tuple[str, str]]) -> Any:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([None, {}, "x", [None], [{"uid": "x"}], deep(2000, "list")]))
    out = []
    for _ in range(draw(st.integers(0, 3))):
        t, i = draw(st.sampled_from(pool)) if pool else ("User", "u")
        out.append({
            "uid": {"type": t, "id": i},
            "attrs": draw(st.dictionaries(st.sampled_from(["archived", "level", "owner", "x"]), json_values(4),
                                          max_size=3)),
            "parents": [{"type": pt, "id": pi} for pt, pi in draw(st.lists(st.sampled_from(pool), max_size=2))]
            if pool else [],
        })
    return out


@st.composite
def requests(draw: Any, policy: str) -> tuple:
    text = POLICIES[policy]
    pool = known_entities(text)
    keys = known_context_keys(text)
    p = draw(entities(pool))
    a = draw(entities([e for e in pool if e[0] == "Action"] or pool))
    r = draw(entities(pool))
    ctx = draw(st.one_of(st.none(), contexts(keys)))
    ents = draw(st.one_of(st.none(), request_entities(pool)))
    return p, a, r, ctx, ents


def materialize(x: Any) -> Any:
    """Build the ``("Entity", t, i)`` placeholders (may raise: under the guard)."""
    if isinstance(x, tuple) and len(x) == 3 and x[0] == "Entity":
        return Entity(x[1], x[2])
    return x


def decide(engine: Engine, req: tuple) -> Any:
    p, a, r, ctx, ents = req
    return engine.authorize(materialize(p), materialize(a), materialize(r), ctx, ents)


def fresh(policy: str, **kw: Any) -> Engine:
    return load_text(POLICIES[policy], base_dir=EXAMPLES_DIR, deadline_ms=DEADLINE_MS, **kw)


# --------------------------------------------------------------------------
# Policy mutations (for random policies)


@st.composite
def mutated_policies(draw: Any) -> str:
    text = draw(st.sampled_from(list(POLICIES.values())))
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 5))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif op == 2:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3 and lines[i]:
            k = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:k] + draw(st.sampled_from(HOSTILE_CHARS + ["(", ")", "{", "}", ";", "not "])) + lines[i][k:]
        elif op == 4:
            lines = lines[: i + 1]  # truncated (a partial write)
        else:
            lines.insert(i, draw(st.sampled_from([
                "permit(principal, action, resource);",
                'forbid(principal, action, resource) when { context.age < 18 };',
                'forbid(principal, action, resource) unless { context.ok };',
                "loop(X) :- loop(X).",
                'big(X) :- member(X, _), member(_, Y), member(Y, _).',
                'permit(principal, action, resource) when { "x" like "*a*b*c*d*e*f*g*" };',
            ])))
    return "\n".join(lines)
