"""Graph algorithms shared by the checks (strata) and the policies (hierarchy closure).

Public API:

- ``strongly_connected_components(nodes, successors) -> list[list[node]]``
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, TypeVar

N = TypeVar("N", bound=Hashable)


def strongly_connected_components(
    nodes: Iterable[N], successors: Mapping[N, Iterable[N]]
) -> list[list[N]]:
    """Strongly connected components (Tarjan), dependencies first.

    Components come out in the order Tarjan completes them, so a component
    appears after every component it can reach: the list is a valid
    bottom-up evaluation order. Roots are tried in the order of ``nodes``,
    successors in the order ``successors`` lists them, and each component's
    members in stack-pop order, so the result is deterministic (the checks
    report strata in this order). A node without an entry in ``successors``
    has no successors; a successor that is not in ``nodes`` is still visited.

    It is iterative (an explicit work stack of successor iterators) rather
    than recursive because the graphs come from user data: a rule chain or
    an entity hierarchy thousands of levels deep would exceed Python's
    recursion limit.
    """
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    on_stack: set[N] = set()
    stack: list[N] = []
    out: list[list[N]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(successors.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w is node or w == node:
                        break
                out.append(comp)
    return out
