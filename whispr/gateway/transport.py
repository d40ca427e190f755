"""What a connection needs of the wire under it: the seam between a connection and its transport.

A :class:`~whispr.gateway.connection.ConnectionActor` runs the Phoenix protocol, the channels,
the limits and the catch-up of one client; how its frames travel is the transport's business.
Two implement :class:`Transport`:

- :class:`WebSocketTransport`: a ``websockets`` server connection (``/socket/websocket``);
- :class:`~whispr.gateway.longpoll.LongPollTransport`: Phoenix's long-poll session
  (``/socket/longpoll``), whose frames wait in a buffer until the client polls.

Frames are queued one by one (:meth:`Transport.queue`) and handed to the wire once per loop turn
(:meth:`Transport.flush`), which reports how many bytes the client has not read yet: past the
connection's ``outbound_buffer_bytes`` the client is too slow and is disconnected, whatever
the transport.
"""

from __future__ import annotations

from typing import Protocol

from websockets.asyncio.server import ServerConnection

from whispr.audit.record import Source
from whispr.protocol import frames

__all__ = ["Transport", "WebSocketTransport"]


class Transport(Protocol):
    """The wire of one connection, as its actor uses it."""

    #: The transport's name in the audit log (``websocket``, ``longpoll``).
    source: Source

    def queue(self, data: bytes) -> None:
        """Queue one encoded frame (text, or binary as :func:`frames.is_binary` says).

        Raises when the transport is closing (the frame is dropped; the connection ends).
        """

    def flush(self) -> int:
        """Hand what was queued to the wire; the bytes the client has not read yet."""

    def unread(self) -> int:
        """The bytes sent and not yet read by the client."""

    async def drain(self) -> None:
        """Wait until the client has read enough for more to be sent."""

    async def close(self, code: int, reason: str) -> None:
        """End the transport with a close code and reason (the reader then ends)."""

    def alive(self, now: float) -> bool:
        """Whether the client shows it is there otherwise than by heartbeats (at ``now``,
        monotonic): long-poll clients send none, their polls are their heartbeat."""

    @property
    def peer(self) -> str | None:
        """The client's address."""


class WebSocketTransport:
    """A ``websockets`` server connection: frames go through its sans-I/O protocol and are
    written to the TCP transport in one ``writelines`` per loop turn (one system call)."""

    __slots__ = ("ws",)

    source: Source = "websocket"

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    def queue(self, data: bytes) -> None:
        if frames.is_binary(data):
            self.ws.protocol.send_binary(data)
        else:
            self.ws.protocol.send_text(data)

    def flush(self) -> int:
        ws = self.ws
        chunks = ws.protocol.data_to_send()
        transport = ws.transport
        if not chunks:
            return 0  # the socket's own writes (websockets) took them already
        if all(chunks):
            transport.writelines(chunks)
        else:  # an empty chunk is the protocol's end-of-stream marker (after a close)
            transport.writelines([chunk for chunk in chunks if chunk])
            if transport.can_write_eof():
                transport.write_eof()
        return transport.get_write_buffer_size()

    def unread(self) -> int:
        return self.ws.transport.get_write_buffer_size()

    async def drain(self) -> None:
        await self.ws.drain()

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    def alive(self, now: float) -> bool:
        return False  # the Phoenix heartbeat is a WebSocket client's only sign of life

    @property
    def peer(self) -> str | None:
        address = self.ws.remote_address
        return str(address[0]) if address else None
