"""Fixtures for code that runs against both stores: the ``store`` fixture."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.ports import Store
from tests import services
from whispr.store.postgres import PostgresStore
from whispr.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, open store: SQLite in a temporary file, or PostgreSQL in a private schema."""
    if request.param == "sqlite":
        sqlite = SqliteStore(str(tmp_path / "whispr.db"))
        async with _opened(sqlite) as opened:
            yield opened
        return
    # The ``pg_schema`` fixture's context manager, entered here: an async fixture
    # cannot ask pytest-asyncio for another async fixture by name.
    async with services.private_schema(request.getfixturevalue("postgres_url")) as schema:
        postgres = PostgresStore(
            schema.base_url, server_settings=schema.server_settings, max_size=5
        )
        async with _opened(postgres) as opened:
            yield opened


@contextlib.asynccontextmanager
async def _opened(store: Any) -> AsyncIterator[Store]:
    await store.open()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
