"""The commented example configuration `keyward init` writes.

It documents every key with its default. Settings shown as `# key = value` are the defaults (or,
for keys without one, an example); removing the "# " gives a file keyward still accepts, and the
tests hold the example to that.

As written it is safe to run at once: the sample projects are commented out (keyward would
otherwise try to manage keys of a project called my-project-1), and no path of the machine or user
that wrote it is baked in, so the file means the same under systemd as in a login shell.
"""

from __future__ import annotations

from pathlib import Path

_EXAMPLE = '''\
# keyward configuration
#
# Each setting shows its default: delete the "# " in front of a line to change it.
# Durations look like "90s", "15m", "24h", "7d" or "1h30m". Paths may start with ~.
# Check this file without starting anything: keyward config validate
#
# Projects and pools declared in this file belong to it: keyward copies them into its database
# at every start, this file wins where the two differ, and the command line refuses to edit or
# remove them. Projects and pools added from the command line live only in the database.

# Where the database and the lock file live. Default: $KEYWARD_STATE_DIR, else /var/lib/keyward
# when run as root, else $XDG_STATE_HOME/keyward (~/.local/state/keyward).
# state_dir = "/var/lib/keyward"

# Where sockets and published key files live. Default: $KEYWARD_RUNTIME_DIR, else systemd's
# $RUNTIME_DIRECTORY, else /run/keyward when run as root, else $XDG_RUNTIME_DIR/keyward.
# runtime_dir = "/run/keyward"

# The database as an SQLAlchemy URL; $KEYWARD_DATABASE_URL overrides it. Default: SQLite,
# state_dir/keyward.db. PostgreSQL lets several hosts share one set of keys; keep its password
# out of this file (use ~/.pgpass or PGPASSWORD).
# database = "postgresql+psycopg://keyward@db.example.internal/keyward"

# debug, info, warning or error.
# log_level = "info"

# The master key that seals key strings in the database (AES-256-GCM), one base64 key per line,
# mode 0600; create it with `keyward db master-key init`. A systemd credential named keyward-master
# or the OS keyring entry keyward/master-key comes first. Without any master key, key strings are
# stored in plain text and `keyward status` says so. Default: master.key beside this file.
# master_key_file = "/etc/keyward/master.key"

[rotation]
# A key is due for rotation once it is min_age old, and overdue at max_age.
# min_age = "7d"
# max_age = "15d"
# How long the previous key keeps working after its successor is published, so that
# programs which read the key once have time to pick up the new one.
# grace = "24h"
# Try a new key with a real Gemini call before publishing it.
# verify = true
# After a failed rotation, wait retry_backoff, then twice as long each time, up to max_backoff.
# retry_backoff = "1h"
# max_backoff = "24h"
# How long to wait for a Google long-running operation (creating or deleting a key).
# operation_timeout = "2m"
# Total time spent retrying one Google call that answered 429 or 5xx.
# retry_budget = "2m"
# At most one replacement of a key that programs report invalid, per project, in this interval;
# further reports are journaled, not acted on (each report is first confirmed with Gemini).
# invalid_interval = "10m"

[usage]
# How often usage is collected.
# poll_interval = "60s"
# Read request counts from Cloud Monitoring (needs monitoring.timeSeries.list).
# monitoring = true
# How long per-minute and per-day counts are kept.
# minute_retention = "48h"
# day_retention = "90d"
# Cloud Monitoring data arrives a few minutes late: every poll reads this far back again.
# monitoring_lag = "5m"
# How many projects are polled at once when polled one by one (1 to 64); each makes two reads.
# poll_workers = 32
# Google charges every Monitoring read to the quota project, whichever project it reads: keyward
# sends at most this many a minute (set it to the time-series read quota per minute that the
# quota project's Quotas page shows for the Cloud Monitoring API).
# monitoring_reads_per_minute = 6000
# Scoping projects whose metrics scopes monitor your projects (up to 375 each; add them in the
# console, Monitoring > Settings, or with the Metrics Scopes API). Each scope is read in two reads
# a poll instead of two per project; projects in no listed scope are polled one by one. keyward
# matches members by project number: give each project's `number` (or it is polled one by one).
# For example ["my-monitoring-project"]; none by default.
# metrics_scopes = []

[selection]
# Publish another project's key only when that project is less loaded by at least this
# fraction (0 to 1), so the published key does not flap between two similar projects.
# margin = 0.1
# How often the least-loaded project is chosen again.
# interval = "15s"

[daemon]
# How often to look for keys due for rotation; each run starts up to `jitter` late.
# rotation_check = "1h"
# jitter = "10s"
# How often the daemon records that it is alive.
# heartbeat = "15s"
# How often keys that Google rejected are checked again.
# verify_invalid = "10m"
# How often old usage counts are pruned.
# prune_interval = "1h"
# Unix socket where programs report the Gemini usage they see. Default: runtime_dir/ingest.sock;
# an empty string turns it off.
# ingest_socket = "{runtime_dir}/ingest.sock"
# The same reports over TCP, on a loopback address only. Off unless set.
# ingest_tcp = "127.0.0.1:8710"
# Prometheus metrics, on a loopback address only. Off unless set.
# metrics = "127.0.0.1:9464"
# One daemon per database on this host: a second one exits. Rotations need no lock (each step is
# a compare-and-set on its journal row). Default: beside a SQLite database file (its path +
# ".lock"), else state_dir/keyward.lock.
# lock_file = "/var/lib/keyward/keyward.db.lock"
# The leader lease, when several daemons (hosts) share one PostgreSQL database: only the leader
# rotates and polls Google; another daemon takes over within 2 x this after the leader dies.
# lease = "7s"

[google]
# A service-account JSON key file. Default: $CREDENTIALS_DIRECTORY/google.json when systemd
# passes that credential (LoadCredential=google.json:...), else Application Default Credentials.
# credentials = "/etc/keyward/google.json"
# The project billed for keyward's own calls to Google APIs. Default: the credentials' own.
# quota_project = "my-project-1"

# A pool is a set of projects sharing one published key: keyward publishes the key of the
# least-loaded project in it. Without any pools table there is one pool, "default".
[pools.default]
# The model whose quota decides which project is least loaded.
# model = "gemini-2.5-flash"
# Overrides selection.margin for this pool.
# margin = 0.1
# A command to run after a new key is published: a list of arguments, run without a shell, with
# KEYWARD_POOL and KEYWARD_KEY_ID in its environment. To restart a service on a new key, prefer
# the keyward-restart@.path unit (see the README): the daemon may not restart other services.
# post_publish = ["/usr/local/bin/notify-my-app"]
# post_publish_timeout = "30s"

# Where the key is published. A pool without sinks gets a raw 0600 file at runtime_dir/POOL.key,
# like this one. Sink types: file, keyring, null (publishes nowhere).
# [[pools.default.sinks]]
# type = "file"
# path = "{runtime_dir}/default.key"
# "raw" writes the key alone; "env" writes a VARIABLE=key line for systemd's EnvironmentFile.
# format = "raw"
# The env format's variable names. google-genai and LangChain read GEMINI_API_KEY (and warn on
# every client when GOOGLE_API_KEY is set as well); add "GOOGLE_API_KEY" only for tools reading that.
# variables = ["GEMINI_API_KEY"]
# "0600", or "0640" to let `group` read the key.
# mode = "0600"
# group = "my-app"

# The OS keyring (Secret Service); programs read it with keyring.get_password(service, username).
# [[pools.default.sinks]]
# type = "keyring"
# service = "keyward"
# Default: the pool name.
# username = "default"
# Default: the environment's keyring; name a backend class to choose one explicitly.
# backend = "keyring.backends.SecretService.Keyring"

# A spending limit for this pool, in the currency of [prices] (which it needs): per Pacific day
# and/or per calendar month. Status warns at warn_at of either; with stop = true the pool's key is
# withdrawn from its sinks once one is spent, until that period ends.
# [pools.default.budget]
# daily = 5.0
# monthly = 100.0
# warn_at = 0.8
# stop = false

# Projects: none until you add one. Delete the "# " in front of the lines below and put in your
# own project's id, number and service account (or use `keyward project add`).
#
# A Google Cloud project whose Gemini keys keyward looks after; the table name is its project id.
# [projects.my-project-1]
# The project number, from the project's dashboard in the Google Cloud console.
# number = "123456789012"
# The pool this project belongs to.
# pool = "default"
# Let keyward create and delete this project's keys through the API Keys API. New keys are auth
# keys bound to service_account, which keyward's credentials must be allowed to use.
# managed = true
# service_account = "keyward@my-project-1.iam.gserviceaccount.com"
# Only these addresses (IPs or CIDR networks) may use the keys keyward creates. Include the
# address keyward itself calls Gemini from: it tries every new key before publishing it, and a
# key that refuses keyward's own host fails that check and is deleted.
# allowed_ips = ["203.0.113.0/24", "2001:db8::/32"]
# This project's own rotation ages, overriding [rotation].
# min_age = "7d"
# max_age = "15d"
#
# The quota this project has for one model: requests per minute, tokens per minute, requests
# per day. Each is optional.
# [projects.my-project-1.limits."gemini-2.5-flash"]
# rpm = 10
# tpm = 250000
# rpd = 250
#
# An unmanaged project: you create its keys and give them to keyward from the command line.
# [projects.my-project-2]
# number = "210987654321"

# Prices per 1M tokens, for the estimated spend in `keyward status` and for budgets. A table name
# may be a glob ("gemini-2.5-pro*"). Output includes thinking tokens. These are Google's paid-tier
# list prices for prompts up to 200k tokens as published in 2025: check
# https://ai.google.dev/gemini-api/docs/pricing before relying on them. All in one currency.
# [prices."gemini-2.5-flash"]
# input = 0.30
# output = 2.50
# currency = "USD"
# [prices."gemini-2.5-pro"]
# input = 1.25
# output = 10.00
# [prices."gemini-2.5-flash-lite"]
# input = 0.10
# output = 0.40
# [prices."gemini-2.0-flash"]
# input = 0.10
# output = 0.40

# Event hooks: a command run (without a shell) when trouble starts and again when it ends, with
# KEYWARD_EVENT (all_exhausted, rotation_failing, key_invalid, budget_reached, daemon_stale),
# KEYWARD_EVENT_STATE (firing or resolved), KEYWARD_MESSAGE, KEYWARD_POOL, KEYWARD_PROJECT,
# KEYWARD_KEY_ID, KEYWARD_UNTIL and KEYWARD_FAILURES in its environment; never a key.
# [alerts]
# command = ["/usr/local/bin/keyward-alert"]
# events = ["all_exhausted", "rotation_failing", "key_invalid", "budget_reached", "daemon_stale"]
# rotation_failing fires after this many failed rotations of a project in a row.
# rotation_failures = 3
# timeout = "30s"
# How often the daemon checks (`keyward alerts check` checks once, e.g. from a timer).
# interval = "60s"
# Run the command again when a condition clears.
# resolved = true
'''

DEFAULT_RUNTIME_DIR = Path("/run/keyward")


def example_config(*, runtime_dir: Path | str | None = None) -> str:
    """Return the example configuration as TOML text that `load_config` accepts.

    `runtime_dir` is the directory the commented-out file sink and socket paths show (default
    /run/keyward); it appears only in comments, never as a setting.
    """
    directory = str(runtime_dir or DEFAULT_RUNTIME_DIR).rstrip("/") or "/"
    return _EXAMPLE.replace("{runtime_dir}", directory.replace("\\", "\\\\").replace('"', '\\"'))
