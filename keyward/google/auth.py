"""Credentials for Google's APIs, chosen the way an operator expects.

Order: the emulator (anonymous, nothing to leak) → an explicit service-account file named in the
config → `$CREDENTIALS_DIRECTORY/google.json` (systemd `LoadCredential=google.json:…`) → Application
Default Credentials. Every failure names the file or says how to provide credentials; the contents
of a credentials file are never put in a message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from keyward.errors import UsageError
from keyward.google import endpoints

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SYSTEMD_CREDENTIAL = "google.json"


def load_credentials(credentials_path: Path | None = None,
                     scopes: Sequence[str] = (CLOUD_PLATFORM,),
                     env: Mapping[str, str] | None = None,
                     quota_project: str | None = None) -> Credentials:
    """Return credentials for Google's APIs, billing `quota_project` when given.

    Raise UsageError naming the file when an explicit or systemd-provided file is missing,
    unreadable, not JSON or not a service-account key; or saying how to provide credentials when
    none are found.
    """
    env = os.environ if env is None else env
    if endpoints.emulator_host(env):
        from google.auth.credentials import AnonymousCredentials

        log.debug("using anonymous credentials for the Google API emulator")
        return AnonymousCredentials()
    creds = _choose(credentials_path, scopes, env)
    if quota_project and hasattr(creds, "with_quota_project"):
        creds = creds.with_quota_project(quota_project)
    return creds


def _choose(credentials_path: Path | None, scopes: Sequence[str],
            env: Mapping[str, str]) -> Credentials:
    if credentials_path is not None:
        return _service_account(Path(credentials_path), scopes, "the configured credentials file")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / SYSTEMD_CREDENTIAL
        if path.is_file():
            return _service_account(path, scopes, "the systemd credential")
    return _default(scopes)


def _service_account(path: Path, scopes: Sequence[str], what: str) -> Credentials:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist; create a service-account key file there "
                         "or remove the setting to use Application Default Credentials") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory, not a service-account key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UsageError(f"{what} {path} cannot be read: {reason}") from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} {path} is not JSON (line {exc.lineno}); expected a "
                         "service-account key file downloaded from the Cloud console") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        kind = info.get("type") if isinstance(info, dict) else None
        raise UsageError(f"{what} {path} is not a service-account key file "
                         f"(type is {kind!r}, expected 'service_account')")
    from google.oauth2 import service_account

    try:
        creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
    except (ValueError, KeyError) as exc:
        # google-auth names missing fields ("missing fields client_email"); never the key itself.
        missing = str(exc) if isinstance(exc, ValueError) and "missing" in str(exc).lower() else ""
        raise UsageError(f"{what} {path} is not a usable service-account key file"
                         + (f": {missing}" if missing else "")) from None
    log.debug("using service account %s from %s", creds.service_account_email, path)
    return creds


def _default(scopes: Sequence[str]) -> Credentials:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, _project = google.auth.default(scopes=list(scopes))
    except DefaultCredentialsError as exc:
        # google-auth names a GOOGLE_APPLICATION_CREDENTIALS file it could not use; say so.
        named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        why = f" ({exc})" if named else ""
        raise UsageError(
            f"no usable Google credentials{why}: set `credentials = \"/path/to/key.json\"` in the "
            "[google] section of the config, provide it to the systemd unit with "
            "LoadCredential=google.json:/path, or run `gcloud auth application-default login` "
            "(or set GOOGLE_APPLICATION_CREDENTIALS)"
        ) from None
    return creds
