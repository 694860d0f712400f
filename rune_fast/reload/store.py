"""PolicyStore: the one attribute readers load, and everything that replaces it.

The design (docs/reload.md):

- ``store.engine`` is a plain attribute holding an immutable, complete,
  checked Engine. A request reads it **once** and uses that snapshot to the
  end, so it can never observe half of one version and half of another. The
  read side takes no lock: rebinding an attribute is a single atomic store
  under CPython, and every engine ever bound there is already complete.
- Builds (``reload``, the watcher) are serialised by a build lock, so
  reloads never interleave. Reading files and compiling happen under that
  lock only; the swap, the history and the stats are guarded by a second,
  short lock that ``rollback`` also takes. No I/O on the (untrusted) policy
  paths ever happens under that second lock, so a reload stuck on a slow or
  hostile file system never blocks ``rollback()``, the emergency lever. A
  rollback that lands while a build runs wins: that build is discarded.
- A reload is all-or-nothing: read -> parse -> check -> compile -> (tests) ->
  swap. Any failure, including a deleted, unreadable or truncated file, keeps
  the old engine and is reported (stats, log, subscribers).
- Old engines are reclaimed by reference counting as soon as the history
  drops them and the last request holding one finishes; failed loads are
  stripped of their tracebacks so a half-built engine is not kept alive by
  ``stats.last_errors``.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from ..errors import RuneError, RuneErrors, raise_collected
from ..lang.fileio import FileRefused, read_regular

if TYPE_CHECKING:
    from ..analysis.explain import Explanation
    from ..analysis.search import SearchPage
    from .watch import PolicyWatcher

__all__ = [
    "HistoryEntry",
    "PolicyStore",
    "ReloadResult",
    "ReloadStats",
    "RuneTestFailure",
]

log = logging.getLogger("rune_fast")

Loader = Callable[..., Any]
Subscriber = Callable[["ReloadResult"], None]


def _default_loader(path: str, **options: Any) -> Any:
    # Imported on use so that ``import rune_fast`` stays cheap and the store
    # module has no import-time dependency on the compiler stack.
    from ..engine import load

    return load(path, **options)


class RuneTestFailure(RuneError):
    """An engine whose embedded ``[tests.*]`` fail, refused by ``require_tests=True``."""


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one reload attempt (or a rollback), given to subscribers.

    ``ok`` is the outcome; ``changed`` says whether ``store.engine`` was
    replaced (a successful reload of identical content keeps the running
    engine and its warm cache). ``version`` is the version serving *after*
    the attempt: the new one on success, the old one on failure.
    """

    ok: bool
    trigger: str  # "initial" | "manual" | "watch" | "rollback"
    attempt: int
    version: str | None
    previous_version: str | None
    changed: bool
    duration: float  # seconds, read -> swap
    at: float  # time.time() when the attempt finished
    errors: tuple = ()
    files: tuple = ()

    def __bool__(self) -> bool:
        return self.ok

    @property
    def error(self) -> RuneError | None:
        """The first error, or None."""
        return self.errors[0] if self.errors else None

    @property
    def error_summary(self) -> str | None:
        """One line: every error as ``file:line:col: message``."""
        return _summary(self.errors) if self.errors else None


@dataclass(frozen=True)
class ReloadStats:
    """A consistent snapshot of the store's counters (the metrics of docs/reload.md).

    ``last_error``/``last_errors`` describe the most recent *failed* attempt
    and are kept after later successes; ``last_ok`` says how the most recent
    attempt ended.
    """

    attempts: int = 0
    successes: int = 0
    failures: int = 0
    rollbacks: int = 0
    generation: int = 0  # number of times store.engine was assigned
    version: str | None = None
    loaded_at: float | None = None
    last_duration: float | None = None
    last_ok: bool | None = None
    last_attempt_at: float | None = None
    last_error: str | None = None
    last_error_location: str | None = None
    last_error_at: float | None = None
    last_errors: tuple = ()
    history_size: int = 0
    watching: bool = False

    def to_dict(self) -> dict:
        """JSON-friendly form (errors rendered as ``file:line:col: message``)."""
        d = asdict(self)
        d["last_errors"] = [_one_line(e) for e in self.last_errors]
        return d


class HistoryEntry(NamedTuple):
    """What ``store.history`` shows of one engine (never the engine itself)."""

    version: str
    loaded_at: float
    files: tuple


@dataclass
class _Slot:
    engine: Any
    version: str
    loaded_at: float
    files: tuple = field(default=())


def _short(version: str | None) -> str:
    """Log lines carry the first 12 hex digits of the content hash, like git."""
    return (version or "-")[:12]


def _one_line(err: BaseException) -> str:
    if isinstance(err, RuneError):
        return f"{err.location}: {type(err).__name__}: {err.message}"
    return f"{type(err).__name__}: {err}"


def _summary(errors: Sequence[BaseException]) -> str:
    return "; ".join(_one_line(e) for e in errors)


def _locate_test(name: str, files: Sequence[str], max_bytes: int) -> tuple | None:
    """Find the ``[tests.NAME]`` header so a failing test is reported with a
    location even when the engine's result carries none."""
    header = f"[tests.{name}]"
    for f in files:
        if not str(f).endswith(".rune"):
            continue
        try:  # regular files only, never blocking (a FIFO may have replaced it)
            text = read_regular(str(f), max_bytes).data.decode("utf-8")
        except (FileRefused, UnicodeDecodeError):
            continue
        for i, line in enumerate(text.split("\n"), 1):
            if line.startswith(header):
                return (str(f), i, 1, line.rstrip("\r")[:160])
    return None


def _verify_unchanged(engine: Any, max_bytes: int) -> None:
    """After a compile: re-read every file the engine was built from and
    compare its SHA-256 with what was compiled (the settle check's second
    half). A file written meanwhile fails the reload; its write triggers the
    next one."""
    for path, digest in getattr(engine, "file_digests", ()) or ():
        try:
            data = read_regular(path, max_bytes).data
        except FileRefused as e:
            raise RuneError(f"{path} changed while the bundle was compiled ({e.reason}); not installed",
                            file=path) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise RuneError(f"{path} changed while the bundle was compiled; not installed "
                            "(write files atomically: temporary file + rename)", file=path)


def _flatten(err: BaseException) -> list:
    return list(err.errors) if isinstance(err, RuneError) else [err]


def _detach(err: BaseException) -> None:
    """Drop traceback and chained exceptions: their frames may reference a
    half-built engine that would otherwise live as long as ``stats``."""
    for e in _flatten(err) + [err]:
        e.__traceback__ = None
        e.__context__ = None
        e.__cause__ = None


def _as_rune_errors(exc: BaseException, root: str) -> tuple:
    """Every failure becomes located RuneErrors, whatever raised it."""
    if isinstance(exc, RuneError):
        return tuple(_flatten(exc))
    if isinstance(exc, OSError):
        where = exc.filename if isinstance(exc.filename, str) else root
        return (RuneError(f"cannot read file: {exc.strerror or exc}", file=where),)
    if isinstance(exc, UnicodeDecodeError):
        return (RuneError(f"file is not valid UTF-8: {exc}", file=root),)
    return (RuneError(f"internal error while loading: {type(exc).__name__}: {exc}", file=root),)


class PolicyStore:
    """Holds the current Engine in ``self.engine`` and replaces it on change.

    ``PolicyStore(path_or_dir, *, watch=True, debounce=0.2, history=5,
    require_tests=False, loader=None, **limits)``

    - The initial load happens in the constructor and **raises** the
      ``RuneError`` on failure: there is no previous engine to keep serving,
      and a service should not start without a policy.
    - ``watch=True`` starts a watchdog observer and a debounce thread that
      reload ``debounce`` seconds after the last relevant file event; the
      compile runs on that thread. ``close()`` (or ``with PolicyStore(...)``)
      stops both.
    - ``history`` is how many engines are kept, the current one included;
      ``rollback(steps)`` can go back ``history - 1`` steps.
    - ``require_tests=True`` refuses an engine whose embedded tests fail.
    - ``loader`` builds an engine from the path (default
      ``rune_fast.engine.load``); ``**limits`` (and any other keyword, e.g.
      ``cache_size``) are passed to it on every reload.
    - ``gc_freeze=True`` keeps the cyclic garbage collector off the engines:
      each reload first collects the young generations, then builds with the
      collector paused, and after the swap calls ``gc.freeze()``, so no
      collection ever scans an engine (a pause for every request thread).
      Engines hold no reference cycles, so replaced ones are still freed by
      reference counting. ``gc.freeze()`` is process-wide: objects of the
      application alive at a reload are frozen too (they are still freed
      by reference counting; only a reference cycle among them that becomes
      garbage later would never be collected). Pass ``False`` if the
      application relies on the collector for such cycles.
    """

    engine: Any

    def __init__(
        self,
        path_or_dir: str | os.PathLike[str],
        *,
        watch: bool = True,
        debounce: float = 0.2,
        history: int = 5,
        require_tests: bool = False,
        loader: Loader | None = None,
        gc_freeze: bool = True,
        **limits: Any,
    ) -> None:
        if history < 1:
            raise ValueError("history must be >= 1 (it includes the current engine)")
        self.path = os.path.abspath(os.fspath(path_or_dir))
        self.require_tests = require_tests
        self.debounce = float(debounce)
        self._loader: Loader = loader or _default_loader
        self.gc_freeze = gc_freeze
        self._options = dict(limits)
        self._lock = threading.Lock()  # swap, history, stats (never held during I/O)
        self._build_lock = threading.Lock()  # one build at a time (held during I/O)
        self._notify_lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self._history: deque[_Slot] = deque(maxlen=history)
        self._stats = ReloadStats()
        self._attempt = 0
        self._watcher = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False

        if watch:
            # Watch the root before the first read so that a change made while
            # we compile is not missed (it just causes one more reload).
            from .watch import PolicyWatcher

            ref = weakref.ref(self)

            def on_change() -> None:
                store = ref()
                if store is not None:
                    store._reload_from_watcher()

            self._watcher = PolicyWatcher(self.path, on_change, debounce=self.debounce)
            # Stops the threads if the store is dropped without close().
            self._finalizer = weakref.finalize(self, self._watcher.close, 1.0)

        result = self._reload("initial")
        if not result.ok:
            self.close()
            err = result.errors[0] if len(result.errors) == 1 else RuneErrors(list(result.errors))
            raise err

    # -- reading ------------------------------------------------------------
    def authorize(self, principal: Any, action: Any, resource: Any, context: Any = None, entities: Any = None) -> Any:
        """Decide with the current engine (loaded once: one consistent version)."""
        engine = self.engine
        return engine.authorize(principal, action, resource, context, entities)

    def search_resources(
        self, principal: Any, action: Any, resource_type: str, *, context: Any = None, entities: Any = None,
        within: Any = None, limit: int = 100, page_token: Optional[str] = None,
    ) -> SearchPage:
        """``Engine.search_resources`` on the current engine (a page token
        from before a reload is refused: it names the old version)."""
        page: SearchPage = self.engine.search_resources(principal, action, resource_type, context=context,
                                                        entities=entities, within=within, limit=limit,
                                                        page_token=page_token)
        return page

    def search_subjects(
        self, action: Any, resource: Any, principal_type: str, *, context: Any = None, entities: Any = None,
        limit: int = 100, page_token: Optional[str] = None,
    ) -> SearchPage:
        """``Engine.search_subjects`` on the current engine."""
        page: SearchPage = self.engine.search_subjects(action, resource, principal_type, context=context,
                                                       entities=entities, limit=limit, page_token=page_token)
        return page

    def search_actions(
        self, principal: Any, resource: Any, *, context: Any = None, entities: Any = None,
        limit: int = 100, page_token: Optional[str] = None,
    ) -> SearchPage:
        """``Engine.search_actions`` on the current engine."""
        page: SearchPage = self.engine.search_actions(principal, resource, context=context, entities=entities,
                                                      limit=limit, page_token=page_token)
        return page

    def explain(self, principal: Any, action: Any, resource: Any, context: Any = None,
                entities: Any = None) -> Explanation:
        """``Engine.explain`` on the current engine."""
        explanation: Explanation = self.engine.explain(principal, action, resource, context, entities)
        return explanation

    @property
    def version(self) -> str:
        version: str = self.engine.version
        return version

    @property
    def stats(self) -> ReloadStats:
        """A consistent snapshot (the writer replaces it in one assignment)."""
        s = self._stats
        return replace(s, watching=True) if self.watching else s

    @property
    def history(self) -> list[HistoryEntry]:
        """Engines kept for rollback, oldest first; the last is the current one."""
        return [HistoryEntry(s.version, s.loaded_at, s.files) for s in list(self._history)]

    @property
    def watching(self) -> bool:
        return self._watcher is not None and not self._closed

    @property
    def watcher(self) -> Optional[PolicyWatcher]:
        """The PolicyWatcher (None when ``watch=False``); for diagnostics."""
        return self._watcher

    # -- writing ------------------------------------------------------------
    def reload(self) -> ReloadResult:
        """Reload now, synchronously, on the calling thread.

        Returns the result; never raises for a bad policy (the old engine
        stays and the errors are in the result and in ``stats``).
        """
        return self._reload("manual")

    def rollback(self, steps: int = 1) -> ReloadResult:
        """Swap back to the engine ``steps`` reloads ago, discarding the newer ones.

        Asking for more steps than the history holds raises ``ValueError`` and
        changes nothing. The files on disk are not touched: the next file
        change reloads from them again.
        """
        if not isinstance(steps, int) or steps < 1:
            raise ValueError("rollback steps must be a positive integer")
        with self._lock:
            available = len(self._history) - 1
            if steps > available:
                raise ValueError(f"cannot roll back {steps} step(s): only {available} earlier engine(s) in history")
            t0 = time.perf_counter()
            previous = self._history[-1].version
            for _ in range(steps):
                self._history.pop()
            slot = self._history[-1]
            self.engine = slot.engine  # the one assignment readers see
            self._attempt += 1
            now = time.time()
            duration = time.perf_counter() - t0
            s = self._stats
            self._stats = replace(
                s,
                rollbacks=s.rollbacks + 1,
                generation=s.generation + 1,
                version=slot.version,
                loaded_at=now,
                history_size=len(self._history),
            )
            result = ReloadResult(
                ok=True,
                trigger="rollback",
                attempt=self._attempt,
                version=slot.version,
                previous_version=previous,
                changed=True,
                duration=duration,
                at=now,
                files=slot.files,
            )
        log.info("rune_fast rollback ok steps=%d version=%s (was %s)", steps, _short(slot.version), _short(previous))
        self._notify(result)
        return result

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(result)`` after every reload attempt and rollback.

        Callbacks run on the thread that reloaded (the watcher's for file
        changes), after the swap and outside the writer lock; an exception in
        one is logged and ignored. Returns a function that unsubscribes.
        """
        with self._notify_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._notify_lock:
                try:
                    self._subscribers.remove(callback)
                except ValueError:
                    pass

        return unsubscribe

    def close(self, timeout: float = 5.0) -> None:
        """Stop the watcher threads (joined with ``timeout``). Idempotent.

        The store stays readable and ``reload()`` still works; only the
        automatic reload stops.
        """
        self._closed = True
        if self._finalizer is not None and self._finalizer.alive:
            self._finalizer.detach()
            if self._watcher is not None and not self._watcher.close(timeout):
                log.warning("rune_fast: watcher thread did not stop within %.1fs", timeout)

    def __enter__(self) -> PolicyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._stats
        return f"<PolicyStore {self.path!r} version={s.version} generation={s.generation} watching={self.watching}>"

    # -- internals ------------------------------------------------------------
    def _reload_from_watcher(self) -> None:
        if not self._closed:
            self._reload("watch")

    def _build(self) -> Any:
        """read -> parse -> check -> compile -> (tests); raises on any failure."""
        engine = self._loader(self.path, **self._options)
        settle = self._options.get("settle") or 0
        if settle > 0:
            _verify_unchanged(engine, self._max_file_bytes())
        files = tuple(getattr(engine, "watched_paths", ()) or ())
        if files and not any(str(f).endswith(".rune") for f in files):
            raise RuneError("no .rune file found: refusing an empty policy", file=self.path)
        if self.require_tests:
            failures = [r for r in engine.run_tests() if not r.passed]
            if failures:
                raise_collected(self._test_error(r, files) for r in failures)
        return engine

    def _max_file_bytes(self) -> int:
        from ..limits import DEFAULT_LIMITS

        v = self._options.get("max_file_bytes")
        return int(v) if isinstance(v, int) else DEFAULT_LIMITS.max_file_bytes

    def _test_error(self, r: Any, files: Sequence[str]) -> RuneTestFailure:
        name = getattr(r, "name", "?")
        msg = f"embedded test {name!r} failed: expected {getattr(r, 'expected', '?')}, got {getattr(r, 'actual', '?')}"
        reasons = getattr(r, "reasons", None)
        if reasons:
            msg += f" (reasons: {', '.join(map(str, reasons))})"
        file = getattr(r, "file", None)
        line = getattr(r, "line", 0) or 0
        column = getattr(r, "column", 0) or 0
        source_line = None
        if not line:
            file, line, column, source_line = _locate_test(name, files, self._max_file_bytes()) or (file, 0, 0, None)
        return RuneTestFailure(msg, file=file or self.path, line=line, column=column, source_line=source_line)

    def _reload(self, trigger: str) -> ReloadResult:
        with self._build_lock:
            result = self._reload_locked(trigger)
        self._notify(result)
        return result

    def _reload_locked(self, trigger: str) -> ReloadResult:
        """One attempt; the caller holds ``_build_lock`` (not ``_lock``)."""
        with self._lock:
            self._attempt += 1
            attempt = self._attempt
            rollbacks_before = self._stats.rollbacks
        t0 = time.perf_counter()
        started = time.time()
        errors: tuple = ()
        engine = None
        if self._watcher is not None and not self._closed:
            self._watcher.refresh()  # watch a renamed-in directory before reading it
        if self.gc_freeze:
            # Collect the young generations now, while they hold only what
            # requests allocated since the last reload (engines are frozen):
            # cheap, and it keeps cyclic garbage from being frozen at the swap.
            gc.collect(1)
        try:
            engine = self._build()  # all file I/O and the compile: outside self._lock
        except Exception as exc:  # any failure keeps the old engine
            if not isinstance(exc, (RuneError, OSError, UnicodeDecodeError)):
                log.error("rune_fast: unexpected error while loading %s", self.path, exc_info=exc)
            errors = _as_rune_errors(exc, self.path)
            _detach(exc)
        files: tuple = ()
        if engine is not None:
            files = tuple(os.path.abspath(str(f)) for f in (getattr(engine, "watched_paths", ()) or ()))
        with self._lock:
            current = self._history[-1] if self._history else None
            previous_version = current.version if current else None
            changed = False
            version = previous_version
            now = time.time()
            if engine is not None and self._stats.rollbacks != rollbacks_before:
                # rollback() ran while we were building: the operator's
                # decision wins over a build that started before it.
                errors = (RuneError(
                    "reload discarded: rollback() was called while it was building; the files are read "
                    "again on their next change or reload()", file=self.path),)
                engine = None
                files = ()
            if engine is not None:
                version = str(engine.version)
                if current is None or version != current.version:
                    slot = _Slot(engine, version, now, files)
                    self._history.append(slot)  # may drop the oldest engine
                    self.engine = engine  # the one assignment readers see
                    changed = True
                    if self.gc_freeze:
                        # The new engine is immutable and free of reference
                        # cycles: move it (and everything else alive) out of
                        # the collector's generations, so that no collection
                        # ever scans it. A replaced engine is still freed, by
                        # reference counting, when its last reader is done.
                        gc.freeze()
                else:
                    # Same content: keep the running engine and its warm cache.
                    current.files = files
                del engine
            duration = time.perf_counter() - t0
            s = self._stats
            if not errors:
                self._stats = replace(
                    s,
                    attempts=s.attempts + 1,
                    successes=s.successes + 1,
                    generation=s.generation + (1 if changed else 0),
                    version=version,
                    loaded_at=now if changed else s.loaded_at,
                    last_duration=duration,
                    last_ok=True,
                    last_attempt_at=now,
                    history_size=len(self._history),
                )
            else:
                self._stats = replace(
                    s,
                    attempts=s.attempts + 1,
                    failures=s.failures + 1,
                    last_duration=duration,
                    last_ok=False,
                    last_attempt_at=now,
                    last_error=_summary(errors),
                    last_error_location=errors[0].location if isinstance(errors[0], RuneError) else None,
                    last_error_at=now,
                    last_errors=errors,
                )
            result = ReloadResult(
                ok=not errors,
                trigger=trigger,
                attempt=attempt,
                version=version,
                previous_version=previous_version,
                changed=changed,
                duration=duration,
                at=now,
                errors=errors,
                files=files or (current.files if current else ()),
            )
        self._log(result)
        if self._watcher is not None and not self._closed:
            # New [sources] may add files; failed loads may name a file
            # that does not exist yet (watch its directory for it).
            watch = list(result.files)
            watch += [e.file for e in errors if isinstance(e, RuneError) and os.path.isabs(e.file)]
            try:
                self._watcher.update(watch, since=started)
            except Exception:  # pragma: no cover - defensive
                log.exception("rune_fast: updating the watched paths failed")
        return result

    def _log(self, r: ReloadResult) -> None:
        ms = r.duration * 1000.0
        if r.ok:
            log.info(
                "rune_fast reload ok trigger=%s version=%s%s duration=%.1fms files=%d",
                r.trigger,
                _short(r.version),
                "" if r.changed else " (unchanged)",
                ms,
                len(r.files),
            )
        else:
            log.error(
                "rune_fast reload FAILED trigger=%s keeping version=%s duration=%.1fms: %s",
                r.trigger,
                _short(r.version),
                ms,
                r.error_summary,
            )

    def _notify(self, result: ReloadResult) -> None:
        with self._notify_lock:
            subscribers = list(self._subscribers)
            for cb in subscribers:
                try:
                    cb(result)
                except Exception:
                    log.exception("rune_fast: reload subscriber %r raised; ignored", cb)
