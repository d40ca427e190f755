"""Every conversation event over a real socket, and the refusals at the connection's edges."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from supervisors import stop_tree
from tests.gateway.conftest import RunningNode, start_node, unique
from whispr.client import ReplyError


async def test_edit_delete_react_pin_and_history_over_the_socket(node: RunningNode) -> None:
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    async with node.client(ada) as a, node.client(bob) as b:
        await a.join(topic)
        await b.join(topic)
        first = await a.push(topic, "send_message", {"client_id": "1", "content": "one"})
        await a.push(topic, "send_message", {"client_id": "2", "content": "two", "reply_to": 1})
        edited = await a.push(topic, "edit_message", {"seq": first["seq"], "content": "uno"})
        assert edited["edited_at"] is not None
        assert (await b.next_event(topic, "message_edited")).payload["message"]["content"] == "uno"
        with pytest.raises(ReplyError) as not_hers:
            await b.push(topic, "edit_message", {"seq": 1, "content": "mine now"})
        assert not_hers.value.reason == "forbidden"
        reacted = await b.push(topic, "react", {"seq": 1, "emoji": "👍"})
        assert reacted["reactions"] == {"👍": [bob]}
        assert (await a.next_event(topic, "reaction_changed")).payload["seq"] == 1
        assert (await a.push(topic, "pin", {"seq": 2}))["pinned"] is True
        await a.push(topic, "delete_message", {"seq": 2, "for_everyone": True})
        deleted = await b.next_event(topic, "message_deleted")
        assert deleted.payload["seq"] == 2
        await b.push(topic, "delete_message", {"seq": 1, "for_everyone": False})
        bobs = (await b.push(topic, "history", {"after_seq": 0}))["messages"]
        assert [m["seq"] for m in bobs] == [2]
        assert bobs[0]["deleted"] is True
        adas = (await a.push(topic, "history", {"before_seq": 3, "limit": 1}))["messages"]
        assert [m["seq"] for m in adas] == [2]


@pytest.fixture
async def strict_node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = await start_node(
        {
            "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
            "WHISPR_ALLOWED_ORIGINS": "https://app.example",
            "WHISPR_HEARTBEAT_INTERVAL_S": "0.3",
            "WHISPR_HEARTBEAT_TIMEOUT_S": "0.9",
            "WHISPR_MAX_FRAME_BYTES": "4096",
            "WHISPR_LISTEN_BACKLOG": "77",
        }
    )
    yield running
    await stop_tree(running.root, deadline=10)


async def test_an_origin_not_allowed_is_refused(strict_node: RunningNode) -> None:
    url = f"{strict_node.url}?vsn=2.0.0&token={strict_node.token('ada')}"
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(url, origin="https://app.example") as ws:  # type: ignore[arg-type]
        await ws.send('[null,"1","phoenix","heartbeat",{}]')
        assert '"status":"ok"' in str(await ws.recv())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("x" * 5_000, 1009),  # over max_frame_bytes
        ("[1, 2", 1007),  # not JSON
        (b"\x02\x01\x01te", 1003),  # a broadcast: a binary kind clients may not send
    ],
)
async def test_frames_that_cannot_be_answered_close_with_their_code(
    strict_node: RunningNode, frame: str | bytes, code: int
) -> None:
    url = f"{strict_node.url}?vsn=2.0.0&token={strict_node.token(unique('ada'))}"
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                await ws.recv()
        assert ws.close_code == code


async def test_a_silent_connection_is_closed_with_1001(strict_node: RunningNode) -> None:
    url = f"{strict_node.url}?vsn=2.0.0&token={strict_node.token(unique('ada'))}"
    async with websockets.connect(url, ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                await ws.recv()
        assert ws.close_code == 1001


async def test_the_listening_socket_has_the_configured_backlog(strict_node: RunningNode) -> None:
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("reading a listening socket's backlog needs ss (iproute2)")
    port = urlsplit(strict_node.url).port
    process = await asyncio.create_subprocess_exec(
        ss, "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    assert process.returncode == 0
    listing = output.decode()
    # For a listening socket, ss's Send-Q column is the backlog it was created with.
    state, _received, backlog, *_ = listing.split()
    assert (state, backlog) == ("LISTEN", "77")
