"""Building googleapiclient API objects and running their requests the keyward way.

`build_api` makes a client from the discovery document shipped with googleapiclient (no network
fetch), pointed at the emulator when `KEYWARD_GOOGLE_EMULATOR_HOST` is set, with an HTTP timeout of
our choosing. `Caller.run` executes one request with `num_retries=0`, turns every failure into a
keyward error, insists the answer is a JSON object, and retries Transient errors within the
client's budget. Connections are closed after every call, unless the client is built with
`keep_alive=True` for a burst of calls (a Monitoring pass), whose owner calls `close()` at the end.
httplib2 is not thread-safe: use one client per thread.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from keyward.errors import Transient, UsageError
from keyward.google import endpoints
from keyward.google.errors import (MalformedResponse, mask_keys, scrub, translate,
                                   where_phrase, with_retries)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


def build_api(service: str, version: str, credentials: Any = None, *,
              timeout: float = DEFAULT_TIMEOUT, per_thread: bool = False) -> Any:
    """Return a googleapiclient Resource for `service` `version` from the shipped discovery doc.

    `credentials` None means: load them with `auth.load_credentials()` (anonymous for the emulator).
    With `per_thread`, the Resource may be shared by threads: each sends through its own
    connection (thread_http.py).
    """
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    from keyward.google.auth import load_credentials

    if credentials is None:
        credentials = load_credentials(None)

    def connection() -> Any:
        return google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))

    if per_thread:
        from keyward.google.thread_http import PerThreadHttp

        http = PerThreadHttp(connection)
    else:
        http = connection()
    options: dict[str, str] = {}
    endpoint = endpoints.api_endpoint(service)
    if endpoint:
        options["api_endpoint"] = endpoint
    return build(service, version, http=http, static_discovery=True, cache_discovery=False,
                 client_options=options or None)


class Caller:
    """Runs requests for one client: translation, shape check and retries in one place."""

    def __init__(self, retry_budget: float, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[int, float, Transient], None] | None = None, keep_alive: bool = False):
        self.keep_alive = keep_alive
        self.retry_budget = retry_budget
        self.sleep = sleep
        self.on_retry = on_retry

    def once(self, request: Any, *, action: str, project: str | None) -> dict[str, Any]:
        """Execute `request` once; return its JSON object or raise a keyward error."""
        try:
            result = request.execute(num_retries=0)
            if result == "" or result is None:
                return {}  # 204 No Content / empty body (e.g. google.protobuf.Empty)
            if not isinstance(result, dict):
                raise MalformedResponse("expected a JSON object")
            return result
        except Exception as exc:  # every failure crosses this boundary as a keyward error
            raise translate(exc, action=action, project=project) from _cause(exc, action)
        finally:
            if not self.keep_alive:
                _close(request)

    def run(self, make_request: Callable[[], Any], *, action: str,
            project: str | None) -> dict[str, Any]:
        """Execute a fresh request from `make_request` until it succeeds or the budget runs out.

        Raise UsageError when googleapiclient refuses the arguments (a resource name that does
        not match the discovery document's pattern), before anything is sent.
        """
        return with_retries(lambda: self.once(self._build(make_request, action, project),
                                              action=action, project=project),
                            budget_seconds=self.retry_budget, on_retry=self.on_retry,
                            sleep=self.sleep)

    @staticmethod
    def _build(make_request: Callable[[], Any], action: str, project: str | None) -> Any:
        try:
            return make_request()
        except TypeError as exc:
            raise UsageError(f"{where_phrase(action, project)}: {scrub(str(exc))}") from None


def _close(request: Any) -> None:
    # keyward calls Google a few times a minute; a kept-alive connection goes stale between
    # passes and an unclosed one leaks a socket, so each call gets a fresh connection.
    http = getattr(request, "http", None)
    close = getattr(http, "close", None)
    if callable(close):
        close()


def _cause(exc: BaseException, action: str) -> BaseException | None:
    # An HttpError's str() holds the request URL, and lookupKey's URL holds a key string: for that
    # call keep no cause, so no traceback can print it.
    return None if action == "lookup" else exc


class RedactKeyStrings(logging.Filter):
    """Mask key strings in googleapiclient's own log records.

    googleapiclient logs request URLs at DEBUG, and lookupKey's URL carries a key string; with
    `dump_request_response` it also logs bodies, where getKeyString's answer holds one.
    """

    _PARAM = re.compile(r"((?:keyString|key)=)[^&\s'\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        cleaned = mask_keys(self._PARAM.sub(r"\1REDACTED", message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


for _name in ("googleapiclient.discovery", "googleapiclient.http", "googleapiclient.model"):
    logging.getLogger(_name).addFilter(RedactKeyStrings())


class DiscoveryClient:
    """Base of keyward's small Google clients: credentials, an optional prebuilt API object (tests and
    other endpoints pass one), the retry policy, and the API built on first use."""

    API: tuple[str, str]  # (discovery name, version), e.g. ("apikeys", "v2")

    def __init__(self, credentials: Any = None, api: Any = None, *, retry_budget: float = 120.0,
                 timeout: float = DEFAULT_TIMEOUT, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[int, float, Transient], None] | None = None, keep_alive: bool = False):
        self._credentials = credentials
        self._api = api
        self._timeout = timeout
        self._sleep = sleep
        self._caller = Caller(retry_budget, sleep=sleep, on_retry=on_retry, keep_alive=keep_alive)

    def close(self) -> None:
        """Close the kept-alive connection, if any (a later call opens a new one)."""
        http = getattr(self._api, "_http", None) if self._api is not None else None
        close = getattr(http, "close", None)
        if callable(close):
            close()

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = build_api(*self.API, self._credentials, timeout=self._timeout)
        return self._api

    def _pages(self, request: Callable[..., Any], kwargs: dict[str, Any], field: str, *, action: str,
               project: str | None, what: str):
        """Yield every dict item of `field` over all pages of a list call; `request(**kwargs)` builds
        one page's request. A page token Google repeats would loop forever: raise Transient."""
        token: str | None = None
        seen: set[str] = set()
        while True:
            page_kwargs = dict(kwargs, pageToken=token) if token else kwargs
            page = self._caller.run(lambda: request(**page_kwargs), action=action, project=project)
            for item in page.get(field) or []:
                if isinstance(item, dict):
                    yield item
            token = page.get("nextPageToken") or None
            if not token:
                return
            if token in seen:
                raise Transient(f"{what} in project {project}: Google repeated a page token",
                                reason="MALFORMED")
            seen.add(token)

