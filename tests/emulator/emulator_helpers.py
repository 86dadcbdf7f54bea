"""Shared constants and helpers of the emulator's tests (imported by name; fixtures live in
conftest.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

ALPHA = ("alpha-proj", "111111111111")
BETA = ("beta-proj", "222222222222")
LIMITS = {"gemini-2.5-flash": {"rpm": 3, "tpm": 40, "rpd": 5},
          "gemini-2.5-pro": {"rpm": 2, "tpm": 1000, "rpd": 50}}


class FakeClock:
    """A clock tests set by hand."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def http(url: str, method: str = "GET", body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Send one request; return (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def details_of(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Return the error details of one @type (e.g. "ErrorInfo")."""
    return [d for d in body["error"].get("details", [])
            if d["@type"] == f"type.googleapis.com/google.rpc.{kind}"]
