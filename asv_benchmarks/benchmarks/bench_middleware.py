"""Falcon middleware overhead: a minimal route with and without the guard.

asv: ``TimeFalconRoute.time_request`` for ``guarded`` in (False, True) and
``TrackMiddlewareOverhead.track_overhead_percent`` (the added time as a
percentage of the bare route, measured in one process; target <= 25).
Requests are built in-process with ``falcon.testing.create_environ`` and
passed to ``app(environ, start_response)``: no network, no server.

Also a script, for docs/performance.md:

    python asv_benchmarks/benchmarks/bench_middleware.py
"""

from __future__ import annotations

import os
import sys
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if __name__ == "__main__" and __package__ in (None, ""):  # running from a checkout
    sys.path.insert(0, REPO)

import falcon
import falcon.testing
from rune_fast.middleware import Guard
from rune_fast.middleware.falcon import RuneMiddleware

import rune_fast

POLICY = """version = "rune/1"
[policies]
@id("read-docs")
permit(principal, action == Action::"GET", resource == Route::"/docs/{doc_id}");
"""


class _Doc:
    def on_get(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        resp.text = doc_id


def _principal(req: falcon.Request) -> object:
    user = req.get_header("X-User")
    return ("User", user) if user else None


def make_app(guarded: bool, **options: object) -> falcon.App:
    """The same one-route app, bare or behind the middleware with the defaults
    a user gets (default context, decision headers on refusals only, metrics
    on, audit log silent at WARNING) unless ``options`` change them."""
    mw = []
    if guarded:
        guard = Guard(rune_fast.load_text(POLICY), principal=_principal, name="bench", **options)  # type: ignore[arg-type]
        mw = [RuneMiddleware(guard)]
    app = falcon.App(middleware=mw)
    app.add_route("/docs/{doc_id}", _Doc())
    return app


def _start_response(status: str, headers: list, exc_info: object = None) -> None:
    pass


def make_call(guarded: bool, **options: object):
    app = make_app(guarded, **options)
    environ = falcon.testing.create_environ("/docs/roadmap", headers={"X-User": "alice"})
    status = []

    def sr(s: str, h: list, e: object = None) -> None:
        status.append(s)

    app(dict(environ), sr)
    assert status[-1].startswith("200"), status

    def call() -> None:
        app(environ.copy(), _start_response)

    return call


def measure(number: int = 20000, repeat: int = 15, **options: object) -> tuple[float, float]:
    """(bare, guarded) best-of-``repeat`` seconds per request, interleaved."""
    bare, guarded = make_call(False), make_call(True, **options)
    tb, tg = [], []
    for _ in range(repeat):
        tb.append(timeit.timeit(bare, number=number, timer=time.process_time) / number)
        tg.append(timeit.timeit(guarded, number=number, timer=time.process_time) / number)
    return min(tb), min(tg)


class TimeFalconRoute:
    params = [False, True]
    param_names = ["guarded"]

    def setup(self, guarded: bool) -> None:
        self.call = make_call(guarded)

    def time_request(self, guarded: bool) -> None:
        self.call()


class TrackMiddlewareOverhead:
    unit = "percent"

    def track_overhead_percent(self) -> float:
        bare, guarded = measure(number=5000, repeat=5)
        return 100.0 * (guarded - bare) / bare


if __name__ == "__main__":
    b, g = measure()
    print(f"bare route      {b * 1e6:7.2f} us/request")
    print(f"with middleware {g * 1e6:7.2f} us/request")
    print(f"overhead        {(g - b) * 1e6:7.2f} us = {100.0 * (g - b) / b:.1f} %")
    if "--headers" in sys.argv:  # the same with decision headers on every response
        b, g = measure(decision_headers=True)
        print(f"decision_headers=True: bare {b * 1e6:.2f} us, guarded {g * 1e6:.2f} us, "
              f"overhead {(g - b) * 1e6:.2f} us = {100.0 * (g - b) / b:.1f} %")
