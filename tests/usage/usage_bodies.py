"""Gemini error bodies byte for byte as Google sends them (pretty-printed JSON, Help first)."""

from __future__ import annotations

import json

MODEL = "gemini-2.5-flash"
RPM_ID = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
RPD_ID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
TPM_ID = "GenerateContentInputTokensPerModelPerMinute-FreeTier"
_HELP = {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}


def violation(quota_id: str, value: str = "10", model: str = MODEL) -> dict:
    tokens = "Token" in quota_id
    metric = ("generativelanguage.googleapis.com/generate_content_free_tier_input_token_count"
              if tokens else "generativelanguage.googleapis.com/generate_content_free_tier_requests")
    return {"quotaMetric": metric, "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": model}, "quotaValue": value}


def quota_429(*violations: dict, retry: str = "26s") -> str:
    return json.dumps({"error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details. "
                   "For more information on this error, head to: "
                   "https://ai.google.dev/gemini-api/docs/rate-limits. "
                   f"Please retry in {retry[:-1]}.02s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [_HELP,
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                     "violations": list(violations)},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry}]}},
        indent=2)


def key_invalid_400() -> str:
    return json.dumps({"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com",
                     "metadata": {"service": "generativelanguage.googleapis.com"}},
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}]}}, indent=2)


def token_type_401() -> str:
    return json.dumps({"error": {
        "code": 401, "message": "API keys are not supported by this API. Expected OAuth2 access "
                                "token or other authentication credentials that assert a principal.",
        "status": "UNAUTHENTICATED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED", "domain": "googleapis.com",
                     "metadata": {"service": "generativelanguage.googleapis.com",
                                  "method": "google.ai.generativelanguage.v1beta."
                                            "GenerativeService.GenerateContent"}}]}},
        indent=2)


def suspended_403() -> str:
    return json.dumps({"error": {
        "code": 403, "message": "Permission denied: Consumer 'api_key:…' has been suspended.",
        "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_SUSPENDED",
                     "domain": "googleapis.com",
                     "metadata": {"service": "generativelanguage.googleapis.com"}}]}}, indent=2)
