"""Helpers for the decision point tests: real server processes on 127.0.0.1.

``Server`` starts a command (``rune serve``, gunicorn, uvicorn) on a free
loopback port, waits until ``/health/ready`` answers 200, and always stops
it (SIGTERM, then SIGKILL of the whole process group) when the ``with``
block or the fixture ends, so no server outlives a test run.

``free_port`` can only name a port that was free a moment ago: another
process may bind it before the server does. ``Server.start`` then moves the
command to a fresh port and starts it again (see ``port_taken``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import requests

ROOT = Path(__file__).resolve().parent.parent
AUTHZEN_DIR = ROOT / "tests" / "authzen"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: What gunicorn and uvicorn log when their port was taken in the meantime.
PORT_IN_USE = ("Connection in use", "Address already in use", "address already in use")


def port_taken(log: str) -> bool:
    return any(m in log for m in PORT_IN_USE)


def with_port(cmd: list[str], old: int, new: int) -> list[str]:
    """``cmd`` with the port ``old`` (``--port N``, ``--bind host:N``, ``-b host:N``) replaced."""
    out = []
    for arg in cmd:
        if arg == str(old):
            arg = str(new)
        elif arg.endswith(f"127.0.0.1:{old}"):
            arg = arg[: -len(str(old))] + str(new)
        out.append(arg)
    return out


def rune_cmd(path: Any, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rune_fast", "serve", str(path), "--bind", f"127.0.0.1:{port}", *extra]


class _PortTaken(Exception):
    pass


class Server:
    """A server process; ``url`` is its base URL."""

    def __init__(self, cmd: list[str], port: int, log_dir: Path, env: Optional[dict] = None, ready_path: str = "/health/ready") -> None:
        self.cmd = cmd
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"server-{port}.log"
        self.env = {**os.environ, **(env or {})}
        self.ready_path = ready_path
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 60.0) -> "Server":
        for _ in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                self.stop()
                new = free_port()
                self.cmd = with_port(self.cmd, self.port, new)
                self.port = new
                self.url = f"http://127.0.0.1:{new}"
                self.log_path = self.log_path.with_name(f"server-{new}.log")
        raise AssertionError(f"no free port after 3 attempts:\n{self.log()}")

    def _start(self, timeout: float) -> "Server":
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=str(ROOT), start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if port_taken(self.log()):
                    raise _PortTaken()
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"server not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM and wait; SIGKILL the process group if it does not exit."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # workers too, whatever happened
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)
        self._log.close()
        return p.returncode

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------
    def post(self, path: str, body: Any = None, *, session: Optional[requests.Session] = None, **kw: Any) -> requests.Response:
        s = session or requests
        if body is not None and "data" not in kw:
            kw["data"] = json.dumps(body)
            kw.setdefault("headers", {}).setdefault("Content-Type", "application/json")
        return s.post(self.url + path, timeout=kw.pop("timeout", 10), **kw)

    def get(self, path: str, *, session: Optional[requests.Session] = None, **kw: Any) -> requests.Response:
        s = session or requests
        return s.get(self.url + path, timeout=kw.pop("timeout", 10), **kw)

    def worker_views(self, n: int = 30, concurrency: int = 6) -> dict[int, str]:
        """pid -> version as seen over ``n`` fresh connections.

        The connections are made from several threads at once: a sync worker
        busy with one request cannot accept the next, so the requests reach
        more than one worker even when the kernel would hand every
        sequential connection to the same one."""
        from concurrent.futures import ThreadPoolExecutor

        def one(_: int) -> tuple[int, str] | None:
            r = requests.get(self.url + "/v1/status", headers={"Connection": "close"}, timeout=10)
            if r.status_code != 200:
                return None
            d = r.json()
            return d["pid"], d["version"]

        with ThreadPoolExecutor(concurrency) as pool:
            return dict(x for x in pool.map(one, range(n)) if x is not None)


def wait_for(pred: Any, timeout: float = 30.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def openapi_validator(doc: dict, schema_name: str) -> Any:
    """A jsonschema validator for one component of a served OpenAPI document."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]})


def response_schema(doc: dict, path: str, method: str, status: int) -> Optional[dict]:
    op = doc["paths"][path][method.lower()]
    resp = op["responses"].get(str(status))
    if resp is None:
        return None
    content = resp.get("content", {}).get("application/json")
    return content["schema"] if content else None


def check_response(doc: dict, path: str, method: str, r: requests.Response) -> None:
    """The response's status is documented and its JSON body matches."""
    from jsonschema import Draft202012Validator

    op = doc["paths"][path][method.lower()]
    assert str(r.status_code) in op["responses"], f"{method} {path}: undocumented status {r.status_code}: {r.text[:300]}"
    schema = response_schema(doc, path, method, r.status_code)
    if schema is not None:
        assert r.headers["Content-Type"].startswith("application/json")
        Draft202012Validator({**schema, "components": doc["components"]}).validate(r.json())


POLICY_V1 = '''version = "rune/1"
[data]
member = [['User::"alice"', 'Group::"staff"']]
[rules]
parent(U, G) :- member(U, G).
[policies]
@id("staff-read")
permit(principal in Group::"staff", action == Action::"read", resource);
'''

POLICY_V2 = POLICY_V1 + '''
@id("no-secret")
forbid(principal, action, resource == Doc::"secret");
'''
