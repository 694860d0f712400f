"""``import rune_fast.middleware`` needs no web framework.

A child interpreter installs a meta-path finder that refuses every web
framework (as if none were installed), then imports the package and uses
the guard; importing an adapter must fail with ImportError naming the
framework, nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import sys

BLOCKED = {"falcon", "flask", "django", "starlette", "fastapi", "uvicorn", "gunicorn", "werkzeug", "httpx", "websockets"}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
        return None

sys.meta_path.insert(0, Blocker())
import rune_fast
import rune_fast.middleware as mw
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], sorted(sys.modules)

guard = mw.Guard(rune_fast.load_text('version = "rune/1"\n[policies]\npermit(principal, action == Action::"GET", resource);\n'),
                 principal=lambda req: req)
v = guard.check('User::"alice"', "GET", "/x", "/x", None, "127.0.0.1")
assert v.status == 0 and v.decision.allowed, v
v = guard.check('User::"alice"', "POST", "/x", "/x", None, "127.0.0.1")
assert v.status == 403, v
for adapter, framework in (("falcon", "falcon"), ("flask", "flask"), ("django", "django"), ("fastapi", "starlette")):
    try:
        __import__("rune_fast.middleware." + adapter)
    except ImportError as e:
        assert framework in str(e), (adapter, e)
    else:
        raise AssertionError(adapter + " imported without its framework")
import rune_fast.middleware.wsgi, rune_fast.middleware.asgi  # standard library only
print("ok")
"""


def test_import_without_any_web_framework() -> None:
    r = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
