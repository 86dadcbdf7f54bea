"""Service Usage (v1beta1): the Gemini rate limits Google applies to a project, per model.

Google publishes each limit as a quota bucket: `consumerQuotaMetrics[].consumerQuotaLimits[]
.quotaBuckets[]`, with the unit saying the window ("1/min/{project}/{model}", "1/d/{project}/
{model}"), the metric saying what is counted (requests or input tokens), `dimensions.model`
naming the model, and `effectiveLimit` an int64 string where -1 means unlimited.
"""

from __future__ import annotations

import logging
from typing import Any

from keyward.google.transport import DiscoveryClient

log = logging.getLogger(__name__)

GEMINI_SERVICE = "generativelanguage.googleapis.com"
ALL_MODELS = "*"  # a bucket without a model dimension: the default for every model
PAGE_SIZE = 100


class ServiceUsageClient(DiscoveryClient):
    """A small client for consumer quota metrics; pass `api` to aim it elsewhere."""

    API = ("serviceusage", "v1beta1")

    def quota_metrics(self, project: str, service: str = GEMINI_SERVICE) -> list[dict[str, Any]]:
        """Return every ConsumerQuotaMetric of `service` in `project` (all pages)."""
        parent = f"projects/{project}/services/{service}"
        return list(self._pages(self.api.services().consumerQuotaMetrics().list,
                                {"parent": parent, "view": "BASIC", "pageSize": PAGE_SIZE}, "metrics",
                                action="quota", project=project,
                                what="reading Gemini quota limits"))

    def gemini_limits(self, project: str) -> dict[str, dict[str, int | None]]:
        """Return `{model: {"rpm": n, "tpm": n, "rpd": n}}` for Gemini in `project`.

        None means unlimited or not published. Model `"*"` holds limits without a model
        dimension (the default for unlisted models). When several metrics limit the same thing
        for a model (free and paid tier), the smallest wins: keyward must never plan above it.
        """
        return limits_from_metrics(self.quota_metrics(project))


def limits_from_metrics(metrics: list[dict[str, Any]]) -> dict[str, dict[str, int | None]]:
    """Classify consumer quota metrics into per-model rpm/tpm/rpd (see `gemini_limits`)."""
    found: dict[str, dict[str, int | None]] = {}
    for metric in metrics:
        metric_name = str(metric.get("metric") or metric.get("name") or "")
        for limit in metric.get("consumerQuotaLimits") or []:
            if not isinstance(limit, dict):
                continue
            field = _field(metric_name, str(limit.get("unit") or metric.get("unit") or ""))
            if field is None:
                continue
            for bucket in limit.get("quotaBuckets") or []:
                if not isinstance(bucket, dict):
                    continue
                dims = bucket.get("dimensions")
                model = str((dims if isinstance(dims, dict) else {}).get("model") or ALL_MODELS)
                value = _limit_value(bucket)
                entry = found.setdefault(model, {"rpm": None, "tpm": None, "rpd": None})
                if value is not None and (entry[field] is None or value < entry[field]):
                    entry[field] = value
    return found


def _field(metric_name: str, unit: str) -> str | None:
    """Return "rpm", "tpm" or "rpd" for a limit, or None for limits keyward does not plan by."""
    window = unit.split("/")[1] if unit.count("/") >= 1 else ""
    tokens = "token" in metric_name.lower()
    if window == "min":
        return "tpm" if tokens else "rpm"
    if window == "d" and not tokens:
        return "rpd"
    return None


def _limit_value(bucket: dict[str, Any]) -> int | None:
    raw = bucket.get("effectiveLimit", bucket.get("defaultLimit"))
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return None if value < 0 else value
