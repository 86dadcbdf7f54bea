"""google-genai on the pool's current key, with usage and refusals reported: `from keyward.genai import Client`.

    from keyward.genai import Client
    client = Client("default")
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Hello")
    response = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Hello")

Before every call the published key file is checked with a `stat` (no database, no daemon round
trip), and a new `genai.Client` is made only when the key changed. After `generate_content`:

- success: the call's `usage_metadata` is reported (prompt tokens as input; candidate and thought
  tokens as output), once;
- a 429 or a key error (invalid, unsupported type, blocked): Google's body is reported exactly as
  it came, the daemon publishes another project's key within milliseconds, and the call is retried
  once with that key;
- every project exhausted: `keyward.errors.AllExhausted` is raised, with `until` (when the first
  project frees up), without sending a request that could only fail.

`generate_content_stream` (sync and async) is handled the same way: usage is reported once, from
the last chunk that carried it (also when the caller stops reading early), and a refusal before
the first chunk is retried. Other methods (`count_tokens`, `files`, `chats`, …) pass through to a client on the current key,
without reporting. Reporting never fails the call: a report nobody takes is spooled (see
`keyward.usage.spool`). `google-genai` itself is imported when the first Client is made.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import timezone
from collections.abc import AsyncIterator, Iterator
from typing import Any

from keyward.errors import AllExhausted, KeywardError, NothingPublished
from keyward.keywatch import KeyWatch, PoolState

log = logging.getLogger(__name__)

SWITCH_WAIT = 2.0  # seconds to wait for the daemon to publish another key after a refusal
KEY_ERROR_REASONS = ("API_KEY_INVALID", "ACCESS_TOKEN_TYPE_UNSUPPORTED", "API_KEY_SERVICE_BLOCKED",
                     "API_KEY_IP_ADDRESS_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "CONSUMER_SUSPENDED")
WRAPPED = ("generate_content",)


def _model_name(args: tuple, kwargs: dict) -> str | None:
    model = kwargs.get("model", args[0] if args else None)
    if not isinstance(model, str):
        return None
    return model.rsplit("/", 1)[-1]


def _body(exc: Any) -> Any:
    return getattr(exc, "details", None) or {"error": {"code": getattr(exc, "code", None),
                                                       "status": getattr(exc, "status", None),
                                                       "message": getattr(exc, "message", None)}}


def is_refusal(exc: Any) -> bool:
    """True for the errors keyward acts on: quota (429) and a key Gemini will not take."""
    code = getattr(exc, "code", None)
    if code == 429 or code == 401:
        return True
    if code not in (400, 403):
        return False
    error = (_body(exc) or {}).get("error") if isinstance(_body(exc), dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("reason") in KEY_ERROR_REASONS:
            return True
    return False


def _exhausted(pool: str, state: PoolState) -> AllExhausted:
    until = state.exhausted_until
    if until is None:
        when = "an unknown time (see `keyward status`)"
    else:
        wait = max(0, int(state.seconds_until_available()))
        when = f"{until.astimezone(timezone.utc).isoformat(timespec='seconds')} (in {wait}s)"
    return AllExhausted(f"every project of pool {pool!r} is out of quota until {when}", pool=pool, until=until)


class Client:
    """A google-genai client that always uses `pool`'s published key (see the module docstring).

    `http_options` and other keyword arguments go to every `genai.Client` made; with
    KEYWARD_GOOGLE_EMULATOR_HOST set and no `http_options`, calls go to keyward's emulator.
    """

    def __init__(self, pool: str = "default", *, config_path: str | None = None,
                 http_options: Any = None, switch_wait: float = SWITCH_WAIT, **client_kwargs: Any):
        from google import genai  # noqa: F401  (fail here, not on the first call, when it is missing)

        self.pool = pool
        self.config_path = config_path
        self.switch_wait = switch_wait
        self._watch = KeyWatch(pool, config_path=config_path)
        emulator = os.environ.get("KEYWARD_GOOGLE_EMULATOR_HOST")
        if http_options is None and emulator:
            http_options = {"base_url": f"http://{emulator}"}
        self._http_options = http_options
        self._kwargs = client_kwargs
        self._inner: Any = None
        self._inner_key: str | None = None
        self._made: list[Any] = []  # every genai.Client made, closed by close()/aclose()
        self.models = _Models(self, asynchronous=False)
        self.aio = _Aio(self)

    # -- the key -------------------------------------------------------------------------------

    def _client(self) -> tuple[Any, str]:
        key = self._watch.key()
        if key != self._inner_key:
            from google import genai

            kwargs = dict(self._kwargs)
            if self._http_options is not None:
                kwargs["http_options"] = self._http_options
            # The old client may still serve a call in another thread: it is closed by close().
            self._inner, self._inner_key = genai.Client(api_key=key, **kwargs), key
            self._made.append(self._inner)
        return self._inner, key

    def close(self) -> None:
        """Close the HTTP connections of every client made (sync side)."""
        for inner in self._made:
            inner.close()

    async def aclose(self) -> None:
        """Close the connections of every client made, async side included."""
        for inner in self._made:
            await inner.aio.aclose()
            inner.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def state(self) -> PoolState:
        """What is published for the pool now (see keyward.client.state)."""
        return self._watch.state()

    def _refuse_if_exhausted(self) -> None:
        try:
            state = self._watch.state()
        except NothingPublished:
            return
        if state.all_exhausted and state.seconds_until_available() > 0:
            raise _exhausted(self.pool, state)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client()[0], name)

    # -- reporting -----------------------------------------------------------------------------

    def _report_usage(self, response: Any, key: str, model: str | None) -> None:
        meta = getattr(response, "usage_metadata", None)
        prompt = (getattr(meta, "prompt_token_count", None) or 0) + (getattr(meta, "tool_use_prompt_token_count", None) or 0)
        output = (getattr(meta, "candidates_token_count", None) or 0) + (getattr(meta, "thoughts_token_count", None) or 0)
        try:
            from keyward import client

            client.report(self.pool, key=key, model=model, requests=1, input_tokens=prompt,
                          output_tokens=output, config_path=self.config_path)
        except KeywardError as exc:
            log.warning("usage of pool %s not reported: %s", self.pool, exc)

    def _report_refusal(self, exc: Any, key: str, model: str | None) -> None:
        try:
            from keyward import client

            client.report_error(exc.code, _body(exc), pool=self.pool, key=key, model=model,
                                config_path=self.config_path)
        except KeywardError as error:
            log.warning("a %s answer for pool %s not reported: %s", exc.code, self.pool, error)

    # -- after a refusal -----------------------------------------------------------------------

    def _next_key(self, old: str) -> bool:
        """One poll: True when another key is published; raise AllExhausted when every project is."""
        self._refuse_if_exhausted()
        try:
            return self._watch.key() != old
        except NothingPublished:
            return False

    def _after_refusal(self, exc: Exception, old: str) -> None:
        """Wait for another key (return), or raise AllExhausted or `exc` when none comes."""
        deadline = time.monotonic() + self.switch_wait
        while time.monotonic() < deadline:
            if self._next_key(old):
                return
            time.sleep(0.02)
        raise exc

    async def _after_refusal_async(self, exc: Exception, old: str) -> None:
        deadline = time.monotonic() + self.switch_wait
        while time.monotonic() < deadline:
            if self._next_key(old):
                return
            await asyncio.sleep(0.02)
        raise exc

    def _final(self, exc: Exception) -> None:
        """After the retry was refused too: say so as AllExhausted when that is the reason."""
        self._refuse_if_exhausted()
        raise exc

    # -- calls ---------------------------------------------------------------------------------

    def call(self, method: str, args: tuple, kwargs: dict) -> Any:
        from google.genai import errors

        model = _model_name(args, kwargs)
        self._refuse_if_exhausted()
        for attempt in (0, 1):
            inner, key = self._client()
            try:
                response = getattr(inner.models, method)(*args, **kwargs)
            except errors.APIError as exc:
                if not is_refusal(exc):
                    raise
                self._report_refusal(exc, key, model)
                if attempt:
                    self._final(exc)
                self._after_refusal(exc, key)
                continue
            self._report_usage(response, key, model)
            return response
        raise AssertionError("unreachable")

    async def call_async(self, method: str, args: tuple, kwargs: dict) -> Any:
        from google.genai import errors

        model = _model_name(args, kwargs)
        self._refuse_if_exhausted()
        for attempt in (0, 1):
            inner, key = self._client()
            try:
                response = await getattr(inner.aio.models, method)(*args, **kwargs)
            except errors.APIError as exc:
                if not is_refusal(exc):
                    raise
                await asyncio.to_thread(self._report_refusal, exc, key, model)
                if attempt:
                    self._final(exc)
                await self._after_refusal_async(exc, key)
                continue
            await asyncio.to_thread(self._report_usage, response, key, model)
            return response
        raise AssertionError("unreachable")


    def stream(self, args: tuple, kwargs: dict) -> Iterator[Any]:
        """generate_content_stream: usage reported once, from the last chunk that carried it, also
        when the caller stops early; a refusal before the first chunk is retried like a call."""
        from google.genai import errors

        model = _model_name(args, kwargs)
        self._refuse_if_exhausted()
        for attempt in (0, 1):
            inner, key = self._client()
            last, started = None, False
            try:
                for chunk in inner.models.generate_content_stream(*args, **kwargs):
                    started = True
                    last = chunk if getattr(chunk, "usage_metadata", None) is not None else last
                    yield chunk
                return
            except errors.APIError as exc:
                if started or not is_refusal(exc):
                    raise
                self._report_refusal(exc, key, model)
                if attempt:
                    self._final(exc)
                self._after_refusal(exc, key)
            finally:
                if last is not None:
                    self._report_usage(last, key, model)

    async def stream_async(self, args: tuple, kwargs: dict) -> AsyncIterator[Any]:
        from google.genai import errors

        model = _model_name(args, kwargs)
        self._refuse_if_exhausted()
        for attempt in (0, 1):
            inner, key = self._client()
            last, started = None, False
            try:
                async for chunk in await inner.aio.models.generate_content_stream(*args, **kwargs):
                    started = True
                    last = chunk if getattr(chunk, "usage_metadata", None) is not None else last
                    yield chunk
                return
            except errors.APIError as exc:
                if started or not is_refusal(exc):
                    raise
                await asyncio.to_thread(self._report_refusal, exc, key, model)
                if attempt:
                    self._final(exc)
                await self._after_refusal_async(exc, key)
            finally:
                if last is not None:
                    await asyncio.to_thread(self._report_usage, last, key, model)


class _Models:
    """`client.models` / `client.aio.models`: generate_content wrapped, the rest passed through."""

    def __init__(self, owner: Client, *, asynchronous: bool):
        self._owner = owner
        self._async = asynchronous

    def generate_content(self, *args: Any, **kwargs: Any) -> Any:
        if self._async:
            return self._owner.call_async("generate_content", args, kwargs)
        return self._owner.call("generate_content", args, kwargs)

    def generate_content_stream(self, *args: Any, **kwargs: Any) -> Any:
        if self._async:
            return self._aiter(args, kwargs)
        return self._owner.stream(args, kwargs)

    async def _aiter(self, args: tuple, kwargs: dict) -> AsyncIterator[Any]:
        """`await client.aio.models.generate_content_stream(...)` gives an async iterator, as in google-genai."""
        return self._owner.stream_async(args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        inner = self._owner._client()[0]
        return getattr(inner.aio.models if self._async else inner.models, name)


class _Aio:
    def __init__(self, owner: Client):
        self._owner = owner
        self.models = _Models(owner, asynchronous=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._owner._client()[0].aio, name)


__all__ = ["AllExhausted", "Client", "is_refusal"]
