"""Choosing the store from the configuration."""

from __future__ import annotations

from actors.ports import Store
from whispr.store.postgres import PostgresStore
from whispr.store.sqlite import SqliteStore

__all__ = ["open_store"]


def open_store(database_url: str | None, sqlite_path: str) -> Store:
    """PostgreSQL when a URL is configured, else the embedded SQLite file (not yet opened)."""
    if database_url:
        return PostgresStore(database_url)
    return SqliteStore(sqlite_path)
