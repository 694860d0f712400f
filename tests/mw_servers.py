"""Real servers for the middleware tests: start, wait, talk HTTP, always stop.

Servers run as child processes in their own session on 127.0.0.1 with a
free port; ``serve`` kills the whole process group on exit, whatever
happened, so no worker outlives the test run. Output goes to a log file the
tests read (the audit records are logged there).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

from server_helpers import port_taken, with_port

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "mw_apps")
REPO = os.path.dirname(HERE)

TEST_POLICY = """version = "rune/1"

[data]
owner = [
  ['Document::"a1"', 'User::"alice"'],
  ['Document::"b1"', 'User::"bob"'],
]
public = ['Document::"pub"']

[policies]
@id("owner-all")
permit(principal, action, resource is Document) when { owner(resource, principal) };

@id("public-read")
permit(principal, action == Action::"read", resource is Document) when { public(resource) };

@id("whoami")
permit(principal is User, action, resource == Route::"/whoami");

@id("no-mallory")
forbid(principal == User::"mallory", action, resource);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, port: int, proc: subprocess.Popen, log_path: str) -> None:
        self.port = port
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def request(self, method: str, path: str, headers: Optional[dict] = None, body: Any = None,
                timeout: float = 10.0) -> "Reply":
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            hs = dict(headers or {})
            if body is not None:
                hs.setdefault("Content-Length", str(len(body)))
            for k, v in hs.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def wait_log(self, needle: str, timeout: float = 30.0) -> str:
        """The complete lines of the log once they contain ``needle`` (records
        are written asynchronously; a line still being written is left out)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            text = text[: text.rfind("\n") + 1]
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.05)


class Reply:
    def __init__(self, status: int, headers: dict, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.headers} {self.body[:200]!r}>"


def raw_request(port: int, head: bytes, body_size: int, timeout: float = 20.0) -> int:
    """Send ``head`` then ``body_size`` bytes from a thread while reading the reply.

    A server may answer (and close) before reading a large body; the sender
    then fails, which is fine: the status line already told us the answer.
    Returns the status code (0 if the server answered nothing).
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        chunk = b"x" * 65536
        try:
            sock.sendall(head)
            left = body_size
            while left > 0:
                n = min(left, len(chunk))
                sock.sendall(chunk[:n])
                left -= n
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        line = sock.makefile("rb").readline()
    except OSError:
        line = b""
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        t.join(timeout)
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers (workers) of the group


@contextlib.contextmanager
def serve(argv: list[str], env: dict, port: int, ready_path: str = "/health", timeout: float = 60.0,
          cwd: str = APPS) -> Iterator[Server]:
    """Run ``argv`` (a server) until the ``with`` block ends; then kill its group.

    ``free_port`` only names a port that was free a moment ago; when another
    process binds it first, the server is started again on a fresh port
    (``server.port`` is the one it listens on)."""
    fd, log_path = tempfile.mkstemp(prefix="rune-mw-", suffix=".log")
    os.close(fd)
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join([APPS, REPO, full_env.get("PYTHONPATH", "")])
    full_env["PYTHONUNBUFFERED"] = "1"
    proc: Optional[subprocess.Popen] = None
    try:
        for attempt in range(3):
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            server = Server(port, proc, log_path)
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    break
                try:
                    if server.request("GET", ready_path, timeout=2.0).status < 500:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready after {timeout}s:\n{server.log()[-3000:]}")
                time.sleep(0.05)
            if proc.poll() is None:
                break
            _stop(proc)
            if attempt == 2 or not port_taken(server.log()):
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()[-3000:]}")
            new = free_port()
            argv, port = with_port(argv, port, new), new
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        with contextlib.suppress(OSError):
            os.unlink(log_path)


def gunicorn(app: str, port: int, worker: str = "sync", workers: int = 2, threads: int = 1) -> list[str]:
    argv = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", worker,
            "--graceful-timeout", "2", "--log-level", "warning", app]
    if worker == "gthread":
        argv[-1:-1] = ["--threads", str(threads)]
    return argv


def uvicorn(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--timeout-graceful-shutdown", "2", app]
