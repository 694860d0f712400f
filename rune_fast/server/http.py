"""The framework-neutral core of every endpoint: requests in, replies out.

Each endpoint is a plain function ``handler(state, call) -> Reply`` that may
raise ``ApiError``. ``app.py`` adapts the same handlers to Falcon's WSGI and
ASGI apps, so both variants answer byte for byte the same. Reading the body
(size limit, content type, JSON, nesting depth, schema) is done here once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from .openapi import ValidationFailure, validators

__all__ = ["ApiError", "Call", "Reply", "parse_json_body", "flag", "json_reply", "error_body"]


class ApiError(Exception):
    """An error answered as JSON ``{"title", "description", "field"}``."""

    def __init__(self, status: int, title: str, description: str = "", field: Optional[str] = None, headers: Optional[dict] = None) -> None:
        super().__init__(description or title)
        self.status = status
        self.title = title
        self.description = description
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.title, self.description, self.field)


def error_body(title: str, description: str = "", field: Optional[str] = None) -> dict:
    out: dict[str, Any] = {"title": title}
    if description:
        out["description"] = description
    if field:
        out["field"] = field
    return out


@dataclass
class Call:
    """What a handler sees of an HTTP request."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Callable[[str], Optional[str]]
    body: Any = None  # parsed and validated JSON (or None)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes -> as is
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


_JSON = ("application/json",)


def check_content_type(content_type: Optional[str]) -> None:
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    if ct != "application/json" and not (ct.startswith("application/") and ct.endswith("+json")):
        raise ApiError(415, "Unsupported Media Type", f"expected Content-Type: application/json, got {content_type or 'none'}")


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST = re.compile(rb"[\[{][^\[\]{}]*[\]}]")


def depth_within(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests at most ``limit`` arrays/objects deep.

    Checked on the bytes, before parsing, with C-speed operations only: a
    body with fewer brackets than ``limit`` passes at once (every single
    evaluation); otherwise strings are blanked and the innermost
    brackets are removed level by level, at most ``limit + 1`` passes. Deep
    nesting is refused before it reaches the parser, the schema validator or
    the engine, none of which should have to recurse that deep.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return True
    text = _STRING.sub(b'""', raw)
    for _ in range(limit):
        text, n = _INNERMOST.subn(b"0", text)
        if n == 0:
            return True
    return not (b"[" in text or b"{" in text)


def parse_json_body(raw: bytes, schema: Optional[str], max_depth: int, allow_empty: bool = False) -> Any:
    """bytes -> validated JSON; 400 naming the field on any problem."""
    if not raw:
        if allow_empty:
            return {}
        raise ApiError(400, "Bad Request", "the request body is empty; a JSON object is expected", field="(body)")
    if not depth_within(raw, max_depth):
        raise ApiError(400, "Bad Request", f"JSON nested deeper than {max_depth} levels", field="(body)")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "Bad Request", f"JSON nested deeper than {max_depth} levels", field="(body)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "Malformed JSON", f"the body is not valid JSON: {e}", field="(body)") from None
    if schema is not None:
        try:
            validators()[schema](body)
        except ValidationFailure as e:
            raise ApiError(400, "Invalid Request", e.message, field=e.field) from None
    return body


def flag(params: Mapping[str, str], name: str) -> bool:
    v = params.get(name)
    if v is None:
        return False
    v = v.lower()
    if v in ("1", "true", "yes", "on", ""):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, "Invalid Request", f"query parameter {name} must be true or false, got {v!r}", field=name)


def json_reply(body: Any, status: int = 200, headers: Optional[dict] = None) -> Reply:
    return Reply(status, body, "application/json", headers or {})
