"""Fixtures for the emulator's tests: a running emulator with two projects, discovery clients
pointed at it, and a plain-HTTP Gemini caller (no discovery document ships for Gemini)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import google.auth.credentials
import pytest
from googleapiclient.discovery import build

from keyward.emulator import Emulator

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


@pytest.fixture
def emu():
    emulator = Emulator().start()
    emulator.add_project(*ALPHA, limits=LIMITS)
    emulator.add_project(*BETA)
    yield emulator
    emulator.stop()


@pytest.fixture
def api(emu):
    """Return build(name, version) -> a discovery client talking to the emulator."""
    built = []

    def make(name: str, version: str):
        client = build(name, version, static_discovery=True,
                       credentials=google.auth.credentials.AnonymousCredentials(),
                       client_options={"api_endpoint": emu.url})
        built.append(client)
        return client

    yield make
    for client in built:
        client.close()  # keep-alive sockets would otherwise warn when collected


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


@pytest.fixture
def gemini(emu):
    """Return call(key, model="gemini-2.5-flash", text="hello", version="v1beta",
    rpc="generateContent", via="header") -> (status, body)."""

    def call(key: str, model: str = "gemini-2.5-flash", text: str = "hello",
             version: str = "v1beta", rpc: str = "generateContent", via: str = "header"):
        url = f"{emu.url}/{version}/models/{model}:{rpc}"
        headers = {}
        if via == "header":
            headers["x-goog-api-key"] = key
        else:
            url += "?key=" + urllib.request.quote(key, safe="")
        return http(url, "POST", {"contents": [{"role": "user", "parts": [{"text": text}]}]},
                    headers)

    return call


def details_of(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Return the error details of one @type (e.g. "ErrorInfo")."""
    return [d for d in body["error"].get("details", [])
            if d["@type"] == f"type.googleapis.com/google.rpc.{kind}"]
