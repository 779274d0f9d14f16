"""Conversations carry the lease of the turn that is answering in them.

A turn holds its conversation until busy_until and renews the lease while it runs, so a
second turn (another thread, process or server worker) waits for it instead of forking
the branch, and a crashed turn stops holding it when the lease runs out.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from chinwag.store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("busy_until", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("busy_until")
