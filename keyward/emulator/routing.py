"""The request and route types shared by the server and the service modules.

A service module exposes `routes(state) -> list[Route]`; each route names the Google service it
belongs to (fault injection matches on it), an HTTP method and a path pattern. Handlers get a
`Request` and the path match and return `(http_status, json_body)`, or raise `RpcError`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyward.emulator.errors import RpcError, invalid_argument


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: Any = None
    client_ip: str = "127.0.0.1"

    def __repr__(self) -> str:
        # Headers and query may carry a key string (x-goog-api-key, ?key=, ?keyString=).
        return f"Request({self.method} {self.path})"

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Return the last value of query parameter `name`, or `default`."""
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        """Return every value of a repeated query parameter."""
        return list(self.query.get(name, []))

    def flag(self, name: str) -> bool:
        """Return a boolean query parameter (`true`/`1`)."""
        return (self.arg(name) or "").lower() in ("true", "1")

    def json_object(self) -> dict[str, Any]:
        """Return the body as a JSON object (empty when absent); raise 400 otherwise."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise invalid_argument("Invalid JSON payload received. Expected an object.")
        return self.body


Reply = tuple[int, Any]
Handler = Callable[[Request, "re.Match[str]"], Reply]


@dataclass
class Route:
    """A path pattern handled by one function of one service."""

    service: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(service: str, method: str, pattern: str, handler: Handler) -> Route:
    """Build a Route; `pattern` is a regex matched against the whole unquoted path."""
    return Route(service, method, re.compile(pattern), handler)


def page(items: list[Any], request: Request, default_size: int, max_size: int) -> tuple[list[Any], str]:
    """Slice `items` by the request's pageSize/pageToken; return the page and the next token.

    Tokens are opaque to the caller (base64 of an offset), like Google's; a bad one is a 400.
    """
    raw_size = request.arg("pageSize")
    try:
        size = int(raw_size) if raw_size else default_size
    except ValueError:
        raise invalid_argument(f"Invalid value for pageSize: {raw_size!r}", "page_size") from None
    if size < 0:
        raise invalid_argument("page_size must not be negative", "page_size")
    size = min(size or default_size, max_size)
    token = request.arg("pageToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
        except (ValueError, UnicodeDecodeError):
            raise invalid_argument("The page token is invalid.", "page_token") from None
    chunk = items[start:start + size]
    end = start + size
    next_token = base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if end < len(items) else ""
    return chunk, next_token


def require(condition: bool, error: RpcError) -> None:
    """Raise `error` unless `condition` holds."""
    if not condition:
        raise error
