"""The node's infrastructure services: each owns one resource's life.

A service opens its resource in ``on_start``, publishes it in its :class:`~whispr.slot.Slot`
and closes it in ``on_stop``. A service that needs another's resource takes the resource
itself, typed, in its constructor: the node's tree reads the slot when it starts that
service, which is after the one that fills it (see :mod:`whispr.node`). Because the root is
``rest_for_one``, a restarted store or broker restarts everything after it, and those are
constructed again with the new instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from actors.broker import Broker
from actors.conversation import ConversationDeps
from actors.e2e.directory import KeyDirectory
from actors.e2e.ports import KeyStore
from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from actors.ports import ScheduleStore, Store
from supervisors import AsyncioActor, ChildSpec, Ref, Registry
from supervisors.batching import Batcher
from whispr import control
from whispr.accounts import AccountStore
from whispr.audit import AuditLog, AuditStore
from whispr.audit.retention import Retention
from whispr.broker import open_broker
from whispr.broker.metrics import broker_connected
from whispr.config import Settings
from whispr.gateway.presence import MemoryPresence, Presence, RedisPresence
from whispr.hooks import PushDispatcher, screen_for
from whispr.siblings import Siblings
from whispr.slot import Slot
from whispr.store.breaker import BreakerSchedules, BreakerStore
from whispr.store.factory import open_store
from whispr.store.metrics import store_breaker_state
from whispr.user_presence import MemoryUserPresence, RedisUserPresence, UserPresence

__all__ = [
    "AuditService",
    "BrokerService",
    "MessagingService",
    "PresenceService",
    "SiblingsService",
    "StoreHandles",
    "StoreService",
]

log = structlog.get_logger("whispr.services")


@dataclass(frozen=True)
class StoreHandles:
    """What the store service publishes: the open store and the group commit that writes to it.

    One value, because they are opened and closed together: a reader never sees the store
    of one start with the group commit of another.
    """

    store: Store
    commit: Batcher[Message, InsertResult]
    #: The same database without the breaker, for the audit log (see whispr/audit/log.py).
    audit: AuditStore
    #: The same database, for token revocations and presence settings (whispr/accounts.py).
    accounts: AccountStore
    #: The same database's timer queues, behind the same breaker (whispr/scheduler.py).
    schedules: ScheduleStore
    #: The same database, for end-to-end keys, envelopes and blind tokens (actors/e2e/).
    keys: KeyStore


class StoreService(AsyncioActor):
    """Opens the store (PostgreSQL or SQLite) behind its breaker, applies migrations, runs group
    commit."""

    def __init__(self, settings: Settings, out: Slot[StoreHandles]) -> None:
        super().__init__()
        self.settings = settings
        self.out = out
        self.handles: StoreHandles | None = None
        self._breaker_store: BreakerStore | None = None

    async def on_start(self) -> None:
        settings = self.settings
        backend = "postgresql" if settings.database_url else "sqlite"
        # Every data call, group commit's included, goes through the store's breaker: in an
        # outage they fail at once instead of each waiting for its timeout (see
        # whispr/store/breaker.py). Opening and migrating bypass it.
        opened = open_store(settings.database_url, settings.sqlite_path)
        store = BreakerStore(
            opened,
            backend,
            failures=settings.store_breaker_failures,
            open_s=settings.store_breaker_open_s,
            trials=settings.store_breaker_trials,
        )
        await store.open()
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        # One batch in flight: what arrives meanwhile waits for it and goes as the next
        # batch. Two in flight halved the batches (a few sends each at 7,000 msgs/s in
        # pairs), and the store pays per batch: PostgreSQL used 15% more CPU, and two
        # nodes' batches contended for the same conversations' locks twice as often.
        commit = Batcher[Message, InsertResult](
            store.insert_messages, max_batch=1000, max_in_flight=1, name="group-commit"
        )
        self.handles = StoreHandles(
            store, commit, opened, opened, BreakerSchedules(opened, store), opened
        )
        self._breaker_store = store
        self.out.set(self.handles)
        log.info("store open", backend=backend)

    async def on_stop(self) -> None:
        handles, self.handles = self.handles, None
        self.out.clear()
        if self._breaker_store is not None:
            store_breaker_state().unwatch(self._breaker_store)
            self._breaker_store = None
        if handles is not None:
            await handles.commit.close()
            await handles.store.close()
        log.info("store closed")


class AuditService(AsyncioActor):
    """Runs the node's audit log (its background writer) and the retention job."""

    def __init__(self, settings: Settings, store: AuditStore, out: Slot[AuditLog]) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.out = out
        self.audit: AuditLog | None = None
        self._retention: asyncio.Task[None] | None = None

    def on_start(self) -> None:
        settings = self.settings
        audit = AuditLog(self.store, settings.node_name)
        audit.start()
        self.audit = audit
        retention = Retention(self.store, settings.audit_retention_days)
        self._retention = asyncio.get_running_loop().create_task(
            retention.run(), name="audit-retention"
        )
        self.out.set(audit)

    async def on_stop(self) -> None:
        audit, self.audit = self.audit, None
        self.out.clear()
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        if audit is not None:
            await audit.close()


class BrokerService(AsyncioActor):
    """Connects the broker (Redis pub/sub, or in-process)."""

    def __init__(self, settings: Settings, out: Slot[Broker]) -> None:
        super().__init__()
        self.settings = settings
        self.out = out
        self.broker: Broker | None = None

    async def on_start(self) -> None:
        settings = self.settings
        broker = open_broker(settings.redis_url, settings.node_name, settings.redis_prefix)
        await broker.open()
        broker_connected().watch(broker)
        self.broker = broker
        self.out.set(broker)
        log.info("broker open", backend="redis" if settings.redis_url else "in-process")

    async def on_stop(self) -> None:
        broker, self.broker = self.broker, None
        self.out.clear()
        if broker is not None:
            broker_connected().unwatch(broker)
            await broker.close()
        log.info("broker closed")


class PresenceService(AsyncioActor):
    """Runs the node's presence (Redis with a broker on Redis, in memory otherwise): per topic
    (``out``) and per user (``users_out``, whispr/user_presence.py)."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        out: Slot[Presence],
        users_out: Slot[UserPresence] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.broker = broker
        self.out = out
        self.users_out = users_out
        self.presence: Presence | None = None
        self.users: UserPresence | None = None

    async def on_start(self) -> None:
        settings, broker = self.settings, self.broker
        presence: Presence = (
            RedisPresence(
                settings.redis_url, broker, settings.node_name, prefix=settings.redis_prefix
            )
            if settings.redis_url
            else MemoryPresence(broker)
        )
        await presence.start()
        self.presence = presence
        self.out.set(presence)
        if self.users_out is not None:
            users: UserPresence = (
                RedisUserPresence(
                    settings.redis_url, broker, settings.node_name, prefix=settings.redis_prefix
                )
                if settings.redis_url
                else MemoryUserPresence(broker)
            )
            await users.start()
            self.users = users
            self.users_out.set(users)

    async def on_stop(self) -> None:
        presence, self.presence = self.presence, None
        users, self.users = self.users, None
        self.out.clear()
        if self.users_out is not None:
            self.users_out.clear()
        if users is not None:
            await users.stop()
        if presence is not None:
            await presence.stop()


class SiblingsService(AsyncioActor):
    """Opens the clients of the sibling services (each only when configured)."""

    def __init__(self, settings: Settings, out: Slot[Siblings]) -> None:
        super().__init__()
        self.settings = settings
        self.out = out
        self.siblings: Siblings | None = None

    async def on_start(self) -> None:
        siblings = Siblings.from_settings(self.settings)
        await siblings.open()
        self.siblings = siblings
        self.out.set(siblings)

    async def on_stop(self) -> None:
        siblings, self.siblings = self.siblings, None
        self.out.clear()
        if siblings is not None:
            await siblings.close()


class MessagingService(AsyncioActor):
    """Builds the node's :class:`~actors.messaging.Messaging` over the open store and broker.

    It sits after the Conversations supervisor in the tree: conversation actors are started
    under whichever instance of that supervisor ``registry`` holds when they are needed,
    and a restarted store or broker restarts this service too, with the new ones.
    ``presence`` is asked at each push for the presence running then (None once it has
    stopped: every recipient counts as offline).
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        store: StoreHandles,
        broker: Broker,
        presence: Callable[[], Presence | None],
        siblings: Siblings,
        audit: AuditLog,
        out: Slot[Messaging],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.registry = registry
        self.audit = audit
        self.store = store
        self.broker = broker
        self.presence = presence
        self.siblings = siblings
        self.out = out
        self.dispatcher: PushDispatcher | None = None

    def on_start(self) -> None:
        settings, siblings, registry = self.settings, self.siblings, self.registry
        dispatcher = (
            PushDispatcher(siblings, self.presence, time.time)
            if siblings.notifier.configured
            else None
        )
        self.dispatcher = dispatcher
        deps = ConversationDeps(
            store=self.store.store,
            broker=self.broker,
            commit=self.store.commit,
            max_content_bytes=settings.max_content_bytes,
            on_new_message=None if dispatcher is None else dispatcher.on_new_message,
            on_membership_change=self.audit.membership_changed,
        )

        async def start_child(spec: ChildSpec) -> Ref[Any]:
            supervisor = registry.whereis("conversations")
            if supervisor is None:
                raise WhisprError(Reason.UNAVAILABLE, "the node is restarting; try again")
            ref: Ref[Any] = await supervisor.proxy().start_child(spec)
            return ref

        broker = self.broker

        def disconnect(user_id: str, device_id: str) -> None:
            order = control.Disconnect(user_id, device_id, "device removed")
            broker.publish(control.CONTROL_TOPIC, control.encode(order))

        keys = KeyDirectory(
            self.store.keys,
            broker,
            self.store.accounts.contacts,
            time.time,
            disconnect=disconnect,
        )
        self.out.set(
            Messaging(
                deps,
                registry=registry,
                start_child=start_child,
                screen=screen_for(siblings, settings.max_content_bytes),
                position_check_s=settings.position_check_s,
                cursor_key=settings.jwt_secret.encode(),
                e2e=keys,
            )
        )

    async def on_stop(self) -> None:
        messaging = self.out.peek()
        self.out.clear()
        if messaging is not None:
            messaging.close()
        if self.dispatcher is not None:
            await self.dispatcher.drain(timeout=2.0)
