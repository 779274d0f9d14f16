"""Persistence on SQLAlchemy 2 (async): SQLite embedded, PostgreSQL for servers."""

from chinwag.store.store import Store, Thread, normalize_url

__all__ = ["Store", "Thread", "normalize_url"]
