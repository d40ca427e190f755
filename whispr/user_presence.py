"""User presence: online, away or offline with last seen, per user across all their devices.

Per-topic presence (:mod:`whispr.gateway.presence`) says which devices are in a
conversation; this says what a contact list shows: one status per user, cluster-wide.

- A device counts while it has joined its ``user:<id>`` topic (the channel a client keeps
  for its conversation list), as ``online``, ``away`` or ``invisible`` (``update_presence``).
- A user is ``online`` when one of their devices is online, else ``away`` when one is away,
  else ``offline`` (no device, or invisible ones only). ``last_seen`` is when they last went
  offline (or invisible).
- ``hide_last_seen``, the user's privacy setting, is kept in the store
  (:class:`PresenceStore`); with it, contacts see no ``last_seen``; backends still do.

Every change of a user's status (not every device's) is one :class:`UserMeta` published on
the internal topic ``presence:<user id>`` (:func:`presence_topic`), as a Phoenix
``presence_diff`` that leaves the old meta and joins the new one. Contacts' ``user:``
channels subscribe to the topics of their contacts (:mod:`whispr.gateway.channels.contacts`),
so a change costs one publish whatever the number of the user's conversations and contacts,
and a contact's join reads its contacts' states in one call.

Where the state lives:

- :class:`MemoryUserPresence`, for a single node: dicts.
- :class:`RedisUserPresence`, for a cluster: per user a hash of device statuses
  (``<node>|<ref>`` -> status), one hash of users' current metas, and per node the set of
  users it has devices of. Each batch of changes is one script call that updates the
  devices, recomputes each user's status and returns the metas that changed. A node that
  dies cannot remove its devices: every node refreshes a liveness key and sweeps, as per
  topic presence does, so a dead node's devices go within ``NODE_TTL_S + SWEEP_INTERVAL_S``.

Best effort, like per-topic presence: when Redis is unreachable, changes are logged and
dropped, reads answer "nothing known"; messages never depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol, cast

import msgspec
import redis.asyncio as aioredis
import structlog

from actors.broker import Broker
from actors.events import encode_event
from supervisors.batching import Batcher
from whispr.protocol.presence import PRESENCE_DIFF, make_ref

__all__ = [
    "MAX_QUERY",
    "DeviceStatus",
    "MemoryUserPresence",
    "PresenceStore",
    "RedisUserPresence",
    "Status",
    "UserMeta",
    "UserPresence",
    "client_meta",
    "presence_topic",
]

log = structlog.get_logger("whispr.presence")

Status = Literal["online", "away", "offline"]
DeviceStatus = Literal["online", "away", "invisible"]

#: Users one read may ask about.
MAX_QUERY: Final = 1000
#: Seconds a node's liveness key lives without a refresh.
NODE_TTL_S: Final = 15.0
#: Seconds between sweeps for dead nodes (and liveness refreshes).
SWEEP_INTERVAL_S: Final = 5.0


def presence_topic(user_id: str) -> str:
    """The internal topic of one user's presence changes (no client may join it)."""
    return f"presence:{user_id}"


class UserMeta(msgspec.Struct, frozen=True, kw_only=True):
    """A user's presence as kept and published (``last_seen`` even when hidden)."""

    status: Status
    last_seen: float | None = None
    hide_last_seen: bool = False
    #: Changes with every change, as a Phoenix Presence meta's ``phx_ref``.
    ref: str


def client_meta(meta: UserMeta) -> dict[str, Any]:
    """``meta`` as a contact sees it: ``last_seen`` only when offline and not hidden."""
    shown = meta.status == "offline" and not meta.hide_last_seen
    return {
        "status": meta.status,
        "last_seen": meta.last_seen if shown else None,
        "phx_ref": meta.ref,
    }


def diff_event(user_id: str, old: UserMeta | None, new: UserMeta) -> bytes:
    """The broker event of one change: Phoenix's ``presence_diff``, with the raw metas."""
    leaves = {} if old is None else {user_id: {"metas": [old]}}
    return encode_event(PRESENCE_DIFF, {"joins": {user_id: {"metas": [new]}}, "leaves": leaves})


class PresenceStore(Protocol):
    """What presence needs of the store (``PostgresStore`` and ``SqliteStore`` implement it)."""

    async def contacts(self, user_id: str, limit: int) -> list[str]:
        """Up to ``limit`` users sharing a conversation with ``user_id`` (not themselves)."""
        ...

    async def hidden_last_seen(self, user_ids: Sequence[str]) -> set[str]:
        """Those of ``user_ids`` who hide their last seen."""
        ...

    async def set_hide_last_seen(self, user_id: str, hide: bool) -> None:
        """Keep the user's privacy setting."""
        ...


class UserPresence(Protocol):
    """Devices' statuses in; users' metas out; see the module's docstring."""

    async def start(self) -> None:
        """Begin background work (liveness, sweeps)."""

    async def stop(self) -> None:
        """Remove this node's devices and stop background work."""

    async def set_device(
        self, user_id: str, device: str, status: DeviceStatus, *, hide_last_seen: bool
    ) -> None:
        """Track (or change) one device; ``hide_last_seen`` is the stored setting, used when
        nothing is known of the user yet."""

    async def remove_device(self, user_id: str, device: str) -> None:
        """The device left (its ``user:`` channel ended)."""

    async def set_hide_last_seen(self, user_id: str, hide: bool) -> None:
        """The user changed their privacy setting (already stored)."""

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserMeta]:
        """The metas known of ``user_ids`` (users never seen are left out)."""


def _aggregate(statuses: Sequence[str]) -> Status:
    if "online" in statuses:
        return "online"
    return "away" if "away" in statuses else "offline"


class MemoryUserPresence:
    """User presence for one node."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._devices: dict[str, dict[str, str]] = {}
        self._metas: dict[str, UserMeta] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._devices.clear()

    async def set_device(
        self, user_id: str, device: str, status: DeviceStatus, *, hide_last_seen: bool
    ) -> None:
        self._devices.setdefault(user_id, {})[device] = status
        self._changed(user_id, hide_last_seen)

    async def remove_device(self, user_id: str, device: str) -> None:
        devices = self._devices.get(user_id, {})
        devices.pop(device, None)
        if not devices:
            self._devices.pop(user_id, None)
        self._changed(user_id, False)

    async def set_hide_last_seen(self, user_id: str, hide: bool) -> None:
        self._changed(user_id, hide, force_hide=True)

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserMeta]:
        return {u: self._metas[u] for u in user_ids if u in self._metas}

    def _changed(self, user_id: str, hide: bool, *, force_hide: bool = False) -> None:
        """The same rule as the Redis script (:data:`_APPLY`), in Python."""
        status = _aggregate(list(self._devices.get(user_id, {}).values()))
        old = self._metas.get(user_id)
        if not force_hide and old is not None:
            hide = old.hide_last_seen
        last_seen = None if old is None else old.last_seen
        if status == "offline" and (old is None or old.status != "offline"):
            last_seen = time.time()
        if old is not None and old.status == status and old.hide_last_seen == hide:
            return
        new = UserMeta(status=status, last_seen=last_seen, hide_last_seen=hide, ref=make_ref())
        self._metas[user_id] = new
        self.broker.publish(presence_topic(user_id), diff_event(user_id, old, new))


#: Apply a batch of changes. ``KEYS``: each change's device hash, then the metas hash, then
#: this node's set of users. ``ARGV``: now, then per change: op (``set``, ``del``, ``purge``
#: a node's devices, ``hide``), user, field (a device, or ``<node>|`` for ``purge``), value
#: (a status, or ``1``/``0`` for ``hide``), the stored ``hide_last_seen`` (``1``/``0``), a
#: new ref. Returns user, old meta (or ``""``) and new meta for each user whose meta changed.
_APPLY: Final = """
local now = tonumber(ARGV[1])
local n = #KEYS - 2
local metas, users = KEYS[n + 1], KEYS[n + 2]
local changed = {}
for i = 1, n do
  local a = 2 + (i - 1) * 6
  local op, user, field, value = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local devices = KEYS[i]
  if op == 'set' then
    redis.call('HSET', devices, field, value)
    redis.call('SADD', users, user)
  elseif op == 'del' then
    redis.call('HDEL', devices, field)
  elseif op == 'purge' then
    for _, f in ipairs(redis.call('HKEYS', devices)) do
      if string.sub(f, 1, #field) == field then redis.call('HDEL', devices, f) end
    end
  end
  local status = 'offline'
  for _, v in ipairs(redis.call('HVALS', devices)) do
    if v == 'online' then status = 'online'
    elseif v == 'away' and status ~= 'online' then status = 'away' end
  end
  local old_raw = redis.call('HGET', metas, user)
  local old = nil
  if old_raw then old = cjson.decode(old_raw) end
  local hide = ARGV[a + 4] == '1'
  if op == 'hide' then hide = value == '1'
  elseif old then hide = old.hide_last_seen end
  local last_seen = cjson.null
  if old then last_seen = old.last_seen end
  if status == 'offline' and (old == nil or old.status ~= 'offline') then last_seen = now end
  if old == nil or old.status ~= status or old.hide_last_seen ~= hide then
    local new = cjson.encode({status = status, last_seen = last_seen,
                              hide_last_seen = hide, ref = ARGV[a + 5]})
    redis.call('HSET', metas, user, new)
    changed[#changed + 1] = user
    changed[#changed + 1] = old_raw or ''
    changed[#changed + 1] = new
  end
end
return changed
"""

_decode_meta = msgspec.json.Decoder(UserMeta).decode


class _Change(msgspec.Struct, frozen=True, gc=False):
    op: Literal["set", "del", "purge", "hide"]
    user_id: str
    field: str
    value: str = ""
    hide: bool = False


class RedisUserPresence:
    """User presence for a cluster, kept in Redis; see the module's docstring."""

    def __init__(
        self,
        url: str,
        broker: Broker,
        node_id: str,
        *,
        prefix: str = "whispr",
        node_ttl_s: float = NODE_TTL_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.broker = broker
        self.node_id = node_id
        self.node_ttl_s = node_ttl_s
        self.sweep_interval_s = sweep_interval_s
        self._prefix = f"{prefix}:upresence"
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=5.0, decode_responses=False
        )
        self._apply = self._redis.register_script(_APPLY)
        self._changes = Batcher[_Change, None](
            self._write, max_batch=500, max_in_flight=1, name="user-presence"
        )
        #: This node's devices: (user, field) -> status, removed at stop.
        self._mine: dict[tuple[str, str], str] = {}
        self._task: asyncio.Task[None] | None = None

    def _devices_key(self, user_id: str) -> str:
        return f"{self._prefix}:devices:{user_id}"

    def _users_key(self, node: str) -> str:
        return f"{self._prefix}:users:{node}"

    def _alive_key(self, node: str) -> str:
        return f"{self._prefix}:alive:{node}"

    @property
    def _metas_key(self) -> str:
        return f"{self._prefix}:metas"

    @property
    def _nodes_key(self) -> str:
        return f"{self._prefix}:nodes"

    def _field(self, device: str) -> str:
        return f"{self.node_id}|{device}"

    async def start(self) -> None:
        try:
            await self._heartbeat()
            await self._sweep_node(self.node_id)  # what a previous life of this node left
        except Exception as exc:
            log.warning("user presence: Redis unreachable at start", error=str(exc))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="user-presence-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        mine = [_Change("del", user, field) for user, field in self._mine]
        self._mine.clear()
        with contextlib.suppress(Exception):
            if mine:
                await self._changes.submit_many(mine)
            await asyncio.wait_for(self._changes.close(), timeout=2.0)
        with contextlib.suppress(Exception):
            await self._redis.delete(self._alive_key(self.node_id), self._users_key(self.node_id))
            await self._redis.srem(self._nodes_key, self.node_id)
        await self._redis.aclose()

    async def set_device(
        self, user_id: str, device: str, status: DeviceStatus, *, hide_last_seen: bool
    ) -> None:
        field = self._field(device)
        self._mine[(user_id, field)] = status
        await self._submit(_Change("set", user_id, field, status, hide_last_seen))

    async def remove_device(self, user_id: str, device: str) -> None:
        field = self._field(device)
        self._mine.pop((user_id, field), None)
        await self._submit(_Change("del", user_id, field))

    async def set_hide_last_seen(self, user_id: str, hide: bool) -> None:
        await self._submit(_Change("hide", user_id, "", "1" if hide else "0"))

    async def get(self, user_ids: Sequence[str]) -> dict[str, UserMeta]:
        if not user_ids:
            return {}
        try:
            raw = cast(
                "list[bytes | None]", await self._redis.hmget(self._metas_key, list(user_ids))
            )
        except Exception as exc:
            log.warning("user presence read failed", error=str(exc))
            return {}
        return {u: _decode_meta(r) for u, r in zip(user_ids, raw, strict=True) if r is not None}

    async def _submit(self, change: _Change) -> None:
        try:
            await self._changes.submit(change)
        except Exception as exc:
            log.warning("user presence change failed", user_id=change.user_id, error=str(exc))

    async def _write(self, changes: Sequence[_Change]) -> list[None]:
        """One script call for a batch of changes; publish each user's meta that changed."""
        keys = [self._devices_key(c.user_id) for c in changes]
        keys += (self._metas_key, self._users_key(self.node_id))
        args: list[str | float] = [time.time()]
        for c in changes:
            args += (c.op, c.user_id, c.field, c.value, "1" if c.hide else "0", make_ref())
        changed: list[bytes] = await self._apply(keys=keys, args=args)
        for i in range(0, len(changed), 3):
            user_id = changed[i].decode()
            old = _decode_meta(changed[i + 1]) if changed[i + 1] else None
            new = _decode_meta(changed[i + 2])
            self.broker.publish(presence_topic(user_id), diff_event(user_id, old, new))
        return [None] * len(changes)

    # -- liveness ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        await self._redis.set(
            self._alive_key(self.node_id), str(time.time()), px=int(self.node_ttl_s * 1000)
        )
        await self._redis.sadd(self._nodes_key, self.node_id)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self._heartbeat()
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("user presence sweep failed", error=str(exc))

    async def sweep(self) -> int:
        """Remove the devices of every dead node; return how many nodes were swept."""
        members: set[bytes] = await self._redis.smembers(self._nodes_key)  # type: ignore[assignment]
        nodes = sorted(m.decode() for m in members if m.decode() != self.node_id)
        if not nodes:
            return 0
        flags = await self._redis.mget([self._alive_key(n) for n in nodes])
        dead = [node for node, flag in zip(nodes, flags, strict=True) if flag is None]
        for node in dead:
            await self._sweep_node(node)
            await self._redis.srem(self._nodes_key, node)
        return len(dead)

    async def _sweep_node(self, node: str) -> None:
        """Remove ``node``'s devices (a dead node's, or this node's from a previous life)."""
        users_key = self._users_key(node)
        members: set[bytes] = await self._redis.smembers(users_key)  # type: ignore[assignment]
        if node == self.node_id:  # this life's devices stay
            keep = {user for user, _field in self._mine}
            members = {m for m in members if m.decode() not in keep}
        changes = [_Change("purge", m.decode(), f"{node}|") for m in sorted(members)]
        for start in range(0, len(changes), 500):
            await self._changes.submit_many(changes[start : start + 500])
        if node != self.node_id:
            await self._redis.delete(users_key)
        if changes:
            log.info("user presence of a node removed", node=node, users=len(changes))
