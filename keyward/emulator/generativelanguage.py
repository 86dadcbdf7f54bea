"""Generative Language API (Gemini) under `/v1` and `/v1beta`: models.list, models.get,
generateContent, streamGenerateContent and countTokens.

The key comes from the `x-goog-api-key` header (what google-genai sends) or the `key` query
parameter (what discovery clients send). Keys are judged as Gemini judges them: unknown or deleted
→ 400 API_KEY_INVALID; standard (AIza) keys → 401 ACCESS_TOKEN_TYPE_UNSUPPORTED while
`State.reject_standard_keys` is on; restrictions → 403 API_KEY_SERVICE_BLOCKED or
API_KEY_IP_ADDRESS_BLOCKED. Token counts are deterministic: ceil(characters / 4) of the text.
Every answered call that can be tied to a project is recorded for Monitoring.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import re
import uuid
from typing import Any

from keyward.emulator import errors, ratelimits
from keyward.emulator.errors import RpcError
from keyward.emulator.routing import Reply, Request, Route, route
from keyward.emulator.state import DEFAULT_LIMITS, Call, Key, Project, State

SERVICE = "generativelanguage.googleapis.com"
TITLE = "Generative Language API"
_V = r"/(?P<v>v1|v1beta)"
_GENERATE = ("generateContent", "streamGenerateContent")


def method_name(version: str, rpc: str) -> str:
    """Return the full RPC name Monitoring reports, e.g. `google.ai.generativelanguage.v1beta.
    GenerativeService.GenerateContent`."""
    service = "ModelService" if rpc in ("ListModels", "GetModel") else "GenerativeService"
    return f"google.ai.generativelanguage.{version}.{service}.{rpc}"


def count_tokens(payload: dict[str, Any]) -> int:
    """Return the emulator's token count of a request: ceil(characters of all text / 4)."""
    chars = 0
    sources = list(payload.get("contents") or [])
    if isinstance(payload.get("systemInstruction"), dict):
        sources.append(payload["systemInstruction"])
    for content in sources:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                chars += len(part["text"])
    return math.ceil(chars / 4)


class GenerativeLanguage:
    """Handlers for Gemini over one State."""

    def __init__(self, state: State):
        self.state = state

    def routes(self) -> list[Route]:
        return [
            route(SERVICE, "GET", _V + r"/models", self.list_models),
            route(SERVICE, "GET", _V + r"/models/(?P<model>[^/:]+)", self.get_model),
            route(SERVICE, "POST", _V + r"/models/(?P<model>[^/:]+):(?P<rpc>[A-Za-z]+)", self.call),
        ]

    # -- authentication ------------------------------------------------------------------------

    def _authenticate(self, req: Request, rpc_method: str) -> tuple[Project, Key]:
        secret = req.headers.get("x-goog-api-key") or req.arg("key") or ""
        if not secret:
            raise RpcError("PERMISSION_DENIED",
                           "Method doesn't allow unregistered callers (callers without established "
                           "identity). Please use API Key or other form of API consumer identity "
                           "to call this API.")
        key = self.state.key_by_string(secret)
        if key is None or key.delete_time is not None:
            message = "API key not valid. Please pass a valid API key."
            raise RpcError("INVALID_ARGUMENT", message, [
                errors.error_info("API_KEY_INVALID", "googleapis.com", {"service": SERVICE}),
                errors.localized(message),
            ])
        project = self.state.find_project(key.project_number)
        if project is None:  # a key outlived its project (reset between calls)
            raise RpcError("INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                           [errors.error_info("API_KEY_INVALID", "googleapis.com",
                                              {"service": SERVICE})])
        return project, key

    def _admit(self, req: Request, project: Project, key: Key, rpc_method: str) -> None:
        """Raise the error Gemini gives this key for this method, if any."""
        if key.kind == "standard" and self.state.reject_standard_keys:
            raise RpcError("UNAUTHENTICATED",
                           "API keys are not supported by this API. Expected OAuth2 access token "
                           "or other authentication credentials that assert a principal. See "
                           "https://cloud.google.com/docs/authentication", [
                               errors.error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", "googleapis.com",
                                                 {"service": SERVICE, "method": rpc_method})])
        if SERVICE in project.disabled:
            raise errors.service_disabled(SERVICE, TITLE, project.number)
        targets = key.restrictions.get("apiTargets") or []
        if targets and not any(_target_allows(t, rpc_method) for t in targets):
            raise RpcError("PERMISSION_DENIED",
                           f"Requests to this API {SERVICE} method {rpc_method} are blocked.", [
                               errors.error_info("API_KEY_SERVICE_BLOCKED", "googleapis.com", {
                                   "service": SERVICE, "methodName": rpc_method,
                                   "consumer": f"projects/{project.number}",
                                   "apiName": SERVICE})])
        allowed = (key.restrictions.get("serverKeyRestrictions") or {}).get("allowedIps") or []
        if allowed and not _ip_allowed(req.client_ip, allowed):
            raise RpcError("PERMISSION_DENIED",
                           f"The provided API key has an IP address restriction. The originating "
                           f"IP address of the call ({req.client_ip}) violates this restriction.", [
                               errors.error_info("API_KEY_IP_ADDRESS_BLOCKED", "googleapis.com", {
                                   "service": SERVICE, "consumer": f"projects/{project.number}"})])

    def _record(self, project: Project, key: Key, model: str, rpc_method: str, version: str,
                code: int, tokens: int, counted: bool) -> None:
        self.state.calls.append(Call(
            at=self.state.now(), project_number=project.number, model=model, method=rpc_method,
            version=version, credential_uid=key.uid, code=code, input_tokens=tokens,
            counted=counted))

    def _guarded(self, req: Request, version: str, rpc: str, model: str, work) -> Reply:
        """Authenticate, admit, run `work(project, key) -> (reply, tokens, counted)`, record."""
        rpc_method = method_name(version, rpc)
        with self.state.lock:
            project, key = self._authenticate(req, rpc_method)
            try:
                self._admit(req, project, key, rpc_method)
                reply, tokens, counted = work(project, key)
            except RpcError as exc:
                self._record(project, key, model, rpc_method, version, exc.code, 0, False)
                raise
            self._record(project, key, model, rpc_method, version, reply[0], tokens, counted)
            return reply

    # -- models ----------------------------------------------------------------------------------

    def _catalog(self) -> list[str]:
        names = set(DEFAULT_LIMITS)
        for project in self.state.projects.values():
            names.update(project.limits)
        return sorted(names)

    def _model_resource(self, model: str, version: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}", "baseModelId": model, "version": "001",
            "displayName": model.replace("-", " ").title(),
            "description": f"Emulated {model}.",
            "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2,
        }

    def _require_model(self, model: str, version: str, rpc: str) -> None:
        if model not in self._catalog():
            raise errors.not_found(
                f"models/{model} is not found for API version {version}, or is not supported for "
                f"{rpc}. Call ListModels to see the list of available models and their supported "
                "methods.")

    def list_models(self, req: Request, m: re.Match[str]) -> Reply:
        version = m["v"]

        def work(project: Project, key: Key):
            models = [self._model_resource(n, version) for n in self._catalog()]
            return (200, {"models": models}), 0, False

        return self._guarded(req, version, "ListModels", "", work)

    def get_model(self, req: Request, m: re.Match[str]) -> Reply:
        version, model = m["v"], m["model"]

        def work(project: Project, key: Key):
            self._require_model(model, version, "getModel")
            return (200, self._model_resource(model, version)), 0, False

        return self._guarded(req, version, "GetModel", model, work)

    # -- generation ------------------------------------------------------------------------------

    def call(self, req: Request, m: re.Match[str]) -> Reply:
        version, model, rpc = m["v"], m["model"], m["rpc"]
        if rpc not in (*_GENERATE, "countTokens"):
            raise errors.not_found(f"Method {rpc} is not found for models/{model}.")
        rpc_name = rpc[0].upper() + rpc[1:]

        def work(project: Project, key: Key):
            self._require_model(model, version, rpc)
            payload = req.json_object()
            if not payload.get("contents"):
                raise errors.invalid_argument(
                    "* GenerateContentRequest.contents: contents is not specified\n", "contents")
            tokens = count_tokens(payload)
            if rpc == "countTokens":
                return (200, {"totalTokens": tokens, "promptTokensDetails": [
                    {"modality": "TEXT", "tokenCount": tokens}]}), tokens, False
            exceeded = ratelimits.check(self.state, project, model, tokens, self.state.now())
            if exceeded is not None:
                raise exceeded
            body = _generation(model, tokens)
            if rpc == "streamGenerateContent":
                return (200, _stream(body, sse=req.arg("alt") == "sse")), tokens, True
            return (200, body), tokens, True

        return self._guarded(req, version, rpc_name, model, work)


def _generation(model: str, prompt_tokens: int) -> dict[str, Any]:
    text = f"This is an emulated answer from {model}."
    out_tokens = math.ceil(len(text) / 4)
    return {
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": out_tokens,
                          "totalTokenCount": prompt_tokens + out_tokens,
                          "promptTokensDetails": [{"modality": "TEXT",
                                                   "tokenCount": prompt_tokens}]},
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }


def _stream(body: dict[str, Any], *, sse: bool) -> Any:
    """The answer in two chunks, as Gemini streams: text split, usage in each chunk and complete
    in the last; a JSON array, or server-sent events with `alt=sse`."""
    from keyward.emulator.server import EventStream

    text = body["candidates"][0]["content"]["parts"][0]["text"]
    half = len(text) // 2
    usage = body["usageMetadata"]
    first = {**body, "candidates": [{"content": {"parts": [{"text": text[:half]}], "role": "model"}, "index": 0}],
             "usageMetadata": {"promptTokenCount": usage["promptTokenCount"],
                               "totalTokenCount": usage["promptTokenCount"]}}
    last = {**body, "candidates": [{**body["candidates"][0],
                                    "content": {"parts": [{"text": text[half:]}], "role": "model"}}]}
    return EventStream([first, last]) if sse else [first, last]


def _target_allows(target: dict[str, Any], rpc_method: str) -> bool:
    if target.get("service") != SERVICE:
        return False
    methods = target.get("methods") or []
    return not methods or any(fnmatch.fnmatchcase(rpc_method, pat) or
                              fnmatch.fnmatchcase(rpc_method.rsplit(".", 1)[-1], pat)
                              for pat in methods)


def _ip_allowed(client_ip: str, allowed: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
