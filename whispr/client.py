"""A small asyncio Phoenix Channels V2 client: for the load generator, tests and scripts.

It speaks the same wire format as phoenix.js (``[join_ref, ref, topic, event, payload]``,
string refs, heartbeats on ``phoenix``), over ``websockets``::

    async with PhoenixClient.connect(url, token) as client:
        await client.join("conversation:c1", {"last_seq": 0})
        reply = await client.push("conversation:c1", "send_message", {"client_id": "m1",
                                                                     "content": "hi"})
        event = await client.next_event("conversation:c1", "new_message")

Replies resolve the push's future; every other frame (pushes and broadcasts from the server)
goes to one queue per topic, read with :meth:`PhoenixClient.next_event` or handed to an
``on_event`` callback (the load generator timestamps deliveries there). Error replies raise
:class:`ReplyError` carrying the server's ``response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["PhoenixClient", "ReplyError", "ServerEvent", "settle_reply"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ReplyError(Exception):
    """The server answered a push or a join with ``{"status": "error"}``."""

    def __init__(self, topic: str, event: str, response: dict[str, Any]) -> None:
        super().__init__(f"{event} on {topic}: {response}")
        self.topic = topic
        self.event = event
        self.response = response

    @property
    def reason(self) -> str:
        """The machine-readable reason (``not_member``, ``unmatched topic``...)."""
        return str(self.response.get("reason", ""))


def settle_reply(
    future: asyncio.Future[dict[str, Any]], topic: str, pushed: str, payload: dict[str, Any]
) -> None:
    """Resolve a push's ``future`` from its ``phx_reply`` payload.

    ``ok`` gives the reply's ``response``; any other status raises :class:`ReplyError` with
    it. Shared by every client here (this one and the load generator's), so that they read
    replies the same way.
    """
    if future.done():
        return
    response = payload.get("response", {})
    if payload.get("status") == "ok":
        future.set_result(response)
    else:
        future.set_exception(ReplyError(topic, pushed, response))


class ServerEvent(msgspec.Struct, frozen=True):
    """A frame from the server that is not a reply."""

    join_ref: str | None
    topic: str
    event: str
    payload: dict[str, Any]


async def _beat(ws: ClientConnection, refs: Iterator[int], interval: float) -> None:
    """A client's heartbeats, until cancelled.

    A function of the socket rather than a method of the client: the cancelled task keeps
    its ``CancelledError``, whose traceback holds this frame, and a frame holding the client
    (which holds the task) would leave every closed client a cycle for the collector.
    """
    while True:
        await asyncio.sleep(interval)
        ref = str(next(refs))
        with contextlib.suppress(ConnectionClosed):
            await ws.send(_encode([None, ref, "phoenix", "heartbeat", {}]).decode())


class PhoenixClient:
    """One WebSocket connection speaking Phoenix Channels V2; see the module's docstring."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        heartbeat_s: float = 30.0,
        on_event: Callable[[ServerEvent], None] | None = None,
        queue_events: bool = True,
    ) -> None:
        self.ws = ws
        self.on_event = on_event
        #: Whether events are kept for :meth:`next_event` (a load generator that only counts
        #: them in ``on_event`` turns this off, or its memory grows with every event).
        self.queue_events = queue_events
        self._refs = itertools.count(1)
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], str, str]] = {}
        self._joins: dict[str, str] = {}
        self._queues: dict[str, asyncio.Queue[ServerEvent]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._heartbeat = asyncio.get_running_loop().create_task(_beat(ws, self._refs, heartbeat_s))
        #: Why the connection ended, once it has: ``(code, reason)``.
        self.closed: tuple[int | None, str] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str,
        token: str | None = None,
        *,
        heartbeat_s: float = 30.0,
        on_event: Callable[[ServerEvent], None] | None = None,
        queue_events: bool = True,
        **options: Any,
    ) -> AsyncIterator[PhoenixClient]:
        """Connect to ``url`` (``ws://host:port/socket/websocket``) with ``token``."""
        separator = "&" if "?" in url else "?"
        full = f"{url}{separator}vsn=2.0.0" + (f"&token={token}" if token else "")
        async with connect(full, open_timeout=10, ping_interval=None, **options) as ws:
            client = cls(ws, heartbeat_s=heartbeat_s, on_event=on_event, queue_events=queue_events)
            try:
                yield client
            finally:
                await client.aclose()

    async def aclose(self) -> None:
        """Stop heartbeats and close the socket."""
        self._heartbeat.cancel()
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def wait_closed(self) -> tuple[int | None, str]:
        """Wait for the server to close the connection; its close code and reason."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        assert self.closed is not None
        return self.closed

    # -- channels -------------------------------------------------------------------------

    async def join(
        self, topic: str, params: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Join ``topic``; the join reply's response (raises :class:`ReplyError` if refused)."""
        ref = str(next(self._refs))
        self._joins[topic] = ref
        self._queues.setdefault(topic, asyncio.Queue())
        return await self._send(ref, ref, topic, "phx_join", params or {}, timeout)

    def join_ref(self, topic: str) -> str | None:
        """The ``join_ref`` of ``topic``'s current join (None: not joined); for raw frames."""
        return self._joins.get(topic)

    async def leave(self, topic: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Leave ``topic``."""
        join_ref = self._joins.pop(topic, None)
        ref = str(next(self._refs))
        return await self._send(join_ref, ref, topic, "phx_leave", {}, timeout)

    async def push(
        self, topic: str, event: str, payload: dict[str, Any], *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Push ``event`` and wait for its reply's response."""
        ref = str(next(self._refs))
        return await self._send(self._joins.get(topic), ref, topic, event, payload, timeout)

    async def refresh_token(self, token: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Send a fresh token on the open connection (``refresh_token`` on ``phoenix``)."""
        ref = str(next(self._refs))
        return await self._send(None, ref, "phoenix", "refresh_token", {"token": token}, timeout)

    def push_nowait(self, topic: str, event: str, payload: dict[str, Any]) -> asyncio.Future[Any]:
        """Push without waiting; the future resolves with the reply's response."""
        ref = str(next(self._refs))
        return asyncio.ensure_future(
            self._send(self._joins.get(topic), ref, topic, event, payload, None)
        )

    async def send_raw(self, data: str | bytes) -> None:
        """Send anything (tests of bad input)."""
        await self.ws.send(data)

    async def next_event(
        self, topic: str, event: str | None = None, *, timeout: float = 10.0
    ) -> ServerEvent:
        """The next server event on ``topic`` (of name ``event``, skipping others)."""
        queue = self._queues.setdefault(topic, asyncio.Queue())
        async with asyncio.timeout(timeout):
            while True:
                item = await queue.get()
                if event is None or item.event == event:
                    return item

    def drain_events(self, topic: str) -> list[ServerEvent]:
        """Every event already received on ``topic`` and not yet read."""
        queue = self._queues.setdefault(topic, asyncio.Queue())
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    # -- plumbing -------------------------------------------------------------------------

    async def _send(
        self,
        join_ref: str | None,
        ref: str,
        topic: str,
        event: str,
        payload: dict[str, Any],
        timeout: float | None,
    ) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = (future, topic, event)
        try:
            await self.ws.send(_encode([join_ref, ref, topic, event, payload]).decode())
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(ref, None)

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                join_ref, ref, topic, event, payload = _decode(data)
                if event == "phx_reply" and ref in self._pending:
                    future, _topic, pushed = self._pending[ref]
                    settle_reply(future, topic, pushed, payload)
                    continue
                item = ServerEvent(join_ref, topic, event, payload)
                if self.on_event is not None:
                    self.on_event(item)
                if self.queue_events:
                    self._queues.setdefault(topic, asyncio.Queue()).put_nowait(item)
        except ConnectionClosed:
            pass
        finally:
            self._heartbeat.cancel()
            self.closed = (self.ws.close_code, self.ws.close_reason or "")
            for future, _topic, _event in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
