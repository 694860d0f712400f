"""The file-level front end: a ``.rune`` file -> ``RuneFile``, files -> ``Bundle``.

docs/language.md §1 (layout), §3 (data), §7 (embedded tests).  How a file is read:

1. **Split** at section header lines: a TOML table header (``[name]``,
   ``[name.sub]``, ``[[name]]``) in column 0 whose first key is a bare name.
   Everything before the first header is the preamble, which must hold the
   version line and nothing else.
2. **TOML sections** are parsed by a real TOML parser (``rtoml`` when
   importable because it is ~6x faster, ``tomllib`` otherwise and for error
   positions).  All chunks of one section kind (``[data]``, ``[data.agent]``
   ...) form one TOML document in which every other line of the file is
   blank, so that the parser's line numbers *are* file line numbers and TOML's
   own rules (a table may not be declared twice) apply unchanged.  Each
   ``[tests.NAME]`` is its own document so that one broken test does not hide
   the errors of the others.
3. ``[rules]`` / ``[policies]`` text goes to ``rules_parser`` /
   ``policy_parser`` with its first line number.
4. **Errors are collected** across all sections and raised together, sorted by
   position (``errors.raise_collected``).

TOML parsers do not report where a key is, so a single regex pass over each
section finds the line of every ``key =`` (``_KeyIndex``); facts and errors
are located with it.

``[data]`` conversion works column by column with C-level operations (see
``sources.convert_column``) because a realistic data section has 10^5 rows.

Around this module: ``sections.py`` cuts the file and parses its TOML with
locations, ``data_section.py`` turns ``[data]`` and ``[sources]`` tables into
fact sets and source specs, ``embedded_tests.py`` reads ``[tests.NAME]``
(both are mixins of the file parser, which keeps the driver, the preamble
and the code sections), and ``bundle.py`` turns parsed files into one
``Bundle`` (file discovery, sources, merge); ``load_bundle`` and
``bundle_from_text`` here drive it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from typing import Any, Callable, Optional, Sequence, Union

from .ast import Bundle, EmbeddedTest, FactSet, Loc, Policy, Rule, RuneFile, SourceSpec
from ..errors import RuneDataError, RuneError, RuneManifestError, RuneSyntaxError, RuneVersionError, raise_collected
from ..limits import DEFAULT_LIMITS, Limits
from .sources import EntityCache, paused_gc
from .fileio import FileRefused, ReadResult, read_regular
from .manifest import MANIFEST_MODES, MANIFEST_NAME, manifest_path, read_manifest, verify_manifest
from .sections import _BLANK_OR_COMMENT, _Chunk, _KeyIndex, _Src, _group_doc, _split, _toml_loads
from .bundle import _Blobs, _bundle_root, _checker_errors, _load_sources, _merge, _rune_files, _unsettled
from .data_section import DataSection
from .embedded_tests import EmbeddedTests

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published on PyPI as tomli
    import tomli as tomllib

__all__ = [
    "parse_text",
    "parse_file",
    "load_bundle",
    "bundle_from_text",
    "bundle_manifest",
    "SUPPORTED_VERSIONS",
    "SECTIONS",
]

#: What a version error says is supported.
SUPPORTED_VERSIONS = ("rune/1", "rune/1.N")
#: The section names, as an error message lists them.
SECTIONS = ("[metadata]", "[data]", "[sources]", "[rules]", "[policies]", "[tests.NAME]")

_VERSION_VALUE = re.compile(r"rune/1(?:\.[0-9]+)?\Z")
_TOML_KINDS = ("metadata", "data", "sources", "tests")
_CODE_KINDS = ("rules", "policies")
_VERSION_PREFIX = re.compile(r"[ \t]*version[ \t]*=[ \t]*")


# --------------------------------------------------------------------------
# The file parser


class _FileParser(DataSection, EmbeddedTests):
    def __init__(self, text: str, path: str, limits: Limits, base_dir: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        self.src = _Src(path, text)
        self.limits = limits
        self.base_dir = base_dir
        self.errors: list[RuneError] = []
        self.cache = EntityCache()

    # -- errors
    def error(self, cls: type, msg: str, line: int, col: int) -> None:
        self.errors.append(self.src.err(cls, msg, line, col))

    def error_at(self, cls: type, msg: str, loc: Loc) -> None:
        self.errors.append(self.src.err_at(cls, msg, loc))

    # -- driver
    def parse(self, content_hash: str) -> RuneFile:
        src = self.src
        text = src.text
        chunks = _split(text)
        version = self.preamble(chunks[0].start if chunks else len(text), chunks)

        metadata: dict[str, Any] = {}
        facts: list[FactSet] = []
        sources: list[SourceSpec] = []
        rules: list[Rule] = []
        policies: list[Policy] = []
        tests: list[EmbeddedTest] = []

        groups: dict[Any, list[_Chunk]] = {}
        code: list[tuple[str, _Chunk]] = []
        for c in chunks:
            head = c.keys[0]
            shown = ("[[%s]]" if c.double else "[%s]") % ".".join(c.keys)
            if head in _CODE_KINDS:
                if len(c.keys) != 1 or c.double:
                    self.error(RuneSyntaxError, f"section header {shown}: [{head}] takes no sub-name; write [{head}]",
                               c.line, c.col)
                else:
                    code.append((head, c))
            elif head == "tests":
                if len(c.keys) < 2:
                    self.error(RuneSyntaxError, f"section header {shown}: each test is a table named "
                               "[tests.NAME]", c.line, c.col)
                else:
                    groups.setdefault(("tests", c.keys[1]), []).append(c)
            elif head in _TOML_KINDS:
                groups.setdefault(head, []).append(c)
            else:
                self.error(RuneSyntaxError, f"unknown section {shown}; the sections are {', '.join(SECTIONS)}",
                           c.line, c.col)

        for key, group in groups.items():
            kind = key[0] if isinstance(key, tuple) else key
            value = self.toml_group(kind, group)
            if value is None:
                continue
            if kind == "metadata":
                metadata.update(value)
            elif kind == "data":
                facts.extend(self.data_facts(value, _KeyIndex(src, group, 1)))
            elif kind == "sources":
                sources.extend(self.source_specs(value, _KeyIndex(src, group, 1)))
            else:
                for name, table in value.items():
                    t = self.embedded_test(name, table, _KeyIndex(src, group, 2))
                    if t is not None:
                        tests.append(t)

        for kind, c in code:
            nodes = self.code_section(kind, c)
            (rules if kind == "rules" else policies).extend(nodes)

        if self.errors:
            self.errors.sort(key=lambda e: (e.line, e.column))
            raise_collected(self.errors)
        return RuneFile(
            path=src.file,
            version=version,
            metadata=metadata,
            facts=tuple(facts),
            sources=tuple(sources),
            rules=tuple(rules),
            policies=tuple(policies),
            tests=tuple(tests),
            content_hash=content_hash,
        )

    # -- preamble / version
    def preamble(self, end: int, chunks: list[_Chunk]) -> str:
        text = self.src.text
        pos = 0
        line = 1
        version = ""
        seen = False
        supported = " and ".join(SUPPORTED_VERSIONS)
        while pos < end:
            eol = text.find("\n", pos, end)
            if eol < 0:
                eol = end
            if not _BLANK_OR_COMMENT.fullmatch(text, pos, eol):
                raw = text[pos:eol].rstrip("\r")
                if not seen:
                    seen = True
                    version = self.version_line(raw, line, supported)
                    if not version:
                        break  # one error for a bad start is enough
                else:
                    indent = len(raw) - len(raw.lstrip())
                    self.error(RuneSyntaxError, "unexpected text before the first section; expected a section "
                               f"header such as [data] or [rules] in column 0 (the sections are {', '.join(SECTIONS)})",
                               line, indent + 1)
                    break
            pos = eol + 1
            line += 1
        if not seen:
            where = chunks[0].line if chunks else 1
            self.error(RuneVersionError, f'missing version header: the first line must be version = "rune/1" '
                       f"(supported versions: {supported})", where, 1)
        return version

    def version_line(self, raw: str, line: int, supported: str) -> str:
        try:
            doc = tomllib.loads(raw)
        except tomllib.TOMLDecodeError:
            doc = None
        indent = len(raw) - len(raw.lstrip())
        if not doc or list(doc) != ["version"] or not isinstance(doc["version"], str):
            self.error(RuneVersionError, 'expected the version header version = "rune/1" as the first line '
                       f"(supported versions: {supported})", line, indent + 1)
            return ""
        value = doc["version"]
        if not _VERSION_VALUE.match(value):
            m = _VERSION_PREFIX.match(raw)
            self.error(RuneVersionError, f"unsupported version {value!r}; supported versions: {supported}",
                       line, (m.end() if m else indent) + 1)
            return ""
        return value

    # -- TOML sections
    def toml_group(self, kind: str, group: list[_Chunk]) -> Optional[dict]:
        doc = _group_doc(self.src.text, group)
        result, problem = _toml_loads(doc)
        if problem is not None:
            msg, line, col = problem
            if not line:  # "at end of document": point after the last text of the section
                stripped = doc.rstrip()
                line = stripped.count("\n") + 1
                col = len(stripped) - stripped.rfind("\n")
            self.error(RuneSyntaxError, f"invalid TOML in [{kind}]: {msg}", line, col)
            return None
        assert result is not None
        first = group[0]
        extra = [k for k in result if k != kind]
        if extra:
            line, col = self.indented_header(group, extra[0]) or (first.line, first.col)
            self.error(RuneSyntaxError, f"table [{extra[0]}] inside the [{kind}] section: section headers must "
                       "start in column 0", line, col)
        value = result.get(kind)
        if kind == "tests":
            if not isinstance(value, dict):  # pragma: no cover - [tests] alone is rejected earlier
                return None
            for name, t in value.items():
                if not isinstance(t, dict):
                    self.error(RuneDataError, f"[[tests.{name}]] is an array of tables; each test is one table "
                               f"[tests.{name}]", first.line, first.col)
            return {k: v for k, v in value.items() if isinstance(v, dict)}
        if not isinstance(value, dict):
            self.error(RuneDataError, f"[[{kind}]] is an array of tables; write one [{kind}] table",
                       first.line, first.col)
            return None
        return value

    def indented_header(self, group: list[_Chunk], name: str) -> Optional[tuple[int, int]]:
        """Where an indented ``[name...]`` header hides inside a section."""
        pat = re.compile(rf"^([ \t]+)\[\[?[ \t]*{re.escape(name)}\b", re.M)
        text = self.src.text
        for c in group:
            m = pat.search(text, c.body, c.end)
            if m:
                return text.count("\n", 0, m.start()) + 1, len(m.group(1)) + 1
        return None

    # -- [rules] / [policies]
    def code_section(self, kind: str, c: _Chunk) -> tuple:
        body = self.src.text[c.body : c.end]
        if not body.strip():
            return ()
        from .policy_parser import parse_policies
        from .rules_parser import parse_rules

        parse: Callable[..., tuple[tuple[Any, ...], list[RuneError]]]
        parse = parse_rules if kind == "rules" else parse_policies
        nodes, errs = parse(body, self.src.file, c.line + 1, max_nesting=self.limits.max_nesting)
        for err in errs:
            self.errors.extend(err.errors)
        return tuple(nodes)


# --------------------------------------------------------------------------
# Public API: files


def _default_base(path: str) -> str:
    if path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(path))


def _text_too_big(text: str, limits: Limits) -> int:
    """The UTF-8 size of ``text`` if it exceeds the limit, else 0 (cheap when clearly small)."""
    lim = limits.max_file_bytes
    if len(text) * 4 <= lim:
        return 0
    if len(text) > lim:
        return len(text)
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > lim else 0


def parse_text(
    text: str,
    path: str = "<string>",
    *,
    limits: Limits = DEFAULT_LIMITS,
    base_dir: Optional[str] = None,
) -> RuneFile:
    """Parse the text of one ``.rune`` file; raise every error found at once.

    ``path`` is only used in locations (and, unless ``base_dir`` is given, to
    resolve ``[sources]`` paths: relative to its directory, or to the current
    directory for ``"<string>"``).
    """
    big = _text_too_big(text, limits)
    if big:
        raise limits.exceeded("max_file_bytes", f"{path} has {big} bytes", file=path)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    base = base_dir if base_dir is not None else _default_base(path)
    with paused_gc():
        return _FileParser(text, path, limits, base).parse(digest)


def _read_file(path: str, limits: Limits, what: str = "") -> ReadResult:
    """Read one ``.rune`` file: a regular file only, never blocking, size-checked
    first (see ``fileio.read_regular``); every refusal is a ``RuneError``
    naming the file."""
    try:
        return read_regular(path, limits.max_file_bytes)
    except FileRefused as e:
        if e.kind == "too_big":
            raise limits.exceeded("max_file_bytes", f"{path} {e.reason}", file=path) from None
        raise RuneError(f"cannot read {what}{path}: {e.reason}", file=path) from None


def _read_limited(path: str, limits: Limits, what: str = "") -> bytes:
    return _read_file(path, limits, what).data


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        end = data.find(b"\n", e.start)
        raw = data[start : end if end >= 0 else len(data)].decode("utf-8", "replace").rstrip("\r")
        col = len(data[start : e.start].decode("utf-8", "replace")) + 1
        raise RuneSyntaxError(
            f"the file is not UTF-8 text (invalid byte 0x{data[e.start]:02x})",
            file=path, line=line, column=col, source_line=raw,
        ) from None


def _parse_bytes(data: bytes, path: str, limits: Limits) -> RuneFile:
    text = _decode(data, path)
    digest = hashlib.sha256(data).hexdigest()
    with paused_gc():
        return _FileParser(text, path, limits, _default_base(path)).parse(digest)


def parse_file(path: Union[str, os.PathLike], *, limits: Limits = DEFAULT_LIMITS) -> RuneFile:
    """Read and parse one ``.rune`` file (size checked before reading)."""
    p = os.fspath(path)
    return _parse_bytes(_read_limited(p, limits), p, limits)


def _read_bundle_files(p: str, root: str, is_dir: bool, recursive: bool, limits: Limits,
                       source_roots: Sequence[str]) -> tuple[list[RuneFile], _Blobs, list[RuneError], dict, int]:
    """Read and parse every ``.rune`` file and read and parse every source;
    the last item is how many ``.rune`` files there were."""
    if is_dir:
        paths = _rune_files(p, recursive, source_roots)
        if not paths:
            how = "recursively" if recursive else "not recursively; pass recursive=True for subdirectories"
            raise RuneError(f"no .rune files in directory {p} (searched {how})", file=p)
    else:
        paths = [p]
    errors: list[RuneError] = []
    blobs = _Blobs(root)
    files: list[RuneFile] = []
    for path in paths:
        try:
            read = _read_file(path, limits)
            blobs.add(path, read.data, read)
            files.append(_parse_bytes(read.data, path, limits))
        except RuneError as e:
            errors.extend(e.errors)
    with paused_gc():
        source_facts = _load_sources(files, limits, blobs, errors, root, source_roots)
    return files, blobs, errors, source_facts, len(paths)


#: How many times a settle check re-reads a bundle that keeps changing.
SETTLE_ATTEMPTS = 3


def load_bundle(
    path_or_dir: Union[str, os.PathLike],
    *,
    recursive: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    source_roots: Sequence[Union[str, os.PathLike]] = (),
    manifest: str = "auto",
    settle: float = 0.0,
) -> Bundle:
    """Load a ``.rune`` file (a bundle of one) or a directory of them (docs/language.md §1).

    Every file is parsed and every source loaded before anything is raised,
    so one call reports all the problems of the bundle.

    - ``source_roots``: directories, besides the bundle's own, that
      ``[sources]`` may read from and that symlinked ``.rune`` files and
      subdirectories may lead into (default: none; see
      ``sources.read_source``).
    - ``manifest``: ``"auto"`` verifies ``rune.manifest`` when the bundle has
      one, ``"require"`` refuses a bundle without one, ``"off"`` ignores it
      (see ``manifest.py``).
    - ``settle``: seconds; when > 0, after reading everything the files are
      examined again that much later and must not have changed (size, mtime,
      inode, set of ``.rune`` files); a bundle still changing is read again,
      at most ``SETTLE_ATTEMPTS`` times, then refused.
    """
    if manifest not in MANIFEST_MODES:
        raise ValueError(f"manifest must be one of {', '.join(MANIFEST_MODES)}, got {manifest!r}")
    p = os.fspath(path_or_dir)
    roots = [os.fspath(r) for r in source_roots]
    root, is_dir = _bundle_root(p)
    attempts = SETTLE_ATTEMPTS if settle > 0 else 1
    for attempt in range(attempts):
        files, blobs, errors, source_facts, n_paths = _read_bundle_files(p, root, is_dir, recursive, limits, roots)
        if settle <= 0:
            break
        time.sleep(settle)
        changed = _unsettled(blobs, p, is_dir, recursive, roots)
        if changed is None:
            break
        if attempt == attempts - 1:
            raise RuneError(
                f"{changed} was still changing after {attempts} reads {settle:g}s apart; not loaded "
                "(write files atomically: temporary file + rename)",
                file=changed,
            )
    watched = list(blobs.watched)
    if manifest != "off":
        mpath = os.path.abspath(manifest_path(root))
        expected = read_manifest(mpath, limits)
        if expected is None and manifest == "require":
            raise RuneManifestError(
                f"no bundle manifest ({MANIFEST_NAME}) and manifest='require'; write one with: rune manifest PATH",
                file=mpath,
            )
        if expected is not None:
            # A mismatch is raised alone: other errors would be about a file
            # that is still being written.
            verify_manifest(mpath, expected, blobs.files(), every_listed=is_dir)
            watched.append(mpath)  # writing the manifest last is what triggers the reload
    with paused_gc():
        bundle = _merge(files, source_facts, watched, blobs.digest(), errors, blobs.digests())
    if errors:
        errors.extend(_checker_errors(bundle, source_facts, errors, all_files_parsed=len(files) == n_paths))
    raise_collected(errors)
    return bundle


def bundle_manifest(
    path: str, *, recursive: bool = False, source_roots: Sequence[str] = (), limits: Optional[Limits] = None
) -> tuple[str, dict[str, str]]:
    """Load the bundle at ``path`` (ignoring any existing manifest) and return
    ``(where its manifest goes, name -> sha256 of every file it read)``.

    Raises the bundle's ``RuneError`` if it does not load: a manifest is a
    statement that these files are complete, so it is only written for files
    that parse.
    """
    bundle = load_bundle(path, recursive=recursive, source_roots=source_roots, manifest="off",
                         limits=DEFAULT_LIMITS if limits is None else limits)
    root, _is_dir = _bundle_root(path)
    digests: dict[str, str] = {}
    for ap, digest in bundle.file_digests:
        try:
            name = os.path.relpath(ap, os.path.abspath(root)).replace(os.sep, "/")
        except ValueError:  # pragma: no cover - different drive on Windows
            name = ap
        digests[name] = digest
    return manifest_path(root), digests


def bundle_from_text(
    text: str,
    path: str = "<string>",
    *,
    limits: Limits = DEFAULT_LIMITS,
    base_dir: Optional[str] = None,
    source_roots: Sequence[Union[str, os.PathLike]] = (),
) -> Bundle:
    """A bundle of one file given as text (sources are still read from disk,
    confined to ``base_dir`` (default: the directory of ``path``, or the
    current directory) and the allow-listed ``source_roots``).

    ``watched_paths`` holds only the source files (the text has no file);
    the hash covers ``path``, the text and the sources.
    """
    rf = parse_text(text, path, limits=limits, base_dir=base_dir)
    errors: list[RuneError] = []
    base = base_dir if base_dir is not None else _default_base(path)
    blobs = _Blobs(base)
    blobs.add_unwatched(path, text.encode("utf-8", "surrogatepass"))
    with paused_gc():
        source_facts = _load_sources([rf], limits, blobs, errors, base, [os.fspath(r) for r in source_roots])
        bundle = _merge([rf], source_facts, blobs.watched, blobs.digest(), errors, blobs.digests())
    if errors:
        errors.extend(_checker_errors(bundle, source_facts, errors, all_files_parsed=True))
    raise_collected(errors)
    return bundle
