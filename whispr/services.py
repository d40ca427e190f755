"""The node's infrastructure services: each owns one connection pool's life.

A service opens its resource in ``on_start`` and closes it in ``on_stop``,
and publishes it on the :class:`~whispr.node.Node` for the services started
after it. Because the root is ``rest_for_one``, a restarted store or broker
restarts everything after it, and those pick up the new instance.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from actors.conversation import ConversationDeps
from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from supervisors import AsyncioActor, ChildSpec, Ref
from supervisors.batching import Batcher
from whispr.broker import open_broker
from whispr.gateway.presence import MemoryPresence, Presence, RedisPresence
from whispr.hooks import PushDispatcher, screen_for
from whispr.siblings import Siblings
from whispr.store.factory import open_store

if TYPE_CHECKING:
    from whispr.node import Node

__all__ = [
    "BrokerService",
    "MessagingService",
    "PresenceService",
    "SiblingsService",
    "StoreService",
]

log = structlog.get_logger("whispr.services")


class StoreService(AsyncioActor):
    """Opens the store (PostgreSQL or SQLite), applies migrations, runs group commit."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    async def on_start(self) -> None:
        settings = self.node.settings
        store = open_store(settings.database_url, settings.sqlite_path)
        await store.open()
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        self.node.store = store
        # One batch in flight: what arrives meanwhile waits for it and goes as the next
        # batch. Two in flight halved the batches (a few sends each at 7,000 msgs/s in
        # pairs), and the store pays per batch: PostgreSQL used 15% more CPU, and two
        # nodes' batches contended for the same conversations' locks twice as often.
        self.node.commit = Batcher[Message, InsertResult](
            store.insert_messages, max_batch=1000, max_in_flight=1, name="group-commit"
        )
        log.info("store open", backend="postgresql" if settings.database_url else "sqlite")

    async def on_stop(self) -> None:
        commit, store = self.node.commit, self.node.store
        self.node.commit = None
        self.node.store = None
        if commit is not None:
            await commit.close()
        if store is not None:
            await store.close()
        log.info("store closed")


class BrokerService(AsyncioActor):
    """Connects the broker (Redis pub/sub, or in-process)."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    async def on_start(self) -> None:
        settings = self.node.settings
        broker = open_broker(settings.redis_url, settings.node_name, settings.redis_prefix)
        await broker.open()
        self.node.broker = broker
        log.info("broker open", backend="redis" if settings.redis_url else "in-process")

    async def on_stop(self) -> None:
        broker, self.node.broker = self.node.broker, None
        if broker is not None:
            await broker.close()
        log.info("broker closed")


class PresenceService(AsyncioActor):
    """Runs the node's presence (Redis with a broker on Redis, in memory otherwise)."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    async def on_start(self) -> None:
        settings, broker = self.node.settings, self.node.broker
        if broker is None:
            msg = "presence needs the broker open"
            raise RuntimeError(msg)
        presence: Presence = (
            RedisPresence(
                settings.redis_url, broker, settings.node_name, prefix=settings.redis_prefix
            )
            if settings.redis_url
            else MemoryPresence(broker)
        )
        await presence.start()
        self.node.presence = presence

    async def on_stop(self) -> None:
        presence, self.node.presence = self.node.presence, None
        if presence is not None:
            await presence.stop()


class SiblingsService(AsyncioActor):
    """Opens the clients of the sibling services (each only when configured)."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    async def on_start(self) -> None:
        siblings = Siblings.from_settings(self.node.settings)
        await siblings.open()
        self.node.siblings = siblings

    async def on_stop(self) -> None:
        siblings, self.node.siblings = self.node.siblings, None
        if siblings is not None:
            await siblings.close()


class MessagingService(AsyncioActor):
    """Builds the node's :class:`~actors.messaging.Messaging` over the open store and broker.

    It sits after the Conversations supervisor in the tree: conversation
    actors are started under whichever instance of that supervisor is
    registered when they are needed, and a restarted store or broker
    restarts this service too, so ``node.messaging`` always holds the
    current ones.
    """

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.dispatcher: PushDispatcher | None = None

    def on_start(self) -> None:
        node = self.node
        if node.store is None or node.commit is None or node.broker is None:
            msg = "the messaging service needs the store and the broker open"
            raise RuntimeError(msg)
        settings = node.settings
        siblings = node.siblings
        dispatcher = (
            PushDispatcher(siblings, lambda: node.presence, time.time)
            if siblings is not None and siblings.notifier.configured
            else None
        )
        self.dispatcher = dispatcher
        deps = ConversationDeps(
            store=node.store,
            broker=node.broker,
            commit=node.commit,
            max_content_bytes=settings.max_content_bytes,
            on_new_message=None if dispatcher is None else dispatcher.on_new_message,
        )

        async def start_child(spec: ChildSpec) -> Ref[Any]:
            supervisor = node.whereis("conversations")
            if supervisor is None:
                raise WhisprError(Reason.UNAVAILABLE, "the node is restarting; try again")
            ref: Ref[Any] = await supervisor.proxy().start_child(spec)
            return ref

        node.messaging = Messaging(
            deps,
            registry=node.registry,
            start_child=start_child,
            screen=None if siblings is None else screen_for(siblings, settings.max_content_bytes),
        )

    async def on_stop(self) -> None:
        self.node.messaging = None
        if self.dispatcher is not None:
            await self.dispatcher.drain(timeout=2.0)
