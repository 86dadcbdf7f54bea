"""What must happen after a refused call is recorded: republish, and replace an invalid key.

These run after the recording transaction commits (publishing opens its own), and each is isolated:
the report is already safe in the database, so a failing publish is logged, never raised to the
program that reported. The publishing and rotation services are imported only when needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keyward.errors import KeywardError

if TYPE_CHECKING:
    from keyward.context import Context

log = logging.getLogger(__name__)


@dataclass
class Effects:
    """Pools to republish (by trigger) and invalid keys of managed projects to replace."""

    publish: dict[str, list[str]] = field(default_factory=dict)  # trigger → pools
    replace: list[str] = field(default_factory=list)

    def republish(self, pool: str, trigger: str) -> None:
        pools = self.publish.setdefault(trigger, [])
        if pool not in pools:
            pools.append(pool)

    def merge(self, other: "Effects") -> None:
        for trigger, pools in other.publish.items():
            for pool in pools:
                self.republish(pool, trigger)
        self.replace.extend(k for k in other.replace if k not in self.replace)

    def __bool__(self) -> bool:
        return bool(self.publish or self.replace)


def run(ctx: "Context", effects: Effects) -> None:
    """Publish first (another project's key goes out at once), then start replacing keys."""
    for trigger, pools in effects.publish.items():
        try:
            from keyward.publishing.service import publish_pools

            publish_pools(ctx, pools, trigger=trigger)
        except ImportError:
            log.warning("publishing is not available; pools %s were not republished", pools)
        except KeywardError as exc:
            log.error("republishing %s after a %s report failed: %s", ", ".join(pools), trigger, exc)
        except Exception:
            log.exception("republishing %s after a %s report failed", ", ".join(pools), trigger)
    for key_id in effects.replace:
        try:
            from keyward.rotation.service import replace_invalid

            replace_invalid(ctx, key_id)
        except ImportError:
            log.warning("rotation is not available; invalid key %s was not replaced", key_id)
        except KeywardError as exc:
            log.error("replacing invalid key %s failed: %s", key_id, exc)
        except Exception:
            log.exception("replacing invalid key %s failed", key_id)
