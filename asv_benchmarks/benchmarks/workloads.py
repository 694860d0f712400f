"""Seeded Datalog workloads shared by the asv suite and ``compare_datalog.py``.

Every workload is a ``Workload``: the rules (RUNE Datalog text, which is also
valid clingo input), the input facts as Python tuples, and the derived
relations whose tuples are the result ("outputs"). Generators are
deterministic (``random.Random(seed)``), so every engine and every run sees
the same facts.

Sizes (derived tuples, all outputs together):

======================  ==========================================
``tc_chain_200/500/1000`` path over a chain: N(N-1)/2 (20k .. 500k)
``tc_random``             1,000 nodes, 3,000 edges: 0.88 M paths
``same_generation``       3,000-node random tree: 0.24 M pairs
``reach_negation``        5,000 nodes, 50 sources: 0.25 M pairs
``auth``                  10k users, 1k groups, 100k resources: 1.1 M
======================  ==========================================
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Workload", "WORKLOADS", "get", "names", "chain_edges", "random_graph"]


@dataclass(frozen=True)
class Workload:
    name: str
    rules: str
    facts: dict            # relation -> list of tuples
    outputs: tuple         # derived relations that form the result
    notes: str = ""
    arities: dict = field(default_factory=dict)  # relation -> arity (for #show)

    @property
    def n_facts(self) -> int:
        return sum(len(v) for v in self.facts.values())


# --------------------------------------------------------------------------
# Transitive closure

TC_RULES = """\
path(X, Y) :- edge(X, Y).
path(X, Z) :- path(X, Y), edge(Y, Z).
"""


def chain_edges(n: int) -> list:
    """A chain of ``n`` nodes: 0 -> 1 -> ... -> n-1."""
    return [(i, i + 1) for i in range(n - 1)]


def random_graph(n_nodes: int, n_edges: int, seed: int) -> list:
    """``n_edges`` distinct directed edges between distinct nodes, seeded."""
    rng = random.Random(seed)
    edges: set = set()
    while len(edges) < n_edges:
        a = rng.randrange(n_nodes)
        b = rng.randrange(n_nodes)
        if a != b:
            edges.add((a, b))
    return sorted(edges)


def tc_chain(n: int) -> Workload:
    return Workload(f"tc_chain_{n}", TC_RULES, {"edge": chain_edges(n)}, ("path",),
                    f"transitive closure of a {n}-node chain", {"path": 2})


def tc_random() -> Workload:
    return Workload("tc_random", TC_RULES, {"edge": random_graph(1000, 3000, seed=3)}, ("path",),
                    "transitive closure of a random graph (1,000 nodes, 3,000 edges, seed 3)",
                    {"path": 2})


# --------------------------------------------------------------------------
# Same generation

SG_RULES = """\
sg(X, Y) :- par(X, P), par(Y, P), X != Y.
sg(X, Y) :- par(X, A), sg(A, B), par(Y, B).
"""


def random_tree(n: int, window: int, seed: int) -> list:
    """``par(child, parent)`` for a random tree: node i's parent is drawn from
    the ``window`` nodes before it, so the tree is deep with narrow levels."""
    rng = random.Random(seed)
    return [(i, rng.randrange(max(0, i - window), i)) for i in range(1, n)]


def same_generation() -> Workload:
    return Workload("same_generation", SG_RULES, {"par": random_tree(3000, 150, seed=5)}, ("sg",),
                    "same generation on a random 3,000-node tree (parent within the previous 150 nodes)",
                    {"sg": 2})


# --------------------------------------------------------------------------
# Reachability + negation

REACH_RULES = """\
reach(S, Y) :- source(S), edge(S, Y).
reach(S, Z) :- reach(S, Y), edge(Y, Z).
unreached(S, X) :- source(S), node(X), not reach(S, X).
has_out(X) :- edge(X, _).
sink(X) :- node(X), not has_out(X).
"""


def reach_negation() -> Workload:
    n = 5000
    edges = random_graph(n, 6000, seed=7)
    rng = random.Random(8)
    sources = sorted(rng.sample(range(n), 50))
    facts = {"edge": edges, "node": [(i,) for i in range(n)], "source": [(s,) for s in sources]}
    return Workload("reach_negation", REACH_RULES, facts, ("reach", "unreached", "sink"),
                    "reachability from 50 sources in a 5,000-node / 6,000-edge random graph, "
                    "its complement by negation, and sinks", {"reach": 2, "unreached": 2, "sink": 1})


# --------------------------------------------------------------------------
# Authorization

AUTH_RULES = """\
member_of(U, G) :- member(U, G).
member_of(U, G) :- member_of(U, H), subgroup(H, G).
anc(X, A) :- within(X, A).
anc(X, A) :- anc(X, B), within(B, A).
can(U, P, R) :- member_of(U, G), grant(G, P, F), anc(R, F), resource(R), not suspended(U).
can(U, "write", R) :- owner(U, R), not suspended(U).
"""

#: groups per nesting level (depth 4)
AUTH_GROUP_LEVELS = (10, 40, 150, 800)
#: folders per level of the folder tree (root first)
AUTH_FOLDER_LEVELS = (1, 10, 100, 1000)


def auth(n_users: int = 10_000, n_resources: int = 100_000, seed: int = 11) -> Workload:
    """Users in nested groups, resources in a folder tree, grants on folders.

    * ``subgroup(G, Parent)``: 1,000 groups on 4 levels; every non-root group
      has a parent one level up and 10% have a second one (a DAG);
    * ``member(U, G)``: each user is in one leaf group, 30% also in a random group;
    * ``within(X, Folder)``: folders (1/10/100/1,000 per level) and resources
      (each in a random leaf folder);
    * ``grant(G, Perm, Folder)``: 25% of the leaf groups read one leaf folder,
      15% of the level-2 groups write one leaf folder, 1 in 5 level-1 groups
      read one leaf folder;
    * ``owner(U, R)`` for a fifth of the resources; 1% of the users are suspended.

    Derived: ``member_of`` 56,821, ``anc`` 403,210, ``can`` 658,265 tuples.
    """
    rng = random.Random(seed)
    groups = []
    gid = 0
    for size in AUTH_GROUP_LEVELS:
        groups.append([f"g{gid + i}" for i in range(size)])
        gid += size
    subgroup = set()
    for lvl in range(1, len(groups)):
        for g in groups[lvl]:
            subgroup.add((g, rng.choice(groups[lvl - 1])))
            if rng.random() < 0.1:
                subgroup.add((g, rng.choice(groups[lvl - 1])))
    all_groups = [g for lvl in groups for g in lvl]
    users = [f"u{i}" for i in range(n_users)]
    member = set()
    for u in users:
        member.add((u, rng.choice(groups[-1])))
        if rng.random() < 0.3:
            member.add((u, rng.choice(all_groups)))
    folders = []
    fid = 0
    for size in AUTH_FOLDER_LEVELS:
        folders.append([f"f{fid + i}" for i in range(size)])
        fid += size
    within = set()
    for lvl in range(1, len(folders)):
        for i, f in enumerate(folders[lvl]):
            within.add((f, folders[lvl - 1][i * len(folders[lvl - 1]) // len(folders[lvl])]))
    resources = [f"r{i}" for i in range(n_resources)]
    for r in resources:
        within.add((r, rng.choice(folders[-1])))
    grant = set()
    for g in groups[3]:
        if rng.random() < 0.25:
            grant.add((g, "read", rng.choice(folders[3])))
    for g in groups[2]:
        if rng.random() < 0.15:
            grant.add((g, "write", rng.choice(folders[3])))
    for g in groups[1]:
        if rng.random() < 0.2:
            grant.add((g, "read", rng.choice(folders[3])))
    owner = {(rng.choice(users), r) for r in rng.sample(resources, n_resources // 5)}
    suspended = [(u,) for u in rng.sample(users, n_users // 100)]
    facts = {
        "member": sorted(member),
        "subgroup": sorted(subgroup),
        "within": sorted(within),
        "resource": [(r,) for r in resources],
        "grant": sorted(grant),
        "owner": sorted(owner),
        "suspended": sorted(suspended),
    }
    return Workload("auth", AUTH_RULES, facts, ("member_of", "anc", "can"),
                    f"authorization: {n_users:,} users, {sum(AUTH_GROUP_LEVELS):,} groups nested 4 deep, "
                    f"{n_resources:,} resources in a {sum(AUTH_FOLDER_LEVELS):,}-folder tree",
                    {"member_of": 2, "anc": 2, "can": 3})


# --------------------------------------------------------------------------

_FACTORIES: dict = {
    "tc_chain_200": lambda: tc_chain(200),
    "tc_chain_500": lambda: tc_chain(500),
    "tc_chain_1000": lambda: tc_chain(1000),
    "tc_random": tc_random,
    "same_generation": same_generation,
    "reach_negation": reach_negation,
    "auth": auth,
}

WORKLOADS: tuple = tuple(_FACTORIES)
_cache: dict = {}


def names() -> tuple:
    return WORKLOADS


def get(name: str) -> Workload:
    """The workload called ``name`` (built once per process)."""
    w = _cache.get(name)
    if w is None:
        factory: Callable[[], Workload] = _FACTORIES[name]
        w = _cache[name] = factory()
    return w


# --------------------------------------------------------------------------
# 10^6 binary facts from a source file

SOURCE_KINDS = ("int", "str", "entity")
SOURCE_PROGRAM = "grp(G) :- member(_, G).\n"


def write_member_csv(path: str, n: int = 1_000_000, kind: str = "str") -> str:
    """``n`` distinct ``member(user, group)`` rows as CSV: 100,000 users with
    10 groups each out of 10,000 (for n = 10^6). ``kind``: ``int`` (``42,7``),
    ``str`` (``u42,g7``) or ``entity`` (``User::"u42",Group::"g7"``)."""
    fmt = {"int": "{},{}\n", "str": "u{},g{}\n", "entity": 'User::"u{}",Group::"g{}"\n'}[kind]
    with open(path, "w") as f:
        f.write("".join([fmt.format(i // 10, (i % 10) * 1000 + (i // 10 * 7) % 1000) for i in range(n)]))
    return path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def load_member_source(path: str):
    """Load a member CSV through ``[sources]`` parsing into a program's model:
    returns the model (``SOURCE_PROGRAM`` evaluated over the file's facts)."""
    from rune_fast.lang.ast import SourceSpec
    from rune_fast.datalog import Program
    from rune_fast.lang.sources import load_source

    prog = Program(SOURCE_PROGRAM)
    facts = load_source(SourceSpec("member", os.path.abspath(path)))
    return prog.evaluate({"member": facts.rows})


def measure_source_load(path: str) -> dict:
    """Seconds to load ``path`` into a model, and resident bytes per fact the
    model keeps (RSS growth with the model alive and the parsed Python rows
    freed; Linux only). Run it in a fresh process for a clean baseline."""
    import gc
    import time

    from rune_fast.lang.ast import SourceSpec
    from rune_fast.datalog import Program
    from rune_fast.lang.sources import load_source

    prog = Program(SOURCE_PROGRAM)
    gc.collect()
    before = _rss_bytes()
    t0 = time.perf_counter()
    facts = load_source(SourceSpec("member", os.path.abspath(path)))
    t1 = time.perf_counter()
    model = prog.evaluate({"member": facts.rows})
    n = model.size("member")
    t2 = time.perf_counter()
    with_rows = _rss_bytes()
    del facts
    gc.collect()
    after = _rss_bytes()
    return {"facts": n, "parse_s": t1 - t0, "evaluate_s": t2 - t1, "total_s": t2 - t0,
            "bytes_per_fact": (after - before) / n, "bytes_per_fact_with_rows": (with_rows - before) / n,
            "model": model}
