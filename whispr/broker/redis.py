"""``RedisBroker``: events between nodes over Redis pub/sub.

Each node keeps one subscriber connection (one SUBSCRIBE per topic that has
local subscribers, so a node receives only what it serves) and a connection
pool for publishing. The publishes made while the previous batch was out go
together in one script call (:data:`_PUBLISH_SCRIPT`), which is where the
throughput comes from: a pipeline of PUBLISH commands costs the node a reply
to parse, under its own timeout scope, per event; the script returns one
reply per batch.

A publish is delivered to local subscribers at once and tagged with the node
id; the copy that comes back from Redis is skipped, so local subscribers see
each event once and without the round trip. Better still, the copy is not
sent back at all when no other node listens: the script publishes an event
whose channel this node is known (confirmed by Redis) to be subscribed to
only if ``PUBSUB NUMSUB`` counts another subscriber. On one node, or when a
conversation's members are all on this one, reading its own events back was
the largest cost of the subscriber connection. A channel stops counting as
this node's before it is unsubscribed, and the UNSUBSCRIBE waits for the
publishes made meanwhile, so an event for another node is never skipped
because of a subscription that was already gone.

An event that carries a ``traceparent`` (a sampled message, ``actors/events.py``) is
delivered here under a ``deliver`` span, a child of the publisher's ``publish`` span on the
other node: one message's path is one trace across nodes.

When Redis goes away, local delivery goes on, publishes to other nodes are
dropped and counted (clients catch up from the store), and the subscriber
reconnects with backoff and subscribes again to every topic it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from actors.broker import Handler
from actors.events import trace_of
from actors.tracing import TRACER, parent_of
from whispr.broker.local import LocalFanout, _LocalSubscription

__all__ = ["RedisBroker"]

logger = logging.getLogger("whispr.broker")

_SEPARATOR = b"\x00"

#: ``ARGV`` holds (channel, mine, payload) triples, published in order; ``mine`` is "1" when
#: this node is subscribed to the channel, and then only another subscriber makes the publish
#: worth it. Returns how many were published. A channel is not a key: ``KEYS`` stays empty.
_PUBLISH_SCRIPT = """
local published = 0
for i = 1, #ARGV, 3 do
  if ARGV[i + 1] == '0' or redis.call('PUBSUB', 'NUMSUB', ARGV[i])[2] > 1 then
    redis.call('PUBLISH', ARGV[i], ARGV[i + 2])
    published = published + 1
  end
end
return published
"""
_MINE = b"1"
_NOT_MINE = b"0"
#: Script arguments per call at most: 5,000 events (a backlog goes in several calls).
_PUBLISH_ARGS = 3 * 5_000


class RedisBroker:
    """Redis pub/sub broker with local fan-out, batching and reconnection."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        prefix: str = "whispr",
        max_outbox: int = 100_000,
        subscribe_timeout: float = 2.0,
    ) -> None:
        self.node_id = node_id
        self.url = url
        self.prefix = prefix
        self.max_outbox = max_outbox
        self.subscribe_timeout = subscribe_timeout
        #: Events handed to Redis, those of them no other node listened to, those lost.
        self.published = 0
        self.unheard = 0
        self.dropped = 0
        self.reconnects = 0
        self._on_reconnect: list[Callable[[], None]] = []
        self._tag = node_id.encode() + _SEPARATOR
        self._fanout = LocalFanout(on_empty=self._last_handler_gone)
        self._client: aioredis.Redis | None = None
        self._publish_many: Any = None
        self._pubsub: Any = None
        #: (channel, mine, payload) triples, flat: the script's arguments as they will be sent.
        self._outbox: list[str | bytes] = []
        #: Channels Redis confirmed this node's subscriber connection is subscribed to.
        self._confirmed: set[str] = set()
        self._wake = asyncio.Event()
        self._sent = asyncio.Condition()
        self._queued_count = 0
        self._sent_count = 0
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        self._client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=2.0, socket_timeout=5.0, socket_keepalive=True
        )
        self._publish_many = self._client.register_script(_PUBLISH_SCRIPT)
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="redis-broker-reader"),
            asyncio.create_task(self._write_forever(), name="redis-broker-writer"),
        ]
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=self.subscribe_timeout)
        except TimeoutError:
            logger.warning("Redis at %s not reachable yet; retrying in the background", self.url)

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    @property
    def connected(self) -> bool:
        """Whether the subscriber connection is up (``whispr_broker_connected``): the node
        hears other nodes' events. Reconnects happen in the background."""
        return self._connected.is_set()

    async def ping(self) -> bool:
        if self._client is None or not self._connected.is_set():
            return False
        try:
            return bool(await asyncio.wait_for(self._client.ping(), timeout=1.0))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- publishing ----------------------------------------------------------------

    def publish(self, topic: str, payload: bytes) -> None:
        self._fanout.deliver(topic, payload)
        outbox = self._outbox
        if len(outbox) >= 3 * self.max_outbox:
            self.dropped += 1
            return
        channel = self._channel(topic)
        outbox.append(channel)
        outbox.append(_MINE if channel in self._confirmed else _NOT_MINE)
        outbox.append(self._tag + payload)
        self._queued_count += 1
        self._wake.set()

    async def flush(self) -> None:
        target = self._queued_count
        async with self._sent:
            await self._sent.wait_for(lambda: self._sent_count >= target)

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._outbox) > _PUBLISH_ARGS:
                batch = self._outbox[:_PUBLISH_ARGS]
                del self._outbox[:_PUBLISH_ARGS]
                self._wake.set()  # the rest goes next
            else:
                batch, self._outbox = self._outbox, []
            if not batch:
                continue
            count = len(batch) // 3
            try:
                sent = int(await self._publish_many(args=batch))
                self.published += sent
                self.unheard += count - sent
            except (RedisError, OSError, TimeoutError) as exc:
                self.dropped += count
                logger.warning("dropped %d events for other nodes: %s", count, exc)
            async with self._sent:
                self._sent_count += count
                self._sent.notify_all()

    # -- subscribing -----------------------------------------------------------------

    async def subscribe(self, topic: str, handler: Handler) -> _LocalSubscription:
        subscription, first = self._fanout.add(topic, handler)
        if first and self._connected.is_set():
            channel = self._channel(topic)
            ack = self._acks.get(channel)
            if ack is None:
                ack = self._acks[channel] = asyncio.get_running_loop().create_future()
            try:
                await self._pubsub.subscribe(channel)
                await asyncio.wait_for(asyncio.shield(ack), timeout=self.subscribe_timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                # The reader resubscribes every local topic when it reconnects.
                logger.warning("subscribe to %s not confirmed: %s", topic, exc)
        return subscription

    def _last_handler_gone(self, topic: str) -> None:
        if self._pubsub is None or not self._connected.is_set() or self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._unsubscribe(self._channel(topic)))
        task.add_done_callback(_log_failure)

    async def _unsubscribe(self, channel: str) -> None:
        topic = channel[len(self.prefix) + 1 :]
        if topic in self._fanout:  # someone subscribed again meanwhile
            return
        # From now on this channel's publishes go out whoever listens; those queued while it
        # counted as this node's leave before the subscription does (see the module's doc).
        self._confirmed.discard(channel)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self.flush(), timeout=self.subscribe_timeout)
        if topic in self._fanout:
            return
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(channel)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._on_reconnect.append(callback)

    def _reconnected(self) -> None:
        for callback in list(self._on_reconnect):
            try:
                callback()
            except Exception:
                logger.exception("reconnect callback failed")

    async def _read_forever(self) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                await self._connect_subscriber()
                if self.reconnects:  # back after a loss: what was published meanwhile is lost
                    self._reconnected()
                backoff = 0.05
                while True:
                    # Blocking (no timeout): a read with a timeout pays for a timeout scope
                    # per event, on the node's busiest path. Closing cancels this task, and a
                    # lost connection raises.
                    message = await self._pubsub.get_message(timeout=None)
                    if message is not None:
                        self._on_message(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self._connected.is_set():
                    logger.warning("lost Redis subscriber connection: %s", exc)
                self._confirmed.clear()
                self._connected.clear()
                self.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _connect_subscriber(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        assert self._client is not None
        self._pubsub = self._client.pubsub()
        # The node's own channel keeps the connection subscribed even with
        # no topics, and every topic with local subscribers is (re)subscribed.
        channels = [self._channel(f"node:{self.node_id}")]
        channels += [self._channel(topic) for topic in self._fanout.topics()]
        await self._pubsub.subscribe(*channels)
        pending = set(channels)
        while pending:
            message = await self._pubsub.get_message(timeout=self.subscribe_timeout)
            if message is None:
                raise TimeoutError("no subscribe confirmation from Redis")
            if message["type"] == "subscribe":
                pending.discard(_text(message["channel"]))
            self._on_message(message)
        if not self._connected.is_set():
            logger.info("Redis subscriber connected (%d channels)", len(channels))
        self._connected.set()

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == "subscribe":
            self._confirmed.add(channel)
            ack = self._acks.pop(channel, None)
            if ack is not None and not ack.done():
                ack.set_result(None)
            return
        if kind == "unsubscribe":
            self._confirmed.discard(channel)
            return
        if kind != "message":
            return
        data: bytes = message["data"]
        origin, _, payload = data.partition(_SEPARATOR)
        if origin == self._tag[:-1]:
            return  # delivered locally when it was published
        topic = channel[len(self.prefix) + 1 :]
        trace = trace_of(payload)
        if not trace:
            self._fanout.deliver(topic, payload)
            return
        # A sampled event: its delivery here is a span of the publisher's trace.
        with TRACER.start_as_current_span(
            f"deliver {topic}",
            context=parent_of(trace),
            kind=SpanKind.CONSUMER,
            attributes={"whispr.node": self.node_id},
        ):
            self._fanout.deliver(topic, payload)

    def _channel(self, topic: str) -> str:
        return f"{self.prefix}:{topic}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("broker task failed: %r", task.exception())
