"""Parsed files -> one ``Bundle``: finding the files, reading their sources, merging.

``parser.load_bundle`` and ``parser.bundle_from_text`` parse each file on
its own; what makes several files one program is here: which ``.rune``
files a directory holds, the bytes read (hashed for the reload check and
the manifest), the ``[sources]`` of every file loaded once, and the merge,
which concatenates facts, rules, policies and tests, assigns policy ids and
reports what only the whole bundle can show (one arity per relation across
files, duplicate policy ids and test names).  When the bundle has errors,
``_checker_errors`` adds the load-time checks of the files that did parse,
so one load reports everything (docs/language.md §1).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import replace
from itertools import chain
from typing import Any, Iterable, Optional, Sequence

from .ast import Bundle, EmbeddedTest, FactSet, Loc, Policy, RuneFile
from ..errors import RuneArityError, RuneDuplicateIdError, RuneError, RuneUndefinedError
from ..limits import Limits
from .sources import parse_source_bytes, read_source
from .fileio import ReadResult, confine, resolve_roots
from .sections import _err_from_loc


def _where(loc: Loc) -> str:
    return f"{loc.file}:{loc.line}:{loc.col}" if loc.line else loc.file


# --------------------------------------------------------------------------
# Public API: bundles


def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError as e:
        reason = "not found" if isinstance(e, FileNotFoundError) else f"unreadable ({e.strerror or e})"
        raise RuneError(f"cannot list directory {d}: {reason}", file=d) from None


def _rune_files(root: str, recursive: bool, source_roots: Sequence[str] = ()) -> list[str]:
    """``*.rune`` files under ``root`` sorted by (relative) name; dotfiles
    (editor lock and swap files such as ``.#a.rune``) are skipped.

    Directories named ``*.rune`` are skipped (or walked, recursively); any
    other ``*.rune`` entry is returned even if it is not a regular file, so
    that reading it refuses it loudly (a FIFO in a bundle is an error, not
    something to skip silently).  A subdirectory that cannot be listed is an
    error too: skipping it would silently drop its policies.

    Symlinks are followed only while they stay inside the bundle (or one of
    ``source_roots``), by resolved real path, the rule ``[sources]`` follows
    too: a link out of the bundle is an error, never read.  A recursive walk
    visits each real directory once, so a symlink loop (``a -> .``) cannot
    make it run forever.
    """
    roots = resolve_roots([root]) + resolve_roots(source_roots)
    found: list[tuple[str, str]] = []
    pending = [root]
    visited: set[str] = set()
    while pending:
        d = pending.pop()
        real_d = os.path.realpath(d)
        if real_d in visited:
            continue
        visited.add(real_d)
        for f in _listdir(d):
            if f.startswith("."):
                continue
            full = os.path.join(d, f)
            try:
                is_dir = os.path.isdir(full)
            except (OSError, ValueError):  # pragma: no cover - isdir does not raise on Linux
                is_dir = False
            if not (is_dir and recursive) and not (f.endswith(".rune") and not is_dir):
                continue
            if os.path.islink(full) and confine(full, roots) is None:
                raise RuneError(
                    f"{full} is a symlink that leads out of the bundle; only links that stay inside "
                    "the bundle directory (or one of source_roots) are followed",
                    file=full,
                )
            if is_dir:
                pending.append(full)
            else:
                found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    found.sort()
    return [full for _, full in found]


class _Blobs:
    """Names and bytes of everything a bundle was built from: the hash input
    and the list of paths a watcher must watch."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.items: dict[str, tuple[str, bytes]] = {}  # key -> (name, data)
        self.watched: list[str] = []
        self.reads: dict[str, ReadResult] = {}  # path -> what was read (settle checks)

    def name_of(self, path: str) -> str:
        ap = os.path.abspath(path)
        try:
            return os.path.relpath(ap, self.root).replace(os.sep, "/")
        except ValueError:  # pragma: no cover - different drive on Windows
            return ap

    def add(self, path: str, data: bytes, read: Optional[ReadResult] = None) -> None:
        ap = os.path.abspath(path)
        if ap in self.items:
            return
        self.items[ap] = (self.name_of(ap), data)
        self.watched.append(ap)
        if read is not None:
            self.reads[ap] = read

    def files(self) -> list[tuple[str, bytes]]:
        """``(name, bytes)`` of every file read from disk (what a manifest lists)."""
        return [v for k, v in self.items.items() if not k.startswith("\0")]

    def digests(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, hashlib.sha256(d).hexdigest()) for k, (_, d) in self.items.items() if not k.startswith("\0"))

    def add_unwatched(self, name: str, data: bytes) -> None:
        self.items["\0" + name] = (name, data)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name, data in self.items.values():
            nb = name.encode("utf-8", "surrogatepass")
            h.update(b"%d:" % len(nb) + nb + b"%d:" % len(data))
            h.update(data)
        return h.hexdigest()


def _load_sources(files: Iterable[RuneFile], limits: Limits, blobs: _Blobs,
                  errors: list[RuneError], bundle_root: str,
                  source_roots: Sequence[str] = ()) -> dict[str, list[FactSet]]:
    """Load every ``[sources]`` entry; returns file path -> its source facts.

    Sources are confined to ``bundle_root`` plus the allow-listed
    ``source_roots`` (resolved real paths, see ``sources.read_source``); the
    text of a file outside ``bundle_root`` is never quoted in an error.
    """
    out: dict[str, list[FactSet]] = {}
    cache: dict[str, bytes] = {}
    home = resolve_roots([bundle_root])
    roots = home + tuple(r for r in resolve_roots(source_roots) if r not in home)
    for rf in files:
        lst = out.setdefault(rf.path, [])
        for spec in rf.sources:
            try:
                data = cache.get(spec.path)
                if data is None:
                    read = read_source(spec, limits=limits, roots=roots)
                    data = read.data
                    cache[spec.path] = data
                    blobs.add(spec.path, data, read)
                inside = confine(spec.path, home) is not None
                lst.append(parse_source_bytes(spec, data, limits=limits, quote=inside))
            except RuneError as e:
                errors.extend(e.errors)
    return out


def _merge(files: list[RuneFile], source_facts: dict[str, list[FactSet]], watched: list[str],
           digest: str, errors: list[RuneError],
           file_digests: tuple[tuple[str, str], ...] = ()) -> Bundle:
    # facts: one FactSet per relation, in order of first appearance
    parts: dict[str, list[FactSet]] = {}
    for rf in files:
        for fs in chain(rf.facts, source_facts.get(rf.path, ())):
            parts.setdefault(fs.relation, []).append(fs)
    facts: list[FactSet] = []
    for rel, ps in parts.items():
        nonempty = [p for p in ps if p.rows]
        first = nonempty[0] if nonempty else ps[0]
        for p in nonempty[1:]:
            if p.arity != first.arity:
                errors.append(_err_from_loc(
                    RuneArityError,
                    f"relation {rel!r} has {p.arity} values per fact here but {first.arity} at {_where(first.loc)}; "
                    "a relation has one arity everywhere",
                    p.loc,
                ))
        if len(ps) == 1:
            facts.append(ps[0] if ps[0].arity == first.arity else replace(ps[0], arity=first.arity))
        else:
            rows = tuple(chain.from_iterable(p.rows for p in ps if p.arity == first.arity or not p.rows))
            facts.append(FactSet(rel, first.arity, rows, ps[0].loc))

    # policies: ids assigned by bundle position, then checked for duplicates
    policies: list[Policy] = []
    seen: dict[str, Policy] = {}
    for i, pol in enumerate(chain.from_iterable(rf.policies for rf in files)):
        auto = not pol.id
        if auto:
            pol = replace(pol, id=f"policy{i}")
        other = seen.get(pol.id)
        if other is not None:
            hint = " (this id was assigned by position; give the policy an @id)" if auto else ""
            errors.append(_err_from_loc(
                RuneDuplicateIdError,
                f"duplicate policy id {pol.id!r}: also used by the policy at {_where(other.loc)}{hint}",
                pol.loc,
            ))
        else:
            seen[pol.id] = pol
        policies.append(pol)

    tests: list[EmbeddedTest] = []
    seen_tests: dict[str, EmbeddedTest] = {}
    for t in chain.from_iterable(rf.tests for rf in files):
        other_t = seen_tests.get(t.name)
        if other_t is not None:
            errors.append(_err_from_loc(
                RuneDuplicateIdError,
                f"duplicate test name {t.name!r}: also defined at {_where(other_t.loc)}",
                t.loc,
            ))
            continue
        seen_tests[t.name] = t
        tests.append(t)

    metadata: dict[str, Any] = {}
    for rf in files:
        metadata.update(rf.metadata)

    return Bundle(
        files=tuple(files),
        facts=tuple(facts),
        rules=tuple(chain.from_iterable(rf.rules for rf in files)),
        policies=tuple(policies),
        tests=tuple(tests),
        metadata=metadata,
        watched_paths=tuple(watched),
        content_hash=digest,
        file_digests=file_digests,
    )


def _bundle_root(p: str) -> tuple[str, bool]:
    """``(root directory, is_dir)`` for a bundle path; a path that cannot be
    examined is reported as what it is (missing, unreadable), not as missing."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise RuneError(f"cannot read {p}: no such file or directory", file=p) from None
    except NotADirectoryError:
        raise RuneError(f"cannot read {p}: no such file or directory (a parent is not a directory)",
                        file=p) from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise RuneError(f"cannot read {p}: unreadable ({reason})", file=p) from None
    if stat.S_ISDIR(st.st_mode):
        return p, True
    return os.path.dirname(os.path.abspath(p)), False


def _unsettled(blobs: _Blobs, p: str, is_dir: bool, recursive: bool,
               source_roots: Sequence[str] = ()) -> Optional[str]:
    """The first file whose size, mtime or inode changed since it was read,
    or a change in the set of ``.rune`` files; None if everything is as read."""
    for path, r in blobs.reads.items():
        try:
            st = os.stat(path)
        except OSError:
            return path
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (r.size, r.mtime_ns, r.ino):
            return path
    if is_dir:
        try:
            now = {os.path.abspath(x) for x in _rune_files(p, recursive, source_roots)}
        except RuneError:
            return p
        if not now <= set(blobs.reads):
            return p
    return None


def _checker_errors(
    bundle: Bundle, source_facts: dict[str, list[FactSet]], found_before: list[RuneError], *, all_files_parsed: bool
) -> list[RuneError]:
    """The load-time checks of what did load, for a bundle that has errors.

    So that one load reports everything: a parse error in one file does not
    hide a safety error in another. A relation defined only in a file that
    did not parse, or by a source that did not load, would be reported as
    undefined although it is not; those reports are left out (all of them
    when a ``.rune`` file failed, since its relations are unknown), and so
    are problems the merge already reported (duplicate ids, fact arities).
    """
    from .checks import check_program  # the checks need the whole bundle; only here on failure

    try:
        check_program(bundle.facts, bundle.rules, bundle.policies)
    except RuneError as e:
        found = e.errors
    else:
        return []
    loaded = {fs.relation for fss in source_facts.values() for fs in fss}
    missing = {spec.relation for rf in bundle.files for spec in rf.sources} - loaded
    seen = {(type(x), x.file, x.line, x.column) for x in found_before}
    return [
        x for x in found
        if (type(x), x.file, x.line, x.column) not in seen
        and not (isinstance(x, RuneUndefinedError) and (not all_files_parsed or _undefined_name(x) in missing))
    ]


def _undefined_name(e: RuneError) -> str:
    m = re.match(r"relation (\S+) is used", e.message)
    return m.group(1) if m else ""
