import pytest

from keyward.errors import UsageError
from keyward.google import endpoints


def test_emulator_host_when_unset_is_none():
    assert endpoints.emulator_host({}) is None
    assert endpoints.api_endpoint("apikeys", {}) is None
    assert endpoints.gemini_base_url({}) == "https://generativelanguage.googleapis.com"


@pytest.mark.parametrize("value, host", [
    ("127.0.0.1:8085", "127.0.0.1:8085"),
    ("localhost:1", "localhost:1"),
    (" emu.internal:65535 ", "emu.internal:65535"),
    ("http://127.0.0.1:9000/", "127.0.0.1:9000"),
    ("[::1]:8085", "[::1]:8085"),
])
def test_emulator_host_when_valid_returns_host_port(value, host):
    env = {endpoints.ENV_VAR: value}
    assert endpoints.emulator_host(env) == host
    assert endpoints.api_endpoint("monitoring", env) == f"http://{host}"
    assert endpoints.gemini_base_url(env) == f"http://{host}"


@pytest.mark.parametrize("value", ["127.0.0.1", "host:0", "host:70000", "host:port", ":8080",
                                   "a b:80", "127.0.0.1:80/x"])
def test_emulator_host_when_garbage_raises_usage_error_naming_variable(value):
    with pytest.raises(UsageError) as info:
        endpoints.emulator_host({endpoints.ENV_VAR: value})
    assert endpoints.ENV_VAR in str(info.value)
    assert info.value.exit_code == 2


def test_emulator_host_reads_process_environment(monkeypatch):
    monkeypatch.setenv(endpoints.ENV_VAR, "127.0.0.1:1234")
    assert endpoints.is_emulated()
    monkeypatch.delenv(endpoints.ENV_VAR)
    assert not endpoints.is_emulated()
