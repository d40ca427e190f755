"""The official phoenix.js client forced onto its LongPoll transport (phoenix_longpoll.mjs).

On one node (each store), and on two nodes behind a round-robin proxy: one session carries
on whichever node each request reaches. Skipped without Node.js and the ``phoenix`` npm
package (``make phoenix-js``), except under ``WHISPR_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.conversation import Draft
from supervisors import stop_tree
from tests import services
from tests.gateway.conftest import RunningNode, start_node, unique
from tests.gateway.test_phoenix_js import _phoenix_js

SCRIPT = Path(__file__).with_name("phoenix_longpoll.mjs")


def socket_url(node: RunningNode) -> str:
    """phoenix.js's endpoint for long-poll on ``node``'s HTTP port."""
    return f"http://127.0.0.1:{node.node.http.get().port}/socket"


async def _conversation(node: RunningNode, ada: str, bob: str) -> str:
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "long-poll", [bob])).id
    for n in range(3):
        await messaging.send(bob, cid, Draft(client_id=f"before-{n}", content=str(n)))
    return cid


async def _run(ada_urls: list[str], bob_url: str, tokens: tuple[str, str], cid: str) -> str:
    directory = _phoenix_js()
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        ",".join(ada_urls),
        bob_url,
        *tokens,
        cid,
        env={**os.environ, "WHISPR_PHOENIX_JS": directory},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode()
    assert process.returncode == 0, text
    assert text.rstrip().endswith("all ok"), text
    return text


async def test_phoenix_js_works_over_long_poll(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = await _conversation(node, ada, bob)
    url = socket_url(node)
    longpoll = node.node.gateway.get().longpoll
    longpoll.idle_s = 1.0  # phoenix.js polls back to back: a live session is never idle
    print(await _run([url], url, (node.token(ada, "lp-ada"), node.token(bob, "lp-bob")), cid))
    # phoenix.js's disconnect tells the server nothing: its sessions end once not polled.
    for _ in range(100):
        if not len(longpoll):
            break
        await asyncio.sleep(0.05)
    assert len(longpoll) == 0


@pytest.fixture
async def two_nodes(
    postgres_url: str, redis_url: str
) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    async with services.private_schema(postgres_url) as schema:
        env = {
            "WHISPR_DATABASE_URL": schema.url,
            "WHISPR_REDIS_URL": redis_url,
            "WHISPR_REDIS_PREFIX": unique("longpoll"),
        }
        first = await start_node({**env, "WHISPR_NODE_NAME": unique("a")})
        try:
            second = await start_node({**env, "WHISPR_NODE_NAME": unique("b")})
            try:
                yield first, second
            finally:
                await stop_tree(second.root, deadline=10)
        finally:
            await stop_tree(first.root, deadline=10)


@pytest.mark.services
async def test_a_long_poll_session_carries_on_across_two_nodes(
    two_nodes: tuple[RunningNode, RunningNode],
) -> None:
    first, second = two_nodes
    ada, bob = unique("ada"), unique("bob")
    cid = await _conversation(first, ada, bob)
    tokens = (first.token(ada, "lp-ada"), first.token(bob, "lp-bob"))
    output = await _run([socket_url(first), socket_url(second)], socket_url(second), tokens, cid)
    assert "one session across 2 nodes" in output
