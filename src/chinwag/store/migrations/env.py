"""Alembic environment: chinwag hands it an open connection (see Store._migrate)."""

from alembic import context

from chinwag.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
