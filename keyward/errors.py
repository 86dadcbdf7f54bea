"""The one family of errors keyward raises on purpose.

Everything a user can cause or fix is a `KeywardError`; the CLI turns it into a message and an exit
code (`exit_code`: 2 for usage or configuration, 1 for runtime). Third-party errors are wrapped where
they enter keyward (the Google clients, storage), so nothing above those layers sees an `HttpError`
or an `OperationalError`. No message ever holds a key string: build messages from key ids and masks.
"""

from __future__ import annotations


class KeywardError(Exception):
    """Base of every error keyward reports to a person."""

    exit_code = 1


class UsageError(KeywardError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = 2


class ConfigError(KeywardError):
    """The configuration file is invalid; `problems` lists every problem found, not just the first."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)


class InvalidKeyInput(UsageError):
    """A key string offered by the operator is not a Gemini standard (AIza) or auth (AQ.) key."""


class NotFound(UsageError):
    """A pool, project or key named on the command line does not exist."""


class StorageError(KeywardError):
    """The database could not be opened, migrated or written."""


class SchemaTooNew(StorageError):
    """The database was written by a newer keyward than this one."""


class SchemaOutOfDate(StorageError):
    """The database needs `keyward db upgrade` before this command can use it."""


class GoogleError(KeywardError):
    """A Google API call failed in a way keyward could not absorb (after retries)."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        self.status = status
        self.reason = reason
        super().__init__(message)


class PermissionMissing(GoogleError):
    """Google refused a call for lack of an IAM permission; the message names it and its role."""


class ApiDisabled(GoogleError):
    """A Google API keyward needs is disabled in the project; the message says how to enable it."""


class PolicyBlocked(GoogleError):
    """An organization policy forbids what keyward asked (for example keys bound to service accounts)."""


class Transient(GoogleError):
    """A retryable failure (429, 5xx, timeout, malformed body) that outlasted the retry budget."""

    retry_after: float | None = None  # seconds Google asked us to wait (RetryInfo), when it said


class RotationError(KeywardError):
    """A rotation step failed; the journal holds where it stopped and the next run resumes there."""


class NothingPublished(KeywardError):
    """A pool exists but has no current key yet (the daemon has not run, or no project has a key)."""


class PublishError(KeywardError):
    """A publish sink could not write; what it held before is left intact."""


class AlreadyRunning(KeywardError):
    """Another keyward daemon holds the lock for this database."""


class LeaseLost(KeywardError):
    """A write was fenced by a lease this process no longer holds: another process leads now."""


class PassFailed(KeywardError):
    """A pass over many projects finished with failures; each was logged, this is the summary."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        lines = [f"  {name}: {why}" for name, why in sorted(self.failures.items())]
        super().__init__(f"{len(self.failures)} project(s) failed:\n" + "\n".join(lines))


class InternalError(KeywardError):
    """A failure keyward has no name for yet: shown as its class and redacted message, never a traceback."""


class MasterKeyError(KeywardError):
    """A master key is missing, unreadable or not the one a sealed secret names; says where we looked."""


class SecretTampered(KeywardError):
    """A sealed secret does not authenticate: it was altered or copied from another row."""
