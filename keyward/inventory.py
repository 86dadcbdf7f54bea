"""Pools, projects and keys as the operator declares them: in the config file or with the CLI.

The config file owns what it declares: at every start its pools, projects and limits are synced into
the database and win over anything the CLI changed, because the file is what configuration
management (Ansible, NixOS, a git repo) owns and reviews. The CLI adds and removes everything else,
and refuses to remove or edit what the file declares, naming the file.

Listing and the config check on the common path (nothing changed) read rows through Core
(`keyward.storage.read_queries`); only changes import the ORM query module (`keyward.storage.store`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Sequence

from keyward import keystrings
from keyward.config.model import DEFAULT_MODEL
from keyward.config.pools import MODEL_HINT, MODEL_PATTERN, POOL_NAME_HINT, POOL_NAME_PATTERN
from keyward.config.projects import SERVICE_ACCOUNT_HINT, SERVICE_ACCOUNT_PATTERN
from keyward.config.sections import PROJECT_ID_HINT, PROJECT_ID_PATTERN
from keyward.errors import NotFound, UsageError
from keyward.storage import read_queries as rq
from keyward.storage.tables import ACTIVE, LIVE_STATES, ORIGIN_CLI, ORIGIN_CONFIG, PREVIOUS

if TYPE_CHECKING:
    from keyward.config import Config
    from keyward.context import Context
    from keyward.storage.database import Store
    from keyward.storage.models import Key, Project

log = logging.getLogger(__name__)


def sync_config(store: "Store", config: "Config", *, now: datetime) -> None:
    """Make the database hold exactly the pools, projects and limits the config declares.

    Every command opens the database through here, so an unchanged config (by digest, kept in the
    meta table) costs one read instead of a write transaction.
    """
    digest = _config_digest(config)
    with store.read_rows() as conn:
        seen = rq.meta_value(conn, CONFIG_DIGEST)
        if seen is not None and seen[0] == digest:
            return
    from keyward.storage import store as q

    with store.write() as s:
        q.set_meta(s, CONFIG_DIGEST, digest, now=now)
        pools = {}
        for name, pool_cfg in config.pools.items():
            if pool_cfg.declared:
                pools[name] = q.upsert_pool(s, name, pool_cfg.model, origin=ORIGIN_CONFIG)
            else:  # the implicit "default" pool: create it if needed, never take it over
                pools[name] = q.find_pool(s, name) or q.upsert_pool(s, name, pool_cfg.model, ORIGIN_CLI)
        for project_id, pcfg in config.projects.items():
            pool = pools.get(pcfg.pool) or q.find_pool(s, pcfg.pool) or q.upsert_pool(
                s, pcfg.pool, DEFAULT_MODEL, ORIGIN_CLI)
            project = q.upsert_project(
                s,
                project_id,
                pool,
                number=pcfg.number,
                managed=pcfg.managed,
                service_account=pcfg.service_account,
                allowed_ips=",".join(pcfg.allowed_ips),
                min_age_s=_seconds(pcfg.min_age),
                max_age_s=_seconds(pcfg.max_age),
                origin=ORIGIN_CONFIG,
            )
            q.clear_limits(s, project, "config")
            for model, lim in pcfg.limits.items():
                q.set_limit(s, project, model, rpm=lim.rpm, tpm=lim.tpm, rpd=lim.rpd, source="config")
        for project in q.list_projects(s):
            if project.origin == ORIGIN_CONFIG and project.project_id not in config.projects:
                _drop_undeclared(s, project, config, now)


CONFIG_DIGEST = "config_digest"


def _config_digest(config: "Config") -> str:
    import hashlib

    import keyward

    declared = (keyward.__version__, str(config.source), sorted(
        (name, p.model, p.declared) for name, p in config.pools.items()), sorted(
        (pid, repr(p)) for pid, p in config.projects.items()))
    return hashlib.sha256(repr(declared).encode()).hexdigest()


def _drop_undeclared(s, project: "Project", config: "Config", now: datetime) -> None:
    from keyward.storage import store as q

    live = q.keys_of(s, project, LIVE_STATES)
    if any(k.origin == "keyward" for k in live):
        # Deleting it here would orphan keys keyward created at Google; hand it to the CLI instead.
        project.origin = ORIGIN_CLI
        q.journal(s, "project.undeclared",
                  f"project left the config file {config.source} but still has keys keyward created; "
                  "keeping it (remove with `keyward project remove`)",
                  level="warning", project=project.project_id, now=now)
        return
    q.journal(s, "project.removed", f"project left the config file {config.source}",
              project=project.project_id, now=now)
    q.remove_project(s, project)


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


# Pools -----------------------------------------------------------------------------------------


def add_pool(ctx: "Context", name: str, model: str) -> None:
    from keyward.storage import store as q

    _check(POOL_NAME_PATTERN, name, f"pool name {name!r}: {POOL_NAME_HINT}")
    _check(MODEL_PATTERN, model, f"model {model!r}: {MODEL_HINT}")
    with ctx.store.write() as s:
        existing = q.find_pool(s, name)
        if existing is not None and existing.origin == ORIGIN_CONFIG:
            raise UsageError(f"pool {name!r} is declared in {ctx.config.source}; edit it there")
        q.upsert_pool(s, name, model, ORIGIN_CLI)
        q.journal(s, "pool.added", f"pool added for model {model}", pool=name, now=ctx.now())


@dataclass(frozen=True)
class PoolView:
    name: str
    model: str
    origin: str
    projects: int
    current_key_id: str | None
    current_reason: str | None


def list_pools(ctx: "Context") -> list[PoolView]:
    with ctx.store.read_rows() as conn:
        counts = rq.project_counts(conn)
        return [
            PoolView(p.name, p.model, p.origin, counts.get(p.id, 0), p.current_key_id, p.current_reason)
            for p in rq.pool_rows(conn)
        ]


def remove_pool(ctx: "Context", name: str) -> None:
    """Forget the pool `name`. Raise UsageError while the config declares it or projects are in it.

    Its published key files and keyring entries stay where they are: programs may still read them,
    and removing a secret a program depends on is the operator's decision, not a side effect.
    """
    from keyward.storage import store as q

    with ctx.store.write() as s:
        pool = q.get_pool(s, name)
        if pool.origin == ORIGIN_CONFIG:
            raise UsageError(f"pool {name!r} is declared in {ctx.config.source}; remove it from that file")
        if pool.projects:
            ids = sorted(p.project_id for p in pool.projects)
            raise UsageError(f"pool {name!r} still has {len(ids)} project(s) ({', '.join(ids[:5])}"
                             f"{', …' if len(ids) > 5 else ''}); remove them first (`keyward project remove ID`)")
        q.remove_pool(s, pool)
        q.journal(s, "pool.removed", "pool removed by the operator", pool=name, now=ctx.now())


# Projects --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectView:
    project_id: str
    number: str | None
    pool: str
    managed: bool
    service_account: str | None
    allowed_ips: tuple[str, ...]
    origin: str


def add_project(
    ctx: "Context",
    project_id: str,
    *,
    pool: str = "default",
    number: str | None = None,
    managed: bool = False,
    service_account: str | None = None,
    allowed_ips: Sequence[str] = (),
) -> None:
    """Add a project at run time. Raise UsageError naming the bad value, or if the config owns it."""
    from keyward.storage import store as q

    _check(PROJECT_ID_PATTERN, project_id, f"project id {project_id!r}: {PROJECT_ID_HINT}")
    if number is not None and not (number.isascii() and number.isdigit()):
        raise UsageError(f"project number {number!r}: expected digits only, like 123456789012")
    if service_account is not None:
        _check(SERVICE_ACCOUNT_PATTERN, service_account, f"service account {service_account!r}: {SERVICE_ACCOUNT_HINT}")
    if managed and not service_account:
        raise UsageError(
            f"project {project_id!r}: --managed needs --service-account, because the keys keyward "
            "creates are auth keys bound to a service account"
        )
    for ip in allowed_ips:
        try:
            ipaddress.ip_network(ip)
        except ValueError as exc:
            raise UsageError(f"allowed IP {ip!r}: {exc}") from None
    with ctx.store.write() as s:
        existing = q.find_project(s, project_id)
        if existing is not None and existing.origin == ORIGIN_CONFIG:
            raise UsageError(f"project {project_id!r} is declared in {ctx.config.source}; edit it there")
        pool_row = q.find_pool(s, pool)
        if pool_row is None:
            if pool != "default":
                raise NotFound(f"no pool named {pool!r}: add it with `keyward pool add {pool}`")
            pool_row = q.upsert_pool(s, pool, DEFAULT_MODEL, ORIGIN_CLI)
        q.upsert_project(s, project_id, pool_row, number=number, managed=managed,
                         service_account=service_account, allowed_ips=",".join(allowed_ips),
                         origin=ORIGIN_CLI)
        q.journal(s, "project.added", f"project added to pool {pool}", project=project_id,
                  pool=pool, now=ctx.now())


def list_projects(ctx: "Context", pool: str | None = None) -> list[ProjectView]:
    with ctx.store.read_rows() as conn:
        return [
            ProjectView(p.project_id, p.number, p.pool, p.managed, p.service_account,
                        tuple(filter(None, p.allowed_ips.split(","))), p.origin)
            for p in rq.project_listing(conn, pool)
        ]


def remove_project(ctx: "Context", project_id: str, *, force: bool = False) -> list[str]:
    """Forget a project; return the key ids that stay alive at Google (only possible with force)."""
    from keyward.storage import store as q

    with ctx.store.write() as s:
        project = q.get_project(s, project_id)
        if project.origin == ORIGIN_CONFIG:
            raise UsageError(
                f"project {project_id!r} is declared in {ctx.config.source}; remove it from that file"
            )
        live = [k for k in q.keys_of(s, project, LIVE_STATES) if k.origin == "keyward"]
        if live and not force:
            raise UsageError(
                f"project {project_id!r} has {len(live)} live key(s) keyward created at Google "
                f"({', '.join(k.key_id for k in live)}); retire them first, or pass --force to forget "
                "them (they stay at Google until you delete them)"
            )
        q.remove_project(s, project)
        q.journal(s, "project.removed", "project removed by the operator", project=project_id,
                  level="warning" if live else "info", now=ctx.now())
        return [k.key_id for k in live]


# Keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyView:
    """A key as shown to people: never the secret, only its mask."""

    key_id: str
    project_id: str
    kind: str
    state: str
    origin: str
    masked: str
    created_at: datetime
    promoted_at: datetime | None
    rotate_after: datetime | None
    grace_until: datetime | None
    invalid_reason: str | None

    @classmethod
    def of(cls, key: "Key") -> "KeyView":
        return cls(key.key_id, key.project.project_id, key.kind, key.state, key.origin, key.masked,
                   key.created_at, key.promoted_at, key.rotate_after, key.grace_until, key.invalid_reason)


def add_key(ctx: "Context", project_id: str, secret: str, *, replaces: str | None = None) -> KeyView:
    """Store a key the operator made by hand (in AI Studio or the console) and make it active.

    With `replaces`, the old key becomes `previous` for the grace period and is then retired, the
    same steps 4 to 6 a rotation takes, with the operator doing the Google side.
    """
    from keyward.keyids import manual_key_id
    from keyward.storage import store as q

    kind = keystrings.kind_of(secret)
    secret = secret.strip()
    now = ctx.now()
    with ctx.store.write() as s:
        project = q.get_project(s, project_id)
        if q.find_key_by_secret(s, secret) is not None:
            raise UsageError(f"that key ({keystrings.mask(secret)}) is already known to keyward")
        old = None
        if replaces is not None:
            old = q.get_key(s, replaces)
            if old.project_pk != project.id:
                raise UsageError(f"key {replaces!r} belongs to project {old.project.project_id!r}, not {project_id!r}")
            if old.state not in (ACTIVE, PREVIOUS, "invalid"):
                raise UsageError(f"key {replaces!r} is {old.state}; only an active key can be replaced")
        key = q.add_key(s, project, key_id=manual_key_id(now), secret=secret, kind=kind, state=ACTIVE,
                        origin="manual", now=now, promoted_at=now,
                        rotate_after=now + _max_age(ctx, project))
        if old is not None:
            old.state = PREVIOUS
            old.replaced_by = key.key_id
            old.grace_until = now + ctx.config.rotation.grace
            q.journal(s, "key.replaced", f"replaced by {key.key_id}; kept for the grace period until "
                      f"{old.grace_until:%Y-%m-%d %H:%M} UTC", project=project_id, key_id=old.key_id, now=now)
        q.journal(s, "key.added", f"{kind} key {key.masked} added by the operator", project=project_id,
                  key_id=key.key_id, now=now)
        if kind == keystrings.STANDARD:
            q.journal(s, "key.standard", "standard (AIza) keys are rejected by Gemini since September 2026 and "
                      "never published; replace it with an auth key", level="warning", project=project_id, key_id=key.key_id, now=now)
        return KeyView.of(key)


def _max_age(ctx: "Context", project: "Project") -> timedelta:
    if project.max_age_s is not None:
        return timedelta(seconds=project.max_age_s)
    return ctx.config.rotation.max_age


def list_keys(ctx: "Context", project_id: str | None = None, *, include_retired: bool = False) -> list[KeyView]:
    with ctx.store.read_rows() as conn:
        if project_id is not None and not rq.project_exists(conn, project_id):
            raise NotFound(f"no project {project_id!r} (see `keyward project list`)")
        return [KeyView(**row._asdict()) for row in rq.key_listing(conn, project_id, include_retired=include_retired)]


def _check(pattern: str, value: str, message: str) -> None:
    if not re.fullmatch(pattern, value):
        raise UsageError(message)
