"""Per-user message rate limits, held across nodes.

A sliding-window counter per user: the count of the current fixed window plus the previous
window's count weighted by how much of it still overlaps the last minute (the algorithm of
``limits``' ``SlidingWindowCounterRateLimiter``). Sends are counted once they are accepted for
processing, before the store is touched, so a refused send writes nothing; a refused send is
not counted.

On a single node the counters live in memory, through ``limits``. With Redis they live there,
so a user's budget is shared by every node their devices are connected to, and the node counts
in batches: every send checked during one trip to Redis waits for the next trip, which counts
them all with one script call (:data:`_HIT_SCRIPT`). ``limits`` makes one call per send, and
at gateway rates that call was the largest single cost of a message on the node; batched, the
cost is one round trip per batch, as with group commit and publishing. The script reads the
time from Redis, so nodes with skewed clocks still agree on the window.

When Redis cannot be reached the limiter lets the message through (and logs): a rate limit
protects the service, and refusing every message during a Redis outage would be the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import redis.asyncio as aioredis
import structlog
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from actors.errors import Reason, WhisprError
from supervisors.batching import Batcher

__all__ = ["MessageRateLimiter"]

log = structlog.get_logger("whispr.ratelimit")

WINDOW_S = 60
#: The most users one script call counts; a larger burst takes several calls.
MAX_KEYS_PER_CALL = 1000

#: Counts one hit for each key in ``KEYS`` unless that would exceed the limit; returns 1
#: (counted) or 0 (refused) per key, in order. A key is a user's counter name; the script
#: appends the window number. ``ARGV``: limit, window length in seconds.
_HIT_SCRIPT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local index = math.floor(t / window)
local weight = 1 - (t - index * window) / window
local result = {}
for i, key in ipairs(KEYS) do
  local current_key = key .. ':' .. index
  local previous = tonumber(redis.call('GET', key .. ':' .. (index - 1)) or '0')
  local current = tonumber(redis.call('GET', current_key) or '0')
  if math.floor(previous * weight) + current + 1 > limit then
    result[i] = 0
  else
    if redis.call('INCR', current_key) == 1 then
      redis.call('EXPIRE', current_key, 2 * window)
    end
    result[i] = 1
  end
end
return result
"""


class _RedisCounter:
    """Sliding-window counters in Redis, one script call per batch of hits.

    The hits go through a :class:`~supervisors.batching.Batcher` with one batch in
    flight: every hit checked during one trip to Redis waits for the next trip.
    """

    def __init__(self, url: str, prefix: str, limit: int) -> None:
        self._prefix = f"{prefix}:rate:msg:"
        self._limit = limit
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0, socket_keepalive=True
        )
        self._script = self._client.register_script(_HIT_SCRIPT)
        self._hits = Batcher[str, bool](
            self._count, max_batch=MAX_KEYS_PER_CALL, max_in_flight=1, name="rate-limit-batcher"
        )

    async def hit(self, user_id: str) -> bool:
        return await self._hits.submit(self._prefix + user_id)

    async def _count(self, keys: Sequence[str]) -> list[bool]:
        counted = await self._script(keys=list(keys), args=[self._limit, WINDOW_S])
        return [bool(outcome) for outcome in counted]

    async def reset(self) -> None:
        async for key in self._client.scan_iter(match=self._prefix + "*", count=1000):
            await self._client.delete(key)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hits.close(), timeout=2.0)
        await self._client.aclose()


class _MemoryCounter:
    """The same counters in this process, through ``limits``."""

    def __init__(self, limit: int) -> None:
        self._item = RateLimitItemPerMinute(limit)
        self._storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)

    async def hit(self, user_id: str) -> bool:
        return await self._limiter.hit(self._item, "msg", user_id)

    async def reset(self) -> None:
        await self._storage.reset()

    async def close(self) -> None:
        return None


class MessageRateLimiter:
    """At most ``per_minute`` messages per user per minute, across nodes when given Redis."""

    def __init__(
        self, per_minute: int, redis_url: str | None = None, prefix: str = "whispr"
    ) -> None:
        self.per_minute = per_minute
        self._counter: _RedisCounter | _MemoryCounter
        if redis_url:
            self._counter = _RedisCounter(redis_url, prefix, per_minute)
        else:
            self._counter = _MemoryCounter(per_minute)

    async def check(self, user_id: str) -> None:
        """Count one message of ``user_id``.

        Raises:
            WhisprError: ``rate_limited`` when the budget is spent.
        """
        try:
            allowed = await self._counter.hit(user_id)
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
        await self._counter.reset()

    async def close(self) -> None:
        """Let the batch in flight finish and release the Redis connections."""
        await self._counter.close()
