import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keyward.errors import Transient
from keyward.google import gemini
from keyward.google.endpoints import ENV_VAR

PROJECT = "alpha"
MODEL = "gemini-2.5-flash"


def _fake_auth_key() -> str:
    return "AQ." + secrets.token_urlsafe(32)


@pytest.fixture
def key(emu):
    return emu.create_manual_key(PROJECT)["keyString"]


def test_verify_key_when_valid_is_ok(emu, key):
    result = gemini.verify_key(key)
    assert result == gemini.Verification(True, "ok", 200, "Gemini accepted the key")


def test_verify_key_with_model_when_valid_is_ok(emu, key):
    assert gemini.verify_key(key, model=MODEL).ok


def test_verify_key_when_unknown_is_invalid_and_detail_holds_no_key(emu):
    fake = _fake_auth_key()
    result = gemini.verify_key(fake)
    assert (result.ok, result.kind, result.status) == (False, "invalid_key", 400)
    assert fake not in result.detail and fake not in repr(result)


def test_verify_key_when_deleted_is_invalid(emu):
    from keyward.google.apikeys import ApiKeysClient

    manual = emu.create_manual_key(PROJECT)
    ApiKeysClient(sleep=lambda s: None).delete_key(manual["name"])
    assert gemini.verify_key(manual["keyString"]).kind == "invalid_key"


def test_verify_key_when_standard_keys_rejected_is_unsupported_type(emu):
    standard = emu.create_manual_key(PROJECT, kind="standard")["keyString"]
    emu.reject_standard_keys = True
    result = gemini.verify_key(standard)
    assert (result.ok, result.kind, result.status) == (False, "unsupported_key_type", 401)


def test_verify_key_when_quota_exhausted_counts_as_working(emu, key):
    emu.inject_fault(service="generativelanguage", status=429)
    result = gemini.verify_key(key)
    assert (result.ok, result.kind, result.status) == (True, "quota", 429)


@pytest.mark.parametrize("status", [500, 503, 504])
def test_verify_key_when_server_fails_is_transient(emu, key, status):
    emu.inject_fault(service="generativelanguage", status=status)
    result = gemini.verify_key(key)
    assert (result.ok, result.kind, result.status) == (False, "transient", status)


def test_verify_key_when_body_malformed_is_transient(emu, key):
    emu.inject_fault(service="generativelanguage", malformed=True)
    assert gemini.verify_key(key).kind == "transient"


def test_verify_key_when_slower_than_timeout_is_transient(emu, key):
    emu.inject_fault(service="generativelanguage", status=0, latency_ms=800)
    result = gemini.verify_key(key, timeout=0.2)
    assert (result.ok, result.kind) == (False, "transient")
    assert "0.2 s" in result.detail


def test_verify_key_when_unreachable_is_transient(monkeypatch, emulator_server):
    monkeypatch.setenv(ENV_VAR, "127.0.0.1:1")
    result = gemini.verify_key(_fake_auth_key(), timeout=2)
    assert (result.ok, result.kind, result.status) == (False, "transient", None)


def test_verify_key_when_api_disabled_is_other(emu, key):
    emu.disable_service(PROJECT, "generativelanguage.googleapis.com")
    result = gemini.verify_key(key)
    assert (result.ok, result.kind, result.status) == (False, "other", 403)
    assert "SERVICE_DISABLED" in result.detail


@pytest.mark.parametrize("bad", ["", "AQ. spaced", "AQ.\nnewline", "AQ.é" + "x" * 20])
def test_verify_key_when_key_has_impossible_characters_is_invalid(emu, bad):
    assert gemini.verify_key(bad).kind == "invalid_key"


def test_generate_content_returns_answer_with_usage(emu, key):
    answer = gemini.generate_content(key, MODEL, "hello there")
    assert answer["usageMetadata"]["promptTokenCount"] > 0
    assert answer["candidates"]


def test_generate_content_when_rate_limited_raises_http_error_without_body_or_key(emu):
    emu.add_project("tiny", "222222222222", limits={MODEL: {"rpm": 1, "tpm": 100000, "rpd": 100}})
    key = emu.create_manual_key("tiny")["keyString"]
    gemini.generate_content(key, MODEL, "one")
    with pytest.raises(gemini.GeminiHttpError) as info:
        gemini.generate_content(key, MODEL, "two")
    err = info.value
    assert err.status == 429 and err.error.status == "RESOURCE_EXHAUSTED"
    assert b"RESOURCE_EXHAUSTED" in err.body
    for text in (str(err), repr(err)):
        assert key not in text and "{" not in text


def test_generate_content_when_key_invalid_raises_http_error_with_reason(emu):
    with pytest.raises(gemini.GeminiHttpError) as info:
        gemini.generate_content(_fake_auth_key(), MODEL, "hi")
    assert (info.value.status, info.value.reason) == (400, "API_KEY_INVALID")


def test_generate_content_when_malformed_raises_transient(emu, key):
    emu.inject_fault(service="generativelanguage", malformed=True)
    with pytest.raises(Transient, match="malformed"):
        gemini.generate_content(key, MODEL, "hi")


class _Canned(BaseHTTPRequestHandler):
    """Answers every request with the server's canned reply and records what it received."""

    def do_GET(self):
        self.server.seen.append((self.path, dict(self.headers)))
        status, body = self.server.reply
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def canned(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.seen, server.reply = [], (200, {"models": []})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(ENV_VAR, f"127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def test_verify_key_sends_key_in_header_never_in_url(canned):
    key = _fake_auth_key()
    assert gemini.verify_key(key).ok
    [(path, headers)] = canned.seen
    assert path == "/v1beta/models?pageSize=1"
    assert key not in path
    assert {k.lower(): v for k, v in headers.items()}["x-goog-api-key"] == key


def test_verify_key_when_consumer_suspended_is_suspended_and_masks_key(canned):
    key = "AIza" + secrets.token_urlsafe(27)[:35]
    canned.reply = (403, {"error": {
        "code": 403, "status": "PERMISSION_DENIED",
        "message": f"Permission denied: Consumer 'api_key:{key}' has been suspended.",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "CONSUMER_SUSPENDED", "domain": "googleapis.com",
                     "metadata": {"service": "generativelanguage.googleapis.com"}}]}})
    result = gemini.verify_key(key)
    assert (result.ok, result.kind, result.status) == (False, "suspended", 403)
    assert key not in result.detail and key[-4:] in result.detail
