"""phoenix.js (the official client, unchanged) closed by a token revocation: what it sees.

phoenix.js 1.8 reconnects after any close it did not ask for, whatever the code. A revoked
token closes with 4001 and "token revoked"; an application that answers 4001 with
``socket.disconnect()`` stays closed, and one that does not keeps trying and is refused at
every handshake (see phoenix_revoked.mjs).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import unique
from tests.gateway.test_phoenix_js import _phoenix_js
from tests.grpc.conftest import GrpcNode
from whispr.grpc.gen.whispr.server.v1 import server_pb2 as pb
from whispr.grpc.gen.whispr.server.v1 import server_pb2_grpc as pb_grpc


async def _revoked(grpc_node: GrpcNode, honour: bool) -> dict[str, Any]:
    directory = _phoenix_js()
    running = grpc_node.running
    user = unique("ada")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(Path(__file__).with_name("phoenix_revoked.mjs")),
        running.url.removesuffix("/websocket"),
        running.token(user, "js"),
        user,
        "1" if honour else "0",
        env={**os.environ, "WHISPR_PHOENIX_JS": directory},
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
        assert ready == "joined"
        async with grpc_node.channel() as channel:
            await pb_grpc.ServerApiStub(channel).RevokeTokens(
                pb.RevokeTokensRequest(kind=pb.REVOCATION_KIND_USER, user_id=user),
                metadata=grpc_node.auth(),
            )
        outcome: dict[str, Any] = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    return outcome


async def test_an_application_that_honours_4001_stays_closed(grpc_node: GrpcNode) -> None:
    outcome = await _revoked(grpc_node, honour=True)
    assert outcome == {"closes": [[4001, "token revoked"]], "opens": 1, "errors": 0}


@pytest.mark.parametrize("grpc_node", ["embedded"], indirect=True)
async def test_phoenix_js_alone_reconnects_and_is_refused(grpc_node: GrpcNode) -> None:
    outcome = await _revoked(grpc_node, honour=False)
    assert outcome["closes"] == [[4001, "token revoked"]]
    assert outcome["opens"] == 1  # every reconnect was refused at the handshake
    assert outcome["errors"] >= 1
