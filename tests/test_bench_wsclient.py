"""The load generator's picows client against a real WebSocket server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from websockets.asyncio.server import ServerConnection, serve

from whispr.bench.wsclient import BenchClient
from whispr.client import ReplyError, ServerEvent

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


async def _server_side(ws: ServerConnection) -> None:
    """Accepts joins, refuses ``bad`` pushes, echoes ``send`` as an event, closes on ``bye``."""
    assert "token=secret" in (ws.request.path if ws.request else "")
    async for data in ws:
        join_ref, ref, topic, event, payload = _decode(data)
        if event == "phx_join":
            reply = {"status": "ok", "response": {"joined": topic}}
        elif event == "bad":
            reply = {"status": "error", "response": {"reason": "invalid"}}
        elif event == "send":
            await ws.send(_encode([join_ref, None, topic, "sent", payload]).decode())
            reply = {"status": "ok", "response": {"seq": 1}}
        elif event == "bye":
            await ws.close(1012, "service restart")
            return
        else:
            continue
        await ws.send(_encode([join_ref, ref, topic, "phx_reply", reply]).decode())


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serve(_server_side, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/socket/websocket"


async def test_join_push_reply_and_event(url: str) -> None:
    events: list[ServerEvent] = []
    client = await BenchClient.connect(url, "secret", events.append)
    assert await client.join("room:1") == {"joined": "room:1"}
    assert await client.push("room:1", "send", {"n": 1}) == {"seq": 1}
    assert [(e.topic, e.event, e.payload) for e in events] == [("room:1", "sent", {"n": 1})]
    assert events[0].join_ref == "1"  # the join's ref, as phoenix.js sends it
    await client.close()


async def test_a_refused_push_raises_the_servers_reason(url: str) -> None:
    client = await BenchClient.connect(url, "secret", lambda event: None)
    await client.join("room:1")
    with pytest.raises(ReplyError) as refused:
        await client.push("room:1", "bad", {})
    assert refused.value.reason == "invalid"
    await client.close()


async def test_pushes_in_flight_fail_when_the_server_closes(url: str) -> None:
    client = await BenchClient.connect(url, "secret", lambda event: None)
    await client.join("room:1")
    waiting = client.push_nowait("room:1", "never-answered", {})
    client.push_nowait("room:1", "bye", {})
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ConnectionError):
        await client.push("room:1", "send", {})  # after the close: refused at once
    await client.close()
