"""A bare relay: the ceiling the gateway's figures are read against (``whispr bench --relay``).

docs/design.md (section 9) names it: a ``websockets`` server on uvloop with msgspec and no
application logic. It speaks just enough Phoenix Channels V2 for the load generator (join,
heartbeat, ``create_conversation``, ``send_message`` answered with a seq and broadcast as
``new_message`` to every socket joined to the topic, catch-up on join from ``last_seq``),
and keeps everything in memory: no actors, no store, no broker, no auth, no limits. What a node
costs beyond it, at the same load and with the same generator, is what the messaging service
itself costs.

Run as ``python -m whispr.bench.relay --port PORT``; ``GET /ready`` answers 200 once it
listens.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import defaultdict
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

__all__ = ["main"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class _Relay:
    def __init__(self) -> None:
        self.members: defaultdict[str, set[ServerConnection]] = defaultdict(set)
        self.history: defaultdict[str, list[str]] = defaultdict(list)
        self.ids = itertools.count(1)

    async def handle(self, ws: ServerConnection) -> None:
        joined: list[str] = []
        try:
            async for data in ws:
                join_ref, ref, topic, event, payload = _decode(data)
                response: dict[str, Any] = {}
                if event == "phx_join":
                    self.members[topic].add(ws)
                    joined.append(topic)
                    await self._reply(ws, join_ref, ref, topic, response)
                    for frame in self.history[topic][int(payload.get("last_seq", 0)) :]:
                        await ws.send(frame)
                    continue
                if event == "create_conversation":
                    response = {"conversation": {"id": f"relay-{next(self.ids)}"}}
                elif event == "send_message":
                    response = self._broadcast(topic, payload)
                await self._reply(ws, join_ref, ref, topic, response)
        finally:
            for topic in joined:
                self.members[topic].discard(ws)

    def _broadcast(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        history = self.history[topic]
        message = {
            "id": f"m{next(self.ids)}",
            "seq": len(history) + 1,
            "content": payload.get("content", ""),
            "metadata": payload.get("metadata", {}),
        }
        frame = _encode([None, None, topic, "new_message", {"message": message}]).decode()
        history.append(frame)
        data = frame.encode()
        for member in self.members[topic]:
            # The gateway's own trick: write into the socket's buffer with no task switch.
            try:
                member.protocol.send_text(data)
                member.send_data()
            except Exception:  # closing: its handler ends and forgets it
                continue
        return {"id": message["id"], "seq": message["seq"]}

    @staticmethod
    async def _reply(
        ws: ServerConnection, join_ref: str | None, ref: str, topic: str, response: Any
    ) -> None:
        reply = {"status": "ok", "response": response}
        await ws.send(_encode([join_ref, ref, topic, "phx_reply", reply]).decode())


def _ready(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/ready":
        return connection.respond(HTTPStatus.OK, "ready\n")
    return None


async def _serve(port: int) -> None:
    relay = _Relay()
    async with serve(
        relay.handle,
        "127.0.0.1",
        port,
        process_request=_ready,
        compression=None,
        ping_interval=None,
        max_queue=None,
        backlog=4096,  # as the node's listen_backlog: a thousand reconnects at once
    ):
        await asyncio.Future()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve on ``--port`` until killed."""
    parser = argparse.ArgumentParser(prog="python -m whispr.bench.relay")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
