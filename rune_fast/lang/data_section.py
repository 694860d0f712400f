"""``[data]`` and ``[sources]`` tables -> fact sets and source specs (docs/language.md §3).

A ``[data]`` section is TOML, but facts have shapes TOML does not know: an
array of rows of one width, an array of scalars (one column), a single
scalar, or a table of these whose keys become dotted relation names. This
module checks those shapes and converts them column by column with C-level
operations (``sources.convert_column``; a realistic section has 10^5 rows),
and reads the ``[sources]`` table into ``SourceSpec``s (the files are read
later, by the bundle). It is a mixin of the file parser so that every
problem is located through the parser's key index and reported with the
rest of the file's errors.
"""

from __future__ import annotations

import os
import re
from operator import itemgetter
from typing import Any, Optional

from .ast import FactSet, SourceSpec
from ..errors import RuneDataError, RuneSourceError
from .sources import convert_column, describe_bad_value
from .sections import SectionMixin, _KeyIndex

__all__ = ["DataSection"]

_REL_SEGMENT = re.compile(r"[a-z_][A-Za-z0-9_]*\Z")

_DATA_SHAPES = (
    "accepted shapes: an array of arrays of scalars (all the same length), an array of "
    "scalars, a single scalar, or a table of these (flattened to dotted relation names)"
)


class DataSection(SectionMixin):
    """Mixin of ``parser._FileParser``: the ``[data]`` and ``[sources]`` sections.

    What it reads from the parser is declared by ``SectionMixin``.
    """

    # -- [data]
    def data_facts(self, data: dict, index: _KeyIndex) -> list[FactSet]:
        out: list[FactSet] = []
        max_depth = self.limits.max_nesting

        def walk(prefix: tuple[str, ...], table: dict, depth: int) -> None:
            for k, v in table.items():
                path = prefix + (k,)
                if type(v) is dict:
                    if depth >= max_depth:
                        loc = index.find(path)
                        self.errors.append(self.limits.exceeded(
                            "max_nesting", f"[data] key {'.'.join(path)!r} nests tables more than "
                            f"{max_depth} deep", file=loc.file, line=loc.line, column=loc.col,
                            source_line=loc.text))
                        continue
                    walk(path, v, depth + 1)
                else:
                    fs = self.fact_set(path, v, index)
                    if fs is not None:
                        out.append(fs)

        try:
            walk((), data, 0)
        finally:
            # A nested function that calls itself is a reference cycle (it
            # holds this parser and all its data): break it so the parse is
            # freed by reference counting (engines are built with the cyclic
            # collector paused; see building._gc_paused).
            walk = None  # type: ignore[assignment]
        return out

    def fact_set(self, path: tuple[str, ...], v: Any, index: _KeyIndex) -> Optional[FactSet]:
        name = ".".join(path)
        loc = index.find(path)
        for seg in path:
            if not _REL_SEGMENT.match(seg):
                self.error_at(RuneDataError, f"[data] key {name!r}: {seg!r} is not a relation name (relation "
                              "names are [a-z_][A-Za-z0-9_]*, dot-separated)", loc)
                return None
        cache = self.cache
        t = type(v)
        if t is list:
            if not v:
                return FactSet(name, 1, (), loc)  # an empty relation; see docs/file-format-notes.md
            kinds = set(map(type, v))
            if kinds == {list}:
                lens = set(map(len, v))
                if len(lens) > 1:
                    n0 = len(v[0])
                    i = next(i for i, row in enumerate(v) if len(row) != n0)
                    self.error_at(RuneDataError, f"[data] key {name!r}: inner arrays have different lengths "
                                  f"(element 1 has {n0} values, element {i + 1} has {len(v[i])}); {_DATA_SHAPES}", loc)
                    return None
                n = lens.pop()
                if n == 0:
                    return FactSet(name, 0, ((),) * len(v), loc)
                cols = []
                # columns by C-level item picks (cheaper than zip(*v), which
                # makes an iterator per row)
                for j, col in enumerate([list(map(itemgetter(k), v)) for k in range(n)]):
                    vals, bad = convert_column(col, cache)
                    if bad >= 0:
                        what = describe_bad_value(col[bad])
                        self.error_at(RuneDataError, f"[data] key {name!r}: element {bad + 1}, position {j + 1} "
                                      f"is {what}; a tuple holds scalars only; {_DATA_SHAPES}", loc)
                        return None
                    cols.append(vals)
                return FactSet(name, n, tuple(zip(*cols)), loc)
            if list in kinds:
                self.error_at(RuneDataError, f"[data] key {name!r}: the array mixes inner arrays and scalars; "
                              f"{_DATA_SHAPES}", loc)
                return None
            if dict in kinds:
                self.error_at(RuneDataError, f"[data] key {name!r} is an array of tables; {_DATA_SHAPES}", loc)
                return None
            vals, bad = convert_column(v, cache)
            if bad >= 0:
                self.error_at(RuneDataError, f"[data] key {name!r}: element {bad + 1} is "
                              f"{describe_bad_value(v[bad])}; {_DATA_SHAPES}", loc)
                return None
            return FactSet(name, 1, tuple(zip(vals)), loc)
        vals, bad = convert_column((v,), cache)
        if bad >= 0:
            self.error_at(RuneDataError, f"[data] key {name!r} is {describe_bad_value(v)}; {_DATA_SHAPES}", loc)
            return None
        return FactSet(name, 1, (vals,), loc)

    # -- [sources]
    def source_specs(self, table: dict, index: _KeyIndex) -> list[SourceSpec]:
        out: list[SourceSpec] = []
        shapes = 'write relation = "file.csv" or relation = { path = "file.csv", header = true }'

        def walk(prefix: tuple[str, ...], t: dict) -> None:
            for k, v in t.items():
                path = prefix + (k,)
                name = ".".join(path)
                loc = index.find(path)
                if isinstance(v, dict) and "path" not in v:
                    walk(path, v)
                    continue
                if not all(_REL_SEGMENT.match(seg) for seg in path):
                    self.error_at(RuneSourceError, f"[sources] key {name!r} is not a relation name (relation names "
                                  "are [a-z_][A-Za-z0-9_]*, dot-separated)", loc)
                    continue
                header = False
                if isinstance(v, dict):
                    unknown = [x for x in v if x not in ("path", "header")]
                    if unknown:
                        self.error_at(RuneSourceError, f"[sources] {name!r}: unknown key {unknown[0]!r}; a source "
                                      "table has path and, optionally, header", loc)
                        continue
                    header = v.get("header", False)
                    if not isinstance(header, bool):
                        self.error_at(RuneSourceError, f"[sources] {name!r}: header must be true or false", loc)
                        continue
                    v = v["path"]
                if not isinstance(v, str) or not v:
                    self.error_at(RuneSourceError, f"[sources] {name!r}: expected a file path; {shapes}", loc)
                    continue
                full = os.path.normpath(os.path.join(self.base_dir, v))
                out.append(SourceSpec(name, full, header, loc))

        walk((), table)
        return out
