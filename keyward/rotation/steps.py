"""Driving one journaled rotation row through its steps, from wherever a crash left it.

Each step reads the row, asks `state` what to do, makes the Google call outside any database
transaction, then records the outcome with a compare-and-set on the step and journals it
(`events` kind "rotation.<step>"). Re-running any step is harmless: a key already created is found
by its keyId, a key already deleted counts as deleted, and a step another runner took is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from keyward import keystrings
from keyward.errors import GoogleError, KeywardError, RotationError, Transient
from keyward.leadership import fenced_write, verify_fences
from keyward.rotation import state as st
from keyward.rotation.deps import Deps, crash_point
from keyward.rotation.records import (INSTALLATION_ANNOTATION, KEY_ID_ANNOTATION,
                                      MANAGED_ANNOTATION, RotationResult, Snapshot,
                                      installation_id, load_snapshot)
from keyward.storage import rotation_queries as rq
from keyward.storage import store as q
from keyward.storage.models import ACTIVE, FAILED, PENDING, PREVIOUS

if TYPE_CHECKING:
    from keyward.context import Context
    from keyward.google.apikeys import ApiKeysClient

log = logging.getLogger(__name__)

class Runner:
    """Applies the state machine for one Context; builds the API Keys client on first use."""

    def __init__(self, ctx: "Context", deps: Deps | None = None):
        self.ctx = ctx
        self.deps = deps or Deps()
        self._client: ApiKeysClient | None = None

    @property
    def client(self) -> "ApiKeysClient":
        if self._client is None:
            self._client = self.deps.client(self.ctx, self.deps.sleep)
        return self._client

    # -- reading --------------------------------------------------------------------------

    def load(self, rotation_pk: int) -> Snapshot:
        return load_snapshot(self.ctx, rotation_pk)

    # -- driving --------------------------------------------------------------------------

    def drive(self, rotation_pk: int) -> RotationResult:
        """Take the row through its remaining steps; return the outcome.

        Raise the Google error (translated, unchanged) or RotationError when a step cannot finish;
        the row then says where the next run resumes (or that this attempt failed).
        """
        warnings: list[str] = []
        for _ in range(20):  # each pass takes a step; another runner may take some for us
            snap = self.load(rotation_pk)
            if snap.outcome is not None or snap.step in (st.DONE, st.FAILED):
                return self._finished(snap, warnings)
            if snap.step in (st.PLANNED, st.CREATING):
                self._obtain(snap)
            elif snap.step == st.CREATED:
                self._verify(snap)
            elif snap.step == st.VERIFIED:
                self._promote(snap)
            elif snap.step == st.PROMOTED:
                warnings.extend(self._publish(snap))
            else:
                raise RotationError(f"rotation of project {snap.project_id} is at unknown step {snap.step!r}")
        raise RotationError(f"rotation {rotation_pk} made no progress; another runner may be stuck on it")

    def _finished(self, snap: Snapshot, warnings: list[str]) -> RotationResult:
        if snap.outcome == "done" or snap.step == st.DONE:
            return RotationResult(snap.project_id, "rotated",
                                  f"new key {snap.new_key_id} is active"
                                  + (f"; {snap.old_key_id} kept until the grace period ends"
                                     if snap.old_key_id else ""),
                                  snap.reason, snap.new_key_id, snap.old_key_id, tuple(warnings))
        raise RotationError(f"rotating project {snap.project_id}: {snap.error or 'the attempt failed'}")

    # -- step 1 and 2: create the key, store it ----------------------------------------------

    def _obtain(self, snap: Snapshot) -> None:
        """Get the new key at Google: find it, wait for its operation, or create it.

        Only an answer proving the key was never made (the create call or its operation refused
        for another reason than ALREADY_EXISTS) or that it is deleted marks the attempt failed.
        Anything inconclusive (a time-out, a key id taken but not visible yet, a failed look-up)
        leaves the row open with its error recorded, and the next run resumes it.
        """
        try:
            found = self.client.find_key(snap.project_id, snap.new_key_id)
            action = st.create_action(snap.step, st.AtGoogle(found is not None,
                                                             bool(found and found.get("deleteTime"))),
                                      snap.operation)
            if action == st.USE_EXISTING:
                resource = found
                log.info("key %s already exists in project %s; using it", snap.new_key_id, snap.project_id)
            elif action == st.RESTART_CREATE:
                self._fail(snap, f"key id {snap.new_key_id} was deleted at Google before it was "
                                 "stored; the next run starts a new attempt", backoff=False)
                return
            elif action == st.WAIT:
                resource = self._wait(snap, snap.operation or "", resumed=True)
            else:
                resource = self._create(snap)
        except GoogleError as exc:
            self._note(snap, str(exc))  # a row already marked failed keeps the same message
            raise
        if resource is None:
            return  # the attempt was marked failed
        self._store(snap, resource)

    def _create(self, snap: Snapshot) -> dict[str, Any] | None:
        annotations = {MANAGED_ANNOTATION: "true", KEY_ID_ANNOTATION: snap.new_key_id,
                       INSTALLATION_ANNOTATION: installation_id(self.ctx)}
        verify_fences(self.ctx)
        try:
            op = self.client.start_create(
                snap.project_id, snap.new_key_id, display_name=f"keyward {snap.new_key_id}",
                service_account=snap.service_account, allowed_ips=snap.allowed_ips,
                annotations=annotations)
        except Transient:
            raise
        except GoogleError as exc:
            if exc.status == 409:  # ALREADY_EXISTS in the call: our key id, made by an earlier try
                return self._adopt(snap)
            self._fail(snap, str(exc), backoff=True)  # refused: no key was made
            raise
        crash_point("create-sent")
        now = self.ctx.now()
        with fenced_write(self.ctx) as s:
            if rq.advance(s, snap.rotation_pk, st.REQUIRES[st.CREATING], st.CREATING, now=now,
                          operation=op):
                q.journal(s, "rotation.creating", f"asked Google to create key {snap.new_key_id} "
                          f"(operation {op})", project=snap.project_id, key_id=snap.new_key_id, now=now)
        crash_point("creating")
        return self._wait(snap, op, resumed=False)

    def _wait(self, snap: Snapshot, op: str, *, resumed: bool) -> dict[str, Any] | None:
        """Wait for the create operation `op`; adopt the key when it reports ALREADY_EXISTS."""
        try:
            return self.client.wait_operation(op, action="create", project=snap.project_id)
        except Transient:
            raise
        except GoogleError as exc:
            if exc.status == 409:  # ALREADY_EXISTS only in the finished operation
                return self._adopt(snap)
            if exc.status == 404 and resumed:
                return self._create(snap)  # Google forgot the operation: ask again (same key id)
            self._fail(snap, str(exc), backoff=True)  # the operation failed: no key was made
            raise

    def _adopt(self, snap: Snapshot) -> dict[str, Any] | None:
        """Our key id is taken: an earlier try of ours (a lost answer, a crash, another runner)
        made the key. Wait, within the operation deadline, until Google shows it, and use it."""
        found = self.client.await_key(snap.project_id, snap.new_key_id)
        if found is None:
            raise Transient(f"rotating project {snap.project_id}: key id {snap.new_key_id} is taken "
                            "at Google but the key is not visible yet; the rotation stays open and "
                            "the next run adopts it", reason="NOT_VISIBLE_YET")
        if found.get("deleteTime"):
            self._fail(snap, f"key {snap.new_key_id} was deleted at Google before it was stored; "
                             "the next run starts a new attempt", backoff=False)
            raise RotationError(f"rotating project {snap.project_id}: key {snap.new_key_id} was "
                                "deleted at Google; the next run starts a new attempt")
        log.info("key %s already exists in project %s; adopting it", snap.new_key_id, snap.project_id)
        return found

    def _note(self, snap: Snapshot, message: str) -> None:
        """Record why the row is still open (status shows it), without failing it."""
        try:
            with self.ctx.store.write() as s:
                rq.set_rotation_error(s, snap.rotation_pk, message[:2000], self.ctx.now())
        except KeywardError as exc:
            log.debug("could not record the rotation's error: %s", exc)

    def _store(self, snap: Snapshot, resource: dict[str, Any]) -> None:
        name = str(resource.get("name") or "")
        if not name:
            from keyward.google.apikeys import key_name

            name = key_name(snap.project_id, snap.new_key_id)
        secret = resource.get("keyString") or self.client.get_key_string(name)
        try:
            kind = keystrings.kind_of(secret)
        except KeywardError:
            kind = keystrings.AUTH
        now = self.ctx.now()
        with fenced_write(self.ctx) as s:
            if not rq.advance(s, snap.rotation_pk, st.REQUIRES[st.CREATED], st.CREATED, now=now):
                return
            key = q.find_key(s, snap.new_key_id)
            project = rq.lock_project(s, snap.project_pk)
            if key is None:
                key = q.add_key(s, project, key_id=snap.new_key_id, secret=secret, kind=kind,
                                state=PENDING, origin="keyward", now=now)
            else:
                q.set_secret(key, secret)
            key.google_name, key.google_uid = name, str(resource.get("uid") or "") or None
            key.etag = str(resource.get("etag") or "") or None
            q.journal(s, "rotation.created", f"key {snap.new_key_id} ({key.masked}) created at "
                      "Google and stored as pending", project=snap.project_id,
                      key_id=snap.new_key_id, now=now)
        crash_point("created")

    # -- step 3: verify -------------------------------------------------------------------

    def _verify(self, snap: Snapshot) -> None:
        enabled = self.ctx.config.rotation.verify
        verdict, detail = None, "verification skipped (rotation.verify = false)"
        if enabled:
            if not snap.secret:
                raise RotationError(f"rotating project {snap.project_id}: key {snap.new_key_id} "
                                    "has no stored key string")
            verdict, detail = self._verify_with_retries(snap.secret)
        action = st.next_action(st.CREATED, verify_enabled=enabled, verification=verdict)
        now = self.ctx.now()
        if action == st.SKIP_VERIFY:
            with fenced_write(self.ctx) as s:
                if rq.advance(s, snap.rotation_pk, st.REQUIRES[st.VERIFIED], st.VERIFIED, now=now):
                    q.journal(s, "rotation.verified", f"key {snap.new_key_id}: {detail}",
                              project=snap.project_id, key_id=snap.new_key_id, now=now)
            crash_point("verified")
        elif action == st.RETRY_LATER:
            message = (f"rotating project {snap.project_id}: new key {snap.new_key_id} could not "
                       f"be verified yet ({detail}); it stays pending and the next run retries")
            with fenced_write(self.ctx) as s:
                rq.set_rotation_error(s, snap.rotation_pk, detail, now)
                q.journal(s, "rotation.verify", message, level="warning", project=snap.project_id,
                          key_id=snap.new_key_id, now=now)
            raise RotationError(message)
        else:
            self._discard(snap, detail)

    def _verify_with_retries(self, secret: str) -> tuple[str, str]:
        budget = self.ctx.config.rotation.retry_budget.total_seconds()
        spent, delay = 0.0, 0.5
        while True:
            started = time.monotonic()
            result = self.deps.verify(secret)
            spent += time.monotonic() - started
            if result.kind != "transient" or spent + delay >= budget:
                return result.kind, result.detail
            self.deps.sleep(delay)
            spent += delay
            delay = min(delay * 2, 30.0)

    def _discard(self, snap: Snapshot, detail: str) -> None:
        """The new key failed verification: delete it at Google, mark it failed, back off."""
        name = snap.google_name
        if name:
            verify_fences(self.ctx)
            self.client.delete_key(name, snap.etag)  # re-reads the etag when it moved on
        message = (f"new key {snap.new_key_id} failed verification ({detail}); deleted at Google, "
                   "the current key stays active")
        self._fail(snap, message, backoff=True, key_state=FAILED)
        raise RotationError(f"rotating project {snap.project_id}: {message}")

    def _fail(self, snap: Snapshot, message: str, *, backoff: bool, key_state: str | None = None) -> None:
        now = self.ctx.now()
        cfg = self.ctx.config.rotation
        with fenced_write(self.ctx) as s:
            if not rq.advance(s, snap.rotation_pk, st.REQUIRES[st.FAILED], st.FAILED, now=now,
                              finished=True, outcome="failed", error=message[:2000]):
                return
            project = rq.lock_project(s, snap.project_pk)
            key = q.find_key(s, snap.new_key_id)
            if key is not None and key_state is not None:
                key.state = key_state
                key.retired_at = now
            extra = ""
            if backoff:
                project.rotation_failures = (project.rotation_failures or 0) + 1
                project.rotation_backoff_until = now + st.backoff(
                    project.rotation_failures, cfg.retry_backoff, cfg.max_backoff)
                extra = f"; next attempt after {project.rotation_backoff_until:%Y-%m-%d %H:%M} UTC"
            q.journal(s, "rotation.failed", message + extra, level="error", project=snap.project_id,
                      key_id=snap.new_key_id, now=now)
            log.error("rotation of project %s failed: %s%s", snap.project_id, message, extra,
                      extra={"project": snap.project_id, "key_id": snap.new_key_id})
        crash_point("failed")

    # -- step 4: promote and publish ------------------------------------------------------

    def _promote(self, snap: Snapshot) -> None:
        crash_point("promoting")  # decided to promote, not yet written
        now = self.ctx.now()
        grace = self.ctx.config.rotation.grace
        with fenced_write(self.ctx) as s:
            if not rq.advance(s, snap.rotation_pk, st.REQUIRES[st.PROMOTED], st.PROMOTED, now=now):
                return
            project = rq.lock_project(s, snap.project_pk)
            new = q.get_key(s, snap.new_key_id)
            replaced = []
            for old in rq.active_keys(s, snap.project_pk):
                if old.key_id != new.key_id:
                    # The old key keeps working through the grace period: readers that cached it
                    # (a process that read the secret file at start) have time to pick up the new one.
                    old.state, old.grace_until, old.replaced_by = PREVIOUS, now + grace, new.key_id
                    replaced.append(old.key_id)
            for bad in rq.invalid_keys(s, snap.project_pk):
                if bad.replaced_by is None:  # rejected by Gemini already: nothing to keep it for
                    bad.state, bad.grace_until, bad.replaced_by = PREVIOUS, now, new.key_id
                    replaced.append(bad.key_id)
            new.state, new.promoted_at = ACTIVE, now
            new.rotate_after = st.draw_rotate_after(now, snap.min_age, snap.max_age, self.deps.rng)
            project.rotation_failures, project.rotation_backoff_until = 0, None
            q.journal(s, "rotation.promoted",
                      f"key {new.key_id} is active (next rotation after {new.rotate_after:%Y-%m-%d %H:%M} UTC)"
                      + (f"; {', '.join(replaced)} kept until {now + grace:%Y-%m-%d %H:%M} UTC" if replaced else ""),
                      project=snap.project_id, pool=snap.pool, key_id=new.key_id, now=now)
        crash_point("promoted")

    def _publish(self, snap: Snapshot) -> list[str]:
        from keyward.publishing.service import publish_pools

        warnings: list[str] = []
        try:
            publish_pools(self.ctx, [snap.pool], trigger="promotion")
        except KeywardError as exc:
            # The key is active either way; the publisher retries on its own schedule.
            warnings.append(f"publishing pool {snap.pool} failed: {exc}")
            log.warning("publishing pool %s after rotating %s failed: %s", snap.pool, snap.project_id, exc)
        except Exception as exc:  # a publisher bug must not leave the rotation open forever
            warnings.append(f"publishing pool {snap.pool} failed: {exc.__class__.__name__}: {exc}")
            log.exception("publishing pool %s after rotating %s failed", snap.pool, snap.project_id)
        now = self.ctx.now()
        with fenced_write(self.ctx) as s:
            if rq.advance(s, snap.rotation_pk, st.REQUIRES[st.DONE], st.DONE, now=now,
                          finished=True, outcome="done"):
                q.journal(s, "rotation.done", f"rotation finished ({snap.reason}); pool {snap.pool} "
                          + ("publish failed, retried by the publisher" if warnings else "published"),
                          level="warning" if warnings else "info", project=snap.project_id,
                          pool=snap.pool, key_id=snap.new_key_id, now=now)
                log.info("rotated project %s (%s): key %s replaces %s", snap.project_id, snap.reason,
                         snap.new_key_id, snap.old_key_id or "nothing",
                         extra={"project": snap.project_id, "pool": snap.pool, "key_id": snap.new_key_id})
        crash_point("done")
        return warnings
