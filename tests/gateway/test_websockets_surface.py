"""What the gateway uses of websockets beyond its documented surface is there, as relied on.

``whispr/gateway/connection.py`` queues frames on a connection's sans-I/O protocol and writes
them to its transport itself, once per loop turn and socket. websockets is pinned to one
major release in pyproject.toml for that reason; an upgrade that moves either attribute
fails here, by name.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.server import ServerProtocol


async def test_a_server_connection_exposes_its_protocol_and_transport() -> None:
    seen: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        seen.set_result(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            ws = await seen
            assert isinstance(ws.protocol, ServerProtocol)
            assert isinstance(ws.transport, asyncio.Transport)
            # The gateway's write path: queue on the protocol, write what it gives, at once.
            ws.protocol.send_text(b'["hello"]')
            chunks = ws.protocol.data_to_send()
            assert chunks
            ws.transport.writelines(chunks)
            assert await client.recv() == '["hello"]'
