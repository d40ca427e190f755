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

Presence is best effort: when Redis is unreachable, tracking fails quietly (logged) and joins
still succeed; messages never depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

import msgspec
import redis.asyncio as aioredis
import structlog

from actors.broker import Broker
from actors.events import encode_event
from whispr.protocol.presence import PRESENCE_DIFF, Meta, PresenceState, make_ref

__all__ = ["NODE_TTL_S", "SWEEP_INTERVAL_S", "MemoryPresence", "Presence", "RedisPresence"]

log = structlog.get_logger("whispr.presence")

#: Seconds a node's liveness key lives without a refresh.
NODE_TTL_S: Final = 15.0
#: Seconds between sweeps for dead nodes (and liveness refreshes).
SWEEP_INTERVAL_S: Final = 5.0


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


class MemoryPresence:
    """Presence for one node."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._topics: dict[str, dict[str, tuple[str, Meta]]] = {}

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
        self._task: asyncio.Task[None] | None = None

    def _topic_key(self, topic: str) -> str:
        return f"{self._prefix}:topic:{topic}"

    def _alive_key(self, node: str) -> str:
        return f"{self._prefix}:alive:{node}"

    def _topics_key(self, node: str) -> str:
        return f"{self._prefix}:topics:{node}"

    async def start(self) -> None:
        await self._heartbeat()
        # A previous life of this node under the same name left metas behind.
        await self._sweep_node(self.node_id)
        await self._heartbeat()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="presence-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for (topic, ref), key in list(self._tracked.items()):
            with contextlib.suppress(Exception):
                await self.untrack(topic, key, ref)
        with contextlib.suppress(Exception):
            await self._redis.delete(self._alive_key(self.node_id))
        await self._redis.aclose()

    async def track(self, topic: str, key: str, meta: Meta) -> str:
        ref = make_ref()
        tracked = {**meta, "phx_ref": ref}
        self._tracked[(topic, ref)] = key
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(self._topic_key(topic), f"{self.node_id}|{ref}", _encode((key, tracked)))
                pipe.sadd(self._topics_key(self.node_id), topic)
                pipe.sadd(f"{self._prefix}:nodes", self.node_id)
                await pipe.execute()
        except Exception as exc:
            log.warning("presence track failed", topic=topic, error=str(exc))
        self.broker.publish(topic, encode_event(PRESENCE_DIFF, _join_diff(key, tracked)))
        return ref

    async def untrack(self, topic: str, key: str, ref: str) -> None:
        self._tracked.pop((topic, ref), None)
        try:
            raw = await self._redis.hget(self._topic_key(topic), f"{self.node_id}|{ref}")
            removed = await self._redis.hdel(self._topic_key(topic), f"{self.node_id}|{ref}")
        except Exception as exc:
            log.warning("presence untrack failed", topic=topic, error=str(exc))
            return
        if removed and raw is not None:
            entry = _decode_entry(raw)
            diff = _leave_diff({entry.key: [entry.meta]})
            self.broker.publish(topic, encode_event(PRESENCE_DIFF, diff))

    async def state(self, topic: str) -> PresenceState:
        try:
            fields: dict[bytes, bytes] = await self._hgetall(self._topic_key(topic))
        except Exception as exc:
            log.warning("presence list failed", topic=topic, error=str(exc))
            return {}
        nodes = sorted({field.split(b"|", 1)[0].decode() for field in fields})
        alive = await self._alive(nodes)
        entries = []
        for field, raw in fields.items():
            if field.split(b"|", 1)[0].decode() in alive:
                entry = _decode_entry(raw)
                entries.append((entry.key, entry.meta))
        return _state(entries)

    async def _hgetall(self, key: str) -> dict[bytes, bytes]:
        fields: dict[bytes, bytes] = await self._redis.hgetall(key)  # type: ignore[assignment]
        return fields

    async def _members(self, key: str) -> list[str]:
        members: set[bytes] = await self._redis.smembers(key)  # type: ignore[assignment]
        return sorted(m.decode() for m in members)

    async def _alive(self, nodes: Sequence[str]) -> set[str]:
        if not nodes:
            return set()
        flags = await self._redis.mget([self._alive_key(n) for n in nodes])
        return {node for node, flag in zip(nodes, flags, strict=True) if flag is not None}

    async def _heartbeat(self) -> None:
        await self._redis.set(
            self._alive_key(self.node_id), str(time.time()), px=int(self.node_ttl_s * 1000)
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self._heartbeat()
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

    async def _sweep_node(self, node: str) -> int:
        removed = 0
        prefix = f"{node}|".encode()
        topics = await self._members(self._topics_key(node))
        for topic in topics:
            fields: dict[bytes, bytes] = await self._hgetall(self._topic_key(topic))
            leaves: dict[str, list[Meta]] = {}
            for field, raw in fields.items():
                # HDEL is atomic: of several nodes sweeping at once, one broadcasts each leave.
                if field.startswith(prefix) and await self._redis.hdel(
                    self._topic_key(topic), field
                ):
                    entry = _decode_entry(raw)
                    leaves.setdefault(entry.key, []).append(entry.meta)
                    removed += 1
            if leaves:
                self.broker.publish(topic, encode_event(PRESENCE_DIFF, _leave_diff(leaves)))
        await self._redis.delete(self._topics_key(node))
        if removed:
            log.info("presence of a dead node removed", node=node, metas=removed)
        return removed
