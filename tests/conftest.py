"""Fixtures shared by the whole suite: real PostgreSQL and Redis, or a clear skip.

- ``postgres_url`` / ``redis_url`` (session): the service's URL, checked once
  per session. Unreachable: skip with the reason, or fail when
  ``WHISPR_REQUIRE_SERVICES=1`` (see ``tests/services.py``).
- ``pg_schema`` (function, async): a fresh schema in the test database for
  one test, dropped with everything in it afterwards.

Tests using any of these are marked ``services`` automatically, so
``pytest -m "not services"`` runs only what needs nothing installed.

This file imports nothing from the project: it must load while the packages
under test are being written, and a broken import here would hide every test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests import services

_SERVICE_FIXTURES = frozenset({"postgres_url", "redis_url", "pg_schema"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real service with ``services``."""
    for item in items:
        if _SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def _unavailable(reason: str) -> None:
    if services.services_required():
        pytest.fail(f"{reason} (required: WHISPR_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test database's URL, known to accept connections."""
    url = services.database_url()
    problem = services.check_postgres(url)
    if problem is not None:
        _unavailable(problem)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis's URL, known to answer PING."""
    url = services.redis_url()
    problem = services.check_redis(url)
    if problem is not None:
        _unavailable(problem)
    return url


@pytest.fixture
async def pg_schema(postgres_url: str) -> AsyncIterator[services.PgSchema]:
    """A schema of this test's own in the shared test database, dropped afterwards."""
    async with services.private_schema(postgres_url) as schema:
        yield schema


# The parametrized ``store`` fixture: each test that asks for it runs on SQLite and PostgreSQL.
from tests.stores import store  # noqa: E402, F401
