"""Fixtures for the emulator's tests: a running emulator with two projects, discovery clients
pointed at it, and a plain-HTTP Gemini caller (no discovery document ships for Gemini)."""

from __future__ import annotations

import urllib.request

import google.auth.credentials
import pytest
from emulator_helpers import ALPHA, BETA, LIMITS, http
from googleapiclient.discovery import build

from keyward.emulator import Emulator


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
