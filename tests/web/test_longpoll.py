"""The long-poll transport over real HTTP: sessions, refusals, limits, liveness, drain.

phoenix.js's own run is tests/gateway/test_longpoll_phoenix_js.py; these drive the wire by
hand, for what a well-behaved client never does (a bad token, a silent session, a flood).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.conversation import Draft
from supervisors import stop_tree
from tests.gateway.conftest import EACH_STORE, RunningNode, node_on_store, start_node, unique
from whispr.broker import MemoryBroker
from whispr.gateway.longpoll import (
    MAX_BATCH,
    LongPollSessions,
    SessionTokens,
    _frames_of,
    bearer_token,
    session_token,
)

NDJSON = {"content-type": "application/x-ndjson"}


class LongPollClient:
    """One long-poll session, spoken by hand."""

    def __init__(self, http: httpx.AsyncClient, url: str, jwt: str | None) -> None:
        self.http = http
        self.url = url
        self.jwt = jwt
        self.token: str | None = None
        self.ref = 0

    def _params(self) -> list[tuple[str, str]]:
        params = [("vsn", "2.0.0")]
        if self.jwt is not None:
            params.append(("token", self.jwt))
        if self.token is not None:
            params.append(("token", self.token))
        return params

    async def open(self) -> httpx.Response:
        response = await self.http.get(self.url, params=self._params())
        if response.json().get("status") == 410 and "token" in response.json():
            self.token = response.json()["token"]
        return response

    async def poll(self) -> dict[str, Any]:
        response = await self.http.get(self.url, params=self._params())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def send(self, *frames: list[Any] | str) -> httpx.Response:
        lines = [f if isinstance(f, str) else msgspec.json.encode(f).decode() for f in frames]
        return await self.http.post(
            self.url, params=self._params(), content="\n".join(lines), headers=NDJSON
        )

    async def push(self, topic: str, event: str, payload: dict[str, Any]) -> str:
        self.ref += 1
        ref = str(self.ref)
        response = await self.send(["1", ref, topic, event, payload])
        assert response.json() == {"status": 200}, response.text
        return ref

    async def reply(self, ref: str) -> list[Any]:
        """Poll until the reply to ``ref`` arrives."""
        for _ in range(20):
            body = await self.poll()
            for message in body.get("messages", []):
                frame = msgspec.json.decode(message)
                if frame[1] == ref and frame[3] == "phx_reply":
                    return list(frame)
        raise AssertionError(f"no reply to {ref}")

    async def until_gone(self) -> None:
        """Poll until the session answers 410 (what it had left is taken on the way)."""
        for _ in range(20):
            if (await self.poll())["status"] == 410:
                return
        raise AssertionError("the session did not end")


def endpoint(node: RunningNode) -> str:
    return f"http://127.0.0.1:{node.node.http.get().port}/socket/longpoll"


@pytest.fixture(params=EACH_STORE)
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningNode]:
    env = {"WHISPR_MAX_CONNECTIONS_PER_IP": "3", "WHISPR_OUTBOUND_BUFFER_BYTES": "4096"}
    async with node_on_store(request, tmp_path, env) as running:
        longpoll = running.node.gateway.get().longpoll
        longpoll.window_s = 0.5  # polls without news answer soon
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


# -- the wire -----------------------------------------------------------------------------


async def test_a_session_opens_joins_and_is_answered(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    ada = unique("ada")
    client = LongPollClient(http, endpoint(node), node.token(ada))
    opened = await client.open()
    assert opened.status_code == 200
    assert opened.headers["cache-control"] == "no-store"
    assert opened.json() == {"status": 410, "token": client.token, "messages": []}
    ref = await client.push(f"user:{ada}", "phx_join", {})
    assert (await client.reply(ref))[4]["status"] == "ok"
    # Once the join's pushes are taken (presence_state), a poll with nothing to say ends
    # after the window with 204 and the same token.
    polls = [await client.poll() for _ in range(3)]
    assert polls[-1] == {"status": 204, "token": client.token}
    # Another user's topic is refused as on the WebSocket.
    ref = await client.push(f"user:{unique('bob')}", "phx_join", {})
    assert (await client.reply(ref))[4]["response"]["reason"] == "forbidden"


async def test_the_token_may_come_in_the_phoenix_header(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        endpoint(node), headers={"x-phoenix-authtoken": node.token(unique("ada"))}
    )
    assert response.json()["status"] == 410


@pytest.mark.parametrize(
    ("jwt", "reason"),
    [(None, "unauthorized"), ("not a jwt", "unauthorized"), ("", "unauthorized")],
)
async def test_a_session_without_a_valid_token_is_refused(
    node: RunningNode, http: httpx.AsyncClient, jwt: str | None, reason: str
) -> None:
    client = LongPollClient(http, endpoint(node), jwt)
    response = await client.open()
    assert response.status_code == 401
    # 403 is what phoenix.js reads as "refused": it stops, then reconnects later.
    assert response.json()["status"] == 403
    assert response.json()["reason"] == reason
    assert client.token is None


async def test_an_expired_token_is_refused(node: RunningNode, http: httpx.AsyncClient) -> None:
    client = LongPollClient(http, endpoint(node), node.token(unique("ada"), ttl_s=-10))
    assert (await client.open()).status_code == 401


async def test_sessions_count_against_the_per_address_limit(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    users = [unique("u") for _ in range(4)]
    clients = [LongPollClient(http, endpoint(node), node.token(user)) for user in users]
    for client in clients[:3]:
        assert (await client.open()).json()["status"] == 410
    refused = await clients[3].open()
    assert refused.status_code == 429
    assert refused.json()["reason"] == "too_many_connections"
    # A session that ends gives its place back.
    assert node.node.gateway.get().ctx.sessions.disconnect(users[0], None, "bye") == 1
    await clients[0].until_gone()
    assert (await clients[3].open()).json()["status"] == 410


async def test_unknown_or_forged_session_tokens_are_gone(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    url = endpoint(node)
    forged = SessionTokens("another secret").sign(node.node.broker.get().node_id, "x" * 22)
    unknown = node.node.gateway.get().longpoll.tokens.sign(node.node.broker.get().node_id, "nope")
    for token in (forged, unknown, "lp1.garbage", "lp1." + "A" * 2000):
        polled = await http.get(url, params={"token": token})
        assert polled.json() == {"status": 410}
        posted = await http.post(url, params={"token": token}, content="[]", headers=NDJSON)
        assert posted.json() == {"status": 410}
    assert (await http.post(url, content="[]", headers=NDJSON)).json() == {"status": 410}


async def test_a_session_of_a_node_that_does_not_answer_is_gone(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    # Routed through the broker to a node that is not there: no owner acknowledges it.
    token = node.node.gateway.get().longpoll.tokens.sign("a-node-gone", "some-session")
    assert (await http.get(endpoint(node), params={"token": token})).json() == {"status": 410}


async def test_malformed_batches_are_refused_and_bad_frames_end_the_session(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    client = LongPollClient(http, endpoint(node), node.token(unique("ada")))
    await client.open()
    response = await client.send("not base64 !")
    assert response.status_code == 400
    assert response.json()["reason"] == "invalid"
    too_many = await client.send(*([["1", None, "phoenix", "heartbeat", {}]] * (MAX_BATCH + 1)))
    assert too_many.status_code == 400
    # A well-formed batch whose frame is not Phoenix's closes the connection, as on a socket.
    assert (await client.send("[1, 2")).json() == {"status": 200}
    await client.until_gone()


async def test_the_server_s_disconnect_ends_a_session(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    ada = unique("ada")
    client = LongPollClient(http, endpoint(node), node.token(ada))
    await client.open()
    assert node.node.gateway.get().ctx.sessions.disconnect(ada, None, "bye") == 1
    await client.until_gone()


async def test_a_session_not_polled_is_closed(node: RunningNode, http: httpx.AsyncClient) -> None:
    longpoll = node.node.gateway.get().longpoll
    longpoll.idle_s = 0.3
    ada = unique("ada")
    client = LongPollClient(http, endpoint(node), node.token(ada))
    await client.open()
    assert len(longpoll) == 1
    for _ in range(40):
        if not len(longpoll):
            break
        await asyncio.sleep(0.05)
    assert len(longpoll) == 0
    assert (await client.poll())["status"] == 410
    # Its place on the per-address count is free again.
    assert node.node.gateway.get().ctx.per_ip.get("127.0.0.1", 0) == 0


async def test_a_session_that_does_not_take_its_frames_is_closed(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    # 4 KiB of frames not polled: the session is closed as a socket that does not read.
    ada, bob = unique("ada"), unique("bob")
    cid = (await node.node.messaging.get().create_group(ada, "flood", [bob])).id
    client = LongPollClient(http, endpoint(node), node.token(bob))
    await client.open()
    ref = await client.push(f"conversation:{cid}", "phx_join", {})
    assert (await client.reply(ref))[4]["status"] == "ok"
    for n in range(20):
        await node.node.messaging.get().send(ada, cid, Draft(client_id=f"m{n}", content="x" * 300))
    await client.until_gone()


async def test_draining_ends_sessions_and_refuses_new_ones(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    client = LongPollClient(http, endpoint(node), node.token(unique("ada")))
    await client.open()
    longpoll = node.node.gateway.get().longpoll
    await longpoll.close(1012, "service restart")
    await client.until_gone()
    late = await LongPollClient(http, endpoint(node), node.token(unique("bob"))).open()
    assert late.status_code == 503
    assert late.json()["status"] == 500  # phoenix.js retries: another node takes it


# -- the parts ----------------------------------------------------------------------------


def test_session_tokens_are_signed() -> None:
    tokens = SessionTokens("secret")
    token = tokens.sign("node-a", "abc")
    assert tokens.read(token) == ("node-a", "abc")
    claims, mac = token.removeprefix("lp1.").split(".")
    assert tokens.read(f"lp1.{claims}.{mac[:-2]}AA") is None
    assert SessionTokens("other").read(token) is None
    forged = base64.urlsafe_b64encode(b'["node-b","abc"]').rstrip(b"=").decode()
    assert tokens.read(f"lp1.{forged}.{mac}") is None


def test_the_session_token_and_the_jwt_share_the_query() -> None:
    jwt, session = "eyJhbGciOi.e30.sig", "lp1.abc.def"
    assert session_token([jwt, session]) == session
    assert bearer_token([jwt, session]) == jwt
    assert session_token([jwt]) is None
    assert bearer_token([session]) is None


@given(st.text(max_size=300))
def test_any_text_read_as_a_token_is_a_session_or_nothing(text: str) -> None:
    assert SessionTokens("secret").read(text) is None
    assert SessionTokens("secret").read("lp1." + text) is None


@given(st.binary(max_size=2000), st.booleans())
def test_any_body_is_frames_or_a_refusal(body: bytes, ndjson: bool) -> None:
    frames = _frames_of(body, ndjson=ndjson)
    assert frames is None or isinstance(frames, list)


def test_a_batch_s_frames() -> None:
    binary = base64.b64encode(b"\x00\x01\x02").decode()
    assert _frames_of(f'["1"]\r\n{binary}\n\n'.encode(), ndjson=True) == ['["1"]', b"\x00\x01\x02"]
    assert _frames_of(b'["1"]\n["2"]', ndjson=False) == ['["1"]\n["2"]']
    assert _frames_of(b"\xff", ndjson=True) is None
    assert _frames_of(b"[]\n" * (MAX_BATCH + 1), ndjson=True) is None


async def test_allowed_origins_hold_for_long_poll_as_for_the_websocket(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    running = await start_node(
        {
            "WHISPR_SQLITE_PATH": str(tmp_path / "node.db"),
            "WHISPR_ALLOWED_ORIGINS": "https://app.example",
        }
    )
    try:
        url, jwt = endpoint(running), running.token(unique("ada"))
        refused = await http.get(url, params={"token": jwt}, headers={"origin": "https://evil"})
        assert refused.status_code == 403
        assert refused.json()["reason"] == "forbidden"
        for headers in ({"origin": "https://app.example"}, {}):
            assert (await http.get(url, params={"token": jwt}, headers=headers)).json()[
                "status"
            ] == 410
    finally:
        await stop_tree(running.root, deadline=10)


async def test_draining_ends_a_request_relayed_to_another_nodes_session() -> None:
    """A poll this node relays to a session on another node is answered 410 when this node
    drains, not at the end of the poll window: an open request would hold the HTTP drain."""
    broker = MemoryBroker("this")
    await broker.open()
    sessions = LongPollSessions(_NoAdmission(), broker, "secret", window_s=600.0)
    await sessions.start()
    token = sessions.tokens.sign("other", "s1")

    def accept_only(_topic: str, data: bytes) -> None:  # the owner takes it, then says nothing
        routed = msgspec.json.decode(data)
        accepted = {"id": routed["id"], "stage": "accepted"}
        broker.publish(routed["reply_to"], msgspec.json.encode(accepted))

    owner = await broker.subscribe("longpoll:s1", accept_only)
    try:
        poll = asyncio.create_task(sessions.get("127.0.0.1", token, None))
        await asyncio.sleep(0.2)
        assert not poll.done()  # relayed, accepted, waiting for the owner's answer
        await sessions.close(1012, "service restart")
        reply = await asyncio.wait_for(poll, 5.0)
        assert msgspec.json.decode(reply.body())["status"] == 410
    finally:
        owner.cancel()
        await broker.close()


class _NoAdmission:
    """Admission for a node that opens no session of its own in this test."""

    async def admit(self, peer: str, token: str | None, source: Any) -> Any:
        raise AssertionError("no session opens here")

    async def opened(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no session opens here")

    async def ended(self, peer: str, ref: Any) -> None:
        return None
