"""The service fixtures work against the real PostgreSQL and Redis (no mocks)."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests import services
from tests.services import PgSchema


async def test_pg_schema_is_first_on_the_search_path(pg_schema: PgSchema) -> None:
    connection = await asyncpg.connect(pg_schema.url)
    try:
        assert await connection.fetchval("SELECT current_schema()") == pg_schema.schema
        await connection.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
        await connection.execute("INSERT INTO item VALUES (1, 'one')")
        where = await connection.fetchval(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'item'"
            " AND table_schema = $1",
            pg_schema.schema,
        )
        assert where == pg_schema.schema
        assert await connection.fetchval("SELECT name FROM item WHERE id = 1") == "one"
    finally:
        await connection.close()


async def test_pg_schema_server_settings_work_with_a_pool(pg_schema: PgSchema) -> None:
    pool = await asyncpg.create_pool(
        pg_schema.base_url, min_size=1, max_size=2, server_settings=pg_schema.server_settings
    )
    try:
        assert await pool.fetchval("SELECT current_schema()") == pg_schema.schema
    finally:
        await pool.close()


async def test_pg_schemas_are_private_and_dropped(postgres_url: str) -> None:
    # Two schemas never share a table; the fixture drops its schema afterwards.
    first, second = services.new_schema_name(), services.new_schema_name()
    assert first != second
    connection = await asyncpg.connect(postgres_url)
    try:
        for name in (first, second):
            await connection.execute(f'CREATE SCHEMA "{name}"')
        await connection.execute(f'CREATE TABLE "{first}".t (x int)')
        count = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", second
        )
        assert count == 0
    finally:
        for name in (first, second):
            await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await connection.close()


async def test_redis_answers_ping_and_pubsub(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        key = f"whispr-test:{services.new_schema_name()}"
        await client.set(key, b"v", ex=10)
        assert await client.get(key) == b"v"
        await client.delete(key)
    finally:
        await client.aclose()


def test_unreachable_services_are_reported_not_raised() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    problem = services.check_redis("redis://127.0.0.1:1/0", timeout=1.0)
    assert problem is not None
    assert "Redis" in problem
    problem = services.check_postgres("postgresql://u:secret@127.0.0.1:1/x", timeout=1.0)
    assert problem is not None
    assert "secret" not in problem


def test_search_path_replaces_an_existing_one() -> None:
    url = services.with_search_path("postgresql://h/db?sslmode=disable&search_path=old", "new")
    assert url == "postgresql://h/db?sslmode=disable&search_path=new"


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_services_required_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WHISPR_REQUIRE_SERVICES", value)
    assert services.services_required()
    monkeypatch.setenv("WHISPR_REQUIRE_SERVICES", "0")
    assert not services.services_required()
