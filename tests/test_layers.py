"""The package's imports point one way: no cycle, no upward import between layers.

Every ``import`` and ``from ... import`` of every module of ``rune_fast``
(``middleware/`` included, as ``rune_fast.middleware``) is read with ``ast``,
including imports inside functions: a lazy import is still a dependency.
Each module belongs to a layer (``LAYERS``); a module may import its own
layer and the layers below it. A new module must be given a layer here,
which is the point: the layout says where it belongs.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Layer of each top-level name under ``rune_fast`` (a module or a
#: subpackage), lowest first. ``rune_fast`` itself is the public façade: it
#: re-exports from every layer, so only the fronts may import it.
LAYERS: dict[str, int] = {
    "errors": 0, "limits": 0, "values": 0, "graphs": 0, "keys": 0, "value_keys": 0, "like": 0,
    "lang": 1,
    "datalog": 2,
    "policy": 3,
    "engine": 4, "request": 4, "decision_cache": 4, "request_plans": 4,
    "request_data": 4, "request_link": 4, "building": 4, "test_report": 4,
    # search and explain answer questions about an engine on demand; they read
    # its model, policies and request data, never the engine module itself
    "analysis": 4,
    "reload": 5,
    "cli": 6, "server": 6, "__main__": 6, "": 6,  # "" is the façade, rune_fast/__init__.py
    "middleware": 7,
}
#: Known upward imports, each with the reason it is tolerated. The test fails
#: when one of them disappears, so this list cannot outlive the exception.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
LAYER_NAMES = [
    "errors/limits/values/graphs/like", "lang", "datalog", "policy", "engine/request/analysis", "reload",
    "cli/server", "middleware",
]


def module_files() -> dict[str, Path]:
    """Module name -> file, for rune_fast and middleware (installed as rune_fast.middleware)."""
    out: dict[str, Path] = {}
    for base, prefix in ((ROOT / "rune_fast", "rune_fast"), (ROOT / "middleware", "rune_fast.middleware")):
        for path in sorted([*base.rglob("*.py"), *base.rglob("*.pyx")]):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


MODULES = module_files()


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def resolve(importer: str, node: ast.AST) -> list[str]:
    """The rune_fast modules an import statement depends on."""
    targets: list[str] = []
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = importer.split(".") if is_package(importer) else importer.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
    found = []
    for t in targets:
        while t and t not in MODULES:  # `import rune_fast.lang.parser.x` -> nearest module
            t = t.rpartition(".")[0]
        if t.startswith("rune_fast") and t != importer:
            found.append(t)
    return found


_PYX_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+c?import\s+(\w+)|c?import\s+([\w.]+))", re.M)


def pyx_imports(text: str) -> list[ast.AST]:
    """``import``/``from ... import`` lines of a .pyx file, as ast nodes."""
    nodes: list[ast.AST] = []
    for m in _PYX_IMPORT.finditer(text):
        if m.group(1) is not None:
            src = m.group(1)
            level = len(src) - len(src.lstrip("."))
            nodes.append(ast.ImportFrom(module=src.lstrip(".") or None, names=[ast.alias(m.group(2))], level=level))
        else:
            nodes.append(ast.Import(names=[ast.alias(m.group(3))]))
    return nodes


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports for annotations only, never executed."""
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        deps: set[str] = set()
        graph[name] = deps
        if path.suffix == ".pyx":  # Cython: not Python syntax, its imports are read line by line
            for node in pyx_imports(path.read_text(encoding="utf-8")):
                deps.update(resolve(name, node))
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        type_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in type_only:
                deps.update(resolve(name, node))
    return graph


GRAPH = import_graph()


def layer_of(module: str) -> Optional[int]:
    parts = module.split(".")
    return LAYERS.get(parts[1] if len(parts) > 1 else "")


def find_cycle(graph: dict[str, set[str]]) -> Optional[list[str]]:
    """One cycle of the graph as a list of modules, or None (iterative DFS)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if color[start] != WHITE:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        color[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
            elif color.get(nxt, BLACK) == GREY:
                return path[path.index(nxt):] + [nxt]
            elif color.get(nxt) == WHITE:
                color[nxt] = GREY
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def test_the_walk_sees_the_package():
    assert {"rune_fast.lang.parser", "rune_fast.engine", "rune_fast.cli.app", "rune_fast.middleware"} <= set(MODULES)
    assert "rune_fast.lang.checks" in GRAPH["rune_fast.lang.bundle"]          # lazy import, inside a function
    assert "rune_fast.errors" in GRAPH["rune_fast.lang.parser"]


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if layer_of(m) is None)
    assert not missing, f"give these modules a layer in tests/test_layers.py LAYERS: {missing}"


def upward_imports() -> list[tuple[str, str]]:
    found = []
    for module, deps in sorted(GRAPH.items()):
        mine = layer_of(module)
        if mine is None:
            continue
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if theirs is not None and theirs > mine:
                found.append((module, dep))
    return found


def test_no_upward_imports():
    upward = [
        f"{m} ({LAYER_NAMES[layer_of(m)]}) imports {d} ({LAYER_NAMES[layer_of(d)]})"  # type: ignore[index]
        for m, d in upward_imports()
        if (m, d) not in KNOWN_UPWARD
    ]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_known_upward_imports_still_exist():
    gone = set(KNOWN_UPWARD) - set(upward_imports())
    assert not gone, f"remove these from KNOWN_UPWARD, they are fixed: {sorted(gone)}"


def test_no_import_cycles():
    graph = {m: {d for d in deps if (m, d) not in KNOWN_UPWARD} for m, deps in GRAPH.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "graph, has_cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a"}}, True),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a"}}, False),
        ({"x": set(), "a": {"b"}, "b": {"a"}}, True),
    ],
)
def test_cycle_finder(graph, has_cycle):
    cycle = find_cycle(graph)
    assert (cycle is not None) == has_cycle
    if cycle:
        assert cycle[0] == cycle[-1] and all(b in graph[a] for a, b in itertools.pairwise(cycle))
