import json
import secrets
import socket

import httplib2
import pytest
from googleapiclient.errors import HttpError

from keyward.errors import (ApiDisabled, GoogleError, PermissionMissing, PolicyBlocked,
                            Transient)
from keyward.google import errors

_T = "type.googleapis.com/google.rpc."


def _http_error(status: int, body, uri: str = "http://127.0.0.1/v2/x") -> HttpError:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpError(httplib2.Response({"status": status}), content, uri=uri)


def _body(code, status, message, *details):
    return {"error": {"code": code, "status": status, "message": message, "details": list(details)}}


def test_translate_when_iam_denied_names_permission_from_error_info_and_role():
    exc = _http_error(403, _body(403, "PERMISSION_DENIED", "Permission denied", {
        "@type": _T + "ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
        "metadata": {"permission": "apikeys.keys.list"}}))
    err = errors.translate(exc, action="create", project="p1")
    assert isinstance(err, PermissionMissing)
    assert "apikeys.keys.list" in str(err)
    assert "roles/serviceusage.apiKeysAdmin" in str(err)
    assert str(err).startswith("creating an API key in project p1: ")
    assert err.status == 403


@pytest.mark.parametrize("action, permission, role", [
    ("create", "apikeys.keys.create", "roles/serviceusage.apiKeysAdmin"),
    ("operations", "serviceusage.operations.get", "roles/serviceusage.apiKeysAdmin"),
    ("monitoring", "monitoring.timeSeries.list", "roles/monitoring.viewer"),
    ("quota", "serviceusage.quotas.get", "roles/serviceusage.serviceUsageViewer"),
])
def test_translate_when_denied_without_details_uses_action_table(action, permission, role):
    err = errors.translate(_http_error(403, _body(403, "PERMISSION_DENIED", "denied")),
                           action=action, project="p1")
    assert isinstance(err, PermissionMissing)
    assert permission in str(err) and role in str(err)


def test_translate_when_service_disabled_says_how_to_enable():
    url = "https://console.developers.google.com/apis/api/apikeys.googleapis.com/overview?project=42"
    exc = _http_error(403, _body(403, "PERMISSION_DENIED", "API Keys API has not been used", {
        "@type": _T + "ErrorInfo", "reason": "SERVICE_DISABLED",
        "metadata": {"service": "apikeys.googleapis.com", "activationUrl": url}}))
    err = errors.translate(exc, action="list", project="p1")
    assert isinstance(err, ApiDisabled)
    assert "gcloud services enable apikeys.googleapis.com --project p1" in str(err)
    assert url in str(err)


def test_translate_when_org_policy_names_constraint():
    exc = _http_error(400, _body(400, "FAILED_PRECONDITION", "blocked by policy", {
        "@type": _T + "PreconditionFailure", "violations": [{
            "type": "constraints/iam.managed.disableServiceAccountApiKeyCreation",
            "subject": "projects/42", "description": "no"}]}))
    err = errors.translate(exc, action="create", project="p1")
    assert isinstance(err, PolicyBlocked)
    assert "iam.managed.disableServiceAccountApiKeyCreation" in str(err)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_translate_when_retryable_status_is_transient(status):
    err = errors.translate(_http_error(status, b"<html>oops</html>"), action="get", project="p")
    assert isinstance(err, Transient) and err.status == status


def test_translate_when_429_has_retry_info_keeps_delay():
    exc = _http_error(429, _body(429, "RESOURCE_EXHAUSTED", "slow down",
                                 {"@type": _T + "RetryInfo", "retryDelay": "26s"}))
    assert errors.translate(exc, action="list", project="p").retry_after == 26.0


@pytest.mark.parametrize("exc", [socket.timeout("timed out"), TimeoutError(),
                                 ConnectionRefusedError(111, "refused"),
                                 httplib2.ServerNotFoundError("no dns"),
                                 errors.MalformedResponse("x"),
                                 json.JSONDecodeError("bad", "doc", 0)])
def test_translate_when_transport_or_body_fails_is_transient(exc):
    assert isinstance(errors.translate(exc, action="list", project="p"), Transient)


def test_translate_when_404_is_google_error_with_status():
    err = errors.translate(_http_error(404, _body(404, "NOT_FOUND", "gone")), action="get",
                           project="p")
    assert type(err) is GoogleError and err.status == 404


def test_translate_when_other_status_is_plain_google_error_with_message():
    err = errors.translate(_http_error(400, _body(400, "INVALID_ARGUMENT", "bad keyId")),
                           action="create", project="p")
    assert type(err) is GoogleError and "bad keyId" in str(err) and err.status == 400


def test_translate_never_puts_key_strings_or_urls_in_messages():
    key = "AIza" + secrets.token_urlsafe(27)[:35]
    auth_key = "AQ." + secrets.token_urlsafe(32)
    uri = f"http://127.0.0.1/v2/keys:lookupKey?keyString={key}&alt=json"
    for status in (400, 403, 404, 429, 503):
        exc = _http_error(status, _body(status, "X", f"Consumer 'api_key:{key}' or {auth_key} bad"),
                          uri=uri)
        err = errors.translate(exc, action="lookup", project=None)
        text = str(err) + repr(err)
        assert key not in text and auth_key not in text and "lookupKey" not in text


def test_from_operation_error_maps_grpc_code_to_permission_missing():
    st = errors.status_from_operation({"code": 7, "message": "denied"})
    assert isinstance(errors.from_status(st, action="create", project="p"), PermissionMissing)


def test_with_retries_when_transient_then_success_returns_value_and_backs_off():
    calls, sleeps, seen = [], [], []

    def fn():
        calls.append(1)
        if len(calls) < 4:
            raise Transient("503", status=503)
        return "done"

    result = errors.with_retries(fn, budget_seconds=100, sleep=sleeps.append, rng=lambda: 1.0,
                                 on_retry=lambda n, d, e: seen.append(n))
    assert result == "done"
    assert sleeps == [1.0, 2.0, 4.0]
    assert seen == [1, 2, 3]


def test_with_retries_caps_backoff_at_thirty_seconds():
    sleeps = []

    def fn():
        raise Transient("503")

    with pytest.raises(Transient):
        errors.with_retries(fn, budget_seconds=200, sleep=sleeps.append, rng=lambda: 1.0)
    assert max(sleeps) == 30.0
    assert sum(sleeps) < 200


def test_with_retries_when_budget_exceeded_raises_last_transient():
    attempts = []

    def fn():
        attempts.append(1)
        raise Transient(f"attempt {len(attempts)}")

    with pytest.raises(Transient, match=r"attempt \d+") as info:
        errors.with_retries(fn, budget_seconds=5, sleep=lambda s: None, rng=lambda: 1.0)
    assert str(info.value) == f"attempt {len(attempts)}"
    assert len(attempts) == 3  # slept 1 + 2, the next 4 s would pass 5 s


def test_with_retries_does_not_retry_other_errors():
    attempts = []

    def fn():
        attempts.append(1)
        raise PermissionMissing("nope")

    with pytest.raises(PermissionMissing):
        errors.with_retries(fn, budget_seconds=60, sleep=lambda s: None)
    assert attempts == [1]


def test_with_retries_honours_retry_after_as_minimum_delay():
    sleeps = []
    err = Transient("429", status=429)
    err.retry_after = 7.0

    def fn():
        if not sleeps:
            raise err
        return 1

    errors.with_retries(fn, budget_seconds=60, sleep=sleeps.append, rng=lambda: 0.0)
    assert sleeps == [7.0]
