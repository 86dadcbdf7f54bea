"""Statements compiled once per dialect and run on the driver's cursor, for the hottest writes.

The ingest socket records thousands of reports a second, a handful of statements per group
commit; SQLAlchemy's execution layer (compiled-cache lookup, parameter construction, result set-up)
costs three to four times what SQLite spends running such a statement. A `Prepared` statement
keeps the SQL text SQLAlchemy compiled for the dialect, its parameter order and its types' bind
processors (an aware datetime becomes what the column stores, exactly as through SQLAlchemy), and
runs on the session's own DBAPI connection, inside the session's transaction.

Only plain values go in (no expanding IN lists) and only plain values come out (integers): the
statements stay portable and need no result processing. Driver errors are wrapped in SQLAlchemy's
DBAPIError, so callers see the same errors (and `Store.write()` the same StorageError) as through
SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


class Prepared:
    """One statement compiled for one dialect: SQL text, parameter names, bind processors."""

    def __init__(self, stmt: Any, dialect: Any):
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = bool(dialect.positional)
        self.names: Sequence[str] = (list(compiled.positiontup or ()) if self.positional
                                     else list(compiled.binds))
        self.defaults = {name: bind.value for name, bind in compiled.binds.items()}
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor
        self.dbapi_error = dialect.loaded_dbapi.Error

    def _values(self, params: Mapping[str, Any]):
        out = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            processor = self.processors.get(name)
            out.append(value if processor is None or value is None else processor(value))
        return out if self.positional else dict(zip(self.names, out))

    def one(self, cursor: Any, params: Mapping[str, Any]) -> tuple | None:
        """Run with `params`; return the first row (as a tuple), or None when there is none."""
        values = self._values(params)
        try:
            cursor.execute(self.sql, values)
            row = cursor.fetchone()
        except self.dbapi_error as exc:
            raise DBAPIError.instance(self.sql, values, exc, self.dbapi_error) from exc
        return None if row is None else tuple(row)

    def many(self, cursor: Any, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run once per parameter set of `rows` (a statement returning nothing)."""
        values = [self._values(params) for params in rows]
        if not values:
            return
        try:
            cursor.executemany(self.sql, values)
        except self.dbapi_error as exc:
            raise DBAPIError.instance(self.sql, values[:1], exc, self.dbapi_error) from exc


@contextmanager
def driver_cursor(s: Session) -> Iterator[Any]:
    """A cursor of the session's own DBAPI connection, in the session's transaction."""
    cursor = s.connection().connection.driver_connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()
