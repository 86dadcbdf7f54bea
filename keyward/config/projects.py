"""The schema of `[projects.ID]` tables and their `[projects.ID.limits.MODEL]` quotas.

The table name is the Google Cloud project id. A managed project is one where keyward may create
and delete keys through the API Keys API; the keys it creates are auth keys bound to a service
account, so a managed project must name one.
"""

from __future__ import annotations

from typing import Any

from keyward.config import values as v
from keyward.config.model import DEFAULT_POOL, LimitConfig, PoolConfig, ProjectConfig, RotationConfig
from keyward.config.pools import MODEL_HINT, MODEL_PATTERN, POOL_NAME_HINT, POOL_NAME_PATTERN
from keyward.config.problems import KeyPath, Problems, describe
from keyward.config.sections import (
    MIN_KEY_AGE,
    PROJECT_ID_HINT,
    PROJECT_ID_PATTERN,
    ages_message,
    check_fields,
    table_or_none,
)

SERVICE_ACCOUNT_PATTERN = r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
SERVICE_ACCOUNT_HINT = "expected a service account email like 'keyward@my-project-1.iam.gserviceaccount.com'"


def _number(value: Any, path: KeyPath, problems: Problems) -> Any:
    """The project number, written as digits in a string or as a TOML integer."""
    # Google's project numbers are about 12 digits; 19 is what a 64-bit column holds.
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**19:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19 and int(value) > 0:
        return value
    problems.add(path, f"expected the project number (digits only, like \"123456789012\"), got {describe(value)}")
    return v.INVALID


def _allowed_ips(value: Any, path: KeyPath, problems: Problems) -> Any:
    import ipaddress

    if not isinstance(value, list):
        problems.add(path, f"expected a list of IP addresses or CIDR networks, got {describe(value)}")
        return v.INVALID
    result = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            problems.add((*path, index), f"expected an IP address or CIDR network string, got {describe(item)}")
            continue
        try:
            ipaddress.ip_network(item.strip())
        except ValueError as error:
            why = f" ({error})" if "host bits" in str(error) else ""
            problems.add((*path, index), f"{item!r} is not an IP address or CIDR network{why}")
            continue
        result.append(item.strip())
    return tuple(result) if len(result) == len(value) else v.INVALID


LIMIT: dict[str, v.Checker] = {"rpm": v.positive_int, "tpm": v.positive_int, "rpd": v.positive_int}


def _limits(value: Any, path: KeyPath, problems: Problems) -> Any:
    if not isinstance(value, dict):
        problems.add(path, f"expected [limits.MODEL] tables, got {describe(value)}")
        return v.INVALID
    limits = {}
    for model, raw in value.items():
        where = (*path, model)
        if v.text(MODEL_PATTERN, MODEL_HINT)(model, where, problems) is v.INVALID:
            continue
        table = table_or_none(raw, where, problems)
        if table is None:
            continue
        if not table:
            problems.add(where, "set at least one of rpm, tpm, rpd")
        limits[model] = LimitConfig(**check_fields(table, LIMIT, where, problems))
    return limits


PROJECT: dict[str, v.Checker] = {
    "number": _number,
    "pool": v.text(POOL_NAME_PATTERN, POOL_NAME_HINT),
    "managed": v.boolean,
    "service_account": v.text(SERVICE_ACCOUNT_PATTERN, SERVICE_ACCOUNT_HINT),
    "allowed_ips": _allowed_ips,
    "min_age": v.duration(MIN_KEY_AGE),
    "max_age": v.duration(MIN_KEY_AGE),
    "limits": _limits,
}


def build_project(project_id: str, raw: Any, rotation: RotationConfig, problems: Problems) -> ProjectConfig | None:
    path: KeyPath = ("projects", project_id)
    table = table_or_none(raw, path, problems)
    if table is None:
        return None
    if not isinstance(project_id, str) or v.text(PROJECT_ID_PATTERN, PROJECT_ID_HINT)(project_id, path, problems) is v.INVALID:
        check_fields(table, PROJECT, path, problems)  # still report the problems inside
        return None
    values = check_fields(table, PROJECT, path, problems)
    project = ProjectConfig(id=project_id, **values)
    if project.managed and project.service_account is None and "service_account" not in table:
        problems.add(
            (*path, "service_account"),
            "required when managed = true: the keys keyward creates are auth keys bound to a service account",
        )
    if project.allowed_ips and not project.managed:
        problems.add(
            (*path, "allowed_ips"),
            "only used when managed = true (keyward sets it on the keys it creates); "
            "restrict an unmanaged key in the Google Cloud console",
        )
    min_age = project.min_age or rotation.min_age
    max_age = project.max_age or rotation.max_age
    if min_age > max_age and ("min_age" in values or "max_age" in values):
        problems.add((*path, "min_age" if "min_age" in values else "max_age"), ages_message(min_age, max_age))
    return project


def build_projects(raw: Any, rotation: RotationConfig, problems: Problems) -> dict[str, ProjectConfig]:
    """Return the projects the file declares, recording every problem found."""
    if raw is None:
        return {}
    table = table_or_none(raw, ("projects",), problems) or {}
    projects = {}
    for project_id, project_raw in table.items():
        project = build_project(project_id, project_raw, rotation, problems)
        if project is not None:
            projects[project_id] = project
    return projects


def check_pool_references(projects: dict[str, ProjectConfig], pools: dict[str, PoolConfig], problems: Problems) -> None:
    """Every project's pool must be declared in the file, or be the implicit pool "default"."""
    for project in projects.values():
        if project.pool == DEFAULT_POOL or project.pool in pools:
            continue
        import difflib

        known = sorted({*pools, DEFAULT_POOL})
        close = difflib.get_close_matches(project.pool, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.add(
            ("projects", project.id, "pool"),
            f"pool {project.pool!r} is not declared{hint}: declare it with a [pools.{project.pool}] table "
            f"or use one of: {', '.join(known)}",
        )
