"""Helpers of building an engine that are not the engine itself.

``engine.py`` holds the ``Engine`` and its builders ``load``/``load_text``;
what they need around the build is here: which relations read the request
(a closure over the rule dependency graph), the garbage collector paused
while a build allocates millions of acyclic objects, and a location for
build-time errors raised without one (a limit hit by the compiler names a
relation, not a line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import re
from typing import Any, Iterable, Iterator, Mapping

from .errors import RuneError
from .lang import ast as A


# ---------------------------------------------------------------------------
# Request dependence


def _closure(graph: Mapping[str, Iterable[str]], roots: Iterable[str]) -> frozenset[str]:
    """Relations that (transitively) read any of ``roots``."""
    rev: dict[str, set] = {}
    for rel, deps in graph.items():
        for d in deps:
            rev.setdefault(d, set()).add(rel)
    out: set = set()
    todo = list(roots)
    while todo:
        x = todo.pop()
        for r in rev.get(x, ()):
            if r not in out:
                out.add(r)
                todo.append(r)
    return frozenset(out)


def _reads_context(policies: Iterable[A.Policy], depends_on: Mapping[str, Iterable[str]]) -> bool:
    """Whether any policy can read the request's ``context``.

    Directly (``context.x``, ``context has x``, ``context("k", V)``...),
    through a relation call whose rules (transitively) read ``context``, or
    through ``parent``/``attr`` when rules derive them from ``context``
    (every ``in`` and attribute read may then depend on it).
    A syntactic over-approximation, so ``False`` is a guarantee: then every
    decision is the same whatever the context (a valid one), and a caller
    may decide without building it. Walks the policy trees iteratively
    (no recursion limit to hit).
    """
    names = _closure(depends_on, ("context",)) | {"context"}
    if names & {"parent", "attr"}:
        return True  # ``in`` and attribute reads go through them, unnamed
    todo: list[Any] = list(policies)
    while todo:
        x = todo.pop()
        t = type(x)
        if t is A.VarRef:
            if x.name == "context":
                return True
        elif t is A.RelCall and x.name in names:
            return True
        if t is tuple or t is list:
            todo.extend(x)
        elif t is not A.Loc and dataclasses.is_dataclass(x):
            todo.extend(getattr(x, f.name) for f in dataclasses.fields(x))
    return False


# ---------------------------------------------------------------------------
# Loading


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while an engine is built.

    A build allocates a few objects per fact and frees almost none of them,
    so every collection the allocations trigger would scan the growing heap
    for nothing (a third of the build time on a 5,000-document bundle), and
    in a service each of those scans is a pause for every request thread.
    The engine holds no reference cycles, so nothing it allocates needs the
    collector to be freed. Re-enabled afterwards only if it was enabled."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_RELATION_IN_MESSAGE = re.compile(r"relation '([^']+)'")


def _locate_unlocated(err: RuneError, bundle: Any, fallback: str) -> None:
    """Give a file to build-time errors raised without one (``<string>``, line 0),
    e.g. a ``RuneLimitError`` from the compiler: the first rule deriving the
    relation the message names, else the bundle path."""
    rules: dict[str, Any] = {}
    for r in bundle.rules:
        rules.setdefault(r.head.name, r)
    for e in err.errors + [err]:
        if e.file != "<string>" or e.line:
            continue
        m = _RELATION_IN_MESSAGE.search(e.message)
        rule = rules.get(m.group(1)) if m else None
        loc = getattr(rule, "loc", None)
        if loc is not None and loc.line and loc.file != "<string>":
            e.file, e.line, e.column, e.source_line = loc.file, loc.line, loc.col, loc.text or None
        else:
            e.file = fallback
