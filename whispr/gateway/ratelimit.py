"""Sliding-window counters per user and bucket, held across nodes; throttle marks.

A sliding-window counter per user and bucket (a bucket is one kind of event: ``send``,
``typing``...): the count of the current fixed window plus the previous window's count
weighted by how much of it still overlaps the window ending now (the algorithm of
``limits``' ``SlidingWindowCounterRateLimiter``). A hit is counted only when it fits, so a
refused event is not counted; the caller counts an event before it touches anything, so a
refused event writes nothing. A refusal says when the next hit would fit
(:func:`retry_after`), the same way for both backends.

On a single node the counters live in memory, through ``limits``' storage. With Redis they
live there, so a user's budget is shared by every node their devices are connected to, and
the node counts in batches: every hit checked during one trip to Redis waits for the next
trip, which counts them all with one script call (:data:`_HIT_SCRIPT`). ``limits`` makes one
call per hit, and at gateway rates that call was the largest single cost of a message on the
node; batched, the cost is one round trip per batch, as with group commit and publishing.
The script reads the time from Redis, so nodes with skewed clocks still agree on the window.

A user may also be *throttled* for a while (the response to suspicious activity,
:mod:`whispr.gateway.abuse`): a mark with an expiry, in Redis (or memory) beside the
counters, which the same script call reads, so every node refuses the user's limited events
until it expires.

When Redis cannot be reached the limiter lets the event through (and logs): a rate limit
protects the service, and refusing every message during a Redis outage would be the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from typing import Final, NamedTuple

import redis.asyncio as aioredis
import structlog
from limits.aio.storage import MemoryStorage

from supervisors.batching import Batcher

__all__ = ["Hit", "Outcome", "RateLimiter", "retry_after"]

log = structlog.get_logger("whispr.ratelimit")

#: The most hits one script call counts; a larger burst takes several calls.
MAX_KEYS_PER_CALL: Final = 1000
#: Distinct members one ``distinct`` set keeps at most (its owner acts on far fewer).
MAX_DISTINCT: Final = 1000

#: For each key of ``KEYS``, with ``ARGV`` holding three values per key (limit, window in
#: seconds, throttle key or ``''``): refuses the hit when the key's user is throttled, else
#: counts it unless that would exceed the limit. Returns four numbers per key, in order:
#: outcome (1 counted, 0 over the limit, 2 throttled), milliseconds into the current window
#: (or the throttle's remaining milliseconds), the previous window's count, the current
#: window's count. A key is a counter's name; the script appends the window number.
_HIT_SCRIPT: Final = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local result = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local window = tonumber(ARGV[3 * i - 1])
  local throttle = ARGV[3 * i]
  local throttled = 0
  if throttle ~= '' then
    throttled = redis.call('PTTL', throttle)
  end
  local index = math.floor(t / window)
  local elapsed = t - index * window
  local weight = 1 - elapsed / window
  local current_key = key .. ':' .. index
  local previous = tonumber(redis.call('GET', key .. ':' .. (index - 1)) or '0')
  local current = tonumber(redis.call('GET', current_key) or '0')
  local base = 4 * (i - 1)
  if throttled > 0 then
    result[base + 1] = 2
    result[base + 2] = throttled
  elseif math.floor(previous * weight) + current + 1 > limit then
    result[base + 1] = 0
    result[base + 2] = math.floor(elapsed * 1000)
  else
    current = redis.call('INCR', current_key)
    if current == 1 then
      redis.call('EXPIRE', current_key, 2 * window)
    end
    result[base + 1] = 1
    result[base + 2] = math.floor(elapsed * 1000)
  end
  result[base + 3] = previous
  result[base + 4] = current
end
return result
"""

#: For each key of ``KEYS``, with ``ARGV`` holding two values per key (member, window in
#: seconds): adds the member to the set (made to expire a window after its first member),
#: which keeps at most ``MAX_DISTINCT`` members; returns each set's size, in order.
_DISTINCT_SCRIPT: Final = f"""
local result = {{}}
for i, key in ipairs(KEYS) do
  if redis.call('SCARD', key) < {MAX_DISTINCT} then
    if redis.call('SADD', key, ARGV[2 * i - 1]) == 1 and redis.call('TTL', key) < 0 then
      redis.call('EXPIRE', key, ARGV[2 * i])
    end
  end
  result[i] = redis.call('SCARD', key)
end
return result
"""


class Hit(NamedTuple):
    """One hit to count: the counter, its limit and window, whose throttle applies."""

    key: str
    limit: int
    window_s: int
    #: The user whose throttle mark refuses this hit; None: no throttle applies.
    throttled_user: str | None


class Outcome(NamedTuple):
    """A hit's fate: counted, or refused and when to retry (seconds)."""

    counted: bool
    retry_after: float = 0.0
    #: Refused because its user is throttled, not by the counter.
    throttled: bool = False


def retry_after(limit: int, window_s: float, elapsed: float, previous: int, current: int) -> float:
    """Seconds until one more hit fits, ``elapsed`` seconds into the current window.

    A hit fits when ``floor(previous * w) + current + 1 <= limit``, the previous window's
    weight ``w`` falling from 1 to 0 across the current window: it fits once
    ``previous * w < limit - current``. When the current window is full already, it fits in
    the next one, once the current count (then the previous one) has decayed enough.
    """
    if current < limit:
        if previous <= 0:
            return 0.0
        at = window_s * (1 - (limit - current) / previous)
        return max(0.0, at - elapsed)
    wait = window_s - elapsed
    if current <= 0:
        return wait
    return wait + max(0.0, window_s * (1 - limit / current))


class _RedisCounters:
    """The counters and throttle marks in Redis, one script call per batch of hits.

    The hits go through a :class:`~supervisors.batching.Batcher` with one batch in
    flight: every hit checked during one trip to Redis waits for the next trip.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = f"{prefix}:rate:"
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0, socket_keepalive=True
        )
        self._script = self._client.register_script(_HIT_SCRIPT)
        self._distinct_script = self._client.register_script(_DISTINCT_SCRIPT)
        self._hits = Batcher[Hit, Outcome](
            self._count, max_batch=MAX_KEYS_PER_CALL, max_in_flight=1, name="rate-limit-batcher"
        )
        self._adds = Batcher[tuple[str, str, int], int](
            self._add, max_batch=MAX_KEYS_PER_CALL, max_in_flight=1, name="distinct-batcher"
        )

    async def hit(self, hit: Hit) -> Outcome:
        return await self._hits.submit(hit)

    async def _count(self, hits: Sequence[Hit]) -> list[Outcome]:
        args: list[str | int] = []
        for hit in hits:
            throttle = "" if hit.throttled_user is None else self._throttle_key(hit.throttled_user)
            args += [hit.limit, hit.window_s, throttle]
        raw = await self._script(keys=[self.prefix + hit.key for hit in hits], args=args)
        outcomes = []
        for i, hit in enumerate(hits):
            code, ms, previous, current = (int(x) for x in raw[4 * i : 4 * i + 4])
            if code == 1:
                outcomes.append(Outcome(True))
            elif code == 2:
                outcomes.append(Outcome(False, ms / 1000, throttled=True))
            else:
                wait = retry_after(hit.limit, hit.window_s, ms / 1000, previous, current)
                outcomes.append(Outcome(False, wait))
        return outcomes

    def _throttle_key(self, user_id: str) -> str:
        return f"{self.prefix}throttle:{user_id}"

    async def throttle(self, user_id: str, seconds: float) -> None:
        await self._client.set(self._throttle_key(user_id), 1, px=max(1, int(seconds * 1000)))

    async def distinct(self, key: str, member: str, window_s: int) -> int:
        return await self._adds.submit((key, member, window_s))

    async def _add(self, adds: Sequence[tuple[str, str, int]]) -> list[int]:
        real = [(key, member, window) for key, member, window in adds if key]
        sizes: list[int] = []
        if real:
            args: list[str | int] = []
            for _, member, window in real:
                args += [member, window]
            raw = await self._distinct_script(keys=[self.prefix + k for k, _, _ in real], args=args)
            sizes = [int(size) for size in raw]
        answers = iter(sizes)
        return [next(answers) if key else 0 for key, _, _ in adds]

    async def reset(self) -> None:
        async for key in self._client.scan_iter(match=self.prefix + "*", count=1000):
            await self._client.delete(key)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hits.close(), timeout=2.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._adds.close(), timeout=2.0)
        await self._client.aclose()


class _MemoryCounters:
    """The same counters in this process, through ``limits``' storage."""

    def __init__(self) -> None:
        self._storage = MemoryStorage()
        #: User -> when their throttle ends (``time.monotonic``).
        self._throttled: dict[str, float] = {}
        #: Set key -> (when it expires, its members).
        self._sets: dict[str, tuple[float, set[str]]] = {}

    async def hit(self, hit: Hit) -> Outcome:
        if hit.throttled_user is not None:
            left = self._throttled.get(hit.throttled_user, 0.0) - time.monotonic()
            if left > 0:
                return Outcome(False, left, throttled=True)
            self._throttled.pop(hit.throttled_user, None)
        storage = self._storage
        if await storage.acquire_sliding_window_entry(hit.key, hit.limit, hit.window_s):
            return Outcome(True)
        previous, _, current, current_ttl = await storage.get_sliding_window(hit.key, hit.window_s)
        elapsed = 2 * hit.window_s - current_ttl
        return Outcome(False, retry_after(hit.limit, hit.window_s, elapsed, previous, current))

    async def throttle(self, user_id: str, seconds: float) -> None:
        self._throttled[user_id] = time.monotonic() + seconds

    async def distinct(self, key: str, member: str, window_s: int) -> int:
        if not key:
            return 0
        now = time.monotonic()
        for old in [k for k, (until, _) in self._sets.items() if until <= now]:
            del self._sets[old]
        _, members = self._sets.setdefault(key, (now + window_s, set()))
        if len(members) < MAX_DISTINCT:
            members.add(member)
        return len(members)

    async def reset(self) -> None:
        await self._storage.reset()
        self._throttled.clear()
        self._sets.clear()

    async def close(self) -> None:
        return None


class RateLimiter:
    """Counters per user and bucket (and throttle marks), across nodes when given Redis.

    Every method fails open: when Redis cannot answer, a hit is counted as allowed, a
    throttle is not set and a distinct count is 0 (and the failure is logged).
    """

    def __init__(self, redis_url: str | None = None, prefix: str = "whispr") -> None:
        self._counters: _RedisCounters | _MemoryCounters
        if redis_url:
            self._counters = _RedisCounters(redis_url, prefix)
        else:
            self._counters = _MemoryCounters()

    async def hit(
        self,
        user_id: str,
        bucket: str,
        limit: int,
        window_s: int = 60,
        *,
        honour_throttle: bool = True,
    ) -> Outcome:
        """Count one event of ``user_id`` in ``bucket`` if it fits ``limit`` per ``window_s``.

        ``honour_throttle``: refuse it while the user is throttled (the client's events);
        False for counts that watch the user rather than limit them.
        """
        hit = Hit(f"{bucket}:{user_id}", limit, window_s, user_id if honour_throttle else None)
        try:
            return await self._counters.hit(hit)
        except Exception as exc:
            log.warning("rate limiter unavailable; event let through", error=str(exc))
            return Outcome(True)

    async def throttle(self, user_id: str, seconds: float) -> None:
        """Refuse ``user_id``'s throttled hits for ``seconds``, on every node."""
        try:
            await self._counters.throttle(user_id, seconds)
        except Exception as exc:
            log.warning("rate limiter unavailable; throttle not set", error=str(exc))

    async def distinct(self, key: str, member: str, window_s: int) -> int:
        """Add ``member`` to the set ``key`` (kept ``window_s`` seconds from its first member)
        and return how many distinct members it holds (at most :data:`MAX_DISTINCT`).

        An empty ``key`` adds nothing and answers 0, in turn with the others: callers that
        must stay in order (a connection's pipelined sends) all take this step."""
        try:
            return await self._counters.distinct(key, member, window_s)
        except Exception as exc:
            log.warning("rate limiter unavailable; distinct count skipped", error=str(exc))
            return 0

    async def reset(self) -> None:
        """Forget every count and throttle (tests, and operators after changing a limit)."""
        await self._counters.reset()

    async def close(self) -> None:
        """Let the batch in flight finish and release the Redis connections."""
        await self._counters.close()


def whole_seconds(seconds: float) -> int:
    """A window given in seconds, as the whole seconds the counters take (at least 1)."""
    return max(1, math.ceil(seconds))
