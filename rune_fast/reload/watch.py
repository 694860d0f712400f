"""File watching for hot reload: a watchdog observer plus a debounce thread.

Why it is shaped like this:

- **Directories, not files.** Editors save by writing a temporary file and
  renaming it over the original; Kubernetes ConfigMaps flip a ``..data``
  symlink to a fresh timestamped directory. In both cases the inode a
  file-level watch was attached to is gone, so we watch the *directory* of
  every policy and ``[sources]`` file (as configured and as resolved) and
  decide per event whether it touches a name we care about.
- **Names, compared twice.** An event is relevant when its source or
  destination path equals a watched path either literally (after
  ``abspath``) or after ``realpath``; when it names ``..data`` (the ConfigMap
  flip: the watched names themselves get no event, only the link does); or,
  for a bundle directory, when it names a ``*.rune`` file in it (a file was
  added or removed from the bundle); or when it is the bundle's
  ``rune.manifest`` (written last, it is what should trigger the reload).
- **Debounce on a thread of our own.** A save arrives as several events (and
  a slow writer as many); the action runs once, ``delay`` seconds after the
  *last* relevant event. The action (compiling a new engine) runs on the
  debounce thread, never on watchdog's dispatch thread (which keeps
  collecting events meanwhile, so a change made during a compile triggers one
  more reload afterwards) and never on a request thread.
- **Opened/closed-without-write events are ignored**, otherwise our own reads
  of the files during a reload would schedule the next reload forever.

Only stdlib and watchdog are used; nothing here knows about engines.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Union

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

__all__ = ["RELEVANT_EVENT_TYPES", "Debouncer", "PolicyWatcher"]

log = logging.getLogger("rune_fast")

#: Event types that can change what a reload would read. ``attrib`` is kept
#: because ``chmod 000`` makes a file unreadable (a failed reload we want to
#: report), ``closed`` because it marks the end of an in-place write.
RELEVANT_EVENT_TYPES = frozenset({"created", "deleted", "modified", "moved", "closed", "attrib"})

#: The name Kubernetes atomically re-points when a ConfigMap changes.
CONFIGMAP_LINK = "..data"
#: The bundle manifest's name (``rune_fast.lang.manifest.MANIFEST_NAME``;
#: repeated here so that this module stays free of the language stack).
MANIFEST_NAME = "rune.manifest"


def _event_filter() -> list | None:
    """watchdog >= 4 can filter in the kernel mask; older versions cannot."""
    try:
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileAttribEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )
    except ImportError:  # pragma: no cover - old watchdog
        return None
    return [
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
        FileClosedEvent,
        FileAttribEvent,
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    ]


class Debouncer:
    """Run ``action`` once, ``delay`` seconds after the last ``poke()``.

    The action runs on this object's own daemon thread. A poke that arrives
    while the action is running schedules exactly one more run, so no change
    is ever lost and a burst of changes costs at most a couple of runs.
    Exceptions from the action are logged and never stop the thread.
    """

    def __init__(self, delay: float, action: Callable[[], None], name: str = "rune-reload") -> None:
        if delay < 0:
            raise ValueError("debounce delay must be >= 0")
        self.delay = float(delay)
        self._action = action
        self._cond = threading.Condition()
        self._pending = False
        self._deadline = 0.0
        self._closed = False
        self.runs = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def poke(self) -> None:
        """Note a relevant event: (re)start the quiet period."""
        with self._cond:
            if self._closed:
                return
            self._pending = True
            self._deadline = time.monotonic() + self.delay
            self._cond.notify()

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._pending and not self._closed:
                    cond.wait()
                if self._closed:
                    return
                # Wait out the quiet period; every poke pushes the deadline.
                while True:
                    remaining = self._deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        break
                    cond.wait(remaining)
                if self._closed:
                    return
                self._pending = False
            self.runs += 1
            try:
                self._action()
            except BaseException:  # never let the watcher thread die
                log.exception("rune_fast: reload action raised")

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread; returns False when it did not finish in ``timeout``
        (an action still compiling: it is a daemon thread and ends with it)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()


class _Handler(FileSystemEventHandler):
    """Forwards events to the watcher through a weak reference, so that the
    observer thread never keeps a forgotten watcher (and its store) alive."""

    def __init__(self, watcher: PolicyWatcher) -> None:
        super().__init__()
        self._watcher = weakref.ref(watcher)

    def dispatch(self, event: FileSystemEvent) -> None:
        watcher = self._watcher()
        if watcher is not None:
            watcher._on_event(event)


def _names(paths: Iterable[str]) -> tuple[frozenset, frozenset]:
    literal: set[str] = set()
    real: set[str] = set()
    for p in paths:
        a = os.path.abspath(p)
        literal.add(a)
        real.add(os.path.realpath(a))
    return frozenset(literal), frozenset(real)


def _str(path: Union[str, bytes]) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else path


class PolicyWatcher:
    """Watch the directories of a set of files and call ``on_change`` (debounced).

    ``root`` is the path the store was created with: when it is a directory
    (a bundle), adding or removing any ``*.rune`` file in it is a change.
    ``update(paths)`` replaces the set of watched files (after each reload,
    since a new ``[sources]`` entry adds a file); it may be called from any
    thread.
    """

    def __init__(
        self,
        root: str,
        on_change: Callable[[], None],
        *,
        debounce: float = 0.2,
        paths: Iterable[str] = (),
    ) -> None:
        self.root = os.path.abspath(root)
        self._root_is_dir = os.path.isdir(self.root)
        self._root_real = os.path.realpath(self.root)
        # Where the bundle's manifest lives (the bundle directory, or the
        # directory of a single-file bundle): creating or replacing it is a
        # change even before any load has listed it.
        bundle_dir = self.root if self._root_is_dir else os.path.dirname(self.root)
        self._manifest_dirs = frozenset((bundle_dir, os.path.realpath(bundle_dir)))
        self._lock = threading.Lock()
        self._literal: frozenset = frozenset()
        self._real: frozenset = frozenset()
        self._watches: dict[str, Any] = {}  # watchdog's ObservedWatch handles
        self._dead: set[str] = set()
        self._closed = False
        self.events_seen = 0
        self.events_relevant = 0
        self._debouncer = Debouncer(debounce, on_change)
        self._handler = _Handler(self)
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self.update(paths)

    # -- public -----------------------------------------------------------
    @property
    def debouncer(self) -> Debouncer:
        return self._debouncer

    @property
    def directories(self) -> tuple[str, ...]:
        """Directories currently scheduled with the observer."""
        return tuple(sorted(self._watches))

    def refresh(self) -> None:
        """Re-create watches whose directory was deleted or renamed away.

        The store calls this *before* reading the files: a directory put in
        place by rename is then watched before it is read, so no change made
        after the read can go unnoticed.
        """
        with self._lock:
            if self._closed or not self._dead:
                return
            dead = set(self._dead)
            for d in dead:
                if d in self._watches:
                    self._unschedule(d)
                self._schedule(d)
            self._dead -= dead  # not clear(): one may have died meanwhile

    def update(self, paths: Iterable[str], *, since: float | None = None) -> None:
        """Watch exactly ``paths`` (plus the root) from now on.

        ``since`` is the wall-clock time the caller started reading the files.
        A directory watched for the first time was not watched while they were
        read, so a file in it changed after ``since`` (or around it: file
        times are coarse) schedules one more, debounced, reload.
        """
        paths = list(paths)
        paths.append(self.root)
        literal, real = _names(paths)
        dirs: set[str] = set()
        for p in literal | real:
            if p in (self.root, self._root_real) and self._root_is_dir:
                dirs.add(p)
            dirs.add(os.path.dirname(p))
        added: list[str] = []
        with self._lock:
            if self._closed:
                return
            self._literal, self._real = literal, real
            dead = set(self._dead)
            for d in list(self._watches):
                if d not in dirs or d in dead:
                    self._unschedule(d)
            self._dead -= dead
            for d in sorted(dirs):
                if d not in self._watches:
                    self._schedule(d)
                    if d in self._watches:
                        added.append(d)
        if since is not None and added and self._changed_since(literal | real, set(added), since):
            log.debug("rune_fast: a file changed while its directory was not yet watched")
            self._debouncer.poke()

    @staticmethod
    def _changed_since(files: Iterable[str], dirs: set, since: float) -> bool:
        for f in files:
            if os.path.dirname(f) not in dirs:
                continue
            try:
                st = os.stat(f)
            except OSError:
                continue
            if max(st.st_mtime, st.st_ctime) >= since - 0.05:
                return True
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the observer and the debounce thread (each joined with ``timeout``)."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        ok = True
        try:
            self._observer.stop()
            if self._observer is not threading.current_thread():
                self._observer.join(timeout)
                ok = not self._observer.is_alive()
        except Exception:  # pragma: no cover - defensive
            log.exception("rune_fast: stopping the file observer failed")
            ok = False
        return self._debouncer.close(timeout) and ok

    # -- internals --------------------------------------------------------
    def _schedule(self, d: str) -> None:
        if not os.path.isdir(d):
            log.debug("rune_fast: not watching missing directory %s", d)
            return
        kwargs: dict[str, Any] = {"recursive": False}
        flt = _event_filter()
        if flt is not None:
            kwargs["event_filter"] = flt
        try:
            try:
                self._watches[d] = self._observer.schedule(self._handler, d, **kwargs)
            except TypeError:  # pragma: no cover - watchdog < 4 has no event_filter
                kwargs.pop("event_filter", None)
                self._watches[d] = self._observer.schedule(self._handler, d, **kwargs)
        except OSError as e:
            log.warning("rune_fast: cannot watch %s: %s", d, e)

    def _unschedule(self, d: str) -> None:
        watch = self._watches.pop(d, None)
        if watch is None:
            return
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError):  # emitter already gone (directory deleted)
            pass

    def is_relevant(self, path: str) -> bool:
        """Does a change at ``path`` possibly change what a reload would read?"""
        if not path:
            return False
        path = os.path.abspath(_str(path))
        base = os.path.basename(path)
        if base == CONFIGMAP_LINK:
            return True
        if path in self._literal:
            return True
        parent = os.path.dirname(path)
        if self._root_is_dir and base.endswith(".rune") and parent in (self.root, self._root_real):
            return True
        if base == MANIFEST_NAME and parent in self._manifest_dirs:
            return True
        try:
            return os.path.realpath(path) in self._real
        except (OSError, ValueError):  # pragma: no cover - defensive
            return False

    def _on_event(self, event: FileSystemEvent) -> None:
        self.events_seen += 1
        if event.event_type not in RELEVANT_EVENT_TYPES:
            return
        src = _str(event.src_path)
        if event.is_directory and event.event_type in ("deleted", "moved") and src in self._watches:
            # A watched directory itself went away: its emitter stops, so
            # re-create the watch on the next update() if it comes back.
            self._dead.add(src)
        if self.is_relevant(src) or self.is_relevant(getattr(event, "dest_path", "")):
            self.events_relevant += 1
            log.debug("rune_fast: %s %s -> reload scheduled", event.event_type, src)
            self._debouncer.poke()
