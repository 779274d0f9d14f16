"""Attachments: files stored once per content (their sha256), and which messages carry
them, in order, under the name and media type they were attached with.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from chinwag.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachment_blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "message_attachments",
        sa.Column(
            "message_id",
            sa.String(32),
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column(
            "sha256", sa.String(64), sa.ForeignKey("attachment_blobs.sha256"), nullable=False
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
    )
    op.create_index("ix_message_attachments_sha256", "message_attachments", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_message_attachments_sha256", "message_attachments")
    op.drop_table("message_attachments")
    op.drop_table("attachment_blobs")
