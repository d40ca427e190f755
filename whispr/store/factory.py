"""Choosing the store from the configuration."""

from __future__ import annotations

from whispr.store.postgres import PostgresStore
from whispr.store.sqlite import SqliteStore

__all__ = ["open_store"]


def open_store(database_url: str | None, sqlite_path: str) -> PostgresStore | SqliteStore:
    """PostgreSQL when a URL is configured, else the embedded SQLite file (not yet opened).

    Either is an ``actors.ports.Store`` and a ``whispr.audit.AuditStore``.
    """
    if database_url:
        return PostgresStore(database_url)
    return SqliteStore(sqlite_path)
