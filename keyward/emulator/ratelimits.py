"""Gemini's per-project, per-model quotas: requests per minute, input tokens per minute, requests
per day; and the 429 body Gemini sends when one is exceeded.

Windows: the minute quotas look at accepted requests of the last 60 seconds (a sliding window);
the day quota counts accepted requests since the last midnight in America/Los_Angeles, which is
when Google resets it. Quotas are per project, so every key of a project shares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyward.emulator import errors
from keyward.emulator.clock import next_pacific_midnight, pacific_day_start
from keyward.emulator.errors import RpcError
from keyward.emulator.state import Project, State

SERVICE = "generativelanguage.googleapis.com"
REQUESTS_METRIC = f"{SERVICE}/generate_content_free_tier_requests"
TOKENS_METRIC = f"{SERVICE}/generate_content_free_tier_input_token_count"
RPM_ID = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
RPD_ID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
TPM_ID = "GenerateContentInputTokensPerModelPerMinute-FreeTier"
DOCS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"


@dataclass
class Usage:
    """What a project has used of one model's quotas at a moment."""

    minute_requests: int
    minute_tokens: int
    day_requests: int
    oldest_in_minute: float | None


def usage(state: State, project: Project, model: str, now: float) -> Usage:
    """Return `project`'s accepted usage of `model` as seen at `now` (hold `state.lock`)."""
    minute_start, day_start = now - 60.0, pacific_day_start(now)
    minute_requests = minute_tokens = day_requests = 0
    oldest: float | None = None
    for call in state.calls:
        if not call.counted or call.project_number != project.number or call.model != model:
            continue
        if call.at >= day_start:
            day_requests += 1
        if call.at > minute_start:
            minute_requests += 1
            minute_tokens += call.input_tokens
            oldest = call.at if oldest is None else min(oldest, call.at)
    return Usage(minute_requests, minute_tokens, day_requests, oldest)


def check(state: State, project: Project, model: str, tokens: int, now: float) -> RpcError | None:
    """Return the 429 Gemini would send if one more request of `tokens` input tokens exceeds a
    quota of `project` for `model`, listing every exceeded quota at once; None if it fits."""
    limits = project.limits.get(model)
    if not limits:
        return None
    used = usage(state, project, model, now)
    minute_free_at = (used.oldest_in_minute + 60.0 - now) if used.oldest_in_minute else 60.0
    violations: list[tuple[str, str, int]] = []
    delays: list[float] = []
    if "rpm" in limits and used.minute_requests + 1 > limits["rpm"]:
        violations.append((REQUESTS_METRIC, RPM_ID, limits["rpm"]))
        delays.append(minute_free_at)
    if "tpm" in limits and used.minute_tokens + tokens > limits["tpm"]:
        violations.append((TOKENS_METRIC, TPM_ID, limits["tpm"]))
        delays.append(minute_free_at)
    if "rpd" in limits and used.day_requests + 1 > limits["rpd"]:
        violations.append((REQUESTS_METRIC, RPD_ID, limits["rpd"]))
        delays.append(next_pacific_midnight(now) - now)
    if not violations:
        return None
    return quota_exceeded(model, violations, max(max(delays), 0.0))


def quota_exceeded(model: str, violations: list[tuple[str, str, int]], delay: float) -> RpcError:
    """Build the 429 RESOURCE_EXHAUSTED body in the shape Gemini sends today: Help first, then
    QuotaFailure with every violation, then RetryInfo; the message ends with the retry hint."""
    lines = "".join(f"\n* Quota exceeded for metric: {metric}, limit: {value}, model: {model}"
                    for metric, _, value in violations)
    message = ("You exceeded your current quota, please check your plan and billing details. "
               f"For more information on this error, head to: {DOCS_URL}. To monitor your "
               f"current usage, head to: https://ai.dev/usage?tab=rate-limit. {lines}\n"
               f"Please retry in {_seconds(delay)}.")
    return RpcError("RESOURCE_EXHAUSTED", message, [
        errors.help_links(("Learn more about Gemini API quotas", DOCS_URL)),
        errors.quota_failure([
            {"quotaMetric": metric, "quotaId": quota_id,
             "quotaDimensions": {"location": "global", "model": model},
             "quotaValue": str(value)}
            for metric, quota_id, value in violations
        ]),
        errors.retry_info(int(delay)),
    ])


def _seconds(delay: float) -> str:
    text = f"{delay:.2f}".rstrip("0").rstrip(".")
    return f"{text}s"
