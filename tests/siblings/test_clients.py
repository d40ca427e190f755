"""The sibling clients against real gRPC stand-ins: answers, deadlines, breakers, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.errors import Reason, WhisprError
from actors.model import Attachment
from tests.scrape import parse_samples, sample_values
from tests.siblings.conftest import TOKEN, StandIn
from whispr.bench.nodes import free_port
from whispr.config import load_settings
from whispr.siblings import PushRequest, Siblings
from whispr.telemetry import metrics_exposition

PHOTO = Attachment(id="media-1", mime_type="image/png", size=10, name="a.png")


async def _open(settings: Any) -> Siblings:
    siblings = Siblings.from_settings(settings)
    await siblings.open()
    return siblings


@pytest.fixture
async def siblings(stand_in: StandIn) -> AsyncIterator[Siblings]:
    opened = await _open(stand_in.settings())
    yield opened
    await opened.close()


def _push(n: int = 1, user: str = "bob") -> PushRequest:
    return PushRequest(
        request_id=f"m{n}:{user}",
        user_id=user,
        conversation_id="c1",
        message_id=f"m{n}",
        seq=n,
        sender_id="ada",
        kind="text",
        sent_at=1700000000.5,
        title="tea",
    )


async def _until(condition: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_each_client_asks_its_sibling_with_the_token(
    siblings: Siblings, stand_in: StandIn
) -> None:
    stand_in.inactive_users.add("zed")
    stand_in.unknown_users.add("ghost")
    assert await siblings.users.is_active("ada")
    assert not await siblings.users.is_active("zed")
    assert not await siblings.users.is_active("ghost")  # unknown: not active

    await siblings.media.validate(PHOTO, "ada")
    stand_in.bad_media.add("media-2")
    with pytest.raises(WhisprError, match="media-2: size mismatch") as caught:
        await siblings.media.validate(
            Attachment(id="media-2", mime_type="image/png", size=9, name="b.png"), "ada"
        )
    assert caught.value.reason is Reason.INVALID
    await siblings.moderation.check("ada", "c1", "hello", "text")
    with pytest.raises(WhisprError, match="a forbidden word") as caught:
        await siblings.moderation.check("ada", "c1", "a forbidden thing", "text")
    assert caught.value.reason is Reason.FORBIDDEN

    siblings.notifier.push(_push())
    await _until(lambda: "m1:bob" in stand_in.pushed)
    pushed = stand_in.pushed["m1:bob"]
    assert (pushed.user_id, pushed.message_id, pushed.seq, pushed.sent_at_ms) == (
        "bob",
        "m1",
        1,
        1700000000500,
    )
    assert not hasattr(pushed, "content")  # metadata only, by contract

    requests = stand_in.users.metadata + stand_in.media.metadata + stand_in.notifications.metadata
    assert requests
    assert all(m.get("authorization") == f"Bearer {TOKEN}" for m in requests)
    assert stand_in.media.requests[0].uploader_id == "ada"


async def test_user_answers_are_cached(siblings: Siblings, stand_in: StandIn) -> None:
    stand_in.inactive_users.add("zed")
    for _ in range(5):
        assert await siblings.users.is_active("ada")
        assert not await siblings.users.is_active("zed")
    assert [r.user_id for r in stand_in.users.requests] == ["ada", "zed"]


async def test_a_slow_sibling_hits_the_deadline_and_the_fallback_applies(
    stand_in: StandIn,
) -> None:
    for behaviour in (stand_in.users, stand_in.media, stand_in.moderation):
        behaviour.mode = "slow"
    siblings = await _open(stand_in.settings())
    closed = await _open(stand_in.settings(moderation_policy="fail_closed"))
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await siblings.users.is_active("ada")  # fails open
        assert loop.time() - began < 0.9  # the deadline (0.3 s), not the sibling's pace
        with pytest.raises(WhisprError, match="media service") as caught:
            await siblings.media.validate(PHOTO, "ada")  # fails closed
        assert caught.value.reason is Reason.UNAVAILABLE
        await siblings.moderation.check("ada", "c1", "hello", "text")  # fail_open: accepted
        with pytest.raises(WhisprError, match="moderation") as caught:
            await closed.moderation.check("ada", "c1", "hello", "text")
        assert caught.value.reason is Reason.UNAVAILABLE
    finally:
        await siblings.close()
        await closed.close()


async def test_a_failing_sibling_opens_the_breaker_which_closes_after_recovery(
    siblings: Siblings, stand_in: StandIn
) -> None:
    client = siblings.users.client
    stand_in.users.mode = "fail"
    for n in range(5):
        assert await siblings.users.is_active(f"user-{n}")  # the fallback: active
    assert client.breaker.state == "open"
    # The gauge shows the worst state among the process's live breakers of this sibling.
    states = parse_samples(metrics_exposition().decode())
    assert sample_values(states, "whispr_sibling_breaker_state", sibling="user") == [2.0]
    reached = len(stand_in.users.requests)
    assert reached >= 5  # each failed call reached the sibling (with gRPC's retries)
    assert await siblings.users.is_active("user-6")
    assert len(stand_in.users.requests) == reached  # open: no network call at all

    # After the open period, trial calls go through; three successes close it.
    stand_in.users.mode = "ok"
    await asyncio.sleep(0.35)
    for n in range(3):
        assert await siblings.users.is_active(f"trial-{n}")
    assert client.breaker.state == "closed"
    assert len(stand_in.users.requests) == reached + 3


async def test_a_failed_trial_opens_the_breaker_again(
    siblings: Siblings, stand_in: StandIn
) -> None:
    client = siblings.moderation.client
    stand_in.moderation.mode = "fail"
    for _ in range(5):
        await siblings.moderation.check("ada", "c1", "hi", "text")
    assert client.breaker.state == "open"
    await asyncio.sleep(0.35)
    await siblings.moderation.check("ada", "c1", "hi", "text")  # the trial fails
    assert client.breaker.state == "open"
    reached = len(stand_in.moderation.requests)
    await siblings.moderation.check("ada", "c1", "hi", "text")
    assert len(stand_in.moderation.requests) == reached


async def test_an_absent_sibling_falls_back_fast() -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = load_settings(
        env={
            "WHISPR_USER_SERVICE_URL": nowhere,
            "WHISPR_MODERATION_SERVICE_URL": nowhere,
            "WHISPR_MEDIA_SERVICE_URL": nowhere,
        }
    )
    siblings = await _open(settings)
    try:
        assert await siblings.users.is_active("ada")
        await siblings.moderation.check("ada", "c1", "hi", "text")
        with pytest.raises(WhisprError) as caught:
            await siblings.media.validate(PHOTO, "ada")
        assert caught.value.reason is Reason.UNAVAILABLE
    finally:
        await siblings.close()


async def test_unconfigured_siblings_are_skipped() -> None:
    siblings = await _open(load_settings(env={}))
    try:
        assert not siblings.users.configured
        assert await siblings.users.is_active("anyone")
        await siblings.media.validate(PHOTO, "ada")
        await siblings.moderation.check("ada", "c1", "a forbidden word", "text")
        siblings.notifier.push(_push())
        assert siblings.notifier.counts["skipped"] == 1
        assert siblings.notifier.pending == 0
    finally:
        await siblings.close()


async def test_grpc_retries_absorb_short_failures(siblings: Siblings, stand_in: StandIn) -> None:
    stand_in.media.fail_first = 2  # the channel's retry policy makes 3 attempts
    await siblings.media.validate(PHOTO, "ada")
    assert len(stand_in.media.requests) == 3
    assert siblings.media.client.breaker.state == "closed"


async def test_the_notifier_retries_until_the_push_is_accepted_once(
    siblings: Siblings, stand_in: StandIn
) -> None:
    notifier = siblings.notifier
    notifier.first_backoff_s = 0.05
    stand_in.notifications.mode = "fail"
    for n in range(3):
        notifier.push(_push(n))
    await _until(lambda: notifier.counts["retried"] >= 3)
    assert stand_in.pushed == {}
    stand_in.notifications.mode = "ok"
    await _until(lambda: len(stand_in.pushed) == 3, timeout=10)
    await _until(lambda: notifier.pending == 0)
    assert notifier.counts["sent"] == 3
    assert notifier.counts["failed"] == 0
    assert sorted(stand_in.pushed) == ["m0:bob", "m1:bob", "m2:bob"]


async def test_a_push_that_never_goes_through_is_counted_failed(stand_in: StandIn) -> None:
    siblings = await _open(stand_in.settings())
    notifier = siblings.notifier
    notifier.first_backoff_s = 0.01
    notifier.max_attempts = 3
    stand_in.notifications.mode = "fail"
    try:
        notifier.push(_push())
        await _until(lambda: notifier.counts["failed"] == 1, timeout=10)
        assert notifier.pending == 0
    finally:
        await siblings.close()


async def test_a_full_outbox_counts_what_it_drops(stand_in: StandIn) -> None:
    settings = stand_in.settings()
    siblings = Siblings.from_settings(settings)
    from whispr.siblings.notification import Notifier

    notifier = Notifier(siblings.notifier.client, outbox_size=2)  # not started: nothing drains
    for n in range(5):
        notifier.push(_push(n))
    assert notifier.counts["dropped"] == 3
    assert notifier.pending == 2
    await notifier.close(flush_s=0.05)
    assert notifier.counts["unsent"] == 2


async def test_close_counts_what_could_not_be_sent(stand_in: StandIn) -> None:
    siblings = await _open(stand_in.settings())
    stand_in.notifications.mode = "slow"
    stand_in.notifications.slow_s = 5
    for n in range(6):
        siblings.notifier.push(_push(n))
    await siblings.notifier.close(flush_s=0.1)  # less than one call's deadline
    await siblings.close()
    counts = siblings.notifier.counts
    assert counts["sent"] == 0
    assert counts["unsent"] + counts["failed"] == 6
    assert counts["unsent"] > 0
    siblings.notifier.push(_push(7))  # after close: counted, not lost silently
    assert counts["unsent"] + counts["failed"] == 7
