"""Where the test suite finds PostgreSQL and Redis, and whether it may skip without them.

Tests that need a real service ask for the ``postgres_url``, ``redis_url`` or
``pg_schema`` fixtures (``tests/conftest.py``). When a service is not
reachable those tests are *skipped*, so that ``make test`` works on a laptop
with nothing installed; with ``WHISPR_REQUIRE_SERVICES=1`` (as ``.ci/run``
sets) they *fail* instead, so that CI can never go green by silently skipping
the integration tests.

This module holds the plain functions behind the fixtures, so other
conftests (``tests/broker/conftest.py``) can follow the same policy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_REDIS_URL",
    "PgSchema",
    "check_postgres",
    "check_redis",
    "database_url",
    "new_schema_name",
    "private_schema",
    "redis_url",
    "services_required",
    "with_search_path",
]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: How long a reachability check may take before the service counts as down.
CHECK_TIMEOUT_S = 3.0

_T = TypeVar("_T")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def services_required() -> bool:
    """True when missing services must fail the tests rather than skip them."""
    return os.environ.get("WHISPR_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def database_url() -> str:
    """The test database: ``$WHISPR_TEST_DATABASE_URL`` or the local default."""
    return os.environ.get("WHISPR_TEST_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL


def redis_url() -> str:
    """The test Redis: ``$WHISPR_TEST_REDIS_URL`` or the local default."""
    return os.environ.get("WHISPR_TEST_REDIS_URL", "").strip() or DEFAULT_REDIS_URL


def _run_coroutine(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to completion on a fresh loop in a worker thread.

    A thread, because the caller may itself be running inside an event loop
    (pytest-asyncio) where ``asyncio.run`` is refused.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def check_postgres(url: str, timeout: float = CHECK_TIMEOUT_S) -> str | None:
    """None when ``url`` accepts a connection and a query, else why not."""
    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=timeout)
        try:
            await connection.fetchval("SELECT 1", timeout=timeout)
        finally:
            await connection.close(timeout=timeout)

    try:
        _run_coroutine(asyncio.wait_for(probe(), timeout * 2))
    except Exception as exc:
        return f"PostgreSQL at {_redact(url)} is not usable: {type(exc).__name__}: {exc}"
    return None


def check_redis(url: str, timeout: float = CHECK_TIMEOUT_S) -> str | None:
    """None when ``url`` answers PING, else why not."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis at {_redact(url)} is not usable: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def _redact(url: str) -> str:
    """``url`` with any password replaced, for skip and failure messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def new_schema_name(prefix: str = "t") -> str:
    """A schema name unique across processes and machines sharing one database."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    if not _SCHEMA_NAME.match(name):
        msg = f"invalid schema name {name!r}"
        raise ValueError(msg)
    return name


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``search_path=<schema>`` as a query parameter.

    asyncpg passes query parameters it does not know to the server as
    run-time settings, so every connection opened with this URL (a pool's
    too) starts with ``schema`` first on its search path.
    """
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class PgSchema:
    """A private schema in the shared test database, for one test.

    Several test processes (and CI runs) share one database, so each test
    that writes tables gets a schema of its own rather than the database's
    ``public``.

    Attributes:
        schema: the schema's name (already safe to interpolate as an identifier).
        url: a DSN whose connections use ``schema`` first on the search path.
        base_url: the database's DSN, without the search path.
        server_settings: for ``asyncpg.connect(base_url,
            server_settings=...)`` or ``create_pool``, if you prefer that to
            ``url``.
    """

    schema: str
    url: str
    base_url: str
    server_settings: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def private_schema(postgres_url: str) -> AsyncIterator[PgSchema]:
    """Create a uniquely named schema for one test and drop it (CASCADE) afterwards."""
    import asyncpg

    name = new_schema_name()
    connection = await asyncpg.connect(postgres_url, timeout=CHECK_TIMEOUT_S)
    try:
        await connection.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await connection.close()
    try:
        yield PgSchema(
            schema=name,
            url=with_search_path(postgres_url, name),
            base_url=postgres_url,
            server_settings={"search_path": name},
        )
    finally:
        connection = await asyncpg.connect(postgres_url, timeout=CHECK_TIMEOUT_S)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await connection.close()
