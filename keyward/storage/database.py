"""The open database: an Engine, its transactions, and the Sealer for key strings at rest.

Opening it and reading rows costs no ORM: `read_rows()` hands out a plain Core connection, which is
all the listing commands and `keyward status` need (`keyward.storage.read_queries`). The ORM is
imported only by `read()` and `write()`, the transactions of the services that change things.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from sqlalchemy.exc import SQLAlchemyError

from keyward.sealing import Sealer
from keyward.storage.engine import READ_ONLY, make_engine
from keyward.storage.failures import database_failure

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session


class Store:
    """An open database: an Engine, transaction helpers, and the Sealer for key strings at rest.

    Every session carries the sealer in `session.info`, so rows it loads open their secrets with it
    and secrets written through `add_key`/`set_secret` are sealed with its primary master key.
    """

    def __init__(self, engine: "Engine", sealer: Sealer | None = None):
        self.engine = engine
        self.sealer = sealer or Sealer()

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, sealer: Sealer | None = None) -> "Store":
        """Open the database at `url`, upgrading its schema first when `upgrade` is True."""
        from keyward.storage.migrate import ensure_current

        store = cls(make_engine(url), sealer)
        try:
            ensure_current(store.engine, upgrade=upgrade, sealer=store.sealer)
        except BaseException:
            store.close()
            raise
        return store

    @contextmanager
    def write(self) -> Iterator["Session"]:
        """A write transaction (BEGIN IMMEDIATE on SQLite); commits on success."""
        from sqlalchemy.orm import Session

        try:
            with Session(self.engine, expire_on_commit=False, info={"sealer": self.sealer}) as session, \
                    session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise database_failure(exc, "database write failed", self.engine.url) from exc

    @contextmanager
    def read(self) -> Iterator["Session"]:
        """A read-only transaction that never queues behind writers."""
        from sqlalchemy.orm import Session

        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                with Session(bind=conn, expire_on_commit=False, info={"sealer": self.sealer}) as session, \
                        session.begin():
                    yield session
        except SQLAlchemyError as exc:
            raise database_failure(exc, "database read failed", self.engine.url) from exc

    @contextmanager
    def read_rows(self) -> Iterator["Connection"]:
        """A read-only transaction on a Core connection (rows, not ORM objects) that never queues
        behind writers."""
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise database_failure(exc, "database read failed", self.engine.url) from exc

    def close(self) -> None:
        self.engine.dispose()
