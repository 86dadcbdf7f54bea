"""Exactly one rotator: leases with fencing epochs in the shared database.

Two leases live in the `leases` table. `leader` is held by one daemon among all that share the
database (one host or several sharing PostgreSQL): only the leader rotates, polls Cloud Monitoring,
refreshes limits and re-checks invalid keys; every daemon accepts reports, selects, publishes and
answers status. `rotator` is held for the length of one rotation run, by the leader's rotation job
or by `keyward rotate`, so a command and a daemon never rotate at once.

A lease row is taken with a compare-and-set (holder is me, or the lease has expired) inside a
transaction that locks the row, and its epoch grows whenever the holder changes. Every rotation
write checks, in its own transaction, that this process still holds each lease it was fenced by
with the same epoch and an expiry in the future, and extends it; a leader that lost its lease
(paused, partitioned, its connection killed) finds its write refused with LeaseLost and never
promotes, retires or deletes. The database's clock decides expiry on PostgreSQL, so hosts' clocks
need not agree.

A lease row rather than a session-bound advisory lock: advisory locks break under transaction
pooling (PgBouncer) and give no epoch to fence writes with, and the same code serves SQLite.

A holder is one process instance (an id drawn at start), not a host name: containers and cloned
machines share host names. Each instance describes itself in a `meta` row `instance.<id>`
(host, pid, version, kind, heartbeat), which status shows and error messages quote.
"""

from keyward.leadership.elected import Leadership, attach, is_leader
from keyward.leadership.leases import (DEFAULT_TTL, LEADER, ROTATOR, Fence, check_fences,
                                       db_now, fenced_write, fences, read_lease, release,
                                       set_leader_fence, try_acquire, verify_fences)
from keyward.leadership.members import (INSTANCE_PREFIX, describe, describe_holder,
                                        holder_instance, instances, write_instance)
from keyward.leadership.rotator import lease_ttl, rotating

__all__ = ["DEFAULT_TTL", "INSTANCE_PREFIX", "LEADER", "ROTATOR", "Fence", "Leadership", "attach",
           "check_fences", "db_now", "describe", "describe_holder", "fenced_write", "fences",
           "holder_instance", "instances", "is_leader", "lease_ttl", "read_lease", "release",
           "rotating", "set_leader_fence", "try_acquire", "verify_fences", "write_instance"]
