"""The Datalog layer: rules compiled to join plans over interned ids.

``compiler`` turns checked rules into plans, ``symbols`` interns values,
``_core`` (Cython) or its plain-Python twin ``_pycore`` runs them, and
``program`` is the public API re-exported here::

    from rune_fast.datalog import Program
    Program("path(X, Y) :- edge(X, Y).").evaluate({"edge": [(1, 2)]})
"""

from .program import COMPILED, Model, Program, intern_facts, release_cached_memory

__all__ = ["Program", "Model", "intern_facts", "COMPILED", "release_cached_memory"]
