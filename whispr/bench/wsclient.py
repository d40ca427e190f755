"""The load generator's own Phoenix Channels V2 client, on picows.

:class:`whispr.client.PhoenixClient` (on ``websockets``) costs its process a task, a future
and a timeout scope per push, and an ``async for`` step per received frame: at 10,000
messages per second in pairs the generator handles 40,000 frames a second, and with that
client it needed most of a core on a two-core machine that also runs the node under test,
PostgreSQL and Redis. Every core-second the generator spends is taken from the node, so
the figures measured the generator as much as the node.

This client does the same wire work through callbacks: picows (a Cython WebSocket
implementation) calls :meth:`_Listener.on_ws_frame` for each frame, a reply resolves a plain
future, and a push is one synchronous ``send``. It keeps only what the generator uses:
connect with a token, join, push with or without waiting, events to a callback, heartbeats.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from whispr.client import ServerEvent, settle_reply

__all__ = ["BenchClient"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

#: Close codes that mean "no code" and must never be sent (picows's own default is one).
_NOT_SENDABLE = {WSCloseCode.NO_INFO, 1005, WSCloseCode.ABNORMAL_CLOSURE}

#: Phoenix's heartbeat interval; the server closes a socket silent for three of them.
HEARTBEAT_S = 30.0


class _Listener(WSListener):
    """Routes frames: replies to their push's future, everything else to ``on_event``."""

    def __init__(self, on_event: Callable[[ServerEvent], None]) -> None:
        super().__init__()
        self.on_event = on_event
        self.pending: dict[str, tuple[asyncio.Future[dict[str, Any]], str, str]] = {}

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT:
            join_ref, ref, topic, event, payload = _decode(frame.get_payload_as_bytes())
            if event == "phx_reply":
                entry = self.pending.pop(ref, None)
                if entry is not None:
                    future, _topic, pushed = entry
                    settle_reply(future, topic, pushed, payload)
                return
            self.on_event(ServerEvent(join_ref, topic, event, payload))
        elif kind is WSMsgType.CLOSE:
            code = frame.get_close_code()
            # Echo the server's code (RFC 6455, 5.5.1), but never one reserved for "none".
            transport.send_close(WSCloseCode.OK if code in _NOT_SENDABLE else code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for future, _topic, _event in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))
        self.pending.clear()


class BenchClient:
    """One connection; create it with :meth:`connect`, end it with :meth:`close`."""

    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self._transport = transport
        self._listener = listener
        self._refs = itertools.count(1)
        self._joins: dict[str, str] = {}
        self._loop = asyncio.get_running_loop()
        self._heartbeat = self._loop.call_later(HEARTBEAT_S, self._beat)

    @classmethod
    async def connect(
        cls, url: str, token: str, on_event: Callable[[ServerEvent], None]
    ) -> BenchClient:
        """Open ``url`` (``ws://host:port/socket/websocket``) as the bearer of ``token``."""
        separator = "&" if "?" in url else "?"
        transport, listener = await ws_connect(
            lambda: _Listener(on_event),
            f"{url}{separator}vsn=2.0.0&token={token}",
            websocket_handshake_timeout=10,
        )
        assert isinstance(listener, _Listener)
        return cls(transport, listener)

    async def join(
        self, topic: str, params: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Join ``topic``; the reply's response (a refusal raises ``ReplyError``)."""
        ref = str(next(self._refs))
        self._joins[topic] = ref
        future = self._send(ref, ref, topic, "phx_join", params or {})
        return await asyncio.wait_for(future, timeout)

    def push_nowait(
        self, topic: str, event: str, payload: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        """Push ``event``; the future resolves with the reply's response."""
        return self._send(self._joins.get(topic), str(next(self._refs)), topic, event, payload)

    async def push(
        self, topic: str, event: str, payload: dict[str, Any], *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Push ``event`` and wait for the reply's response."""
        return await asyncio.wait_for(self.push_nowait(topic, event, payload), timeout)

    async def wait_closed(self) -> None:
        """Return once the connection is down, whichever side ended it."""
        await self._transport.wait_disconnected()

    async def close(self) -> None:
        """Close the connection (normal closure) and wait until it is down."""
        self._heartbeat.cancel()
        if not self._transport.is_disconnected:
            self._transport.send_close(WSCloseCode.OK)
            self._transport.disconnect()
        await self._transport.wait_disconnected()

    def _send(
        self, join_ref: str | None, ref: str, topic: str, event: str, payload: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if self._transport.is_disconnected:
            future.set_exception(ConnectionError("connection closed"))
            return future
        self._listener.pending[ref] = (future, topic, event)
        self._transport.send(WSMsgType.TEXT, _encode([join_ref, ref, topic, event, payload]))
        return future

    def _beat(self) -> None:
        if self._transport.is_disconnected:
            return
        ref = str(next(self._refs))
        self._transport.send(WSMsgType.TEXT, _encode([None, ref, "phoenix", "heartbeat", {}]))
        self._heartbeat = self._loop.call_later(HEARTBEAT_S, self._beat)
