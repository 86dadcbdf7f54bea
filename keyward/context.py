"""The core object every command and the daemon build first: configuration plus an open database.

Like sqlite-utils' `Database`, it is what the CLI constructs and hands to a service. The database is
opened (and its schema upgraded, and the config's pools and projects synced into it) on first use, so
commands that need no database never pay for SQLAlchemy.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Mapping

from keyward.config import find_config_path, load_config

if TYPE_CHECKING:
    from keyward.config import Config
    from keyward.storage.database import Store
    from keyward.usage.loads import LoadBook

log = logging.getLogger(__name__)


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


class Context:
    """Configuration, database and clock for one invocation (or one daemon configuration)."""

    def __init__(
        self,
        config: "Config",
        *,
        clock: Callable[[], datetime] = system_clock,
        env: Mapping[str, str] | None = None,
    ):
        self.config = config
        self.clock = clock
        self.env = env
        self._store: Store | None = None
        self._retired = False  # see retire()
        # The daemon's kept loads (keyward.usage.loads.LoadBook); None: read the database each time.
        self.loads: LoadBook | None = None

    @classmethod
    def load(cls, config_path: str | None = None, *, env: Mapping[str, str] | None = None,
             clock: Callable[[], datetime] = system_clock) -> "Context":
        """Find and load the configuration (strictly); raise ConfigError listing every problem."""
        path = find_config_path(config_path, env=env)
        return cls(load_config(path, env=env), clock=clock, env=env)

    @property
    def store(self) -> "Store":
        if self._store is None:
            if self._retired:
                from keyward.errors import StorageError

                raise StorageError("the configuration was reloaded onto another database; work begun "
                                   "on the old one stops here")
            from keyward.inventory import sync_config
            from keyward.storage.database import Store

            from keyward.master_key import sealer_for

            store = Store.open(self.config.database_url, sealer=sealer_for(self.config, self.env))
            try:
                sync_config(store, self.config, now=self.clock())
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def with_config(self, config: "Config") -> "Context":
        """A Context for a reloaded configuration that shares this one's open database.

        Jobs still running hold the old Context; sharing the store (rather than closing and
        reopening it) means they keep a working database, and nothing re-syncs the old config
        into it. A different database URL gets a Context of its own.
        """
        new = Context(config, clock=self.clock, env=self.env)
        if self._store is not None and config.database_url == self.config.database_url:
            from keyward.inventory import sync_config

            sync_config(self._store, config, now=self.clock())
            if config.master_key_file != self.config.master_key_file:
                from keyward.master_key import sealer_for

                self._store.sealer = sealer_for(config, self.env)
            new._store = self._store
            if self.loads is not None:
                self.loads.forget()  # pools and projects may have changed
                new.loads = self.loads
        return new

    def now(self) -> datetime:
        return self.clock()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def retire(self) -> None:
        """Close this Context for good, when a reload moved the daemon to another database.

        A job still running on it must not reopen the old database on its next step: it would
        work there without the daemon's leadership (so as if it led) and leave it open. Its next
        use of `store` raises StorageError instead; the job ends, and the next runs on the new one.
        """
        self._retired = True
        self.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
