"""The public Datalog API: ``Program`` (compiled rules) and ``Model`` (their result).

    >>> prog = Program("path(X, Y) :- edge(X, Y). path(X, Z) :- path(X, Y), edge(Y, Z).")
    >>> model = prog.evaluate({"edge": [(1, 2), (2, 3)]})
    >>> sorted(model.relation("path"))
    [(1, 2), (1, 3), (2, 3)]

A ``Program`` is immutable and may be evaluated many times, from many threads
at once: every evaluation has its own relations and its own symbol table
extending the program's.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from ..lang import ast as A
from ..lang.checks import REQUEST_RELATIONS, RESERVED_RELATIONS, check_program
from .compiler import CompiledProgram, Database, core
from ..errors import RuneDataError, RuneError, RuneSyntaxError, raise_collected
from ..limits import Limits
from ..lang.rules_parser import parse_atom, parse_rules
from .symbols import Symbols
from ..values import Entity, format_value

__all__ = ["Program", "Model", "intern_facts", "COMPILED", "release_cached_memory"]

#: True when the compiled extension runs the plans (False under RUNE_FAST_PURE=1).
COMPILED: bool = core.COMPILED


def release_cached_memory() -> int:
    """Give the arrays the compiled core keeps for reuse back to the C allocator.

    Evaluations reuse the big arrays (relation rows, hash tables) earlier
    evaluations freed, from a process-wide cache of bounded size (see
    docs/performance.md, "Reusing big arrays"). Call this when the process
    will not evaluate for a long while. Returns the bytes released (always 0
    with the plain-Python core, which caches nothing).
    """
    return int(core.release_cached_memory())

_VALUE_TYPES = (str, int, float, bool, Entity)


def _body_atoms(body: Iterable[A.Literal]) -> Iterator[A.Atom]:
    for lit in body:
        if isinstance(lit, A.Atom):
            yield lit
        elif isinstance(lit, A.Negation):
            yield lit.atom
        elif isinstance(lit, A.Aggregate):
            yield from _body_atoms(lit.body)


class Program:
    """Datalog rules, checked and compiled.

    Relations that the rules read but never define are the program's inputs:
    ``evaluate`` takes their facts. Errors in the text raise ``RuneError``
    (``RuneErrors`` when there are several), located in ``file``.
    """

    def __init__(
        self,
        rules: Union[str, Sequence[A.Rule]],
        *,
        limits: Optional[Limits] = None,
        file: str = "<rules>",
        _core_module: Any = None,
        **limit_kwargs: Any,
    ) -> None:
        self.limits = Limits.from_kwargs(limits, **limit_kwargs)
        if isinstance(rules, str):
            parsed, errors = parse_rules(rules, file, 1, self.limits.max_nesting)
            raise_collected(errors)
        else:
            parsed = tuple(rules)
        self.rules: tuple[A.Rule, ...] = tuple(parsed)
        defined = {r.head.name for r in self.rules} | set(REQUEST_RELATIONS) | set(RESERVED_RELATIONS)
        inputs: dict[str, A.FactSet] = {}
        for rule in self.rules:
            for atom in _body_atoms(rule.body):
                if atom.name not in defined and atom.name not in inputs:
                    inputs[atom.name] = A.FactSet(atom.name, atom.arity, (), atom.loc)
        self.info = check_program(list(inputs.values()), self.rules, ())
        self.inputs: frozenset[str] = frozenset(inputs)
        self.compiled = CompiledProgram(self.rules, self.info, self.limits, core_module=_core_module)

    @property
    def arities(self) -> dict[str, int]:
        return dict(self.info.arities)

    def evaluate(self, facts: Optional[Mapping[str, Iterable[tuple]]] = None) -> "Model":
        """Compute the model of the rules over ``facts`` (relation -> rows of values).

        Facts may be given for input relations and for relations that also
        have rules. Unknown relations, rows of the wrong arity and values of
        an unsupported type (a list, ``None``...) raise ``RuneDataError``.
        """
        symbols = Symbols(self.compiled.symbols)
        by_slot = intern_facts(self.compiled, facts or {}, symbols)
        db = self.compiled.evaluate(by_slot, symbols)
        return Model(self.compiled, db)


def intern_facts(compiled: CompiledProgram, facts: Mapping[str, Iterable[tuple]], symbols: Symbols,
                 where: str = "facts") -> dict[int, list]:
    """Validate facts given as Python values and turn them into rows of ids, by slot."""
    with _gc_paused():  # many small acyclic tuples: collecting them mid-way is pure cost
        return _intern_facts(compiled, facts, symbols, where)


#: Collections the bulk path (``intern_rows``) may read twice (when it gives
#: up, the row loop reads them again); a generator would be empty by then.
_REITERABLE = (tuple, list, set, frozenset)


def _intern_facts(compiled: CompiledProgram, facts: Mapping[str, Iterable[tuple]], symbols: Symbols,
                  where: str) -> dict[int, list]:
    out: dict[int, list] = {}
    intern = symbols.intern
    for name, rows in facts.items():
        slot = compiled.slot_of.get(name)
        if slot is None:
            known = ", ".join(sorted(compiled.slot_of)) or "none"
            raise RuneDataError(f"{where}: unknown relation {name!r} (the program knows: {known})")
        arity = compiled.rels[slot].arity
        ids = out.setdefault(slot, [])
        if type(ids) is not list:  # an earlier name of the same relation came in bulk
            ids = out[slot] = list(ids)
        _check_rows(where, name, rows)
        if type(rows) in _REITERABLE and rows and arity:
            # Fast path (facts from a parsed file, or Python collections): intern in the
            # core, giving the core's IdRows (one array of ids, no tuple per row); when a
            # row is not a plain tuple of the right width (None) or a value is bad, fall
            # through to the row loop below, which names the offending row.
            try:
                interned = compiled.core.intern_rows(symbols, rows, arity)
            except (TypeError, ValueError, OverflowError):
                interned = None
            if interned is not None:
                if ids:
                    ids.extend(interned)
                else:
                    out[slot] = interned  # no tuple per row (see compiler.add_facts)
                continue
        for row in rows:
            if not isinstance(row, tuple) or type(row) is Entity:
                if isinstance(row, list):
                    row = tuple(row)
                else:
                    raise RuneDataError(f"{where}: relation {name!r}: row {row!r} is not a tuple")
            if len(row) != arity:
                raise RuneDataError(f"{where}: relation {name!r} has arity {arity}, row {row!r} has {len(row)} values")
            try:
                ids.append(tuple([intern(v) for v in row]))  # intern rejects unsupported types
            except (TypeError, ValueError, OverflowError) as exc:
                raise RuneDataError(f"{where}: relation {name!r}: row {row!r}: {exc}") from None
    return out


def _check_rows(where: str, name: str, rows: object) -> None:
    """Raise unless ``rows`` can be a relation's rows (an iterable, not a string)."""
    if isinstance(rows, (str, bytes)) or not hasattr(rows, "__iter__"):
        raise RuneDataError(f"{where}: relation {name!r} needs an iterable of rows, got {type(rows).__name__}")


#: the relations a request may give facts for (``Model.with_request``)
_REQUEST_FACTS = frozenset(REQUEST_RELATIONS) | frozenset(RESERVED_RELATIONS)


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic GC while building many acyclic objects (tuples of values)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def match_atom(atom: A.Atom, arity: int, rows: Iterable[tuple]) -> list[dict[str, object]]:
    """The distinct variable bindings under which ``atom`` matches one of ``rows``.

    Constants and repeated variables must match with the same kind
    (``1``, ``1.0`` and ``True`` differ); ``_`` matches anything.
    """
    if atom.arity != arity:
        raise RuneSyntaxError(
            f"relation {atom.name!r} has arity {arity}, the query has {atom.arity} arguments",
            "<query>", atom.loc.line, atom.loc.col, atom.loc.text,
        )
    results = []
    seen = set()
    for row in rows:
        binding: dict[str, object] = {}
        ok = True
        for term, value in zip(atom.args, row):
            if isinstance(term, A.Const):
                if type(term.value) is not type(value) or term.value != value:
                    ok = False
                    break
            elif isinstance(term, A.Var) and term.name != "_":
                if term.name in binding:
                    prev = binding[term.name]
                    if type(prev) is not type(value) or prev != value:
                        ok = False
                        break
                else:
                    binding[term.name] = value
        if ok:
            key = tuple((k, type(v), v) for k, v in binding.items())
            if key not in seen:
                seen.add(key)
                results.append(binding)
    results.sort(key=lambda b: [format_value(v) for v in b.values()])
    return results


class Model:
    """The result of an evaluation: every relation's tuples, as Python values."""

    __slots__ = ("compiled", "db", "_cache", "_request_of")

    def __init__(self, compiled: CompiledProgram, db: Database) -> None:
        self.compiled = compiled
        self.db = db
        self._cache: dict = {}
        #: for a model made by ``with_request``: the model it extends and the
        #: request facts it was given, interned (a further request starts from those)
        self._request_of: Optional[tuple["Model", dict[int, Any]]] = None

    @property
    def symbols(self) -> Symbols:
        return self.db.symbols

    @property
    def diagnostics(self) -> list[str]:
        """Evaluation problems that made a rule derive nothing (overflow, division by zero...)."""
        return list(self.db.diagnostics)

    def _relation(self, name: str):
        slot = self.compiled.slot_of.get(name)
        if slot is None:
            raise RuneError(f"unknown relation {name!r}", "<query>")
        return self.db.relations[slot]

    def relation(self, name: str) -> frozenset:
        """All tuples of ``name`` as a frozenset of tuples of Python values."""
        cached = self._cache.get(name)
        if cached is None:
            with _gc_paused():
                cached = self._relation(name).value_set(self._table())
            self._cache[name] = cached
        return cached

    def rows(self, name: str) -> tuple[tuple, ...]:
        """All tuples of ``name``, each once, as a tuple (no Python-equality dedup).

        ``relation()`` returns a frozenset, in which Python merges ``(1,)``,
        ``(1.0,)`` and ``(True,)``; the language keeps them apart, and so
        does this result. It is immutable like the model, and the cyclic
        GC never walks it: rows hold only scalars and entities.
        """
        with _gc_paused():  # millions of fresh tuples would trigger useless GC passes
            rows: tuple[tuple, ...] = self._relation(name).value_rows(self._table())
            return rows

    def _table(self) -> list:
        """The symbol table as one list (``table[k]`` is the value of id ``2*k``), built once."""
        table: Optional[list] = self._cache.get(None)
        if table is None:
            table = self._cache[None] = self.db.symbols.table()
        return table

    def relations(self) -> dict[str, frozenset]:
        """Every relation the program knows (request relations excluded) -> its tuples."""
        skip = set(REQUEST_RELATIONS)
        return {r.name: self.relation(r.name) for r in self.compiled.rels if r.name not in skip}

    def size(self, name: str) -> int:
        """Number of tuples of one relation, without building Python tuples."""
        return len(self._relation(name))

    def __len__(self) -> int:
        skip = set(REQUEST_RELATIONS)
        return sum(len(self.db.relations[r.slot]) for r in self.compiled.rels if r.name not in skip)

    def contains(self, name: str, row: Sequence[object]) -> bool:
        """Whether a tuple is in the relation; ``None`` items match anything."""
        rel = self._relation(name)
        if len(row) != rel.arity:
            return False
        lookup = self.db.symbols.lookup
        ids = []
        for v in row:
            if v is None:
                ids.append(None)
                continue
            ident = lookup(v) if type(v) in _VALUE_TYPES else None
            if ident is None:
                return False  # a value no fact mentions cannot be in any relation
            ids.append(ident)
        if None not in ids:
            return rel.contains(tuple(ids))
        cols = tuple(i for i, v in enumerate(ids) if v is not None)
        key = tuple(ids[i] for i in cols)
        info = self.compiled.rel(name)
        if cols in info.index_cols:
            return bool(rel.match(info.index_cols.index(cols), key))
        return any(all(r[c] == k for c, k in zip(cols, key)) for r in rel.rows())

    def match(self, name: str, prefix: Sequence[object]) -> list[tuple]:
        """Rows whose first ``len(prefix)`` values equal ``prefix``: the remaining columns."""
        rel = self._relation(name)
        n = len(prefix)
        ids = []
        for v in prefix:
            ident = self.db.symbols.lookup(v) if type(v) in _VALUE_TYPES else None
            if ident is None:
                return []
            ids.append(ident)
        cols = tuple(range(n))
        info = self.compiled.rel(name)
        if n == 0:
            rows = rel.rows()
        elif n == rel.arity:
            return [()] if rel.contains(tuple(ids)) else []
        elif cols in info.index_cols:
            rows = rel.match(info.index_cols.index(cols), tuple(ids))
        else:
            key = tuple(ids)
            rows = [r for r in rel.rows() if r[:n] == key]
        row_values = self.db.symbols.row_values
        return [row_values(r[n:]) for r in rows]

    def query(self, text: str) -> list[dict[str, object]]:
        """Answer an atom such as ``path(1, X)``: one dict of variable values per match."""
        atom = parse_atom(text)
        rel = self._relation(atom.name)
        return match_atom(atom, rel.arity, self.rows(atom.name))

    def with_request(self, facts: Mapping[str, Iterable[tuple]]) -> "Model":
        """This model plus one request's facts (the request relations of docs/language.md §4).

        ``facts`` may hold rows for ``principal``, ``action``, ``resource``,
        ``context``, ``parent`` and ``attr``. Rules that depend on them are
        evaluated on top of this model (which is not modified); the result is
        the model the same rules would give with these facts added.

        On a model that ``with_request`` made, the facts are added to the
        ones that model was given, over the model it extends (request models
        are overlays one level deep).
        """
        if isinstance(facts, (str, bytes)) or not hasattr(facts, "items"):
            raise RuneDataError(f"request facts must be a mapping, got {type(facts).__name__}")
        for name in facts:
            if name not in _REQUEST_FACTS:
                raise RuneDataError(f"request facts: {name!r} is not a request relation "
                                    f"(expected one of {', '.join(sorted(_REQUEST_FACTS))})")
        if self._request_of is not None:
            static, earlier = self._request_of
            value = self.db.symbols.value   # (the earlier facts are kept as ids of this model's table)
            merged = {self.compiled.rels[slot].name: [tuple(map(value, row)) for row in rows]
                      for slot, rows in earlier.items()}
            for name, rows in facts.items():
                _check_rows("request facts", name, rows)
                merged[name] = merged.get(name, []) + list(rows)
            return static.with_request(merged)
        symbols = Symbols(self.db.symbols)
        by_slot = intern_facts(self.compiled, facts, symbols, where="request facts")
        model = Model(self.compiled, self.compiled.evaluate_request(self.db, by_slot, symbols))
        model._request_of = (self, by_slot)
        return model

    def __repr__(self) -> str:
        return f"<Model {len(self)} tuples>"
