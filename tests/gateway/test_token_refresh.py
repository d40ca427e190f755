"""Token refresh in band: ``refresh_token`` on ``phoenix`` keeps the channels and moves the
expiry; a bad token is refused in a reply and the socket stays open until the old expiry."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from tests.gateway.conftest import RunningNode, unique
from tests.gateway.test_audit_events import records_of
from whispr.audit import AuditKind
from whispr.auth import issue_token
from whispr.client import PhoenixClient, ReplyError


def _expiry(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()) + 0.2)


async def test_a_refreshed_connection_keeps_its_channels_past_the_old_expiry(
    node: RunningNode,
) -> None:
    ada, bob = unique("ada"), unique("bob")
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "t", [bob])).id
    topic = f"conversation:{cid}"
    old = node.token(ada, "phone", ttl_s=2)
    async with (
        PhoenixClient.connect(node.url, old, heartbeat_s=3600) as client,
        node.client(bob) as other,
    ):
        await client.join(topic)
        await other.join(topic)
        fresh = node.token(ada, "phone", ttl_s=3600)
        reply = await client.refresh_token(fresh)
        assert reply == {"expires_at": _expiry(fresh)}
        await _sleep_until(_expiry(old))
        # Past the old token's expiry, the connection and its channel go on.
        sent = await client.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
        assert sent["seq"] == 1
        await other.push(topic, "send_message", {"client_id": "m2", "content": "yo"})
        for _ in range(10):
            event = await client.next_event(topic, "new_message")
            if event.payload["message"]["client_id"] == "m2":
                break
        assert client.closed is None


async def test_a_bad_token_is_refused_in_band_and_the_old_expiry_still_closes(
    node: RunningNode,
) -> None:
    ada, eve = unique("ada"), unique("eve")
    messaging = node.node.messaging.get()
    cid = (await messaging.create_group(ada, "t", [])).id
    topic = f"conversation:{cid}"
    old = node.token(ada, "phone", ttl_s=3)
    secret = node.settings.jwt_secret
    refusals = {
        "garbage": "not-a-token",
        "another user": node.token(eve, "phone"),
        "another device": node.token(ada, "laptop"),
        "badly signed": issue_token(ada, secret="x" * 40, device_id="phone"),
        "expired": issue_token(
            ada, secret=secret, device_id="phone", ttl_s=60, now=time.time() - 600
        ),
    }
    async with PhoenixClient.connect(node.url, old, heartbeat_s=3600) as client:
        await client.join(topic)
        for why, token in refusals.items():
            with pytest.raises(ReplyError) as refused:
                await client.refresh_token(token)
            assert refused.value.reason == "unauthorized", why
            assert refused.value.response["message"], why
        with pytest.raises(ReplyError) as malformed:
            await client.push("phoenix", "refresh_token", {"jwt": "x"})
        assert malformed.value.reason == "invalid"
        # Still open, channels and all.
        sent = await client.push(topic, "send_message", {"client_id": "m1", "content": "hi"})
        assert sent["seq"] == 1
        # Without a good refresh, the old expiry closes it as before.
        closed = await asyncio.wait_for(client.wait_closed(), 15)
    assert closed == (1008, "token expired")
    refused_records = await records_of(node, ada, AuditKind.TOKEN_REFUSED, expected=5)
    assert sum(1 for r in refused_records if r.details.get("event") == "refresh_token") >= 4
