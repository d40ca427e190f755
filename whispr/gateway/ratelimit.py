"""Per-user message rate limits, held across nodes, through the ``limits`` library.

A sliding-window counter per user (``limits``' ``SlidingWindowCounterRateLimiter``): in Redis
when the node has one, so a user's budget is shared by every node their devices are
connected to; in memory for a single node. Sends are counted once they are accepted for
processing, before the store is touched, so a refused send writes nothing.

When Redis cannot be reached the limiter lets the message through (and logs): a rate limit
protects the service, and refusing every message during a Redis outage would be the outage.
"""

from __future__ import annotations

import structlog
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import BlockingConnectionPool

from actors.errors import Reason, WhisprError

__all__ = ["MessageRateLimiter"]

log = structlog.get_logger("whispr.ratelimit")


class MessageRateLimiter:
    """At most ``per_minute`` messages per user per minute."""

    def __init__(
        self, per_minute: int, redis_url: str | None = None, prefix: str = "whispr"
    ) -> None:
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute)
        self._storage: Storage
        if redis_url:
            uri = redis_url.replace("redis://", "async+redis://", 1).replace(
                "rediss://", "async+rediss://", 1
            )
            # A bounded pool that waits for a free connection: bursts of sends queue up
            # instead of failing with "too many connections".
            pool = BlockingConnectionPool.from_url(redis_url, max_connections=32, timeout=5.0)
            self._storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix=f"{prefix}:rate",
                connection_pool=pool,  # type: ignore[arg-type]
            )
        else:
            self._storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)

    async def check(self, user_id: str) -> None:
        """Count one message of ``user_id``.

        Raises:
            WhisprError: ``rate_limited`` when the budget is spent.
        """
        try:
            allowed = await self._limiter.hit(self._item, "msg", user_id)
        except Exception as exc:
            log.warning("rate limiter unavailable; message let through", error=str(exc))
            return
        if not allowed:
            raise WhisprError(
                Reason.RATE_LIMITED,
                f"at most {self.per_minute} messages per minute",
                limit=self.per_minute,
            )

    async def reset(self) -> None:
        """Forget every count (tests, and operators after changing the limit)."""
        await self._storage.reset()
