"""Who is online in a topic, cluster-wide, with Phoenix Presence semantics.

Each connected device is one *meta* under its user's key, with a ``phx_ref`` of its own
(:mod:`whispr.protocol.presence` holds the payload rules). A join of a topic tracks the
device; the channel's end untracks it. Every change is broadcast on the topic through the
broker as a ``presence_diff``, so every node's subscribers see it; a join reads the whole
state for ``presence_state``.

Where the state lives:

- :class:`MemoryPresence`, for a single node (no Redis configured): a dict.
- :class:`RedisPresence`, for a cluster: one Redis hash per topic (``<node>|<phx_ref>`` ->
  the key and meta), so any node can read the whole state of a topic in one ``HGETALL``.

A node that dies cannot untrack its devices. Phoenix's tracker finds out through missed
heartbeats between nodes; here every node refreshes a liveness key in Redis
(``NODE_TTL_S``), records which topics it tracks devices in, and sweeps: every
``SWEEP_INTERVAL_S`` each node looks for nodes whose liveness key expired, removes their
metas and broadcasts the leaves. A dead node's presences disappear within
``NODE_TTL_S + SWEEP_INTERVAL_S`` (20 s by default). Reads skip metas of dead nodes at once,
so a joiner never sees a stale device even before the sweep.

Presence also knows which users have a device connected at all, whatever they joined
(:meth:`Presence.online`): the notification flow pushes only to members with none. Each
connection counts itself in (``device_connected``) and out; on Redis each node keeps one hash
of its users' device counts, updated in order by one writer task, and a read asks the hashes
of the live nodes only, so a dead node's users count as offline at once.

Presence is best effort: when Redis is unreachable, tracking fails quietly (logged) and joins
still succeed; messages never depend on it. A node whose Redis is unreachable when it starts
starts all the same, and registers (liveness key, node set, device counts) at the first sweep
that reaches Redis; after the broker reconnects it registers again, rewriting its device
counts from its own tally, since the changes made while Redis was away were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec
import redis.asyncio as aioredis
import structlog
from cachetools import TTLCache
from redis.typing import EncodableT

from actors.broker import Broker
from actors.events import encode_event
from supervisors.batching import Batcher
from whispr.protocol.presence import PRESENCE_DIFF, Meta, PresenceState, make_ref

__all__ = ["NODE_TTL_S", "SWEEP_INTERVAL_S", "MemoryPresence", "Presence", "RedisPresence"]

log = structlog.get_logger("whispr.presence")

#: Seconds a node's liveness key lives without a refresh.
NODE_TTL_S: Final = 15.0
#: Seconds between sweeps for dead nodes (and liveness refreshes).
SWEEP_INTERVAL_S: Final = 5.0
#: How long a node seen alive is taken as alive without asking Redis again.
ALIVE_CACHE_S: Final = 1.0
#: Queued among the device count changes: write this node's whole tally instead.
_REWRITE: Final = ("", 0)


# Each batch of writes is one script call. A pipeline of the same commands cost the node a
# packed command and a parsed reply per command: for the thousand leaves of a mass
# reconnect, 17 to 32 ms of CPU against 1.6 to 3.5 ms as one call.

#: Store metas. ``KEYS``: each meta's topic hash, then this node's set of topics, then the
#: set of nodes. ``ARGV``: the node id, then each meta's field, value and topic, in ``KEYS``
#: order.
_TRACK: Final = """
local n = #KEYS - 2
for i = 1, n do
  local at = 3 * i - 1
  redis.call('HSET', KEYS[i], ARGV[at], ARGV[at + 1])
  redis.call('SADD', KEYS[n + 1], ARGV[at + 2])
end
redis.call('SADD', KEYS[n + 2], ARGV[1])
"""

#: Remove metas. ``KEYS``: each meta's topic hash; ``ARGV``: its field. Returns each
#: meta's value, or nil where it was gone already (a sweep took it).
_UNTRACK: Final = """
local removed = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('HGET', key, ARGV[i])
  if value then redis.call('HDEL', key, ARGV[i]) end
  removed[i] = value
end
return removed
"""

#: Apply device count changes. ``KEYS[1]``: this node's hash of counts; ``ARGV``: pairs of
#: user id and change. A count down to nothing is deleted, in the same atomic step.
_COUNT_DEVICES: Final = """
for i = 1, #ARGV, 2 do
  local left = redis.call('HINCRBY', KEYS[1], ARGV[i], tonumber(ARGV[i + 1]))
  if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
"""


class _Entry(msgspec.Struct, array_like=True):
    key: str
    meta: dict[str, Any]


_encode = msgspec.json.Encoder().encode
_decode_entry = msgspec.json.Decoder(_Entry).decode


def _join_diff(key: str, meta: Meta) -> dict[str, Any]:
    return {"joins": {key: {"metas": [meta]}}, "leaves": {}}


def _leave_diff(leaves: dict[str, list[Meta]]) -> dict[str, Any]:
    return {"joins": {}, "leaves": {key: {"metas": metas} for key, metas in leaves.items()}}


def _state(entries: list[tuple[str, Meta]]) -> PresenceState:
    state: PresenceState = {}
    for key, meta in entries:
        state.setdefault(key, {"metas": []})["metas"].append(meta)
    return state


class Presence(Protocol):
    """Track devices in topics; read a topic's state."""

    async def start(self) -> None:
        """Begin background work (liveness, sweeps)."""

    async def stop(self) -> None:
        """Untrack everything this node tracks and stop background work."""

    async def track(self, topic: str, key: str, meta: Meta) -> str:
        """Add ``meta`` under ``key`` in ``topic``; broadcast the join; return its ``phx_ref``."""

    async def untrack(self, topic: str, key: str, ref: str) -> None:
        """Remove one meta; broadcast the leave."""

    async def state(self, topic: str) -> PresenceState:
        """The topic's state, for ``presence_state``."""

    def device_connected(self, user_id: str) -> None:
        """A device of ``user_id`` connected to this node (does not wait for Redis)."""

    def device_disconnected(self, user_id: str) -> None:
        """A device of ``user_id`` left this node."""

    async def online(self, user_ids: Sequence[str]) -> set[str]:
        """Those of ``user_ids`` with at least one device connected to any live node."""


class MemoryPresence:
    """Presence for one node."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._topics: dict[str, dict[str, tuple[str, Meta]]] = {}
        self._devices: Counter[str] = Counter()

    def device_connected(self, user_id: str) -> None:
        self._devices[user_id] += 1

    def device_disconnected(self, user_id: str) -> None:
        self._devices[user_id] -= 1
        if self._devices[user_id] <= 0:
            del self._devices[user_id]

    async def online(self, user_ids: Sequence[str]) -> set[str]:
        return {user_id for user_id in user_ids if self._devices.get(user_id, 0) > 0}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._topics.clear()

    async def track(self, topic: str, key: str, meta: Meta) -> str:
        ref = make_ref()
        tracked = {**meta, "phx_ref": ref}
        self._topics.setdefault(topic, {})[ref] = (key, tracked)
        self.broker.publish(topic, encode_event(PRESENCE_DIFF, _join_diff(key, tracked)))
        return ref

    async def untrack(self, topic: str, key: str, ref: str) -> None:
        entries = self._topics.get(topic)
        entry = None if entries is None else entries.pop(ref, None)
        if entries is not None and not entries:
            del self._topics[topic]
        if entry is not None:
            self.broker.publish(topic, encode_event(PRESENCE_DIFF, _leave_diff({key: [entry[1]]})))

    async def state(self, topic: str) -> PresenceState:
        return _state(list(self._topics.get(topic, {}).values()))


class RedisPresence:
    """Presence for a cluster, kept in Redis; see the module's docstring."""

    def __init__(
        self,
        url: str,
        broker: Broker,
        node_id: str,
        *,
        node_ttl_s: float = NODE_TTL_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
        prefix: str = "whispr",
    ) -> None:
        self.broker = broker
        self.node_id = node_id
        self._prefix = f"{prefix}:presence"
        self.node_ttl_s = node_ttl_s
        self.sweep_interval_s = sweep_interval_s
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=5.0, decode_responses=False
        )
        self._tracked: dict[tuple[str, str], str] = {}  # (topic, ref) -> key
        self._seen_alive: TTLCache[str, bool] = TTLCache(1024, ALIVE_CACHE_S, timer=time.monotonic)
        self._task: asyncio.Task[None] | None = None
        # Device count changes, applied in order by one writer (a decrement must never
        # overtake the increment it undoes).
        self._device_changes: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._device_writer: asyncio.Task[None] | None = None
        #: This node's connected devices by user: what its hash in Redis should hold.
        self._devices: Counter[str] = Counter()
        #: Whether this node's registration in Redis is known to be current.
        self._registered = False
        self._swept_own = False
        broker.on_reconnect(self._reregister)
        self._track_script = self._redis.register_script(_TRACK)
        self._untrack_script = self._redis.register_script(_UNTRACK)
        self._count_devices = self._redis.register_script(_COUNT_DEVICES)
        # The joins that arrive together (a node's clients reconnecting to this one) write
        # their metas and read their topics' states in one call per batch, instead of a
        # Redis round trip each: during a mass reconnect that was a third of a join's cost.
        # Leaves too: a thousand clients leaving at once took a connection each, beyond the
        # client's pool, and their metas stayed behind.
        self._tracks = Batcher[tuple[str, str, bytes], None](
            self._write_tracks, max_batch=1000, max_in_flight=1, name="presence-track"
        )
        self._untracks = Batcher[tuple[str, str], bytes | None](
            self._remove_metas, max_batch=1000, max_in_flight=1, name="presence-untrack"
        )
        self._reads = Batcher[str, list[tuple[str, Meta]]](
            self._read_topics, max_batch=1000, max_in_flight=1, name="presence-state"
        )

    def _topic_key(self, topic: str) -> str:
        return f"{self._prefix}:topic:{topic}"

    def _alive_key(self, node: str) -> str:
        return f"{self._prefix}:alive:{node}"

    def _topics_key(self, node: str) -> str:
        return f"{self._prefix}:topics:{node}"

    def _devices_key(self, node: str) -> str:
        return f"{self._prefix}:devices:{node}"

    async def start(self) -> None:
        try:
            await self._register()
        except Exception as exc:
            log.warning(
                "presence: Redis unreachable at start; this node registers when it answers",
                error=str(exc),
            )
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="presence-sweep")
        self._device_writer = loop.create_task(self._write_devices(), name="presence-devices")

    async def _register(self) -> None:
        """Announce this node: liveness key, device counts, membership of the node set."""
        await self._heartbeat()
        if not self._swept_own:
            # A previous life of this node under the same name left metas behind; the metas
            # of this life (tracked since Redis came back, before this) stay.
            await self._sweep_node(self.node_id, keep={ref for _topic, ref in self._tracked})
            self._swept_own = True
        self._device_changes.put_nowait(_REWRITE)
        await self._redis.sadd(f"{self._prefix}:nodes", self.node_id)
        await self._heartbeat()
        self._registered = True

    def _reregister(self) -> None:
        # The broker is back after a loss: Redis may have lost this node's keys (a restart
        # without persistence), and the device changes made meanwhile were not written.
        self._registered = False

    def device_connected(self, user_id: str) -> None:
        self._devices[user_id] += 1
        self._device_changes.put_nowait((user_id, 1))

    def device_disconnected(self, user_id: str) -> None:
        self._devices[user_id] -= 1
        if self._devices[user_id] <= 0:
            del self._devices[user_id]
        self._device_changes.put_nowait((user_id, -1))

    async def online(self, user_ids: Sequence[str]) -> set[str]:
        if not user_ids:
            return set()
        try:
            nodes = await self._members(f"{self._prefix}:nodes")
            alive = sorted(await self._alive(nodes))
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in alive:
                    pipe.hmget(self._devices_key(node), list(user_ids))
                counts: list[list[bytes | None]] = await pipe.execute()
        except Exception as exc:
            log.warning("presence online check failed", error=str(exc))
            return set()
        online: set[str] = set()
        for per_node in counts:
            for user_id, count in zip(user_ids, per_node, strict=True):
                if count is not None and int(count) > 0:
                    online.add(user_id)
        return online

    async def _write_devices(self) -> None:
        """Apply device count changes in order, several users' at once when they pile up."""
        key = self._devices_key(self.node_id)
        while True:
            changes = [await self._device_changes.get()]
            while not self._device_changes.empty():
                changes.append(self._device_changes.get_nowait())
            if _REWRITE in changes:
                # The tally already holds every change taken from the queue: write it whole.
                await self._rewrite_devices(key, {user: n for user, n in self._devices.items()})
                continue
            deltas: Counter[str] = Counter()
            for user_id, delta in changes:
                deltas[user_id] += delta
            args: list[str | int] = []
            for user_id, delta in deltas.items():
                if delta:
                    args += (user_id, delta)
            if not args:
                continue
            try:
                await self._count_devices(keys=[key], args=args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("presence device count failed", error=str(exc), users=len(deltas))

    async def _rewrite_devices(self, key: str, devices: dict[EncodableT, EncodableT]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if devices:
                    pipe.hset(key, mapping=devices)
                await pipe.execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._registered = False  # written again at the next registration
            log.warning("presence device counts not written", error=str(exc))

    async def stop(self) -> None:
        for task in (self._task, self._device_writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._device_writer = None
        with contextlib.suppress(Exception):
            await self._redis.delete(self._devices_key(self.node_id))
        await asyncio.gather(
            *(self.untrack(topic, key, ref) for (topic, ref), key in list(self._tracked.items())),
            return_exceptions=True,
        )
        for batcher in (self._tracks, self._reads, self._untracks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(batcher.close(), timeout=2.0)
        with contextlib.suppress(Exception):
            await self._redis.delete(self._alive_key(self.node_id))
        await self._redis.aclose()

    async def track(self, topic: str, key: str, meta: Meta) -> str:
        ref = make_ref()
        tracked = {**meta, "phx_ref": ref}
        self._tracked[(topic, ref)] = key
        try:
            await self._tracks.submit((topic, f"{self.node_id}|{ref}", _encode((key, tracked))))
        except Exception as exc:
            log.warning("presence track failed", topic=topic, error=str(exc))
        self.broker.publish(topic, encode_event(PRESENCE_DIFF, _join_diff(key, tracked)))
        return ref

    async def untrack(self, topic: str, key: str, ref: str) -> None:
        self._tracked.pop((topic, ref), None)
        try:
            raw = await self._untracks.submit((topic, f"{self.node_id}|{ref}"))
        except Exception as exc:
            log.warning("presence untrack failed", topic=topic, error=str(exc))
            return
        if raw is not None:
            entry = _decode_entry(raw)
            diff = _leave_diff({entry.key: [entry.meta]})
            self.broker.publish(topic, encode_event(PRESENCE_DIFF, diff))

    async def _write_tracks(self, metas: Sequence[tuple[str, str, bytes]]) -> list[None]:
        """Store a batch of metas (topic, field, value), in one call."""
        keys = [self._topic_key(topic) for topic, _, _ in metas]
        keys += (self._topics_key(self.node_id), f"{self._prefix}:nodes")
        args: list[str | bytes] = [self.node_id]
        for topic, field, value in metas:
            args += (field, value, topic)
        await self._track_script(keys=keys, args=args)
        return [None] * len(metas)

    async def _remove_metas(self, metas: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """Remove a batch of metas (topic, field); each one's value if this call removed it."""
        removed: list[bytes | None] = await self._untrack_script(
            keys=[self._topic_key(topic) for topic, _ in metas],
            args=[field for _, field in metas],
        )
        return removed

    async def _read_topics(self, topics: Sequence[str]) -> list[list[tuple[str, Meta]]]:
        """The metas of live nodes in a batch of topics: one pipeline, one liveness check."""
        distinct = list(dict.fromkeys(topics))
        async with self._redis.pipeline(transaction=False) as pipe:
            for topic in distinct:
                pipe.hgetall(self._topic_key(topic))
            read: list[dict[bytes, bytes]] = await pipe.execute()
        # Each meta with its node (a field is "<node>|<ref>"), split once.
        metas = [
            [(field.split(b"|", 1)[0].decode(), raw) for field, raw in fields.items()]
            for fields in read
        ]
        nodes = sorted({node for per_topic in metas for node, _ in per_topic})
        alive = await self._alive(nodes, recent=True)
        entries: dict[str, list[tuple[str, Meta]]] = {}
        for topic, per_topic in zip(distinct, metas, strict=True):
            decoded = (_decode_entry(raw) for node, raw in per_topic if node in alive)
            entries[topic] = [(entry.key, entry.meta) for entry in decoded]
        return [entries[topic] for topic in topics]

    async def state(self, topic: str) -> PresenceState:
        try:
            entries = await self._reads.submit(topic)
        except Exception as exc:
            log.warning("presence list failed", topic=topic, error=str(exc))
            return {}
        return _state(entries)

    async def _hgetall(self, key: str) -> dict[bytes, bytes]:
        fields: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[assignment]
        return fields

    async def _members(self, key: str) -> list[str]:
        members: set[bytes] = await self._redis.smembers(key)  # type: ignore[assignment]
        return sorted(m.decode() for m in members)

    async def _alive(self, nodes: Sequence[str], *, recent: bool = False) -> set[str]:
        # With ``recent`` (the state every join reads), a node seen alive within a second is
        # taken as alive (it lives 15 s after its last heartbeat anyway); the others are
        # asked each time, so that a node that has just started shows at once.
        alive = {node for node in nodes if recent and node in self._seen_alive}
        unknown = [node for node in nodes if node not in alive]
        if unknown:
            flags = await self._redis.mget([self._alive_key(n) for n in unknown])
            for node, flag in zip(unknown, flags, strict=True):
                if flag is not None:
                    self._seen_alive[node] = True
                    alive.add(node)
        return alive

    async def _heartbeat(self) -> None:
        await self._redis.set(
            self._alive_key(self.node_id), str(time.time()), px=int(self.node_ttl_s * 1000)
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                if self._registered:
                    await self._heartbeat()
                else:
                    await self._register()
                    log.info("presence: registered in Redis", node=self.node_id)
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("presence sweep failed", error=str(exc))

    async def sweep(self) -> int:
        """Remove the metas of every dead node; return how many were removed."""
        nodes = await self._members(f"{self._prefix}:nodes")
        alive = await self._alive(nodes)
        removed = 0
        for node in nodes:
            if node not in alive and node != self.node_id:
                removed += await self._sweep_node(node)
                await self._redis.srem(f"{self._prefix}:nodes", node)
        return removed

    async def _sweep_node(self, node: str, keep: set[str] | None = None) -> int:
        """Remove ``node``'s metas but those whose ref is in ``keep`` (this node's own live
        ones), broadcasting the leaves; return how many were removed."""
        removed = 0
        prefix = f"{node}|".encode()
        kept = {f"{node}|{ref}".encode() for ref in keep or ()}
        topics = await self._members(self._topics_key(node))
        for topic in topics:
            fields: dict[bytes, bytes] = await self._hgetall(self._topic_key(topic))
            leaves: dict[str, list[Meta]] = {}
            for field, raw in fields.items():
                # HDEL is atomic: of several nodes sweeping at once, one broadcasts each leave.
                if field in kept:
                    continue
                if field.startswith(prefix) and await self._redis.hdel(
                    self._topic_key(topic), field
                ):
                    entry = _decode_entry(raw)
                    leaves.setdefault(entry.key, []).append(entry.meta)
                    removed += 1
            if leaves:
                self.broker.publish(topic, encode_event(PRESENCE_DIFF, _leave_diff(leaves)))
        # The topics of kept metas stay listed, for a sweep after this node's death.
        await self._redis.delete(
            *(
                (self._devices_key(node),)
                if kept
                else (self._topics_key(node), self._devices_key(node))
            )
        )
        if removed:
            log.info("presence of a dead node removed", node=node, metas=removed)
        return removed
