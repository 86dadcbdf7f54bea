"""Talking to the Gemini API with a key string: is this key usable, and synthetic traffic.

A plain HTTPS call (urllib) is enough here: the Generative Language discovery document is not
shipped with googleapiclient and the SDK is heavy. The key travels only in the `x-goog-api-key`
header, never in a URL, so no URL, log line or proxy log holds it; messages and `detail` strings
are scrubbed of anything key-shaped because Google's own messages sometimes quote the key.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from keyward.errors import GoogleError, Transient
from keyward.google import endpoints
from keyward.google.errors import RpcStatus, scrub, status_from_body

log = logging.getLogger(__name__)

API_VERSION = "v1beta"
_TRANSIENT = frozenset({500, 502, 503, 504})
_INVALID_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})


@dataclass(frozen=True)
class Verification:
    """The outcome of one live call with a key; `ok` means Gemini accepted the key."""

    ok: bool
    kind: str  # ok | invalid_key | unsupported_key_type | suspended | quota | transient | other
    status: int | None
    detail: str


class GeminiHttpError(GoogleError):
    """Gemini answered an HTTP error; `body` holds the raw answer, never shown by str()."""

    def __init__(self, status: int, body: bytes):
        self.body = body
        self.error: RpcStatus = status_from_body(status, body)
        said = self.error.status or "error"
        super().__init__(f"Gemini answered {status} {said}", status=status,
                         reason=self.error.reason or self.error.status or None)

    def __repr__(self) -> str:
        return f"GeminiHttpError(status={self.status!r}, reason={self.reason!r})"


def verify_key(key_string: str, *, model: str | None = None, timeout: float = 10.0) -> Verification:
    """Make one cheap live call (list one model, or get `model`) with `key_string`.

    Never raises for an answer from Gemini: the outcome is in the Verification. A 429 means the
    key works (quota is per project), so it is ok with kind "quota". 5xx, timeouts and network
    failures are kind "transient" and worth another try.
    """
    if not _header_safe(key_string):
        return Verification(False, "invalid_key", None,
                            "the key holds characters no API key has (whitespace or non-ASCII)")
    path = (f"/{API_VERSION}/models/{urllib.parse.quote(model, safe='')}" if model
            else f"/{API_VERSION}/models?pageSize=1")
    try:
        status, body = _send("GET", path, key_string, None, timeout)
    except Transient as exc:
        return Verification(False, "transient", None, str(exc))
    if 200 <= status < 300:
        try:
            json.loads(body)
        except ValueError:
            return Verification(False, "transient", status, "Gemini sent a malformed answer")
        return Verification(True, "ok", status, "Gemini accepted the key")
    return _classify(status, status_from_body(status, body))


def generate_content(key_string: str, model: str, text: str, *,
                     timeout: float = 60.0) -> dict[str, Any]:
    """Ask `model` to answer `text`; return Gemini's parsed JSON (with `usageMetadata`).

    Raise GeminiHttpError for an HTTP error answer, Transient for network failures, timeouts or a
    malformed body.
    """
    if not _header_safe(key_string):
        raise GoogleError("calling Gemini: the key holds characters no API key has")
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]}).encode()
    path = f"/{API_VERSION}/models/{urllib.parse.quote(model, safe='')}:generateContent"
    status, answer = _send("POST", path, key_string, body, timeout)
    if not 200 <= status < 300:
        raise GeminiHttpError(status, answer)
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise Transient(f"calling Gemini model {model}: Gemini sent a malformed answer",
                        status=status, reason="MALFORMED")
    return parsed


def _classify(status: int, st: RpcStatus) -> Verification:
    said = scrub(st.message) or f"HTTP {status}"
    reason = st.reason
    if status == 429:
        return Verification(True, "quota", status,
                            f"the key works; the project is over quota: {said}")
    if status in _TRANSIENT:
        return Verification(False, "transient", status, f"Gemini answered {status}: {said}")
    if reason in _INVALID_REASONS or (status == 400 and "API key not valid" in st.message):
        return Verification(False, "invalid_key", status, f"Gemini rejected the key: {said}")
    if reason == "ACCESS_TOKEN_TYPE_UNSUPPORTED" or status == 401:
        return Verification(False, "unsupported_key_type", status,
                            f"Gemini no longer accepts this type of key: {said}")
    if reason == "CONSUMER_SUSPENDED" or "suspended" in st.message.lower():
        return Verification(False, "suspended", status,
                            f"the key or its project is suspended: {said}")
    code = reason or st.status
    hint = ""
    if reason == "API_KEY_IP_ADDRESS_BLOCKED":
        # keyward tries every new key itself before publishing it, from its own host
        hint = ("; the project's allowed_ips must include the address keyward runs on, or every "
                "new key fails this check")
    return Verification(False, "other", status,
                        f"Gemini answered {status}{' ' + code if code else ''}: {said}{hint}")


def _send(method: str, path: str, key_string: str, body: bytes | None,
          timeout: float) -> tuple[int, bytes]:
    """Return (HTTP status, body bytes); raise Transient for network failures and timeouts."""
    url = endpoints.gemini_base_url() + path
    headers = {"x-goog-api-key": key_string, "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                return exc.code, exc.read()
            except (OSError, TimeoutError):
                return exc.code, b""
    except (TimeoutError, socket.timeout):
        raise Transient(f"calling Gemini: no answer within {timeout:g} s",
                        reason="TIMEOUT") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise Transient(f"calling Gemini: no answer within {timeout:g} s",
                            reason="TIMEOUT") from None
        raise Transient(f"calling Gemini: could not reach it ({scrub(str(exc.reason), 120)})",
                        reason="UNREACHABLE") from None
    except (OSError, http.client.HTTPException) as exc:
        raise Transient(f"calling Gemini: connection failed ({type(exc).__name__})",
                        reason="UNREACHABLE") from None


def _header_safe(key_string: str) -> bool:
    return bool(key_string) and all(33 <= ord(c) < 127 for c in key_string)
