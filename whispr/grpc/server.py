"""The gRPC server of a node: messaging API, health and reflection.

:class:`GrpcService` runs it as a service of the node's tree, after the
messaging service (whose :class:`~actors.messaging.Messaging` it serves) and
before the gateway. The standard health service (``grpc.health.v1``) follows
the node's readiness rule, as ``GET /ready`` does (:mod:`whispr.readiness`):
SERVING while the server runs, NOT_SERVING once it stops, so a Kubernetes gRPC
probe or a client-side health check stops sending calls to a node going away;
an outage of the shared store or broker does not take every node out at once.
Health and reflection need no credentials (probes and tools have none); the
messaging API does (:mod:`whispr.grpc.auth`). Every call is a server span
whose parent is the caller's ``traceparent`` metadata, when it sends one
(``whispr/tracing.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from actors.broker import Broker
from actors.messaging import Messaging
from actors.ports import Store
from actors.schedules import Schedules
from supervisors import AsyncioActor
from whispr.accounts import AccountStore
from whispr.audit import AuditLog
from whispr.config import Settings
from whispr.grpc.admin_service import ConversationAdminServicer
from whispr.grpc.auth import CallerAuth, parse_tokens
from whispr.grpc.gen.whispr.admin.v1 import admin_pb2, admin_pb2_grpc
from whispr.grpc.gen.whispr.keys.v1 import keys_pb2_grpc
from whispr.grpc.gen.whispr.members.v1 import members_pb2_grpc
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2 as pb
from whispr.grpc.gen.whispr.messaging.v1 import messaging_pb2_grpc as pb_grpc
from whispr.grpc.gen.whispr.schedules.v1 import schedules_pb2, schedules_pb2_grpc
from whispr.grpc.gen.whispr.search.v1 import search_pb2_grpc
from whispr.grpc.gen.whispr.server.v1 import server_pb2_grpc
from whispr.grpc.keys_service import KEY_DIRECTORY_SERVICE, KeyDirectoryServicer
from whispr.grpc.members_service import MEMBER_STATE_SERVICE, MemberStateServicer
from whispr.grpc.schedules_service import ScheduledMessagesServicer
from whispr.grpc.search_service import SEARCH_SERVICE, MessageSearchServicer
from whispr.grpc.server_service import SERVER_API, ServerApiServicer
from whispr.grpc.service import MessagingServicer
from whispr.server_api import ServerApi
from whispr.slot import Slot
from whispr.startup import ensure_bindable
from whispr.tracing import server_interceptors
from whispr.user_presence import UserPresence

__all__ = ["MESSAGING_SERVICE", "GrpcServer", "GrpcService"]

log = structlog.get_logger("whispr.grpc")

MESSAGING_SERVICE = pb.DESCRIPTOR.services_by_name["MessagingService"].full_name
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["ConversationAdmin"].full_name
SCHEDULES_SERVICE = schedules_pb2.DESCRIPTOR.services_by_name["ScheduledMessages"].full_name

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    """A started ``grpc.aio`` server with the messaging, health and reflection services."""

    def __init__(
        self,
        settings: Settings,
        messaging: Messaging,
        broker: Broker,
        store: Store,
        audit: AuditLog,
        server_api: ServerApi | None = None,
        schedules: Schedules | None = None,
    ):
        self.settings = settings
        self.store = store
        self.broker = broker
        self.auth = CallerAuth(
            parse_tokens(settings.grpc_tokens), mtls=settings.grpc_tls_client_ca is not None
        )
        self.servicer = MessagingServicer(messaging, self.auth, audit=audit)
        #: The server API for backends (whispr/server_api.py), when the node runs one.
        self.server_api = (
            None
            if server_api is None
            else ServerApiServicer(
                server_api, self.auth, audit=audit, metrics=self.servicer.metrics
            )
        )
        self.member_state = MemberStateServicer(
            messaging, self.auth, self.servicer.metrics, audit=audit
        )
        self.admin = ConversationAdminServicer(
            messaging, self.auth, self.servicer.metrics, audit=audit
        )
        self.search = MessageSearchServicer(
            messaging, self.auth, self.servicer.metrics, audit=audit
        )
        self.scheduled = ScheduledMessagesServicer(
            messaging, schedules, self.auth, self.servicer.metrics, audit=audit
        )
        self.keys = KeyDirectoryServicer(messaging, self.auth, self.servicer.metrics, audit=audit)
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        # No SO_REUSEPORT: a port another process holds is an error at start,
        # not two servers silently sharing it.
        server = grpc.aio.server(
            interceptors=server_interceptors(), options=[("grpc.so_reuseport", 0)]
        )
        pb_grpc.add_MessagingServiceServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]
        members_pb2_grpc.add_MemberStateServicer_to_server(self.member_state, server)  # type: ignore[no-untyped-call]
        admin_pb2_grpc.add_ConversationAdminServicer_to_server(self.admin, server)  # type: ignore[no-untyped-call]
        search_pb2_grpc.add_MessageSearchServicer_to_server(self.search, server)  # type: ignore[no-untyped-call]
        schedules_pb2_grpc.add_ScheduledMessagesServicer_to_server(self.scheduled, server)  # type: ignore[no-untyped-call]
        keys_pb2_grpc.add_KeyDirectoryServicer_to_server(self.keys, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        services = [
            MESSAGING_SERVICE,
            MEMBER_STATE_SERVICE,
            ADMIN_SERVICE,
            SEARCH_SERVICE,
            SCHEDULES_SERVICE,
            KEY_DIRECTORY_SERVICE,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        if self.server_api is not None:
            server_pb2_grpc.add_ServerApiServicer_to_server(self.server_api, server)  # type: ignore[no-untyped-call]
            services.append(SERVER_API)
        reflection.enable_server_reflection(services, server)
        address = f"{host}:{port}"
        ensure_bindable(host, port)
        credentials = self._credentials()
        if credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, credentials)
        await server.start()
        self._server = server
        # SERVING from now until the server stops, whatever the store and the broker do:
        # the readiness rule of every listener of the node (whispr/readiness.py).
        await self.health.set("", _SERVING)
        await self.health.set(MESSAGING_SERVICE, _SERVING)
        await self.health.set(MEMBER_STATE_SERVICE, _SERVING)
        await self.health.set(ADMIN_SERVICE, _SERVING)
        await self.health.set(SEARCH_SERVICE, _SERVING)
        await self.health.set(SCHEDULES_SERVICE, _SERVING)
        await self.health.set(KEY_DIRECTORY_SERVICE, _SERVING)
        if self.server_api is not None:
            await self.health.set(SERVER_API, _SERVING)

    async def stop(self, grace: float) -> None:
        """Say NOT_SERVING, then let calls in progress finish within ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def _credentials(self) -> Any:
        settings = self.settings
        if settings.grpc_tls_cert is None or settings.grpc_tls_key is None:
            return None
        chain = Path(settings.grpc_tls_cert).read_bytes()
        key = Path(settings.grpc_tls_key).read_bytes()
        client_ca = (
            Path(settings.grpc_tls_client_ca).read_bytes() if settings.grpc_tls_client_ca else None
        )
        return grpc.ssl_server_credentials(
            [(key, chain)],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )


class GrpcService(AsyncioActor):
    """Runs the node's :class:`GrpcServer` (``WHISPR_GRPC_PORT``; 0 disables it).

    The running server is published in ``out`` (for its bound port); it stays empty when
    the server is disabled.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        messaging: Messaging,
        broker: Broker,
        store: Store,
        audit: AuditLog,
        accounts: AccountStore | None = None,
        user_presence: UserPresence | None = None,
        schedules: Schedules | None = None,
        out: Slot[GrpcServer],
    ) -> None:
        super().__init__()
        self.schedules = schedules
        self.settings = settings
        self.messaging = messaging
        self.broker = broker
        self.store = store
        self.audit = audit
        self.server_api = (
            None
            if accounts is None or user_presence is None
            else ServerApi(messaging, broker, accounts, user_presence)
        )
        self.out = out
        self.server: GrpcServer | None = None

    async def on_start(self) -> None:
        settings = self.settings
        if not settings.grpc_port:
            log.info("grpc disabled", setting="WHISPR_GRPC_PORT=0")
            return
        self.server = GrpcServer(
            settings,
            self.messaging,
            self.broker,
            self.store,
            self.audit,
            self.server_api,
            self.schedules,
        )
        await self.server.start(settings.host, settings.grpc_port)
        self.out.set(self.server)
        if not self.server.auth.tokens and not self.server.auth.mtls:
            log.warning(
                "no gRPC caller is configured: every call is refused until "
                "WHISPR_GRPC_TOKENS (or WHISPR_GRPC_TLS_CLIENT_CA) is set"
            )
        log.info(
            "grpc listening",
            host=settings.host,
            port=self.server.port,
            tls=settings.grpc_tls_cert is not None,
            callers=sorted(set(self.server.auth.tokens.values())),
        )

    async def on_stop(self) -> None:
        if self.server is not None:
            self.out.clear()
            await self.server.stop(grace=self.settings.shutdown_deadline_s / 4)
            self.server = None
