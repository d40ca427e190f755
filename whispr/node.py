"""A Whispr node: the root supervision tree and how to run it.

The tree follows the design (rest_for_one at the root): each service depends
on those started before it, so when one is restarted, everything after it is
restarted too and picks up the new instance (the gateway last, so it accepts
connections only when everything it needs is up)::

    Node (rest_for_one)
      Telemetry, Store, Audit, Broker, Presence, Siblings,
      Conversations (DynamicSupervisor), Messaging, Connections (DynamicSupervisor),
      Scheduler, GrpcServer, Gateway, Http

Services do not look each other up. Each takes, typed, exactly what it uses: the
resources of the services before it (the open store, the broker, messaging, ...) as
constructor arguments, and the :class:`~whispr.slot.Slot` in which it publishes its own.
:class:`Node` creates those slots once; a child's start function reads the slots it
needs when the child (re)starts, which ``rest_for_one`` orders after the services that
fill them, so a restarted store restarts the services after it with the new store, and a
slot read too early fails in one place with one error naming the missing service.

Why resources at construction rather than slots handed to each service: a service then
depends on what it uses, not on when it may read it; it can be built in a test from
plain values; and no service re-checks a resource it needs, since it could not have
been started without it.

Processes (the two dynamic supervisors) are found by name in the node's
:class:`supervisors.Registry`; each service is registered ``via`` its name, so a
restarted one is found under the same name. The registry itself is plain data owned by
the node rather than a process: Elixir runs its Registry as a supervisor because ETS
tables need an owner, a dict on the event loop does not.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec

import structlog
from pykka import ActorDeadError

from actors.broker import Broker
from actors.messaging import Messaging
from actors.schedules import Schedules
from supervisors import (
    AsyncioActor,
    ChildSpec,
    ChildType,
    DynamicSupervisor,
    Ref,
    Registry,
    Strategy,
    Supervisor,
    run_until_signalled,
)
from supervisors.exits import Shutdown
from whispr import chaos_hooks, gc_policy
from whispr.audit import AuditLog
from whispr.config import Settings
from whispr.gateway.presence import Presence
from whispr.gateway.server import Gateway, GatewayService
from whispr.grpc.server import GrpcServer, GrpcService
from whispr.http.server import HttpServer, HttpService
from whispr.node_metrics import (
    actor_gauge,
    conversation_actors,
    live_conversations,
    restart_reporter,
)
from whispr.scheduler import SchedulerService
from whispr.services import (
    AuditService,
    BrokerService,
    MessagingService,
    PresenceService,
    SiblingsService,
    StoreHandles,
    StoreService,
)
from whispr.siblings import Siblings
from whispr.slot import Slot
from whispr.startup import HeldCrashReports, describe_start_failure
from whispr.tracing import TelemetryService
from whispr.user_presence import UserPresence

__all__ = ["Node", "NodeService", "conversation_actors", "node_tree", "run_node"]

log = structlog.get_logger("whispr.node")

P = ParamSpec("P")


@dataclass(frozen=True)
class Node:
    """One node's settings, registry, and the slot of each service that publishes a value.

    This is the tree's wiring, not something services query: :func:`node_tree` hands each
    service what it uses. Tests and tools read the slots (``node.gateway.get().port``).
    """

    settings: Settings
    registry: Registry = field(default_factory=lambda: Registry("node"))
    store: Slot[StoreHandles] = field(default_factory=lambda: Slot("store"))
    #: The audit log: every security event is recorded through it.
    audit: Slot[AuditLog] = field(default_factory=lambda: Slot("audit"))
    broker: Slot[Broker] = field(default_factory=lambda: Slot("broker"))
    #: Who is online, cluster-wide.
    presence: Slot[Presence] = field(default_factory=lambda: Slot("presence"))
    #: Users' presence (online, away, offline), cluster-wide; run by the presence service.
    user_presence: Slot[UserPresence] = field(default_factory=lambda: Slot("user presence"))
    #: Clients of the sibling services.
    siblings: Slot[Siblings] = field(default_factory=lambda: Slot("siblings"))
    messaging: Slot[Messaging] = field(default_factory=lambda: Slot("messaging"))
    #: Scheduled messages' API, published by the scheduler service (whispr/scheduler.py).
    schedules: Slot[Schedules] = field(default_factory=lambda: Slot("scheduler"))
    #: The running gRPC server, for its bound port (empty when it is disabled).
    grpc: Slot[GrpcServer] = field(default_factory=lambda: Slot("grpc"))
    #: The running gateway, for its bound port and state.
    gateway: Slot[Gateway] = field(default_factory=lambda: Slot("gateway"))
    #: The running HTTP API server, for its bound port (empty when it is disabled).
    http: Slot[HttpServer] = field(default_factory=lambda: Slot("http"))

    def __post_init__(self) -> None:
        conversation_actors().watch(self.registry)
        actor_gauge().watch(self)

    def actor_counts(self) -> Mapping[str, int]:
        """Live actors by kind, for ``whispr_actors`` (read when the metrics are scraped)."""
        gateway = self.gateway.peek()
        return {
            "conversation": live_conversations(self.registry),
            "connection": 0 if gateway is None else len(gateway.ctx.connections),
        }

    def whereis(self, name: str) -> Ref[Any] | None:
        """The live service registered as ``name``."""
        return self.registry.whereis(name)


class NodeService(AsyncioActor):
    """A service of the node that logs its life; the base of the node's services.

    A service not yet built beyond its place in the tree runs as a plain ``NodeService``
    instance, so the tree's shape, order and restart behaviour hold from the start.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def on_start(self) -> None:
        log.info("service started", service=self.name)

    def on_stop(self) -> None:
        log.info("service stopped", service=self.name)


def _spawn(actor: Callable[P, AsyncioActor], *args: P.args, **kwargs: P.kwargs) -> Ref[Any]:
    """``actor.start(*args, **kwargs)``, with the arguments checked against its constructor.

    pykka's ``start`` takes ``*args: Any``; going through here lets mypy check the wiring.
    """
    if not (isinstance(actor, type) and issubclass(actor, AsyncioActor)):
        msg = f"{actor!r} is not an actor class"
        raise TypeError(msg)
    return actor.start(*args, **kwargs)


def _service(node: Node, name: str, start: Callable[[], Ref[Any]] | None = None) -> ChildSpec:
    start = start if start is not None else (lambda: _spawn(NodeService, name))
    return ChildSpec(id=name, start=node.registry.via(name, start), shutdown=10.0)


#: The restart intensity of one conversation actor (the specification's): a
#: conversation that crashes more often is given up on until its next call.
CONVERSATION_MAX_RESTARTS = 3
CONVERSATION_MAX_SECONDS = 60.0


def _dynamic(
    node: Node,
    name: str,
    max_children: int | None,
    child_intensity: tuple[int, float] | None = None,
) -> ChildSpec:
    child_max_restarts, child_max_seconds = child_intensity or (None, 5.0)

    def start() -> Ref[Any]:
        # Children of these are many and independent (one per conversation
        # or per socket): a burst of crashes among them must not take the
        # node down, so intensity is far above OTP's default of 1 in 5 s;
        # one child crashing in a loop is bounded by its own intensity.
        return DynamicSupervisor.start(
            max_children=max_children,
            max_restarts=1000,
            max_seconds=5.0,
            name=name,
            child_max_restarts=child_max_restarts,
            child_max_seconds=child_max_seconds,
            on_restart=restart_reporter(name),
        )

    return ChildSpec(id=name, start=node.registry.via(name, start), type=ChildType.SUPERVISOR)


def node_tree(node: Node) -> list[ChildSpec]:
    """The root's children, in start order.

    Each start function reads the slots of the services before it when it runs, so every
    (re)start gets the instances running then.
    """
    settings, registry = node.settings, node.registry
    return [
        _service(node, "telemetry", lambda: _spawn(TelemetryService, settings)),
        _service(node, "store", lambda: _spawn(StoreService, settings, node.store)),
        _service(
            node,
            "audit",
            lambda: _spawn(AuditService, settings, node.store.get().audit, node.audit),
        ),
        _service(node, "broker", lambda: _spawn(BrokerService, settings, node.broker)),
        _service(
            node,
            "presence",
            lambda: _spawn(
                PresenceService, settings, node.broker.get(), node.presence, node.user_presence
            ),
        ),
        _service(node, "siblings", lambda: _spawn(SiblingsService, settings, node.siblings)),
        _dynamic(
            node,
            "conversations",
            max_children=None,
            child_intensity=(CONVERSATION_MAX_RESTARTS, CONVERSATION_MAX_SECONDS),
        ),
        _service(
            node,
            "messaging",
            lambda: _spawn(
                MessagingService,
                settings,
                registry,
                store=node.store.get(),
                broker=node.broker.get(),
                presence=node.presence.peek,
                siblings=node.siblings.get(),
                audit=node.audit.get(),
                out=node.messaging,
            ),
        ),
        _dynamic(node, "connections", max_children=None),
        _service(
            node,
            "scheduler",
            lambda: _spawn(
                SchedulerService,
                settings,
                messaging=node.messaging.get(),
                store=node.store.get().schedules,
                broker=node.broker.get(),
                out=node.schedules,
            ),
        ),
        _service(
            node,
            "grpc",
            lambda: _spawn(
                GrpcService,
                settings,
                messaging=node.messaging.get(),
                broker=node.broker.get(),
                store=node.store.get().store,
                audit=node.audit.get(),
                accounts=node.store.get().accounts,
                user_presence=node.user_presence.get(),
                schedules=node.schedules.get(),
                out=node.grpc,
            ),
        ),
        _service(
            node,
            "gateway",
            lambda: _spawn(
                GatewayService,
                settings,
                registry,
                messaging=node.messaging.get(),
                store=node.store.get().store,
                broker=node.broker.get(),
                presence=node.presence.get(),
                siblings=node.siblings.get(),
                audit=node.audit.get(),
                accounts=node.store.get().accounts,
                user_presence=node.user_presence.get(),
                schedules=node.schedules.get(),
                out=node.gateway,
            ),
        ),
        # After the gateway: stopped first on SIGTERM, and restarted with anything it uses.
        _service(
            node,
            "http",
            lambda: _spawn(
                HttpService,
                settings,
                messaging=node.messaging.get(),
                broker=node.broker.get(),
                gateway=node.gateway.get().ctx,
                accounts=node.store.get().accounts,
                user_presence=node.user_presence.get(),
                sockets=node.gateway.get(),
                out=node.http,
            ),
        ),
    ]


def start_root(node: Node) -> Ref[Any]:
    """Start the node's root supervisor (rest_for_one, 3 restarts in 5 s)."""
    return Supervisor.start(
        node_tree(node),
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=3,
        max_seconds=5.0,
        name=f"node:{node.settings.node_name}",
        on_restart=restart_reporter("root"),
    )


async def run_node(settings: Settings) -> int:
    """Run a node until SIGTERM/SIGINT; return the process exit status.

    A node that cannot start logs one error naming the cause (:mod:`whispr.startup`) and
    returns 1; the supervisors' crash reports of the failed start are left out when the
    cause is a known one.
    """
    node = Node(settings)
    held = HeldCrashReports()

    def up(_root: Ref[Any]) -> None:
        held.release()
        gc_policy.apply(settings.gc_thresholds)
        log.info(
            "node up",
            node=settings.node_name,
            host=settings.host,
            port=settings.port,
            gc_thresholds=list(gc.get_threshold()),
        )

    # Before the tree starts, so that no signal finds the node without them; they look the
    # actors up when a signal comes.
    remove_hooks = chaos_hooks.install(
        settings.chaos_hooks, node.registry, asyncio.get_running_loop()
    )
    with held:
        try:
            reason = await run_until_signalled(
                lambda: start_root(node),
                shutdown_deadline=settings.shutdown_deadline_s,
                on_started=up,
            )
        except ActorDeadError as exc:
            failure = describe_start_failure(exc, settings)
            if failure.known:
                held.discard()
                log.error(f"cannot start: {failure.message}", node=settings.node_name)
            else:
                held.release()
                log.error(
                    f"cannot start: {failure.message}",
                    node=settings.node_name,
                    exc_info=failure.cause,
                )
            return 1
        finally:
            remove_hooks()
    if isinstance(reason, Shutdown):
        log.info("node stopped", node=settings.node_name)
        return 0
    logging.getLogger("whispr").error("node exited: %s", reason)
    return 1
