"""The gateway: WebSocket at ``/socket/websocket`` and HTTP probes on the same port.

:class:`GatewayService` is the node's ``gateway`` service. It runs a ``websockets`` server
whose ``process_request`` hook answers plain HTTP (``/health``, ``/ready``, ``/metrics``) and
refuses bad upgrades before any WebSocket exists:

- unknown path: 404;
- draining: 503;
- more than ``max_connections_per_ip`` from one address: 429;
- missing, expired, unsigned or wrongly signed token: 401 with the reason;
- the token issuer's keys (JWKS) cannot be fetched: 503;
- a user the user service says is not active (when it is configured): 403;
- ``Origin`` not allowed (when origins are configured): 403, by ``websockets`` itself.

An accepted socket gets a :class:`~whispr.gateway.connection.ConnectionActor` under the
node's Connections supervisor; the handler task reads the socket and tells the actor.

Stopping the service drains: no new connection is accepted, every socket is closed with 1012
(service restart), and phoenix.js clients reconnect (to another node, behind a load
balancer) and catch up from the store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qs, urlsplit

import structlog
from pykka import ActorDeadError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin, Subprotocol

from actors.broker import Broker
from actors.errors import Reason, WhisprError
from actors.messaging import Messaging
from actors.ports import Store
from actors.schedules import Schedules
from supervisors import AsyncioActor, ChildSpec, Ref, Registry, Restart
from whispr.accounts import AccountStore
from whispr.audit import AuditLog
from whispr.audit.record import Source
from whispr.auth import Identity, TokenVerifier, claimed_user
from whispr.config import Settings
from whispr.gateway.abuse import AbuseDetector
from whispr.gateway.connection import ConnectionActor, Inbound, Tick
from whispr.gateway.context import GatewayContext
from whispr.gateway.limits import EventLimits
from whispr.gateway.longpoll import LongPollSessions
from whispr.gateway.presence import Presence
from whispr.gateway.ratelimit import RateLimiter
from whispr.gateway.sessions import Sessions
from whispr.gateway.transport import Transport, WebSocketTransport
from whispr.protocol import CloseCode
from whispr.readiness import dependency_states, ready_answer
from whispr.revocations import RevocationList
from whispr.siblings import Siblings
from whispr.slot import Slot
from whispr.telemetry import metrics_exposition
from whispr.user_presence import UserPresence

__all__ = ["SOCKET_PATH", "Gateway", "GatewayService", "Refusal"]

log = structlog.get_logger("whispr.gateway")

SOCKET_PATH: Final = "/socket/websocket"
#: phoenix.js ``authToken``: the token rides in ``Sec-WebSocket-Protocol`` under this prefix.
_TOKEN_PROTOCOL: Final = "base64url.bearer.phx."
#: Seconds between heartbeat and token checks of every connection.
TICK_INTERVAL_S: Final = 5.0
_PHOENIX: Final = Subprotocol("phoenix")


#: Starts a connection's actor under the node's Connections supervisor.
StartConnection = Callable[
    [GatewayContext, Transport, Identity, asyncio.Semaphore],
    Awaitable[Ref[ConnectionActor]],
]
#: The state of each dependency, reported by ``GET /ready`` (see :mod:`whispr.readiness`).
Dependencies = Callable[[], Awaitable[dict[str, bool]]]


def _token(request: Request) -> str | None:
    query = parse_qs(urlsplit(request.path).query)
    tokens = query.get("token")
    if tokens:
        return tokens[0]
    for offered in _offered(request):
        if offered.startswith(_TOKEN_PROTOCOL):
            encoded = offered[len(_TOKEN_PROTOCOL) :]
            with contextlib.suppress(ValueError):
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    return None


def _offered(request: Request) -> Iterator[str]:
    """The subprotocols the client offers (``Sec-WebSocket-Protocol``), in order."""
    for value in request.headers.get_all("Sec-WebSocket-Protocol"):
        for offered in value.split(","):
            yield offered.strip()


def _select_subprotocol(
    _connection: ServerConnection, request: Request, response: Response
) -> None:
    """``phoenix`` when offered (phoenix.js's ``authToken``), else none: both are fine.

    Chosen on the handshake's response (``process_response``), not with ``serve``'s
    ``select_subprotocol``: websockets wraps that callback in a closure over each connection,
    which the connection's protocol holds, so every connection would end as a reference
    cycle (with its actor, channels and buffers) left for the cyclic collector, which the
    node's thresholds make rare (whispr/gc_policy.py).
    """
    if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS and _PHOENIX in _offered(request):
        response.headers["Sec-WebSocket-Protocol"] = _PHOENIX


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return str(address[0]) if address else "unknown"


@dataclass(frozen=True)
class Refusal:
    """Why :meth:`Gateway.admit` refused a client: the HTTP status and the error."""

    status: HTTPStatus
    error: WhisprError


def _text(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


class Gateway:
    """The server and what its connections share; started and stopped by its service."""

    def __init__(
        self, ctx: GatewayContext, start_connection: StartConnection, dependencies: Dependencies
    ) -> None:
        self.ctx = ctx
        self._start_connection = start_connection
        self._dependencies = dependencies
        self._identities: dict[int, Identity] = {}
        self.server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        #: Phoenix long-poll sessions (``/socket/longpoll``, served by the HTTP service).
        self.longpoll = LongPollSessions(self, ctx.broker, ctx.settings.jwt_secret)

    async def start(self, host: str, port: int) -> None:
        settings = self.ctx.settings
        origins: list[Origin | None] | None = None
        if settings.allowed_origins:
            origins = [*(Origin(o) for o in settings.allowed_origins), None]
        self.server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            origins=origins,
            process_response=_select_subprotocol,
            max_size=settings.max_frame_bytes,
            ping_interval=None,  # the Phoenix heartbeat is the liveness check
            compression="deflate" if settings.compression == "deflate" else None,
            backlog=settings.listen_backlog,
        )
        await self.longpoll.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="gateway-tick")

    @property
    def port(self) -> int:
        """The port actually bound (useful when started on port 0)."""
        assert self.server is not None
        sockets = list(self.server.sockets)
        return int(sockets[0].getsockname()[1])

    async def drain(self, timeout: float) -> None:
        """Refuse new connections, close every socket with 1012, wait for them to end."""
        self.ctx.draining = True
        if self._ticker is not None:
            self._ticker.cancel()
        await self.longpoll.close(CloseCode.SERVICE_RESTART, "service restart")
        if self.server is None:
            return
        self.server.close(
            close_connections=True, code=CloseCode.SERVICE_RESTART, reason="service restart"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), timeout)
        log.info("gateway drained", connections=len(self.ctx.connections))
        await self.ctx.sessions.stop()
        await self.ctx.limits.limiter.close()

    async def _tick(self) -> None:
        # Often enough that a silent connection is closed within a third of the timeout.
        interval = min(TICK_INTERVAL_S, self.ctx.settings.heartbeat_timeout_s / 3)
        while True:
            await asyncio.sleep(interval)
            tick = Tick(time.monotonic())
            for ref in list(self.ctx.connections):
                with contextlib.suppress(ActorDeadError):
                    ref.tell(tick)

    # -- HTTP and the upgrade ---------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/health":
            return _text(HTTPStatus.OK, b"ok\n", "text/plain")
        if path == "/ready":
            status, body = ready_answer(self.ctx.draining, await self._dependencies())
            return _text(status, body, "text/plain")
        if path == "/metrics":
            body = metrics_exposition()
            return _text(HTTPStatus.OK, body, "text/plain; version=0.0.4; charset=utf-8")
        if path not in (SOCKET_PATH, SOCKET_PATH + "/"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        admitted = await self.admit(_peer(connection), _token(request), "websocket")
        if isinstance(admitted, Refusal):
            return connection.respond(admitted.status, f"{admitted.error}\n")
        self._identities[id(connection)] = admitted
        return None

    async def admit(self, peer: str, token: str | None, source: Source) -> Identity | Refusal:
        """Whether a client may open a connection: the one admission of every transport.

        Refused: while draining (503), past ``max_connections_per_ip`` (429), a missing, bad
        or revoked token (401), the issuer's keys out of reach (503), a user the user service
        says is not active (403). An admitted client counts for its address until
        :meth:`ended`.
        """
        metrics = self.ctx.metrics
        if self.ctx.draining:
            metrics.connects.add(1, {"outcome": "draining"})
            error = WhisprError(Reason.UNAVAILABLE, "draining; retry")
            return Refusal(HTTPStatus.SERVICE_UNAVAILABLE, error)
        audit = self.ctx.audit
        if self.ctx.per_ip[peer] >= self.ctx.settings.max_connections_per_ip:
            metrics.connects.add(1, {"outcome": "too_many_connections"})
            limit = self.ctx.settings.max_connections_per_ip
            refusal = WhisprError(
                Reason.TOO_MANY_CONNECTIONS, f"at most {limit} connections per address"
            )
            audit.refused(refusal, source=source, user_id=None, peer=peer, on="connect")
            return Refusal(HTTPStatus.TOO_MANY_REQUESTS, refusal)
        try:
            identity = await self.ctx.verifier.verify(token)
        except WhisprError as exc:
            if exc.reason is Reason.UNAVAILABLE:  # the issuer's keys cannot be fetched
                metrics.connects.add(1, {"outcome": "unavailable"})
                return Refusal(HTTPStatus.SERVICE_UNAVAILABLE, exc)
            metrics.connects.add(1, {"outcome": "unauthorized"})
            audit.refused(exc, source=source, user_id=claimed_user(token), peer=peer, on="connect")
            return Refusal(HTTPStatus.UNAUTHORIZED, exc)
        if self.ctx.is_user_active is not None and not await self.ctx.is_user_active(
            identity.user_id
        ):
            metrics.connects.add(1, {"outcome": "inactive"})
            refusal = WhisprError(Reason.FORBIDDEN, "this user is not active")
            audit.refused(refusal, source=source, user_id=identity.user_id, peer=peer, on="connect")
            return Refusal(HTTPStatus.FORBIDDEN, refusal)
        revoked = self.ctx.sessions.refused(identity)
        if revoked is not None:
            metrics.connects.add(1, {"outcome": "unauthorized"})
            refusal = WhisprError(Reason.UNAUTHORIZED, revoked)
            audit.refused(refusal, source=source, user_id=identity.user_id, peer=peer, on="connect")
            return Refusal(HTTPStatus.UNAUTHORIZED, refusal)
        # Counted now, so that concurrent handshakes from one address cannot overshoot.
        self.ctx.per_ip[peer] += 1
        return identity

    async def opened(
        self, transport: Transport, identity: Identity
    ) -> tuple[Ref[ConnectionActor], asyncio.Semaphore]:
        """Start the actor of an admitted connection: its ref, and the credits its reader
        takes per message told (whoever calls this calls :meth:`ended` afterwards)."""
        ctx = self.ctx
        ctx.metrics.connects.add(1, {"outcome": "ok"})
        ctx.metrics.connections.add(1)
        credits = asyncio.Semaphore(ctx.settings.inbound_credits)
        ref = await self._start_connection(ctx, transport, identity, credits)
        ctx.connections.add(ref)
        return ref, credits

    async def ended(self, peer: str, ref: Ref[ConnectionActor] | None) -> None:
        """An admitted connection is over: stop its actor, stop counting it."""
        ctx = self.ctx
        ctx.metrics.connections.add(-1)
        ctx.per_ip[peer] -= 1
        if ctx.per_ip[peer] <= 0:
            del ctx.per_ip[peer]
        if ref is not None:
            ctx.connections.discard(ref)
            ref.stop(block=False)
            await ref.wait_exit()

    async def _handle(self, ws: ServerConnection) -> None:
        peer = _peer(ws)
        identity = self._identities.pop(id(ws))
        ref: Ref[ConnectionActor] | None = None
        try:
            ref, credits = await self.opened(WebSocketTransport(ws), identity)
            async for message in ws:
                await credits.acquire()
                ref.tell(Inbound(message))
        except (ConnectionClosed, ActorDeadError):
            pass
        except Exception:
            log.exception("connection handler failed", peer=peer)
            await ws.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await self.ended(peer, ref)


class GatewayService(AsyncioActor):
    """The node's ``gateway`` service: builds the gateway over the services started before it.

    The running :class:`Gateway` is published in ``out`` (for its bound port and state).
    Connection actors are started under whichever Connections supervisor ``registry``
    holds when a socket is accepted.
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        messaging: Messaging,
        store: Store,
        broker: Broker,
        presence: Presence,
        siblings: Siblings,
        audit: AuditLog,
        accounts: AccountStore | None = None,
        user_presence: UserPresence | None = None,
        schedules: Schedules | None = None,
        out: Slot[Gateway],
    ) -> None:
        super().__init__()
        self.audit = audit
        self.schedules = schedules
        self.accounts = accounts
        self.user_presence = user_presence
        self.settings = settings
        self.registry = registry
        self.messaging = messaging
        self.store = store
        self.broker = broker
        self.presence = presence
        self.siblings = siblings
        self.out = out
        self.gateway: Gateway | None = None

    async def on_start(self) -> None:
        settings, registry, siblings = self.settings, self.registry, self.siblings
        store, broker = self.store, self.broker
        limiter = RateLimiter(settings.redis_url, settings.redis_prefix)
        ctx = GatewayContext(
            settings=settings,
            messaging=self.messaging,
            broker=broker,
            presence=self.presence,
            is_user_active=siblings.users.is_active if siblings.users.configured else None,
            limits=EventLimits(settings, limiter),
            abuse=AbuseDetector(settings, limiter, self.audit, siblings.moderation),
            verifier=TokenVerifier.from_settings(settings),
            audit=self.audit,
            sessions=Sessions(None if self.accounts is None else RevocationList(self.accounts)),
            user_presence=self.user_presence,
            accounts=self.accounts,
            schedules=self.schedules,
        )
        # Revoked tokens are known before the first connection is accepted.
        await ctx.sessions.start(broker)

        async def start_connection(
            ctx: GatewayContext,
            transport: Transport,
            identity: Identity,
            credits: asyncio.Semaphore,
        ) -> Ref[ConnectionActor]:
            supervisor = registry.whereis("connections")
            if supervisor is None:
                msg = "the connections supervisor is not running"
                raise RuntimeError(msg)
            spec = ChildSpec(
                id=("connection", id(transport)),
                start=lambda: ConnectionActor.start(ctx, transport, identity, credits),
                restart=Restart.TEMPORARY,
                shutdown=5.0,
            )
            ref: Ref[ConnectionActor] = await supervisor.proxy().start_child(spec)
            return ref

        async def dependencies() -> dict[str, bool]:
            return await dependency_states({"store": store.ping, "broker": broker.ping})

        self.gateway = Gateway(ctx, start_connection, dependencies)
        await self.gateway.start(settings.host, settings.port)
        self.out.set(self.gateway)
        log.info("gateway listening", host=settings.host, port=self.gateway.port)

    async def on_stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.drain(timeout=self.settings.shutdown_deadline_s / 2)
            self.out.clear()
