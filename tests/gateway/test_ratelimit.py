"""The rate-limit counters: in memory, and in Redis shared by several nodes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from whispr.gateway.ratelimit import RateLimiter, retry_after


async def _count_allowed(
    limiter: RateLimiter, user: str, attempts: int, limit: int = 10, bucket: str = "send"
) -> int:
    outcomes = await asyncio.gather(*(limiter.hit(user, bucket, limit) for _ in range(attempts)))
    for outcome in outcomes:
        if not outcome.counted:
            assert 0 < outcome.retry_after <= 120
    return sum(1 for outcome in outcomes if outcome.counted)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield RateLimiter()
        return
    redis_url = request.getfixturevalue("redis_url")
    limiter = RateLimiter(redis_url, f"test-{uuid.uuid4().hex[:8]}")
    try:
        yield limiter
    finally:
        await limiter.reset()
        await limiter.close()


async def test_a_burst_gets_exactly_the_budget_per_user_and_bucket(limiter: RateLimiter) -> None:
    # One burst: with Redis the hits share script calls, and exactly the budget goes through.
    assert await _count_allowed(limiter, "ada", 25) == 10
    assert await _count_allowed(limiter, "bob", 4) == 4  # each user has a budget of their own
    assert await _count_allowed(limiter, "ada", 3, bucket="typing") == 3  # and each bucket
    # Refused hits are not counted: bob still has 6 left.
    assert await _count_allowed(limiter, "bob", 20) == 6
    await limiter.reset()
    assert await _count_allowed(limiter, "ada", 1) == 1


async def test_a_refusal_says_when_the_next_hit_fits(limiter: RateLimiter) -> None:
    assert await _count_allowed(limiter, "ada", 3, limit=3) == 3
    refused = await limiter.hit("ada", "send", 3)
    assert not refused.counted
    assert not refused.throttled
    # The whole budget was spent in this window: the next hit fits in the next window.
    assert 0 < refused.retry_after <= 60


async def test_a_throttled_user_is_refused_until_the_throttle_ends(limiter: RateLimiter) -> None:
    await limiter.throttle("ada", 0.5)
    refused = await limiter.hit("ada", "send", 100)
    assert refused.throttled
    assert not refused.counted
    assert 0 < refused.retry_after <= 0.5
    # Counts that watch the user rather than limit them go on.
    assert (await limiter.hit("ada", "abuse", 100, honour_throttle=False)).counted
    assert (await limiter.hit("bob", "send", 100)).counted
    await asyncio.sleep(0.6)
    assert (await limiter.hit("ada", "send", 100)).counted


async def test_distinct_counts_each_member_once(limiter: RateLimiter) -> None:
    assert await limiter.distinct("dup:ada:h1", "c1", 60) == 1
    assert await limiter.distinct("dup:ada:h1", "c1", 60) == 1
    assert await limiter.distinct("dup:ada:h1", "c2", 60) == 2
    assert await limiter.distinct("dup:ada:h2", "c1", 60) == 1


def test_retry_after_is_when_the_weighted_count_lets_one_more_in() -> None:
    # Current window full: wait for the next window, then for the count to decay.
    assert retry_after(10, 60, 20.0, 0, 10) == 40.0
    assert retry_after(10, 60, 20.0, 0, 20) == pytest.approx(40.0 + 30.0)
    # Current window has room, the previous window's weight is what refuses.
    assert retry_after(10, 60, 0.0, 10, 5) == pytest.approx(30.0)
    assert retry_after(10, 60, 40.0, 10, 5) == 0.0


async def test_redis_limit_is_held_across_nodes(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    # Two limiters on one Redis are two nodes a user's devices are connected to.
    first = RateLimiter(redis_url, prefix)
    second = RateLimiter(redis_url, prefix)
    try:
        allowed = await asyncio.gather(
            _count_allowed(first, "ada", 8), _count_allowed(second, "ada", 8)
        )
        assert sum(allowed) == 10
        assert await _count_allowed(second, "ada", 1) == 0
        await first.throttle("bob", 5)
        assert (await second.hit("bob", "send", 10)).throttled
        await first.reset()
        assert await _count_allowed(second, "ada", 2) == 2
    finally:
        await first.reset()
        await first.close()
        await second.close()


async def test_redis_limiter_lets_events_through_when_redis_is_unreachable() -> None:
    # Nothing listens on port 1: the check fails open (the outage is not made worse).
    limiter = RateLimiter("redis://127.0.0.1:1/0")
    try:
        assert await _count_allowed(limiter, "ada", 3, limit=1) == 3
        await limiter.throttle("ada", 10)
        assert await limiter.distinct("k", "m", 60) == 0
    finally:
        await limiter.close()


@pytest.mark.parametrize("attempts", [1, 50])
async def test_redis_limiter_batches_hits_into_few_script_calls(
    redis_url: str, attempts: int
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    limiter = RateLimiter(redis_url, prefix)
    counter = limiter._counters
    calls = 0
    script = counter._script  # type: ignore[union-attr]

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await script(*args, **kwargs)

    counter._script = counting  # type: ignore[union-attr]
    try:
        assert await _count_allowed(limiter, "ada", attempts, limit=100) == attempts
        # One call for the first hit, at most one more for every hit queued behind it.
        assert calls <= 2
    finally:
        await limiter.reset()
        await limiter.close()
