"""What turns cost: each answer's cost (None when its price was unknown), and in the daily
rollup the known costs added up and the count of requests without a known price.

Rows rolled up before this revision were never priced, so all their requests count as
unpriced: their cost is unknown, not zero.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("cost", sa.Float, nullable=True))
    with op.batch_alter_table("usage_daily") as batch:
        batch.add_column(sa.Column("cost", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("unpriced", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE usage_daily SET unpriced = requests")


def downgrade() -> None:
    with op.batch_alter_table("usage_daily") as batch:
        batch.drop_column("unpriced")
        batch.drop_column("cost")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("cost")
