"""A TCP proxy that injects network faults between one node and a service (Redis in the chaos run).

The kernel's ``netem`` is not available everywhere the chaos run must work, and toxiproxy
ships no binary in the registries this project installs from, so the run puts this proxy
between one node and its Redis (the node's ``WHISPR_REDIS_URL`` names the proxy) and tells
it, while traffic flows, to:

* :meth:`FaultProxy.delay`: hold every chunk, in both directions, ``seconds`` before it is
  passed on (order kept, throughput not capped: latency, as on a long or congested link);
* :meth:`FaultProxy.partition`: pass nothing either way while keeping every socket open,
  and accept new connections without connecting them on, as a partition looks from both
  ends: no error, no reset, just silence. Bytes are not dropped (TCP would retransmit them
  after the partition), they wait in the kernel's buffers;
* :meth:`FaultProxy.heal`: back to forwarding at once (what waited goes through);
* :meth:`FaultProxy.reset`: abort every open connection with a TCP reset.

One job only: it forwards bytes and knows nothing of the protocol they carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

__all__ = ["FaultProxy"]

#: Bytes read from one side at a time.
_CHUNK = 64 * 1024


@dataclass(eq=False)
class _Pipe:
    """One proxied connection: the client's side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host``:``upstream_port``, faults on command."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.latency = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def partitioned(self) -> bool:
        """Whether nothing flows now."""
        return not self._flowing.is_set()

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._pipes)

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:``port`` (0: a free one, then in :attr:`port`)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def delay(self, seconds: float) -> None:
        """From now on, hold each chunk ``seconds`` before passing it on (0: no delay)."""
        self.latency = max(0.0, seconds)

    def partition(self) -> None:
        """Stop passing bytes either way; sockets stay open, new ones are held unconnected."""
        self._flowing.clear()

    def heal(self) -> None:
        """Forward again, without delay."""
        self.latency = 0.0
        self._flowing.set()

    def reset(self) -> None:
        """Abort every open connection with a TCP reset (both sides)."""
        for pipe in list(self._pipes):
            self._abort(pipe)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        self.reset()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    # -- forwarding ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        pipe = _Pipe(writer)
        self._pipes.add(pipe)
        try:
            await self._flowing.wait()  # a partition: the connection is held, not connected on
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self._abort(pipe)
                return
            pipe.upstream = up_writer
            pipe.tasks = [
                asyncio.create_task(self._forward(reader, up_writer)),
                asyncio.create_task(self._forward(up_reader, writer)),
            ]
            # Either side closing ends the connection: the other is closed too.
            await asyncio.wait(pipe.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._close(pipe)
            self._handlers.discard(task)

    async def _forward(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Read ``source`` and write ``sink``: each chunk after the latency set when it was
        read, never while partitioned. Reading and writing are separate tasks so that a
        delay holds chunks in flight without slowing the reading of the next ones."""
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        writer = asyncio.create_task(self._write(held, sink))
        try:
            while True:
                await self._flowing.wait()
                try:
                    data = await source.read(_CHUNK)
                except OSError:
                    return
                if not data:
                    await held.put((0.0, b""))  # end of stream, after what is held
                    await writer
                    return
                await held.put((time.monotonic() + self.latency, data))
                if writer.done():
                    return
        finally:
            writer.cancel()

    async def _write(
        self, held: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter
    ) -> None:
        while True:
            due, data = await held.get()
            if not data:
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()
            sink.write(data)
            try:
                await sink.drain()
            except OSError:
                return

    def _close(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        for task in pipe.tasks:
            task.cancel()
        for side in (pipe.client, pipe.upstream):
            if side is not None and not side.is_closing():
                side.close()

    def _abort(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        for task in pipe.tasks:
            task.cancel()
        for side in (pipe.client, pipe.upstream):
            if side is None:
                continue
            sock = side.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close sends a reset, not a FIN.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            side.transport.abort()
