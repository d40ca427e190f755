"""The official phoenix.js client against a minimal gateway built on ConnectionProtocol.

Opt-in, because it needs Node.js and two npm packages the project does not install::

    mkdir /tmp/phx && cd /tmp/phx && npm init -y && npm install phoenix@1.8 ws@8
    WHISPR_PHOENIX_JS=/tmp/phx pytest tests/protocol/test_phoenix_js_client.py

``phoenix_client.mjs`` joins, pushes (JSON and binary), receives replies, broadcasts and
presence, heartbeats, and goes through rejected and crashed joins, a crashed channel and its
rejoin, a server-side close and a leave, asserting what phoenix.js itself sees. The gateway
below is the smallest loop the core allows: receive, send ``data_to_send``, answer events.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import websockets

from whispr.protocol import frames, presence
from whispr.protocol.channels import (
    ConnectionProtocol,
    JoinRequested,
    ProtocolViolation,
    PushReceived,
)

PHOENIX_JS = os.environ.get("WHISPR_PHOENIX_JS", "")
pytestmark = pytest.mark.skipif(
    not (
        shutil.which("node")
        and PHOENIX_JS
        and (Path(PHOENIX_JS) / "node_modules" / "phoenix").is_dir()
        and (Path(PHOENIX_JS) / "node_modules" / "ws").is_dir()
    ),
    reason="needs node and WHISPR_PHOENIX_JS=<dir with node_modules/phoenix and ws>",
)

Send = Callable[[bytes | None], Awaitable[None]]


async def gateway(ws: websockets.ServerConnection) -> None:
    assert ws.request is not None
    assert ws.request.path.startswith("/socket/websocket?")
    assert "vsn=2.0.0" in ws.request.path
    assert "token=T" in ws.request.path
    proto = ConnectionProtocol(topic_prefixes=("room:",))
    join_crashed: set[str] = set()

    async def send(data: bytes | None) -> None:
        if data is not None:
            await ws.send(data, text=not frames.is_binary(data))

    async for message in ws:
        proto.receive_data(message, binary=isinstance(message, bytes))
        for data in proto.data_to_send():
            await send(data)
        for event in proto.events_received():
            if isinstance(event, JoinRequested):
                await on_join(proto, event, join_crashed, send)
            elif isinstance(event, PushReceived):
                await on_push(proto, event, send)
            elif isinstance(event, ProtocolViolation):
                await ws.close(event.code, event.message)
    proto.connection_closed()


async def on_join(
    proto: ConnectionProtocol, event: JoinRequested, crashed: set[str], send: Send
) -> None:
    topic, join_ref = event.topic, event.join_ref
    if topic == "room:forbidden":
        await send(proto.reject_join(topic, "forbidden", join_ref=join_ref))
    elif topic == "room:joincrash" and topic not in crashed:
        crashed.add(topic)
        await send(proto.channel_crashed(topic, join_ref=join_ref))
    else:
        await send(proto.accept_join(topic, {"welcome": event.payload}, join_ref=join_ref))
        state, _ = presence.track({}, "u1", {"device": "node"}, ref="r1")
        await send(proto.push(topic, presence.PRESENCE_STATE, presence.state_payload(state)))
        _, diff = presence.update(state, "u1", "r1", {"status": "away"}, new_ref="r2")
        encoded = frames.encode_broadcast(topic, presence.PRESENCE_DIFF, diff)
        await send(proto.broadcast(topic, encoded))


async def on_push(proto: ConnectionProtocol, event: PushReceived, send: Send) -> None:
    topic, ref, join_ref = event.topic, event.ref, event.join_ref
    if event.event == "echo":
        await send(proto.reply(topic, ref, "ok", {"echo": event.payload}, join_ref=join_ref))
    elif event.event == "fail":
        await send(proto.reply(topic, ref, "error", {"reason": "invalid"}, join_ref=join_ref))
    elif event.event == "upload":
        assert isinstance(event.payload, bytes)
        await send(proto.reply(topic, ref, "ok", event.payload[::-1], join_ref=join_ref))
        await send(proto.broadcast(topic, frames.encode_broadcast(topic, "blob", b"\x01\x02\x03")))
    elif event.event == "crash":
        await send(proto.channel_crashed(topic, join_ref=join_ref))
    elif event.event == "kick":
        await send(proto.reply(topic, ref, "ok", {}, join_ref=join_ref))
        await send(proto.close_channel(topic, join_ref=join_ref))


async def test_phoenix_js_client_end_to_end() -> None:
    async with websockets.serve(gateway, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        script = Path(__file__).with_name("phoenix_client.mjs")
        node = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(node.communicate(), 60)
    text = output.decode()
    assert node.returncode == 0, text
    assert text.rstrip().endswith("all ok"), text
