"""The per-user message rate limit: in memory, and in Redis shared by several nodes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from actors.errors import WhisprError
from whispr.gateway.ratelimit import MessageRateLimiter


async def _count_allowed(limiter: MessageRateLimiter, user: str, attempts: int) -> int:
    outcomes = await asyncio.gather(
        *(limiter.check(user) for _ in range(attempts)), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, WhisprError)
            assert outcome.reason == "rate_limited"
            assert "10 messages per minute" in outcome.message
    return sum(1 for outcome in outcomes if outcome is None)


async def test_memory_limiter_allows_the_budget_and_refuses_the_rest() -> None:
    limiter = MessageRateLimiter(10)
    assert await _count_allowed(limiter, "ada", 15) == 10
    assert await _count_allowed(limiter, "bob", 3) == 3  # each user has a budget of their own
    await limiter.reset()
    assert await _count_allowed(limiter, "ada", 1) == 1


async def test_redis_limiter_counts_a_burst_exactly(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    limiter = MessageRateLimiter(10, redis_url, prefix)
    try:
        # One burst: the hits share script calls, and exactly the budget goes through.
        assert await _count_allowed(limiter, "ada", 25) == 10
        assert await _count_allowed(limiter, "bob", 4) == 4
        # Refused sends are not counted: bob still has 6 left.
        assert await _count_allowed(limiter, "bob", 20) == 6
    finally:
        await limiter.reset()
        await limiter.close()


async def test_redis_limit_is_held_across_nodes(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    # Two limiters on one Redis are two nodes a user's devices are connected to.
    first = MessageRateLimiter(10, redis_url, prefix)
    second = MessageRateLimiter(10, redis_url, prefix)
    try:
        allowed = await asyncio.gather(
            _count_allowed(first, "ada", 8), _count_allowed(second, "ada", 8)
        )
        assert sum(allowed) == 10
        assert await _count_allowed(second, "ada", 1) == 0
        await first.reset()
        assert await _count_allowed(second, "ada", 2) == 2
    finally:
        await first.reset()
        await first.close()
        await second.close()


async def test_redis_limiter_lets_messages_through_when_redis_is_unreachable() -> None:
    # Nothing listens on port 1: the check fails open (the outage is not made worse).
    limiter = MessageRateLimiter(1, "redis://127.0.0.1:1/0")
    try:
        assert await _count_allowed(limiter, "ada", 3) == 3
    finally:
        await limiter.close()


@pytest.mark.parametrize("attempts", [1, 50])
async def test_redis_limiter_batches_hits_into_few_script_calls(
    redis_url: str, attempts: int
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    limiter = MessageRateLimiter(100, redis_url, prefix)
    counter = limiter._counter
    calls = 0
    script = counter._script  # type: ignore[union-attr]

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await script(*args, **kwargs)

    counter._script = counting  # type: ignore[union-attr]
    try:
        assert await _count_allowed(limiter, "ada", attempts) == attempts
        # One call for the first hit, at most one more for every hit queued behind it.
        assert calls <= 2
    finally:
        await limiter.reset()
        await limiter.close()
