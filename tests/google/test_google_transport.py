import pytest
from google.auth.credentials import AnonymousCredentials

from keyward.google.endpoints import ENV_VAR
from keyward.google.transport import build_api


@pytest.mark.parametrize("service, version", [("apikeys", "v2"), ("monitoring", "v3"),
                                              ("serviceusage", "v1beta1")])
def test_build_api_when_not_emulated_targets_google(monkeypatch, service, version):
    monkeypatch.delenv(ENV_VAR, raising=False)
    api = build_api(service, version, AnonymousCredentials())
    assert api._baseUrl == f"https://{service}.googleapis.com/"


def test_build_api_when_emulated_targets_emulator_with_anonymous_credentials(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "127.0.0.1:8123")
    api = build_api("apikeys", "v2")
    assert api._baseUrl.startswith("http://127.0.0.1:8123")
