"""Alembic environment: keyward always hands it an open connection (see keyward.storage.migrate)."""

from alembic import context

from keyward.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - keyward never runs alembic without a connection
    raise RuntimeError("run migrations through `keyward db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
