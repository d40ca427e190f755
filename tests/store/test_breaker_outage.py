"""The store's breaker against a real PostgreSQL that goes away and comes back.

The database is reached through a TCP relay of the test's own, which can go silent:
connections it holds are cut and new ones are accepted but never answered, as in a
network partition or a database host that hangs. That is the outage where each call
waits for its own timeout (a refused connection fails fast anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from actors.errors import Reason, WhisprError
from actors.model import Conversation, Member
from tests.services import PgSchema
from whispr.store.breaker import BreakerStore
from whispr.store.postgres import PostgresStore

TIMEOUT_S = 0.5  # the store's connect and command timeouts
OPEN_S = 1.0


class Relay:
    """A TCP relay to PostgreSQL that can go silent (see the module's docstring)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.silent = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def go_silent(self) -> None:
        self.silent = True
        for writer in list(self._writers):
            writer.transport.abort()

    def come_back(self) -> None:
        self.silent = False

    async def close(self) -> None:
        self.go_silent()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.silent:
                while await reader.read(65536):
                    pass  # accepted, never answered
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@pytest.fixture
async def relay(pg_schema: PgSchema) -> AsyncIterator[Relay]:
    parts = urlsplit(pg_schema.base_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    yield relay
    await relay.close()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def _timed_failure(store: BreakerStore) -> float:
    started = time.perf_counter()
    with pytest.raises(WhisprError) as raised:
        await store.get_conversation("c1")
    assert raised.value.reason is Reason.UNAVAILABLE
    return time.perf_counter() - started


async def test_calls_fail_fast_once_the_database_is_gone_and_recover_after_it_returns(
    pg_schema: PgSchema, relay: Relay
) -> None:
    store = BreakerStore(
        PostgresStore(
            _through(pg_schema.base_url, relay.port),
            max_size=2,
            server_settings=pg_schema.server_settings,
            connect_timeout=TIMEOUT_S,
            command_timeout=TIMEOUT_S,
        ),
        "postgresql",
        failures=5,
        open_s=OPEN_S,
        trials=3,
    )
    await store.open()
    try:
        await store.migrate()
        now = time.time()
        conversation = Conversation(id="c1", kind="group", created_by="ada", created_at=now)
        await store.create_conversation(
            conversation,
            [Member(conversation_id="c1", user_id="ada", role="owner", joined_at=now)],
        )
        assert await store.get_conversation("c1") is not None

        relay.go_silent()
        waits = [await _timed_failure(store) for _ in range(5)]
        assert store.breaker.state == "open"
        # The first used the pooled connection the relay cut (failing at once); the others
        # waited for their timeouts.
        assert min(waits[1:]) > TIMEOUT_S / 2
        fast = [await _timed_failure(store) for _ in range(20)]
        assert max(fast) < TIMEOUT_S / 10  # open: at once, without the database
        assert not await store.ping()  # readiness still asks the database itself

        relay.come_back()
        assert await store.ping()
        with pytest.raises(WhisprError):  # back, but the open period is not over
            await store.get_conversation("c1")
        await asyncio.sleep(OPEN_S)
        for _ in range(3):
            found = await store.get_conversation("c1")
            assert found is not None
            assert found.id == "c1"
        assert store.breaker.state == "closed"
    finally:
        await store.close()
