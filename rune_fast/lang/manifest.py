"""Bundle manifests: the SHA-256 of every file a bundle is built from.

A reload reads files that someone else may be writing.  An in-place write
that pauses half-way leaves a file that is valid text (``permit all;``
without the ``forbid`` that followed), and no amount of watching can tell a
finished file from a paused one.  A manifest can: it is written *after* the
files, from their final content, and names the SHA-256 of each.  When a
bundle has one, a load is accepted only if every file it read hashes to the
value listed and every listed file was read, so a truncated, half-copied or
not-yet-renamed file makes the load fail (the store keeps serving the old
engine) instead of installing a partial policy.

Format (``rune.manifest`` beside the ``.rune`` files; JSON)::

    {"format": "rune-manifest/1",
     "files": {"policy.rune": "<sha256 hex>", "data/users.csv": "<sha256 hex>"}}

Names are relative to the bundle directory with ``/`` separators (sources
allowed outside it appear as ``../...``).  ``write_manifest`` produces it
atomically (temporary file + rename); ``parser.bundle_manifest`` computes
the digests of a bundle; ``rune manifest PATH`` does both.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Iterable, Mapping, Optional

from ..errors import RuneManifestError
from ..limits import Limits
from .fileio import FileRefused, read_regular

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_MODES",
    "manifest_path",
    "read_manifest",
    "verify_manifest",
    "render_manifest",
    "write_manifest",
]

#: The manifest's file name, in the bundle directory (or beside a single file).
MANIFEST_NAME = "rune.manifest"
MANIFEST_FORMAT = "rune-manifest/1"
#: ``auto``: verify when the file exists; ``require``: refuse a bundle without
#: one; ``off``: never read it.
MANIFEST_MODES = ("auto", "require", "off")
#: A manifest larger than this is refused (a million files' worth).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
#: At most this many mismatches are listed in one error.
_MAX_LISTED = 10
_HEX = frozenset("0123456789abcdef")


def manifest_path(root: str) -> str:
    """Where the manifest of the bundle rooted at directory ``root`` lives."""
    return os.path.join(root, MANIFEST_NAME)


def read_manifest(path: str, limits: Optional[Limits] = None) -> Optional[dict[str, str]]:
    """``name -> sha256`` from the manifest at ``path``; None if there is none.

    A manifest that exists but cannot be used (unreadable, not a regular
    file, not JSON, a wrong shape) raises ``RuneManifestError``: a half-written
    manifest must fail the load, never be mistaken for "no manifest".
    """
    cap = MAX_MANIFEST_BYTES if limits is None else min(MAX_MANIFEST_BYTES, limits.max_file_bytes)
    try:
        data = read_regular(path, cap).data
    except FileRefused as e:
        if e.kind == "missing":
            return None
        raise RuneManifestError(f"bundle manifest {e.reason}", file=path) from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RuneManifestError(
            "bundle manifest is not valid JSON (still being written?); no file is trusted until it is",
            file=path,
        ) from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
        raise RuneManifestError(
            f'bundle manifest must be a JSON object {{"format": "{MANIFEST_FORMAT}", "files": {{name: sha256}}}}',
            file=path,
        )
    out: dict[str, str] = {}
    for name, digest in files.items():
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX):
            raise RuneManifestError(
                f"bundle manifest entry {name[:200]!r}: expected a lowercase SHA-256 hex digest", file=path
            )
        out[name] = digest
    return out


def verify_manifest(
    path: str,
    expected: Mapping[str, str],
    read: Iterable[tuple[str, bytes]],
    *,
    every_listed: bool,
) -> None:
    """Raise ``RuneManifestError`` unless the files ``read`` (name, bytes)
    match ``expected`` exactly.

    ``every_listed``: every listed file must also have been read (a bundle
    directory; for a single file the manifest may describe its neighbours).
    """
    problems: list[str] = []
    seen: set[str] = set()
    for name, data in read:
        seen.add(name)
        want = expected.get(name)
        if want is None:
            problems.append(f"{name} is not listed")
        elif hashlib.sha256(data).hexdigest() != want:
            problems.append(f"{name} does not match its SHA-256 (being written, or the manifest is stale)")
    if every_listed:
        for name in expected:
            if name not in seen:
                problems.append(f"{name} is listed but not part of the bundle (not written yet, or removed)")
    if problems:
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise RuneManifestError(
            f"bundle does not match its manifest, not loaded: {shown}{more}. "
            "Write the manifest last, from the final files (rune manifest PATH)",
            file=path,
        )


def render_manifest(digests: Mapping[str, str]) -> bytes:
    """The manifest text for ``name -> sha256`` (sorted by name)."""
    files = {name: digests[name] for name in sorted(digests)}
    return (json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=1) + "\n").encode()


def write_manifest(target: str, digests: Mapping[str, str]) -> str:
    """Write the manifest to ``target`` atomically (temporary file in the same
    directory, fsync, rename): a reader sees the old manifest or the new one,
    never half of one.  Returns ``target``."""
    data = render_manifest(digests)
    d = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".rune.manifest.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
