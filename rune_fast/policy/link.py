"""What a linked policy reads: an engine's data, for the generated code.

Kept apart from the code generator (``codegen.py``) because it is the
contract between the two sides of the common request path: the engine
(``rune_fast/request_link.py``) says how each read is answered, and the
generator (``codegen.py``, ``fused.py``) writes the code that reads it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

__all__ = ["Link"]


class Link(NamedTuple):
    """What an engine knows about the data of its common request (no
    request entities, a hierarchy no rule derives), for ``generate_test(...,
    link=...)``: the generated test then reads that data directly instead of
    through ``d``'s methods, one or two Python calls fewer per read.

    - ``relation(name, mask)``: how a call of relation ``name`` with the
      bound positions ``mask`` is answered, or ``None`` for ``d.contains`` /
      ``d.matches`` as usual: ``("rows", S)``, the row (key form) is in the
      frozenset ``S``; ``("proj", S)``, the bound values (a tuple, key form)
      are in the projection ``S``; ``("probe", f)``, ``f(row)``; ``("plan",
      f, exc[, paste])``, the request plan ``f(d, *bound values)`` answers, while
      ``d.budget >= 0``, and an ``exc`` it raises (or a spent budget) hands
      the question to ``d.general(name, row)``; ``paste``: the plan's body
      to paste instead of the call, or None (``request_plans/paste.py``).
    - ``ancestors``: entity -> frozenset of its ancestors (``d.is_in``);
    - ``attrs``: entity -> record of its attributes (``d.get_attr``).
    - ``context_local``: set only for a fused selection generated without
      the plans' per-request state (``policy/fused.py``): pasted plans then
      read the context facts from the fused function's locals (``cx``, and
      ``context_local(key)`` names the local holding ``cx.get(key)``) and
      the request from ``p``, ``a``, ``r``; no budget test is emitted (a
      pasted plan never spends the budget, and no plan is called).

    The linked test must give exactly what the unlinked one gives on the
    data ``d`` the engine passes with it; ``tests/test_request_fastpath.py``
    checks the two against each other.
    """

    relation: Callable[[str, tuple], Optional[tuple]]
    ancestors: Optional[Any] = None
    attrs: Optional[Any] = None
    context_local: Optional[Callable[[Any], str]] = None
