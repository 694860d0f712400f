"""The framework-neutral core of every endpoint: requests in, replies out.

Each endpoint is a plain function ``handler(state, call) -> Reply`` that may
raise ``ApiError``. ``app.py`` adapts the same handlers to Falcon's WSGI and
ASGI apps, so both variants answer byte for byte the same. Reading the body
(size limit, content type, JSON, nesting depth, schema) is done here once.
"""

from __future__ import annotations

import json
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


def _depth_ok(obj: Any, limit: int) -> bool:
    """Iteratively check the nesting depth (recursion could overflow)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return False
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values() if isinstance(v, (dict, list)))
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return True


def parse_json_body(raw: bytes, schema: Optional[str], max_depth: int, allow_empty: bool = False) -> Any:
    """bytes -> validated JSON; 400 naming the field on any problem."""
    if not raw:
        if allow_empty:
            return {}
        raise ApiError(400, "Bad Request", "the request body is empty; a JSON object is expected", field="(body)")
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "Bad Request", f"JSON nested deeper than {max_depth} levels", field="(body)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, "Malformed JSON", f"the body is not valid JSON: {e}", field="(body)") from None
    if not _depth_ok(body, max_depth):
        raise ApiError(400, "Bad Request", f"JSON nested deeper than {max_depth} levels", field="(body)")
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
