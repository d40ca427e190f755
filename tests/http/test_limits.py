"""A user has one budget per rate limit, whichever transport spends it.

With three messages a minute, two sent over the socket and one over HTTP use it up: the
next, over either, is refused ``rate_limited`` (429 with ``Retry-After`` over HTTP), and
nothing of it is stored.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import EACH_STORE, node_on_store, unique
from tests.http.conftest import problem
from whispr.client import ReplyError

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("store", EACH_STORE)
async def test_the_socket_and_http_share_the_send_budget(
    request: pytest.FixtureRequest, tmp_path: Path, store: str
) -> None:
    request.param = store  # node_on_store reads the store from the request
    env = {"WHISPR_RATE_LIMIT_PER_MINUTE": "3"}
    async with node_on_store(request, tmp_path, env) as running:
        ada, bob = unique("ada"), unique("bob")
        base = f"http://127.0.0.1:{running.node.http.get().port}/api/v1"
        headers = {"Authorization": f"Bearer {running.token(ada)}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=headers) as http,
            running.client(ada) as socket,
        ):
            created = await http.post(
                "/conversations", json={"kind": "group", "title": "g", "members": [bob]}
            )
            group = created.json()["id"]
            topic = f"conversation:{group}"
            await socket.join(topic, {})
            for n in range(2):
                await socket.push(topic, "send_message", {"client_id": f"s{n}", "content": "x"})
            url = f"/conversations/{group}/messages"
            sent = await http.post(url, json={"content": "x"}, headers={"Idempotency-Key": "h1"})
            assert sent.status_code == 201
            refused = await http.post(url, json={"content": "x"}, headers={"Idempotency-Key": "h2"})
            body = problem(refused, 429, "rate_limited")
            assert body["limit"] == 3
            assert int(refused.headers["retry-after"]) >= 1
            with pytest.raises(ReplyError) as caught:
                await socket.push(topic, "send_message", {"client_id": "s9", "content": "x"})
            assert caught.value.reason == "rate_limited"
            history = (await http.get(url)).json()["messages"]
            assert [m["client_id"] for m in history if m["kind"] != "system"] == ["s0", "s1", "h1"]
