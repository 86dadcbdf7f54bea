"""The ingest socket's wire format, shared by the server and the reporter.

A client sends reports as newline-delimited JSON (see `keyward.usage.reports`). A batch ends at an
empty line or at end of input; the server answers each batch with ONE JSON line, sent only after
the batch is committed: `{"ok": true, "accepted": N, "results": [...]}` (`results` describes the
error reports: line, kind, reason), or `{"ok": false, "line": L, "kind": K, "error": "line L: …"}`
when a line is bad (nothing of that batch is recorded). The connection then takes the next batch.

Over TCP (any local user can connect to a loopback port) both sides first prove they hold the
ingest token, without sending it: the server opens with `{"keyward": "ingest", "nonce": N}`; the
client answers `{"auth": HMAC(token, "client" N M), "nonce": M}`; the server answers
`{"ok": true, "auth": HMAC(token, "server" M N)}`. A client never reports to a listener that cannot
prove the token (a squatter on the port while the daemon is down), and the server closes a
connection whose first line is not a valid proof, an HTTP request (a web page's POST) included,
without a word. The Unix socket needs none of this: its file mode decides who may connect.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from keyward.errors import KeywardError, NothingPublished, NotFound, StorageError, UsageError
from keyward.keystrings import redact
from keyward.usage.reports import Report, from_json, to_json

MAX_LINE = 64 * 1024  # a report with Google's largest error body is a few KB
MAX_BATCH = 10_000  # lines
MAX_BATCH_BYTES = 4 * 1024 * 1024  # bytes of one batch; a connection holds at most two (see ingest)
MAX_HELLO = 512  # bytes of the authentication line
_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                 b"CONNECT ", b"TRACE ", b"PRI ")

# Error kinds on the wire, both ways; the reporter raises the same class the server met.
KINDS: dict[str, type[KeywardError]] = {
    "usage": UsageError, "not_found": NotFound, "nothing_published": NothingPublished,
    "storage": StorageError, "error": KeywardError,
}


def kind_of(exc: KeywardError) -> str:
    for kind in ("not_found", "nothing_published", "usage", "storage"):
        if isinstance(exc, KINDS[kind]):
            return kind
    return "error"


def looks_like_http(first: bytes) -> bool:
    """Whether the first bytes of a connection are an HTTP request line."""
    return first.lstrip().upper().startswith(_HTTP_METHODS)


def new_nonce() -> str:
    return secrets.token_hex(16)


def proof(token: str, role: str, first_nonce: str, second_nonce: str) -> str:
    """HMAC-SHA256 over the role and both nonces: shows the token is known without sending it."""
    message = f"keyward-ingest/{role}/{first_nonce}/{second_nonce}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def server_hello(nonce: str) -> bytes:
    return (json.dumps({"keyward": "ingest", "version": 1, "nonce": nonce}) + "\n").encode()


def client_auth(token: str, server_nonce: str) -> tuple[bytes, str]:
    """The client's authentication line and its own nonce."""
    nonce = new_nonce()
    line = json.dumps({"auth": proof(token, "client", server_nonce, nonce), "nonce": nonce})
    return (line + "\n").encode(), nonce


def check_client_auth(raw: bytes, token: str, server_nonce: str) -> str | None:
    """Return the client's nonce if `raw` proves the token for `server_nonce`, else None."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    auth, nonce = obj.get("auth"), obj.get("nonce")
    if not isinstance(auth, str) or not isinstance(nonce, str) or not 16 <= len(nonce) <= 64:
        return None
    if not hmac.compare_digest(auth, proof(token, "client", server_nonce, nonce)):
        return None
    return nonce


def server_auth(token: str, server_nonce: str, client_nonce: str) -> bytes:
    body = {"ok": True, "auth": proof(token, "server", client_nonce, server_nonce)}
    return (json.dumps(body) + "\n").encode()


def check_server_auth(reply: Any, token: str, server_nonce: str, client_nonce: str) -> bool:
    expected = proof(token, "server", client_nonce, server_nonce)
    return (isinstance(reply, dict) and isinstance(reply.get("auth"), str)
            and hmac.compare_digest(reply["auth"], expected))


def encode_batch(reports: list[Report]) -> bytes:
    """The bytes of one batch, terminator included."""
    lines = [json.dumps(to_json(r), separators=(",", ":")) for r in reports]
    return ("\n".join(lines) + "\n\n").encode()


def decode_line(raw: bytes, number: int) -> Report:
    """Parse one line; raise UsageError starting with "line N:" when it is not a valid report."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise UsageError(f"line {number}: not valid JSON (or nested too deeply)") from None
    try:
        return from_json(obj)
    except UsageError as exc:
        raise UsageError(f"line {number}: {exc}") from None


def ok_reply(accepted: int, results: list[dict[str, Any]]) -> bytes:
    return (json.dumps({"ok": True, "accepted": accepted, "results": results}) + "\n").encode()


def error_reply(exc: KeywardError, line: int | None) -> bytes:
    """The reply for a refused batch. Messages never hold a value that came in, but a key string
    is masked here anyway: this reply leaves the daemon."""
    message = redact(str(exc))
    if line is not None and not message.startswith("line "):
        message = f"line {line}: {message}"
    body = {"ok": False, "kind": kind_of(exc), "error": message, "line": line}
    return (json.dumps(body) + "\n").encode()


def raise_reply(reply: dict[str, Any]) -> None:
    """Raise the KeywardError a failed reply describes."""
    cls = KINDS.get(str(reply.get("kind")), KeywardError)
    raise cls(redact(str(reply.get("error") or "the keyward daemon refused the report"))[:2000])
