import json

import pytest
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import service_account

from keyward.errors import UsageError
from keyward.google import auth, endpoints


def _rsa_pem() -> str:
    cryptography = pytest.importorskip("cryptography")  # noqa: F841 - google-auth needs it anyway
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _sa_info() -> dict:
    return {"type": "service_account", "project_id": "demo-project", "private_key_id": "k1",
            "private_key": _rsa_pem(), "client_email": "keyward@demo-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}


def test_load_credentials_when_emulated_is_anonymous(tmp_path):
    creds = auth.load_credentials(tmp_path / "missing.json",
                                  env={endpoints.ENV_VAR: "127.0.0.1:9"})
    assert isinstance(creds, AnonymousCredentials)


def test_load_credentials_when_path_is_service_account_returns_scoped_credentials(tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(_sa_info()))
    creds = auth.load_credentials(path, env={})
    assert isinstance(creds, service_account.Credentials)
    assert creds.service_account_email == "keyward@demo-project.iam.gserviceaccount.com"
    assert auth.CLOUD_PLATFORM in creds.scopes


def test_load_credentials_when_quota_project_given_bills_it(tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(_sa_info()))
    creds = auth.load_credentials(path, env={}, quota_project="billing-project")
    assert creds.quota_project_id == "billing-project"


def test_load_credentials_when_systemd_credential_present_uses_it(tmp_path):
    (tmp_path / "google.json").write_text(json.dumps(_sa_info()))
    creds = auth.load_credentials(None, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert isinstance(creds, service_account.Credentials)


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    ('{"type": "authorized_user"}', "not a service-account key file"),
    ('["x"]', "not a service-account key file"),
    ('{"type": "service_account"}', "not a usable service-account key file"),
])
def test_load_credentials_when_file_is_bad_names_the_file(tmp_path, content, words):
    path = tmp_path / "creds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as info:
        auth.load_credentials(path, env={})
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_load_credentials_when_file_is_a_directory_names_it(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        auth.load_credentials(tmp_path, env={})


def test_load_credentials_when_private_key_is_bad_never_echoes_it(tmp_path):
    info = _sa_info()
    secret_marker = "not-a-real-private-key-" + "z" * 20
    info["private_key"] = secret_marker
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    with pytest.raises(UsageError) as err:
        auth.load_credentials(path, env={})
    assert secret_marker not in str(err.value)
    assert str(path) in str(err.value)


def test_load_credentials_when_nothing_found_says_how_to_provide(tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    from google.auth.compute_engine import _metadata

    # Skip probing for a GCE metadata server (read once at import by google-auth).
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)
    with pytest.raises(UsageError) as info:
        auth.load_credentials(None, env={"CREDENTIALS_DIRECTORY": str(tmp_path / "none")})
    message = str(info.value)
    assert "LoadCredential=google.json" in message
    assert "application-default login" in message


def test_load_credentials_when_adc_file_missing_names_it(tmp_path, monkeypatch):
    missing = tmp_path / "adc.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    with pytest.raises(UsageError) as info:
        auth.load_credentials(None, env={})
    assert str(missing) in str(info.value)
