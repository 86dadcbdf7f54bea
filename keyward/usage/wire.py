"""The ingest socket's wire format, shared by the server and the reporter.

A client sends reports as newline-delimited JSON (see `keyward.usage.reports`). A batch ends at an
empty line or at end of input; the server answers each batch with ONE JSON line, sent only after
the batch is committed: `{"ok": true, "accepted": N, "results": [...]}` (`results` describes the
error reports: line, kind, reason), or `{"ok": false, "line": L, "kind": K, "error": "line L: …"}`
when a line is bad (nothing of that batch is recorded). The connection then takes the next batch.
"""

from __future__ import annotations

import json
from typing import Any

from keyward.errors import KeywardError, NothingPublished, NotFound, StorageError, UsageError
from keyward.usage.reports import Report, from_json, to_json

MAX_LINE = 1 << 20  # one report never needs a megabyte; a longer line is refused
MAX_BATCH = 10_000

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


def encode_batch(reports: list[Report]) -> bytes:
    """The bytes of one batch, terminator included."""
    lines = [json.dumps(to_json(r), separators=(",", ":")) for r in reports]
    return ("\n".join(lines) + "\n\n").encode()


def decode_line(raw: bytes, number: int) -> Report:
    """Parse one line; raise UsageError starting with "line N:" when it is not a valid report."""
    try:
        obj = json.loads(raw)
    except ValueError:
        raise UsageError(f"line {number}: not valid JSON") from None
    try:
        return from_json(obj)
    except UsageError as exc:
        raise UsageError(f"line {number}: {exc}") from None


def ok_reply(accepted: int, results: list[dict[str, Any]]) -> bytes:
    return (json.dumps({"ok": True, "accepted": accepted, "results": results}) + "\n").encode()


def error_reply(exc: KeywardError, line: int | None) -> bytes:
    message = str(exc)
    if line is not None and not message.startswith("line "):
        message = f"line {line}: {message}"
    body = {"ok": False, "kind": kind_of(exc), "error": message, "line": line}
    return (json.dumps(body) + "\n").encode()


def raise_reply(reply: dict[str, Any]) -> None:
    """Raise the KeywardError a failed reply describes."""
    cls = KINDS.get(str(reply.get("kind")), KeywardError)
    raise cls(str(reply.get("error") or "the keyward daemon refused the report"))
