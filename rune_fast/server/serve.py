"""``rune serve``: the decision point on gunicorn, in the foreground.

The master process never loads a store: it checks the policy once (so a
broken policy fails the command with its errors and exit code 1), creates a
run directory (admin control file) and a ``PROMETHEUS_MULTIPROC_DIR`` for
this run, and starts gunicorn. Each worker builds the app and loads its own
``PolicyStore`` after the fork (``post_worker_init``). Both directories are
removed when the server exits. ``SIGTERM`` (or Ctrl-C) drains in-flight
requests for up to ``--graceful-timeout`` seconds and exits 0; ``SIGHUP``
makes gunicorn replace every worker gracefully.

``--preload`` is not offered: loading before the fork would start watcher
threads in the master (they do not survive a fork) and the engine's memory
is not shared usefully after a fork anyway (reference counts write to every
page), while a compile takes milliseconds for typical bundles.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

from .config import DEFAULT_BIND, ServerOptions

__all__ = ["configure", "run", "WORKER_CLASSES"]

WORKER_CLASSES = {"sync": "sync", "gthread": "gthread", "uvicorn": "uvicorn_worker.UvicornWorker"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="FILE_OR_DIR", help="a .rune file or a bundle directory (watched)")
    p.add_argument("--bind", default=DEFAULT_BIND, metavar="HOST:PORT", help=f"address to listen on (default {DEFAULT_BIND})")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes (default 2)")
    p.add_argument("--worker-class", choices=sorted(WORKER_CLASSES), default="sync", help="gunicorn worker type (default sync)")
    p.add_argument("--threads", type=int, default=4, metavar="N", help="threads per gthread worker (default 4)")
    p.add_argument("--admin-token-file", metavar="FILE", help="enable /v1/admin/* with the bearer token in FILE")
    p.add_argument("--decision-log", metavar="FILE", help="append one JSON line per decision to FILE ('-' = stdout)")
    p.add_argument("--decision-log-mask", action="append", default=[], metavar="PATH", help="mask a request field in the decision log, e.g. context.password (repeatable)")
    p.add_argument("--max-body-bytes", type=int, default=1_048_576, metavar="N", help="larger bodies answer 413 (default 1 MiB)")
    p.add_argument("--max-batch-items", type=int, default=1000, metavar="N", help="items per batch/evaluations call, beyond: 413 (default 1000)")
    p.add_argument("--max-query-rows", type=int, default=1000, metavar="N", help="rows returned by /v1/query (default 1000)")
    p.add_argument("-r", "--recursive", action="store_true", help="also load .rune files in subdirectories")
    p.add_argument("--manifest", choices=["auto", "require", "off"], default="auto",
                   help="verify rune.manifest: when present (auto, default), always (require), never (off)")
    p.add_argument("--settle", type=float, default=0.0, metavar="S",
                   help="re-check the files S seconds after reading; load only if unchanged (default 0: off)")
    p.add_argument("--source-root", action="append", default=[], metavar="DIR",
                   help="a directory outside the bundle that [sources] and symlinks may read (repeatable)")
    p.add_argument("--no-watch", action="store_true", help="do not reload on file changes (use /v1/admin/reload)")
    p.add_argument("--timeout", type=int, default=30, metavar="S", help="gunicorn worker timeout (default 30)")
    p.add_argument("--graceful-timeout", type=int, default=10, metavar="S", help="drain time on SIGTERM/SIGHUP (default 10)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _positive(name: str, v: int) -> None:
    if v < 1:
        raise ValueError(f"--{name} must be at least 1")


def run(args: argparse.Namespace) -> int:
    for name in ("workers", "threads", "max_body_bytes", "max_batch_items", "max_query_rows"):
        try:
            _positive(name.replace("_", "-"), getattr(args, name))
        except ValueError as e:
            print(f"rune serve: {e}", file=sys.stderr)
            return 2
    if args.admin_token_file:
        try:
            with open(args.admin_token_file, "rb") as f:
                if not f.read().strip():
                    print(f"rune serve: admin token file {args.admin_token_file} is empty", file=sys.stderr)
                    return 1
        except OSError as e:
            print(f"rune serve: cannot read admin token file: {e}", file=sys.stderr)
            return 1
    if not _check_policy(args.path):
        return 1

    master = os.getpid()
    run_dir = tempfile.mkdtemp(prefix="rune-serve-")
    metrics_dir = tempfile.mkdtemp(prefix="rune-metrics-")
    # Must be set before prometheus_client is imported anywhere in this
    # process: it picks its value storage at import time.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        options = ServerOptions(
            path=args.path,
            watch=not args.no_watch,
            admin_token_file=args.admin_token_file,
            decision_log=args.decision_log,
            decision_log_mask=tuple(args.decision_log_mask),
            max_body_bytes=args.max_body_bytes,
            max_batch_items=args.max_batch_items,
            max_query_rows=args.max_query_rows,
            run_dir=run_dir,
            recursive=args.recursive,
            manifest=args.manifest,
            settle=args.settle,
            source_roots=tuple(args.source_root),
        )
        settings = {
            "bind": [args.bind],
            "workers": args.workers,
            "worker_class": WORKER_CLASSES[args.worker_class],
            # gunicorn turns "sync" into "gthread" whenever threads > 1.
            "threads": args.threads if args.worker_class == "gthread" else 1,
            "timeout": args.timeout,
            "graceful_timeout": args.graceful_timeout,
            "loglevel": args.log_level,
            "accesslog": None,
            "proc_name": "rune-serve",
        }
        return int(_Gunicorn(options, settings, asgi=args.worker_class == "uvicorn").run_foreground())
    finally:
        # A worker exits by unwinding the stack it inherited from the fork,
        # i.e. through here too: only the master may remove the directories.
        if os.getpid() == master:
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _check_policy(path: str) -> bool:
    from ..engine import load
    from ..errors import RuneError

    try:
        load(path, cache_size=0)
    except RuneError as err:
        for e in err.errors:
            print(e.render(), file=sys.stderr)
        n = len(err.errors)
        print(f"rune serve: {path}: {n} error(s); not starting", file=sys.stderr)
        return False
    except OSError as err:
        print(f"rune serve: {path}: {err}", file=sys.stderr)
        return False
    return True


def _gunicorn_app_class() -> Any:
    from gunicorn.app.base import BaseApplication

    from . import hooks

    class GunicornApp(BaseApplication):
        def __init__(self, options: ServerOptions, settings: dict, asgi: bool) -> None:
            self.options = options
            self.settings = settings
            self.asgi = asgi
            super().__init__()

        def load_config(self) -> None:
            for k, v in self.settings.items():
                self.cfg.set(k, v)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 25's control socket lives at one fixed path per
                # user: two servers would fight over it, and we do not use it.
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("post_worker_init", hooks.post_worker_init)
            self.cfg.set("child_exit", hooks.child_exit)

        def load(self) -> Any:  # runs in each worker, after the fork
            from .app import create_app, create_asgi_app

            return create_asgi_app(options=self.options) if self.asgi else create_app(options=self.options)

        def run_foreground(self) -> int:
            try:
                self.run()
            except SystemExit as e:
                code = e.code
                return code if isinstance(code, int) else (0 if code is None else 1)
            return 0

    return GunicornApp


def _Gunicorn(options: ServerOptions, settings: dict, asgi: bool) -> Any:
    return _gunicorn_app_class()(options, settings, asgi)
