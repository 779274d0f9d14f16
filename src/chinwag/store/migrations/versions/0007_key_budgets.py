"""Money budgets on server keys: a day's and a month's, in whole micro-dollars (US), and
what each key's windows have spent, counted as exactly as its tokens.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("cost_per_day", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("cost_per_month", sa.BigInteger, nullable=True))
    with op.batch_alter_table("key_windows") as batch:
        batch.add_column(sa.Column("cost", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("key_windows") as batch:
        batch.drop_column("cost")
    op.execute("DELETE FROM key_windows WHERE span = 'month'")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("cost_per_month")
        batch.drop_column("cost_per_day")
