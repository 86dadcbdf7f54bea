"""Injected faults: error statuses, latency and malformed bodies, as clients see them."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from emulator_helpers import ALPHA, http
from googleapiclient.errors import HttpError

PARENT = f"projects/{ALPHA[0]}/locations/global"


@pytest.mark.parametrize("status,name", [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"),
                                         (503, "UNAVAILABLE")])
def test_fault_when_armed_fails_next_call_then_recovers(emu, api, status, name):
    keys = api("apikeys", "v2").projects().locations().keys()
    emu.inject_fault(service="apikeys", status=status)
    with pytest.raises(HttpError) as caught:
        keys.list(parent=PARENT).execute(num_retries=0)
    assert caught.value.status_code == status
    assert json.loads(caught.value.content)["error"]["status"] == name
    assert keys.list(parent=PARENT).execute(num_retries=0) == {"keys": []}


def test_fault_when_count_two_fails_two_calls(emu, api):
    keys = api("apikeys", "v2").projects().locations().keys()
    emu.inject_fault(status=503, count=2)
    for _ in range(2):
        with pytest.raises(HttpError):
            keys.list(parent=PARENT).execute(num_retries=0)
    keys.list(parent=PARENT).execute(num_retries=0)


def test_fault_when_path_regex_given_spares_other_paths(emu, gemini):
    key = emu.create_manual_key(ALPHA[0])["keyString"]
    emu.inject_fault(path_regex=r":generateContent$", status=500)
    assert gemini(key, rpc="countTokens")[0] == 200
    assert gemini(key)[0] == 500
    assert gemini(key)[0] == 200


def test_fault_when_service_differs_spares_request(emu, api, gemini):
    key = emu.create_manual_key(ALPHA[0])["keyString"]
    emu.inject_fault(service="generativelanguage.googleapis.com", status=503)
    api("apikeys", "v2").projects().locations().keys().list(parent=PARENT).execute(num_retries=0)
    assert gemini(key)[0] == 503


def test_fault_when_malformed_returns_invalid_json_with_200(emu, api):
    keys = api("apikeys", "v2").projects().locations().keys()
    emu.inject_fault(malformed=True)
    with urllib.request.urlopen(f"{emu.url}/v2/{PARENT}/keys") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.read())
    emu.inject_fault(malformed=True)
    # google-api-python-client does not raise on an unparsable 200: it hands back the raw text,
    # so callers must check they got a dict.
    result = keys.list(parent=PARENT).execute(num_retries=0)
    assert isinstance(result, str) and not result.endswith("}")


def test_fault_when_latency_only_delays_then_answers(emu):
    emu.inject_fault(status=0, latency_ms=200)
    started = time.monotonic()
    status, body = http(f"{emu.url}/v2/{PARENT}/keys")
    assert status == 200 and body == {"keys": []}
    assert time.monotonic() - started >= 0.2


def test_fault_when_admin_endpoint_called_is_never_faulted(emu):
    emu.inject_fault(status=500)
    assert http(f"{emu.url}/_emulator/state")[0] == 200
    assert http(f"{emu.url}/v2/{PARENT}/keys")[0] == 500
