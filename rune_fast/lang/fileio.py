"""Reading untrusted paths: regular files only, never blocking, confined to roots.

Every byte the loader reads from disk (``.rune`` files, ``[sources]`` files,
bundle manifests) goes through ``read_regular``.  The reasons:

- **Only regular files.**  A FIFO opened for reading blocks until a writer
  appears (forever, in a reload thread that holds locks); a character device
  such as ``/dev/zero`` never ends; ``/dev/tty`` or a tape device may act on
  ``open``.  So the path is ``os.stat``-ed first and anything that is not
  ``S_ISREG`` is refused before it is opened; the open itself is
  ``O_NONBLOCK`` (a FIFO swapped in between the two calls does not block the
  open) and the descriptor is ``fstat``-ed again (the thing actually opened
  must be a regular file, the same one that was checked).
- **Bounded.**  The size is checked before reading and at most
  ``max_bytes + 1`` bytes are read, so a file that grows meanwhile is caught.
- **Confined.**  ``confine`` resolves a path with ``os.path.realpath`` (every
  symlink and ``..`` followed) and requires the result to lie under one of
  the allowed roots, themselves resolved.  The check happens on the resolved
  path and the opened descriptor is compared (device and inode) with what the
  resolved path names, so a symlink swapped in after the check is refused.

Error messages name the path and the reason, never the content.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

__all__ = ["FileRefused", "ReadResult", "confine", "read_regular", "kind_of", "resolve_roots", "is_within"]

_O_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class FileRefused(Exception):
    """Internal: why a path was not read.  ``kind`` is ``missing``,
    ``unreadable``, ``not_regular``, ``too_big`` or ``outside``; callers turn it
    into a located ``RuneError`` (or ``RuneLimitError`` for ``too_big``)."""

    def __init__(self, kind: str, reason: str, size: int = 0) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.size = size


@dataclass(frozen=True)
class ReadResult:
    """The bytes read and the identity of the file they came from."""

    data: bytes
    size: int
    mtime_ns: int
    dev: int
    ino: int


def kind_of(mode: int) -> str:
    """A human name for a non-regular file type (for error messages)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _reason(e: OSError) -> tuple[str, str]:
    if isinstance(e, FileNotFoundError):
        return "missing", "not found"
    if isinstance(e, PermissionError):
        return "unreadable", f"unreadable ({e.strerror or 'permission denied'})"
    if isinstance(e, NotADirectoryError):
        return "missing", "not found (a parent is not a directory)"
    return "unreadable", f"unreadable ({e.strerror or e})"


def read_regular(path: str, max_bytes: int) -> ReadResult:
    """Read a whole regular file of at most ``max_bytes`` bytes, never blocking.

    Raises ``FileRefused`` for a missing, unreadable or non-regular file and
    for one larger than ``max_bytes`` (before reading it, or while reading if
    it grew).
    """
    try:
        st = os.stat(path)
    except OSError as e:
        kind, reason = _reason(e)
        raise FileRefused(kind, reason) from None
    except ValueError:  # embedded NUL byte in the path
        raise FileRefused("missing", "not a valid path") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused("not_regular", f"{kind_of(st.st_mode)}, not a regular file; refused")
    if st.st_size > max_bytes:
        raise FileRefused("too_big", f"has {st.st_size} bytes", st.st_size)
    try:
        fd = os.open(path, _O_FLAGS)
    except OSError as e:
        kind, reason = _reason(e)
        raise FileRefused(kind, reason) from None
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # swapped for a FIFO/device after the stat
            raise FileRefused("not_regular", f"{kind_of(fst.st_mode)}, not a regular file; refused")
        if fst.st_size > max_bytes:
            raise FileRefused("too_big", f"has {fst.st_size} bytes", fst.st_size)
        chunks = []
        left = max_bytes + 1
        while left > 0:
            try:
                b = os.read(fd, min(left, 1 << 20))
            except BlockingIOError:  # pragma: no cover - regular files never block
                raise FileRefused("unreadable", "would block; refused") from None
            except OSError as e:
                raise FileRefused("unreadable", f"unreadable ({e.strerror or e})") from None
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise FileRefused("too_big", "grew past the limit while being read", len(data))
        return ReadResult(data, len(data), fst.st_mtime_ns, fst.st_dev, fst.st_ino)
    finally:
        os.close(fd)


def resolve_roots(roots: Iterable[str]) -> tuple[str, ...]:
    """Real paths of the allowed roots (symlinks followed), without duplicates."""
    out: list[str] = []
    for r in roots:
        rr = os.path.realpath(os.fspath(r))
        if rr not in out:
            out.append(rr)
    return tuple(out)


def is_within(path: str, root: str) -> bool:
    """Is the (already resolved) ``path`` ``root`` itself or below it?"""
    if path == root:
        return True
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path.startswith(prefix)


def confine(path: str, roots: Sequence[str]) -> Optional[str]:
    """The real path of ``path`` if it lies under one of ``roots`` (resolved
    real paths), else None."""
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return None
    for root in roots:
        if is_within(real, root):
            return real
    return None


def same_file(r: ReadResult, path: str) -> bool:
    """Does ``path`` (resolved) still name the file that ``r`` was read from?"""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (r.dev, r.ino)
