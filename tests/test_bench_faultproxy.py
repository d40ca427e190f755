"""The fault proxy over real sockets: it forwards, delays, partitions, heals and resets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from whispr.bench.faultproxy import FaultProxy

#: Longer than a loopback round trip on a loaded machine by far: no reply within it is silence.
SILENCE_S = 0.5


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy("127.0.0.1", int(upstream.sockets[0].getsockname()[1]))
    await proxy.start()
    yield proxy
    await proxy.close()
    upstream.close()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 10)


async def test_it_forwards_both_ways(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer, b"ping") == b"ping"
    big = bytes(range(256)) * 2048  # 512 KiB: several chunks, in order
    assert await _round_trip(reader, writer, big) == big
    assert proxy.connections == 1
    writer.close()


async def test_a_delay_holds_each_direction_and_keeps_order(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    proxy.delay(0.3)
    began = time.monotonic()
    for n in range(5):
        writer.write(b"%d" % n)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(5), 10)
    assert got == b"01234"
    assert time.monotonic() - began >= 0.6  # 0.3 s there, 0.3 s back
    proxy.heal()
    assert await _round_trip(reader, writer, b"now") == b"now"
    writer.close()


async def test_a_partition_is_silence_on_open_sockets_until_it_heals(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer, b"before") == b"before"
    proxy.partition()
    writer.write(b"during")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), SILENCE_S)
    assert not reader.at_eof()  # no reset, no close: silence
    # A new connection is accepted and held, not connected on.
    late_reader, late_writer = await _connect(proxy)
    late_writer.write(b"late")
    await late_writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(late_reader.read(100), SILENCE_S)
    assert proxy.partitioned
    proxy.heal()
    # What waited goes through, in order, on both.
    assert await asyncio.wait_for(reader.readexactly(6), 10) == b"during"
    assert await asyncio.wait_for(late_reader.readexactly(4), 10) == b"late"
    assert await _round_trip(reader, writer, b"after") == b"after"
    writer.close()
    late_writer.close()


async def test_a_reset_aborts_every_connection(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _round_trip(reader, writer, b"x") == b"x"
    proxy.reset()
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), 10)
    assert proxy.connections == 0
    again_reader, again_writer = await _connect(proxy)  # new connections work
    assert await _round_trip(again_reader, again_writer, b"y") == b"y"
    again_writer.close()


async def _echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read(1024))
    await writer.drain()
    writer.close()


async def test_the_upstream_going_away_closes_the_client_side() -> None:
    upstream = await asyncio.start_server(_echo_once, "127.0.0.1", 0)
    port = int(upstream.sockets[0].getsockname()[1])
    proxy = FaultProxy("127.0.0.1", port)
    await proxy.start()
    try:
        reader, writer = await _connect(proxy)
        assert await _round_trip(reader, writer, b"x") == b"x"
        assert await asyncio.wait_for(reader.read(100), 10) == b""  # upstream closed: so do we
        upstream.close()
        await upstream.wait_closed()
        # Nothing listens upstream now: a new connection is reset at once, as it would be.
        reader, writer = await _connect(proxy)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 10)
        assert proxy.connections == 0
    finally:
        await proxy.close()
