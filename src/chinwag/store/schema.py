"""The tables. Migrations under migrations/versions create and evolve them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect

# The schema revision this code expects; a test keeps it equal to Alembic's head.
SCHEMA_REVISION = "0008"
# Every revision this code can upgrade from, oldest first; a test keeps it equal to Alembic's.
SCHEMA_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and read back timezone-aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
)

bots = Table(
    "bots",
    metadata,
    Column("uid", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("slug", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("data", JSON, nullable=False),  # the rest of the Bot, as validated by pydantic
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_bots_slug", "slug"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("bot_uid", String(64), nullable=False),
    Column("title", Text, nullable=True),
    Column("system_prompt", Text, nullable=True),
    Column("current_message_id", String(32), nullable=True),  # leaf of the branch shown
    # Until when the turn answering in it holds it (renewed while it runs); see migration 0003.
    Column("busy_until", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_conversations_user_updated", "user_id", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "conversation_id",
        String(32),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("parent_id", String(32), nullable=True),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("status", String(16), nullable=False, default="complete"),
    Column("error", Text, nullable=True),
    Column("model", String(200), nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("prompt_words", Integer, nullable=True),
    Column("completion_words", Integer, nullable=True),
    Column("usage_estimated", Boolean, nullable=True),
    Column("cost", Float, nullable=True),  # US dollars; None: the price was unknown
    Column("meta", JSON, nullable=True),  # the turn's options: language, max_words, search
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_messages_conversation_created", "conversation_id", "created_at"),
)

# Attached files, content-addressed: the same bytes are stored once, whoever attached them
# and however often. Nobody reaches a blob but through a link of their own message.
attachment_blobs = Table(
    "attachment_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Which files a message carries, in order, under the name and type they were attached with.
message_attachments = Table(
    "message_attachments",
    metadata,
    Column(
        "message_id",
        String(32),
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("sha256", String(64), ForeignKey("attachment_blobs.sha256"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("media_type", String(100), nullable=False),
    Index("ix_message_attachments_sha256", "sha256"),
)

# One row per user, day, bot and model: the statistics never scan messages.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("bot_uid", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("requests", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("prompt_words", Integer, nullable=False, default=0),
    Column("completion_words", Integer, nullable=False, default=0),
    # The known costs added up (US dollars), and how many requests had no known price.
    Column("cost", Float, nullable=False, default=0.0),
    Column("unpriced", Integer, nullable=False, default=0),
)

# A server's API keys: only the SHA-256 of each key is kept (keys are 256 random bits, so
# a slow hash would add nothing but latency to every request).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # public: `keys list` and `keys revoke` use it
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # the key's first characters, to tell it
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("tokens_per_day", Integer, nullable=True),
    # Money budgets in whole micro-dollars (US): counted exactly, never in floats.
    Column("cost_per_day", BigInteger, nullable=True),
    Column("cost_per_month", BigInteger, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# What each key has spent in its current minute, day and month: limits are conditional
# updates of these rows, so they hold across workers and processes.
key_windows = Table(
    "key_windows",
    metadata,
    Column("key_id", String(32), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("span", String(8), primary_key=True),  # "minute", "day" or "month"
    Column("start", Integer, primary_key=True),  # the window's first second (Unix time)
    Column("requests", Integer, nullable=False, default=0),
    Column("tokens", Integer, nullable=False, default=0),
    Column("cost", BigInteger, nullable=False, default=0),  # micro-dollars
)

# The web page's sessions: a session acts as the key it was signed in with (its limits,
# its revocation), until it ends. Only the SHA-256 of each token is kept.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_web_sessions_expires", "expires_at"),
)
