"""A Whispr node: the root supervision tree and how to run it.

The tree follows the design (rest_for_one at the root): each service depends
on those started before it, so when one is restarted, everything after it is
restarted too and picks up the new instance (the gateway last, so it accepts
connections only when everything it needs is up)::

    Node (rest_for_one)
      Telemetry, Store, Broker, Presence, Siblings,
      Conversations (DynamicSupervisor), Messaging, Connections (DynamicSupervisor),
      Scheduler, GrpcServer, Gateway

Services find each other by name in the node's :class:`supervisors.Registry`;
each is registered ``via`` its name, so a restarted service is found under
the same name. The registry itself is plain data owned by the node rather
than a process: Elixir runs its Registry as a supervisor because ETS tables
need an owner, a dict on the event loop does not.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from actors.broker import Broker
from actors.messaging import Messaging
from actors.model import InsertResult, Message
from actors.ports import Store
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
from supervisors.batching import Batcher
from supervisors.exits import Shutdown
from whispr import gc_policy
from whispr.config import Settings
from whispr.gateway.server import GatewayService
from whispr.grpc.server import GrpcService
from whispr.services import (
    BrokerService,
    MessagingService,
    PresenceService,
    SiblingsService,
    StoreService,
)

__all__ = ["Node", "NodeService", "node_tree", "run_node"]

log = structlog.get_logger("whispr.node")


@dataclass
class Node:
    """What every service of one node shares: settings, registry, open resources.

    ``store``, ``commit``, ``broker`` and ``messaging`` are set by their services once open
    and cleared when they stop; services started after them in the tree may
    rely on them being set.
    """

    settings: Settings
    registry: Registry = field(default_factory=lambda: Registry("node"))
    store: Store | None = None
    commit: Batcher[Message, InsertResult] | None = None
    broker: Broker | None = None
    messaging: Messaging | None = None
    #: The running gateway (``whispr.gateway.server.Gateway``), for its bound port and state.
    gateway: Any = None
    #: Who is online, cluster-wide (``whispr.gateway.presence.Presence``).
    presence: Any = None
    #: Clients of the sibling services (``whispr.siblings.Siblings``).
    siblings: Any = None
    #: The running gRPC server (``whispr.grpc.server.GrpcServer``), for its bound port.
    grpc: Any = None

    def whereis(self, name: str) -> Ref[Any] | None:
        """The live service registered as ``name``."""
        return self.registry.whereis(name)


class NodeService(AsyncioActor):
    """A service of the node that logs its life; the base of the node's services.

    Services not yet built beyond their place in the tree (the scheduler, the
    gRPC server, the gateway, ...) run as plain ``NodeService`` instances, so
    the tree's shape, order and restart behaviour hold from the start.
    """

    def __init__(self, node: Node, name: str) -> None:
        super().__init__()
        self.node = node
        self.name = name

    def on_start(self) -> None:
        log.info("service started", service=self.name)

    def on_stop(self) -> None:
        log.info("service stopped", service=self.name)


def _service(node: Node, name: str, factory: Callable[[], Ref[Any]] | None = None) -> ChildSpec:
    start = factory if factory is not None else (lambda: NodeService.start(node, name))
    return ChildSpec(id=name, start=node.registry.via(name, start), shutdown=10.0)


def _dynamic(node: Node, name: str, max_children: int | None) -> ChildSpec:
    def start() -> Ref[Any]:
        # Children of these are many and independent (one per conversation
        # or per socket): a burst of crashes among them must not take the
        # node down, so intensity is far above OTP's default of 1 in 5 s.
        return DynamicSupervisor.start(
            max_children=max_children, max_restarts=1000, max_seconds=5.0, name=name
        )

    return ChildSpec(id=name, start=node.registry.via(name, start), type=ChildType.SUPERVISOR)


def node_tree(node: Node) -> list[ChildSpec]:
    """The root's children, in start order."""
    return [
        _service(node, "telemetry"),
        _service(node, "store", lambda: StoreService.start(node)),
        _service(node, "broker", lambda: BrokerService.start(node)),
        _service(node, "presence", lambda: PresenceService.start(node)),
        _service(node, "siblings", lambda: SiblingsService.start(node)),
        _dynamic(node, "conversations", max_children=None),
        _service(node, "messaging", lambda: MessagingService.start(node)),
        _dynamic(node, "connections", max_children=None),
        _service(node, "scheduler"),
        _service(node, "grpc", lambda: GrpcService.start(node)),
        _service(node, "gateway", lambda: GatewayService.start(node)),
    ]


def start_root(node: Node) -> Ref[Any]:
    """Start the node's root supervisor (rest_for_one, 3 restarts in 5 s)."""
    return Supervisor.start(
        node_tree(node),
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=3,
        max_seconds=5.0,
        name=f"node:{node.settings.node_name}",
    )


async def run_node(settings: Settings) -> int:
    """Run a node until SIGTERM/SIGINT; return the process exit status."""
    node = Node(settings)

    def up(_root: Ref[Any]) -> None:
        gc_policy.apply(settings.gc_thresholds)
        log.info(
            "node up",
            node=settings.node_name,
            host=settings.host,
            port=settings.port,
            gc_thresholds=list(gc.get_threshold()),
        )

    reason = await run_until_signalled(
        lambda: start_root(node),
        shutdown_deadline=settings.shutdown_deadline_s,
        on_started=up,
    )
    if isinstance(reason, Shutdown):
        log.info("node stopped", node=settings.node_name)
        return 0
    logging.getLogger("whispr").error("node exited: %s", reason)
    return 1
